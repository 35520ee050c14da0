"""Synthetic volume for the heavy jobs: fills a migrated database with users,
conversations, support chats, bookings, memories and delta-log entries (set-based
SQL, seconds), then runs each job once and prints its time, the peak of Python
memory it allocated (tracemalloc) and its result.

    AGNT_DATABASE_URL=postgresql://... python -m tests.support.knowledge_bench --scale 1

Not a test: speed and memory belong here, not in assertions. Compare two scales to see
that a job's memory stays flat while its data grows.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from agnt_jobs import db
from agnt_jobs.scheduler.bodies import BODIES, RunContext
from agnt_jobs.settings import get_settings

TICK = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)  # Mon 04:00 WITA

PHRASES = [
    "I love sushi in Canggu",
    "Book a table for two tonight",
    "Any rooftop bar in Seminyak with a sunset view",
    "My wife is vegetarian so no meat please",
    "Can you find a spa in Ubud for Saturday",
    "We want a beach club in Uluwatu",
    "Is there live music at Potato Head",
    "Saya suka makanan pedas",
    "Remind me to bring the voucher",
    "Find a quiet cafe to work from in Canggu",
    "Do they have gluten free pasta",
    "Reserve the yoga class tomorrow morning",
]
QUESTIONS = [
    "How do I cancel my booking?",
    "How can I cancel a booking I made?",
    "What time does the spa open on Sunday?",
    "Can I change the number of guests?",
    "How do I get a refund?",
    "Where can I see my receipt?",
    "Why was my card declined?",
    "Can I pay with cash at the venue?",
]
CATEGORIES = ["Japanese", "Italian", "spa", "bar", "beach club", "cafe", "yoga"]


def fill(engine: sa.Engine, scale: int) -> None:
    users, messages = 20_000 * scale, 200_000 * scale
    statements = [
        (
            "INSERT INTO users (display_name, channel) "
            "SELECT 'u' || g, 'whatsapp' FROM generate_series(1, :users) g"
        ),
        (
            "INSERT INTO venues (name, category) SELECT 'Venue ' || g, "
            "(CAST(:categories AS text[]))[1 + g % 7] FROM generate_series(1, 2000) g"
        ),
        (
            "INSERT INTO bookings (user_id, venue_id, status, slot_start, slot_end) "
            "SELECT 1 + (random() * (:users - 1))::int, "
            "1 + (power(random(), 2) * 1999)::int, "
            "CASE WHEN random() < 0.7 THEN 'COMPLETED' ELSE 'CANCELLED' END, "
            "t, t + interval '2 hours' FROM ("
            "SELECT CAST(:tick AS timestamptz) - random() * interval '300 days' AS t "
            "FROM generate_series(1, :users * 5)) s"
        ),
        # The night's conversations, and 30 days of older history.
        (
            "INSERT INTO interactions (user_id, conversation_id, role, text, "
            "is_support, created_at) "
            "SELECT u, u || '-' || (g % 3), CASE WHEN g % 2 = 0 THEN 'user' "
            "ELSE 'agent' END, (CAST(:phrases AS text[]))[1 + (random() * 11)::int] "
            "|| '. ' || (CAST(:phrases AS text[]))[1 + (random() * 11)::int], false, "
            "CAST(:tick AS timestamptz) - random() * interval '31 days' "
            "FROM (SELECT g, 1 + (random() * (:users * 0.3))::int AS u "
            "FROM generate_series(1, :messages) g) s"
        ),
        (
            "INSERT INTO interactions (user_id, conversation_id, role, text, "
            "is_support, created_at) "
            "SELECT u, 's' || (g / 2), CASE WHEN g % 2 = 0 THEN 'user' "
            "ELSE 'agent' END, CASE WHEN g % 2 = 0 THEN "
            "replace((CAST(:questions AS text[]))[1 + (random() * 7)::int], '?', "
            "' for order ' || (random() * 50)::int || '?') "
            "ELSE 'Open the app and tap the booking.' END, "
            "true, CAST(:tick AS timestamptz) - interval '1 day' - (g / 2) * "
            "interval '1 second' "
            "FROM (SELECT g, 1 + (random() * (:users - 1))::int AS u "
            "FROM generate_series(1, :messages / 10) g) s"
        ),
        (
            "INSERT INTO reflections (user_id, reflection_date, topics, preferences, "
            "open_loops, summary, interaction_count, method) "
            "SELECT u, DATE '2026-11-23' + d, '[\"sushi\", \"canggu\"]', '[]', '[]', "
            "'s', 3, 'extractive' FROM generate_series(1, :users / 4) u, "
            "generate_series(0, 2) d"
        ),
        (
            "INSERT INTO memories (user_id, kind, content, created_at) "
            "SELECT 1 + (g % (:users / 4)), 'fact', "
            "(CAST(:phrases AS text[]))[1 + (random() * 11)::int], "
            "CAST(:tick AS timestamptz) - random() * interval '60 days' "
            "FROM generate_series(1, :users) g"
        ),
        (
            "INSERT INTO fleet_delta_log (agent_id, page_slug, action, title, "
            "content, created_at) SELECT 'agent-' || (g % 9), 'page-' || (g % 500), "
            "(ARRAY['create', 'update', 'update', 'retire'])[1 + g % 4], 'T' || g, "
            "'content ' || g, CAST(:tick AS timestamptz) - interval '14 days' "
            "+ g * interval '1 second' FROM generate_series(1, 5000 * :scale) g"
        ),
        (
            "WITH moved AS (DELETE FROM fleet_delta_log WHERE created_at < "
            "CAST(:tick AS timestamptz) - interval '7 days' RETURNING *) "
            "INSERT INTO fleet_delta_log_archive (id, created_at, agent_id, page_slug, "
            "action, title, content, meta) SELECT id, created_at, agent_id, page_slug, "
            "action, title, content, meta FROM moved"
        ),
        "ANALYZE",
    ]
    params = {
        "users": users,
        "messages": messages,
        "scale": scale,
        "tick": TICK,
        "phrases": PHRASES,
        "questions": QUESTIONS,
        "categories": CATEGORIES,
    }
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement), params)


JOBS = [
    ("light_dreaming", TICK),
    ("deep_dreaming", TICK),
    ("faq_extraction", TICK),
    ("faq_compilation", TICK),
    ("rebuild_entity_graph", TICK),
    ("wiki_reconcile", TICK + timedelta(days=1)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--no-fill", action="store_true")
    parser.add_argument("--only", nargs="*", help="job ids to run (default: all)")
    args = parser.parse_args()
    import agnt_jobs.app  # noqa: F401  (registers the bodies)

    engine = db.engine()
    if not args.no_fill:
        started = time.perf_counter()
        fill(engine, args.scale)
        print(f"filled scale {args.scale} in {time.perf_counter() - started:.1f}s")
    for job_id, tick in JOBS:
        if args.only and job_id not in args.only:
            continue
        tracemalloc.start()
        started = time.perf_counter()
        result = BODIES[job_id](
            RunContext(engine=engine, settings=get_settings(), tick=tick, now=tick)
        )
        took = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(f"{job_id:22s} {took:7.1f}s  peak {peak:6.1f} MiB  {json.dumps(result)}")


if __name__ == "__main__":
    main()
