"""Benchmark data for the booking, A2A, reminder and digest jobs.

Background, proportional to the scale and due for no job: a request envelope
(RESPONDED, or EXPIRED for a cancelled booking) and an APPLIED venue response for
every tenth booking of ``fixture_core``; a reminder for every booking that has
had one by now (COMPLETED ones, CONFIRMED ones within the reminder horizon) and a
rating prompt for every COMPLETED booking old enough to have had one.

Due work: each job gets bookings of its own, in a block of ids after the
background's (``BASE + block * :due``), in the state and age its body looks for,
and in no state another job looks for, so that each copy of the data measures one
job's work. Jobs that change only rows get ``:due`` rows; jobs that call the
gateway or a venue agent once per row get ``:http_due`` (see ``Sizes.http_due``).
Their users are reachable (not deleted, opted in, with an address). Times are
relative to ``:at``. The send queue's and the diaries' due work is
``fixture_messages``'.
"""

from __future__ import annotations

BASE = "greatest(:bookings, 3 * :due)"
# A reachable user for due row ``g``: id 10 k + 1 (never deleted, opted in).
USER = "1 + 10 * ((g - 1) % (:users / 10))"
AT = "CAST(:at AS timestamptz)"
RETURNING = "RETURNING id, venue_id, user_id, slot_start, slot_end, party_size, status"


def bookings(block: int, count: str, status: str, slot: str, changed: str) -> str:
    """An INSERT of ``count`` bookings in id block ``block``: ``status``, slot start
    and last status change are SQL expressions of ``g`` (1..count) and ``:at``."""
    return f"""
    INSERT INTO bookings (id, user_id, venue_id, status, slot_start, slot_end,
                          party_size, guest_name, created_at, status_changed_at)
    SELECT {BASE} + {block} * :due + g, {USER}, 1 + g % :venues, {status},
           {slot}, {slot} + interval '2 hours', 1 + g % 6, 'Guest ' || g,
           {AT} - interval '3 days', {changed}
    FROM generate_series(1, {count}) g
    {RETURNING}
    """


def envelopes(source: str, status: str, changed: str, expires: str) -> str:
    """An INSERT of one request envelope per booking of CTE ``source``."""
    return f"""
    INSERT INTO a2a_envelopes (booking_id, venue_id, kind, payload, status, attempts,
                               next_attempt_at, expires_at, last_error, created_at,
                               status_changed_at, dispatched_at)
    SELECT b.id, b.venue_id, 'booking_request',
           jsonb_build_object('booking_id', b.id, 'slot_start', b.slot_start,
                              'party_size', b.party_size),
           {status}, CASE WHEN {status} = 'PENDING' THEN 0 ELSE 1 END,
           CASE WHEN {status} = 'DISPATCH_FAILED'
                THEN {AT} - interval '1 minute' END,
           {expires},
           CASE WHEN {status} = 'DISPATCH_FAILED' THEN 'venue agent answered 503' END,
           {changed} - interval '1 minute', {changed},
           CASE WHEN {status} IN ('DISPATCHED', 'DELIVERED') THEN {changed} END
    FROM {source} AS b
    RETURNING id, booking_id, venue_id
    """


BACKGROUND_A2A = f"""
WITH sent AS (
    INSERT INTO a2a_envelopes (booking_id, venue_id, kind, payload, status, attempts,
                               expires_at, created_at, status_changed_at,
                               dispatched_at)
    SELECT id, venue_id, 'booking_request', jsonb_build_object('booking_id', id),
           CASE WHEN status = 'CANCELLED' THEN 'EXPIRED' ELSE 'RESPONDED' END, 1,
           created_at + interval '1 hour', created_at,
           created_at + interval '10 minutes', created_at + interval '1 minute'
    FROM bookings WHERE id <= {BASE} AND id % 10 = 0
    RETURNING id, booking_id, venue_id, status, created_at
)
INSERT INTO venue_responses (envelope_id, booking_id, venue_id, decision, status,
                             received_at, resolved_at)
SELECT id, booking_id, venue_id, 'ACCEPT', 'APPLIED',
       created_at + interval '5 minutes', created_at + interval '10 minutes'
FROM sent WHERE status = 'RESPONDED'
"""

BACKGROUND_REMINDERS = f"""
INSERT INTO reminders (booking_id, due_at, status, created_at, processed_at)
SELECT id, slot_start - interval '2 hours',
       CASE WHEN slot_start - interval '2 hours' <= {AT} THEN 'SENT' ELSE 'PENDING' END,
       slot_start - interval '1 day',
       CASE WHEN slot_start - interval '2 hours' <= {AT}
            THEN slot_start - interval '2 hours' END
FROM bookings
WHERE id <= {BASE}
  AND (status = 'COMPLETED'
       OR (status = 'CONFIRMED' AND slot_start <= {AT} + interval '24 hours'))
"""

BACKGROUND_PROMPTS = f"""
INSERT INTO rating_prompts (booking_id, prompted_at)
SELECT id, slot_end + interval '2 hours' FROM bookings
WHERE id <= {BASE} AND status = 'COMPLETED' AND slot_end <= {AT} - interval '2 hours'
"""


def with_bookings(block: int, count: str, status: str, slot: str, changed: str) -> str:
    """``WITH b AS (the bookings)``, for a statement that adds rows about them."""
    return f"WITH b AS ({bookings(block, count, status, slot, changed)})"


def ago(interval: str) -> str:
    return f"{AT} - interval '{interval}'"


def ahead(interval: str) -> str:
    return f"{AT} + interval '{interval}'"


# mark_completed_bookings: CONFIRMED, the slot ended three hours ago.
COMPLETED = bookings(0, ":due", "'CONFIRMED'", ago("5 hours"), ago("2 days"))

# booking_reminders: CONFIRMED, the slot 3 to 13 hours ahead, no reminder yet.
TO_REMIND = bookings(
    1,
    ":due",
    "'CONFIRMED'",
    f"{ahead('3 hours')} + (g % 600) * interval '1 minute'",
    ago("2 days"),
)

# reap_stale_envelopes: the user cancelled before the dispatch, so the dispatcher
# never sent the request and it outlived its TTL, PENDING.
REAP = f"""
{with_bookings(2, ":due", "'CANCELLED'", ahead("2 days"), ago("80 minutes"))}
{envelopes("b", "'PENDING'", ago("90 minutes"), ago("30 minutes"))}
"""

# sweep_orphaned_responses: a venue answered in the last hour and a half about a
# booking that was cancelled meanwhile, or (every third) one that no longer exists.
# The answers arrived over half an hour, one request each, not all at one instant.
SWEEP = f"""
{with_bookings(3, ":due", "'CANCELLED'", ahead("2 days"), ago("2 hours"))},
e AS ({envelopes("b", "'EXPIRED'", ago("2 hours"), ago("2 hours"))})
INSERT INTO venue_responses (envelope_id, booking_id, venue_id, decision, received_at)
SELECT id, CASE WHEN id % 3 = 0 THEN NULL ELSE booking_id END, venue_id, 'ACCEPT',
       {ago("1 hour")} - (id % 1800) * interval '1 second'
FROM e
"""

# cancel_orphaned_bookings, a third for each reason: the envelope EXPIRED (slot
# tomorrow); no envelope for three hours and the slot started an hour ago; the
# request reached the venue but the slot started half an hour ago unanswered.
ORPHANS = f"""
{
    with_bookings(
        4,
        ":http_due",
        "CASE WHEN g % 3 = 1 THEN 'REQUESTED' ELSE 'PENDING_VENUE' END",
        f"CASE g % 3 WHEN 0 THEN {ahead('1 day')} WHEN 1 THEN {ago('1 hour')} "
        f"ELSE {ago('30 minutes')} END",
        ago("3 hours"),
    )
}
{
    envelopes(
        "(SELECT * FROM b WHERE status = 'PENDING_VENUE')",
        f"CASE WHEN b.slot_start > {AT} THEN 'EXPIRED' ELSE 'DISPATCHED' END",
        ago("3 hours"),
        ago("2 hours"),
    )
}
"""

# auto_confirm_stale_bookings: the venue has had the request for three hours and
# not answered; the slot is tomorrow.
UNANSWERED = f"""
{with_bookings(5, ":http_due", "'PENDING_VENUE'", ahead("1 day"), ago("3 hours"))}
{
    envelopes(
        "b",
        "CASE WHEN b.id % 2 = 0 THEN 'DELIVERED' ELSE 'DISPATCHED' END",
        ago("3 hours"),
        ago("2 hours"),
    )
}
"""

# recover_stuck_bookings, first part: the venue answered half an hour ago (a
# quarter decline; every fifth answered twice, the first to be superseded) and the
# answer was never applied.
ANSWERED = f"""
{with_bookings(6, ":http_due", "'PENDING_VENUE'", ahead("1 day"), ago("40 minutes"))},
e AS ({envelopes("b", "'DISPATCHED'", ago("40 minutes"), ahead("20 minutes"))})
INSERT INTO venue_responses (envelope_id, booking_id, venue_id, decision, received_at)
SELECT id, booking_id, venue_id,
       CASE WHEN id % 4 = 0 THEN 'DECLINE' ELSE 'ACCEPT' END, {ago("30 minutes")}
FROM e
UNION ALL
SELECT id, booking_id, venue_id, 'ACCEPT', {ago("35 minutes")} FROM e WHERE id % 5 = 0
"""

# recover_stuck_bookings, second part: requested half an hour ago and no envelope
# was ever made (not yet long enough for cancel_orphaned_bookings).
UNSENT = bookings(7, ":http_due", "'REQUESTED'", ahead("1 day"), ago("30 minutes"))

# retry_dispatch_failed: the venue agent failed three minutes ago and the retry is
# due; every fourth booking was cancelled meanwhile (its envelope is retired).
FAILED_DISPATCH = f"""
{
    with_bookings(
        8,
        ":http_due",
        "CASE WHEN g % 4 = 0 THEN 'CANCELLED' ELSE 'REQUESTED' END",
        ahead("1 day"),
        ago("20 minutes"),
    )
}
{envelopes("b", "'DISPATCH_FAILED'", ago("3 minutes"), ahead("40 minutes"))}
"""

# deliver_reminders: reminders due half an hour ago for slots 90 minutes ahead;
# every fifth booking was cancelled (its reminder is skipped).
DUE_REMINDERS = f"""
{
    with_bookings(
        9,
        ":http_due",
        "CASE WHEN g % 5 = 0 THEN 'CANCELLED' ELSE 'CONFIRMED' END",
        ahead("90 minutes"),
        ago("1 day"),
    )
}
INSERT INTO reminders (booking_id, due_at, created_at)
SELECT id, slot_start - interval '2 hours', {ago("1 day")} FROM b
"""

# rating_prompt: visits that ended five hours ago, not prompted yet.
TO_PROMPT = bookings(10, ":http_due", "'COMPLETED'", ago("7 hours"), ago("5 hours"))

STATEMENTS: list[tuple[str, str]] = [
    ("a2a_background", BACKGROUND_A2A),
    ("reminders_background", BACKGROUND_REMINDERS),
    ("rating_prompts_background", BACKGROUND_PROMPTS),
    ("bookings_due", COMPLETED),
    ("bookings_due", TO_REMIND),
    ("bookings_due", REAP),
    ("bookings_due", SWEEP),
    ("bookings_due", ORPHANS),
    ("bookings_due", UNANSWERED),
    ("bookings_due", ANSWERED),
    ("bookings_due", UNSENT),
    ("bookings_due", FAILED_DISPATCH),
    ("bookings_due", DUE_REMINDERS),
    ("bookings_due", TO_PROMPT),
]
