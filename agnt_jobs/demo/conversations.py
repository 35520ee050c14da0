"""Demo data for what users tell the agent: five weeks of conversations, the support
ones among them, and the FAQ candidates and drafts made from those.

One user in four talks with the agent, in up to five conversations over the last 35
days (07:00 to 23:00 WITA): asking for tables and tips, saying what they like.
About one conversation in seven is with support: a question from the FAQ topics
below (in English or Indonesian, some naming a place, so that similar questions
cluster without being equal), answered by the agent, sometimes with a second
question. Every support question is its own sentence, so faq_extraction finds
exactly it.

FAQ candidates are what the weekly faq_extraction runs made of the support
questions asked before last Sunday 23:59 WITA; the drafts, what faq_compilation made
of the candidates at last Sunday 03:00 (one draft per topic asked twice or more).
The week since is both jobs' work. Both are one statement each over all support
messages: they aggregate across users, and a scale-100 data set has about 40,000
support questions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from agnt_jobs.demo.core import PLACES, VENUE_WORDS
from agnt_jobs.demo.seeders import (
    LOCAL_TODAY,
    Plan,
    in_chunks,
    local_instant,
    pick,
    seeder,
)
from cron.text import normalise

DAYS = 35
FOODS = ("nasi campur", "seafood", "vegan", "sushi", "babi guling", "brunch", "pizza")
USER_LINES = (
    "Can you book a table for two at {venue} tonight?",
    "Any good {food} places in {place}?",
    "I loved the {food} at {venue}, thanks for the tip!",
    "Is {venue} open on Sunday?",
    "I prefer quiet places with a sunset view.",
    "We are vegetarian, please keep that in mind.",
    "Please move my booking at {venue} to 8pm.",
    "Looking for a spa in {place} for two people.",
    "Cari tempat makan {food} di {place} dong.",
    "Remind me to book {venue} for Friday.",
    "I can't eat spicy food.",
    "Saya suka tempat dengan live music.",
)  # fmt: skip
AGENT_LINES = (
    "Done! I asked {venue} for your table and will confirm shortly.",
    "Guests love {venue} in {place} for {food}.",
    "Noted, I'll remember that.",
    "{venue} is open every day from 10:00 to 23:00.",
    "Great choice! Anything else I can help with?",
    "I'll check with {venue} and let you know.",
)  # fmt: skip

# (topic, questions, best answer): questions end with "?", name {place} in some.
FAQ = (
    ("cancel", ("How do I cancel my booking?", "Can I cancel a booking for free?",
                "Bagaimana cara membatalkan booking saya?"),
     "Reply CANCEL with your booking number; it is free until two hours before."),
    ("change time", ("Can I change the time of my booking?",
                     "How do I move my booking to another day?",
                     "Bisa ganti jam booking saya?"),
     "Tell me the new time and I will ask the venue to move your booking."),
    ("confirmation", ("Why is my booking still pending?",
                      "How long does the venue take to confirm my booking?"),
     "Venues usually answer within minutes; after two hours we confirm for them."),
    ("party size", ("Can I add more people to my booking?",
                    "How do I change the number of guests in my booking?"),
     "Tell me the new number of guests and I will update the booking."),
    ("deposit", ("Do I need to pay a deposit?", "Is there a deposit for large groups?"),
     "Only groups of eight or more pay a deposit, refunded when you come."),
    ("refund", ("When will I get my refund?", "How long does a refund take?"),
     "Refunds reach your card in five to ten working days."),
    ("pets", ("Can I bring my dog to restaurants in {place}?",
              "Are dogs allowed at beach clubs in {place}?"),
     "Many venues welcome dogs; I will check with the venue before I book."),
    ("parking", ("Is there parking at restaurants in {place}?",
                 "Where can I park my scooter in {place}?"),
     "Most venues have scooter parking; cars park on the street nearby."),
    ("payment", ("Which payment methods do you accept?",
                 "Can I pay with GoPay or OVO?"),
     "You pay the venue directly: cash, cards and most e-wallets work."),
    ("reminders", ("Can I turn off the booking reminders?",
                   "How do I stop the reminders?"),
     "Reply STOP REMINDERS and I will not send them any more."),
    ("account", ("How do I delete my account?",
                 "Bagaimana cara menghapus akun saya?"),
     "Reply DELETE ACCOUNT; your data is removed after 30 days."),
)  # fmt: skip
GREETINGS = ("", "Hi! ", "Halo kak! ", "Good morning! ")
THANKS = ("", "", " Thanks!", " Makasih!")


def _questions() -> list[tuple[int, str]]:
    """(topic number from 1, question) for every question, places spelt out."""
    found = []
    for topic, (_, questions, _) in enumerate(FAQ, start=1):
        for question in questions:
            if "{place}" in question:
                found += [(topic, question.format(place=p)) for p in PLACES]
            else:
                found.append((topic, question))
    return found


QUESTIONS = _questions()
# Bound to every statement that reads the FAQ: the question list, its normalised
# forms (exactly what faq_extraction computes), topics and answers.
FAQ_PARAMS: dict[str, Any] = {
    "faq_q": [q for _, q in QUESTIONS],
    "faq_norm": [normalise(q) for _, q in QUESTIONS],
    "faq_topic": [t for t, _ in QUESTIONS],
    "faq_answer": [answer for _, _, answer in FAQ],
}
# Each topic's questions are consecutive: where they start (1-based), how many.
FAQ_PARAMS["faq_first"] = [
    1 + next(i for i, (t, _) in enumerate(QUESTIONS) if t == topic)
    for topic in range(1, len(FAQ) + 1)
]
FAQ_PARAMS["faq_count"] = [
    sum(1 for t, _ in QUESTIONS if t == topic) for topic in range(1, len(FAQ) + 1)
]


def _line(lines: tuple[str, ...], r: str, salt: str) -> str:
    """SQL picking one of ``lines`` by ``r`` and filling its placeholders from
    draws salted by ``salt`` (a SQL integer expression)."""
    text = pick([ln.replace("{", "%").replace("}", "%") for ln in lines], r)
    venue = (
        f"{pick(VENUE_WORDS, f'pg_temp.rnd({salt}, 1121)')} || ' ' || "
        f"{pick(PLACES, f'pg_temp.rnd({salt}, 1122)')}"
    )
    place = pick(PLACES, f"pg_temp.rnd({salt}, 1123)")
    food = pick(FOODS, f"pg_temp.rnd({salt}, 1124)")
    return (
        f"replace(replace(replace({text}, '%venue%', {venue}), '%place%', {place}), "
        f"'%food%', {food})"
    )


MESSAGE_KEY = "c.n * 8 + m"  # one key per message
MESSAGE_DRAW = f"pg_temp.rnd({MESSAGE_KEY}, 1125)"

# Question index (1-based) of a support message: a topic (the first ones asked
# more), then one of its questions.
TOPIC_NO = f"1 + floor(power(pg_temp.rnd(c0.n, {{salt}}), 1.4) * {len(FAQ)})::int"
QUESTION_NO = (
    f"(CAST(:faq_first AS int[]))[{TOPIC_NO}] + floor(pg_temp.rnd(c0.n, {{salt}} + 50)"
    f" * (CAST(:faq_count AS int[]))[{TOPIC_NO}])::int"
)
STARTED = local_instant(
    f"{LOCAL_TODAY} - floor(pg_temp.rnd(u * 8 + j, 1103) * {DAYS})::int",
    "interval '7 hours' + pg_temp.rnd(u * 8 + j, 1104) * interval '16 hours'",
)

INTERACTIONS = f"""
INSERT INTO interactions (user_id, conversation_id, role, text, is_support,
                          created_at)
SELECT u, 'conv-' || u || '-' || j, CASE WHEN m % 2 = 0 THEN 'user' ELSE 'agent' END,
       CASE WHEN NOT c.support AND m % 2 = 0
                THEN {_line(USER_LINES, MESSAGE_DRAW, MESSAGE_KEY)}
            WHEN NOT c.support
                THEN {_line(AGENT_LINES, MESSAGE_DRAW, MESSAGE_KEY)}
            WHEN m = 0
                THEN {pick(GREETINGS, "pg_temp.rnd(c.n, 1132)")}
                     || (CAST(:faq_q AS text[]))[c.q1]
                     || {pick(THANKS, "pg_temp.rnd(c.n, 1133)")}
            WHEN m = 1 THEN (CAST(:faq_answer AS text[]))[
                                (CAST(:faq_topic AS int[]))[c.q1]]
            WHEN m = 2 THEN (CAST(:faq_q AS text[]))[c.q2]
            ELSE (CAST(:faq_answer AS text[]))[(CAST(:faq_topic AS int[]))[c.q2]]
       END,
       c.support, t.at
FROM generate_series(CAST(:lo AS bigint), :hi) AS u
CROSS JOIN generate_series(0, 4) AS j
CROSS JOIN LATERAL (
    SELECT u * 8 + j AS n,
           pg_temp.rnd(u * 8 + j, 1102) < 0.15 AS support,
           {STARTED} AS started
) AS c0
CROSS JOIN LATERAL (
    SELECT c0.*,
           {QUESTION_NO.format(salt=1131)} AS q1,
           {QUESTION_NO.format(salt=1134)} AS q2,
           CASE WHEN c0.support
                THEN CASE WHEN pg_temp.rnd(c0.n, 1105) < 0.3 THEN 4 ELSE 2 END
                ELSE 2 + floor(pg_temp.rnd(c0.n, 1105) * 7)::int END AS length
) AS c
CROSS JOIN generate_series(0, 7) AS m
CROSS JOIN LATERAL (
    SELECT c.started + m * interval '70 seconds'
           + pg_temp.rnd(c.n * 8 + m, 1126) * interval '60 seconds' AS at
) AS t
WHERE pg_temp.rnd(u, 1101) < 0.25
  AND j < floor(pg_temp.rnd(u, 1106) * 6)
  AND m < c.length
  AND t.at <= :at
ORDER BY u, j, m
"""

# The question a support message asks: its one sentence that ends with "?".
ASKED = """
SELECT i.id, i.created_at, q.text, q.norm, q.topic
FROM interactions AS i
JOIN unnest(CAST(:faq_q AS text[]), CAST(:faq_norm AS text[]),
            CAST(:faq_topic AS int[])) AS q (text, norm, topic)
  ON q.text = btrim(substring(i.text FROM '[^!]*[?]'))
WHERE i.is_support AND i.role = 'user'
  AND i.user_id BETWEEN :users_first AND :users_first + :users_count - 1
"""
# Local Sunday 23:59 of last week (the last faq_extraction), the one before it,
# and last Sunday 03:00 (the last faq_compilation).
LAST_EXTRACTION = (
    "((date_trunc('week', CAST(:at AS timestamptz) AT TIME ZONE :tz)"
    " - interval '1 minute') AT TIME ZONE :tz)"
)
LAST_COMPILATION = (
    "((date_trunc('week', CAST(:at AS timestamptz) AT TIME ZONE :tz)"
    " - interval '21 hours') AT TIME ZONE :tz)"
)
NEXT_EXTRACTION = (
    "((date_trunc('week', {0} AT TIME ZONE :tz) + interval '7 days'"
    " - interval '1 minute') AT TIME ZONE :tz)"
)

CANDIDATES = f"""
INSERT INTO faq_candidates AS c (normalized_text, text, source_message_ids,
                                 first_seen_at, last_seen_at, created_at,
                                 updated_at)
SELECT a.norm, (array_agg(a.text ORDER BY a.created_at, a.id))[1],
       array_agg(a.id ORDER BY a.id), min(a.created_at), max(a.created_at),
       {NEXT_EXTRACTION.format("min(a.created_at)")},
       {NEXT_EXTRACTION.format("max(a.created_at)")}
FROM ({ASKED}) AS a
WHERE a.created_at < {LAST_EXTRACTION}
GROUP BY a.norm
ORDER BY min(a.created_at), a.norm
ON CONFLICT (normalized_text) DO UPDATE SET
    source_message_ids = ARRAY(
        SELECT DISTINCT m FROM unnest(c.source_message_ids
                                      || EXCLUDED.source_message_ids) AS m
        ORDER BY m),
    first_seen_at = least(c.first_seen_at, EXCLUDED.first_seen_at),
    last_seen_at = greatest(c.last_seen_at, EXCLUDED.last_seen_at)
"""

# The drafts of the last compilation: per topic, from the questions extracted by
# then (before the extraction a week earlier).
DRAFTS = f"""
INSERT INTO faq_drafts (anchor_candidate_id, question, answer, answer_method,
                        cluster_size, candidate_ids, source_message_ids,
                        compiled_at, created_at, updated_at)
WITH asked AS (
    SELECT a.topic, a.id, a.created_at, c.id AS candidate_id, c.text
    FROM ({ASKED}) AS a JOIN faq_candidates AS c ON c.normalized_text = a.norm
    WHERE a.created_at < {LAST_EXTRACTION} - interval '7 days'
), wording AS (
    SELECT topic, candidate_id, text, count(*) AS asked
    FROM asked GROUP BY topic, candidate_id, text
)
SELECT min(a.candidate_id),
       (SELECT w.text FROM wording AS w WHERE w.topic = a.topic
        ORDER BY w.asked DESC, w.candidate_id LIMIT 1),
       (CAST(:faq_answer AS text[]))[a.topic], 'extractive', count(*),
       array_agg(DISTINCT a.candidate_id ORDER BY a.candidate_id),
       array_agg(a.id ORDER BY a.id),
       {LAST_COMPILATION},
       least({NEXT_EXTRACTION.format("min(a.created_at)")} + interval '6 days 03:01',
             {LAST_COMPILATION}),
       {LAST_COMPILATION}
FROM asked AS a
GROUP BY a.topic
HAVING count(*) >= 2
ORDER BY a.topic
ON CONFLICT (anchor_candidate_id) DO NOTHING
"""


@seeder(
    "conversations",
    tables=("interactions", "faq_candidates", "faq_drafts"),
    after=("core",),
)
def fill(connection: Connection, plan: Plan) -> dict[str, int]:
    users = plan.ranges["users"]
    # Up to 40 messages a user, 2.5 on average.
    per_chunk = max(plan.chunk // 4, 1)
    interactions = in_chunks(
        connection, plan, INTERACTIONS, *users, chunk=per_chunk, **FAQ_PARAMS
    )
    candidates = in_chunks(connection, plan, CANDIDATES, 0, 0, **FAQ_PARAMS)
    drafts = in_chunks(connection, plan, DRAFTS, 0, 0, **FAQ_PARAMS)
    return {
        "interactions": interactions,
        "faq_candidates": candidates,
        "faq_drafts": drafts,
    }
