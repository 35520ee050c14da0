"""The big scans of the booking jobs use their indexes on a large table: 200,000
bookings over half a year, analysed, and each job statement EXPLAINed as it runs
(same SQL, same parameters). A sequential scan of bookings here would make the job's
cost grow with all bookings ever made instead of with the rows it has to change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs import timeutil
from agnt_jobs.jobs import a2a, bookings, messaging, reminders

BOOKINGS = 200_000

# Slots every 84 s from 180 days ago (so about 170 days past, 10 to come); past
# bookings mostly COMPLETED, upcoming ones mostly CONFIRMED, like a live platform;
# request envelopes for the last 30 days.
FILL = """
INSERT INTO users (channel, channel_address)
SELECT 'whatsapp', '+62811' || g FROM generate_series(1, 5000) AS g;
INSERT INTO venues (name, is_active, owner_user_id)
SELECT 'Venue ' || g, true, g FROM generate_series(1, 200) AS g;
INSERT INTO bookings (user_id, venue_id, status, slot_start, slot_end,
                      status_changed_at)
SELECT 1 + g % 5000, 1 + g % 200, s, t, t + interval '90 minutes', t
FROM generate_series(1, :n) AS g
CROSS JOIN LATERAL (
    SELECT CAST(:now AS timestamptz) - interval '170 days' + g * interval '84 seconds'
        AS t
) AS x
CROSS JOIN LATERAL (
    SELECT CASE WHEN t > :now
        THEN (ARRAY['CONFIRMED', 'CONFIRMED', 'CONFIRMED', 'PENDING_VENUE',
                    'CANCELLED', 'REQUESTED'])[1 + g % 6]
        ELSE (ARRAY['COMPLETED', 'COMPLETED', 'COMPLETED', 'COMPLETED',
                    'CANCELLED', 'DECLINED'])[1 + g % 6] END AS s
) AS y;
INSERT INTO a2a_envelopes (booking_id, venue_id, status, expires_at)
SELECT id, venue_id,
       CASE status WHEN 'REQUESTED' THEN 'PENDING'
                   WHEN 'PENDING_VENUE' THEN 'DISPATCHED'
                   ELSE 'RESPONDED' END,
       created_at + interval '1 hour'
FROM bookings WHERE slot_start > CAST(:now AS timestamptz) - interval '30 days';
"""


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _bookings_scans(
    engine: Engine, statement: sa.TextClause, **params: Any
) -> set[tuple[str, str | None]]:
    """(scan type, index) of every scan of ``bookings`` in the statement's plan; a
    bitmap heap scan is named by the bitmap index scans under it."""
    with engine.connect() as connection:
        (plan,) = connection.execute(
            sa.text("EXPLAIN (FORMAT JSON) " + statement.text),
            {"limit": 1000, **params},
        ).scalar_one()
    scans = set()
    for node in _nodes(plan["Plan"]):
        if node.get("Relation Name") != "bookings":
            continue
        if node["Node Type"] == "Bitmap Heap Scan":
            scans |= {
                ("Bitmap Heap Scan", inner.get("Index Name"))
                for inner in _nodes(node)
                if inner["Node Type"] == "Bitmap Index Scan"
            }
        else:
            scans.add((node["Node Type"], node.get("Index Name")))
    return scans


def test_booking_job_scans_use_their_indexes(engine: Engine) -> None:
    now = datetime.now(UTC)
    with engine.begin() as connection:
        for part in FILL.split(";")[:4]:
            connection.execute(sa.text(part), {"n": BOOKINGS, "now": now})
        for table in ("users", "venues", "bookings", "a2a_envelopes"):
            connection.execute(sa.text(f"ANALYZE {table}"))
    minutes = lambda m: timedelta(minutes=m)  # noqa: E731
    day = timeutil.day(now, timeutil.zone())
    tz = "Asia/Makassar"
    expected = {
        "mark_completed_bookings": (
            bookings.MARK_COMPLETED,
            {"now": now},
            "ix_bookings_status_slot_end",
        ),
        "booking_reminders": (
            reminders.CREATE_REMINDERS,
            {
                "now": now,
                "horizon": now + minutes(1440),
                "lead": 120,
                "after_at": now,
                "after_id": 0,
            },
            "ix_bookings_status_slot_start",
        ),
        "rating_prompt": (
            reminders.PROMPT_RATINGS,
            {"now": now, "oldest": now - minutes(2880), "newest": now - minutes(120)},
            "ix_bookings_status_slot_end",
        ),
        "auto_confirm_stale_bookings": (
            bookings.AUTO_CONFIRM,
            {"now": now, "cutoff": now - minutes(120), "tz": tz},
            "ix_bookings_status_",
        ),
        "cancel_orphaned_bookings": (
            bookings.CANCEL_ORPHANED,
            {"now": now, "orphan_cutoff": now - minutes(60), "tz": tz},
            "ix_bookings_status_",
        ),
        "recover_stuck_bookings": (
            a2a.CREATE_MISSING_ENVELOPES,
            {"now": now, "cutoff": now - minutes(15), "expires_at": now},
            "ix_bookings_status_",
        ),
        "venue_daily_summary": (
            messaging.VENUE_SUMMARY,
            {"start": day.start, "end": day.end, "day": day.label, "after": 0},
            "ix_bookings_venue_id_slot_start",
        ),
    }
    plans = {
        job: _bookings_scans(engine, statement, **params)
        for job, (statement, params, _) in expected.items()
    }
    for job, (_, _, index) in expected.items():
        scans = plans[job]
        assert all(kind != "Seq Scan" for kind, _ in scans), (job, scans)
        # The driving scan of the job (not the per-row primary key look-ups).
        assert any(name and name.startswith(index) for _, name in scans), (job, scans)
