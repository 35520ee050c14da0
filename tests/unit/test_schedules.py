"""The 40 declarations against the seed, and every next-run time at instants where a
UTC-evaluated cron would go wrong: a UTC day boundary, a Sunday night, the 1st of a
month, a leap-year February, a new year.

The oracle is independent of the evaluator: it reads the seed's own wording ("Mon 10:00
WITA", "interval · 6h") and walks WITA wall-clock minutes until one matches.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agnt_jobs.scheduler.declaration import Misfire, Schedule, ScheduleError
from periodic import DECLARED, MAINTENANCE, SCHEDULES

WITA = ZoneInfo("Asia/Makassar")

# The seed's table (../shared/seed/000_dfa147095a7d4546.txt), verbatim: id | schedule
# | purpose. It is the spec; periodic/schedules.py must say the same.
SEED = """
booking_reminders|interval · 1h|Send upcoming-booking reminders to users.
re_engagement|cron · Mon 10:00 WITA|Weekly re-engagement nudge to lapsed users.
venue_daily_summary|cron · 22:00 WITA daily|Evening ops summary for every venue owner.
monthly_invoice|cron · 1st of month 09:00 WITA|Generate monthly subscription invoices.
retry_failed_sends|interval · 60s|Retry outbound messages in the send queue.
b2b_session_cleanup|cron · 03:00 WITA daily|Purge expired B2B onboarding sessions.
deliver_reminders|interval · 5m|Deliver due reminders via the channel sender.
retry_pending_fees|interval · 30m|Retry Stripe fee collections that failed.
reap_stale_envelopes|interval · 15m|Mark PENDING envelopes past TTL as EXPIRED.
sweep_orphaned_responses|interval · 30m|Close out venue responses with no matching booking.
auto_confirm_stale_bookings|interval · 1h|Auto-confirm bookings venues forgot to accept.
purge_deleted_users|cron · 04:00 WITA daily|Hard-delete users past the retention window.
mark_completed_bookings|interval · 1h|Transition past-slot bookings to COMPLETED.
reconcile_subscription_state|cron · 05:00 WITA daily|Reconcile local subscription rows with Stripe state.
reconcile_fee_status|interval · 30m|Reconcile fee collection statuses against the ledger.
recover_stuck_bookings|interval · 15m|Unstick bookings caught between A2A states.
cancel_orphaned_bookings|interval · 30m|Cancel bookings whose envelope has been abandoned.
retry_dispatch_failed|interval · 30m|Re-dispatch envelopes stuck in DISPATCH_FAILED.
expire_stale_referrals|cron · 06:00 WITA daily|Expire unredeemed referral codes past their TTL.
mark_abandoned_b2b_sessions|cron · 03:30 WITA daily|Mark half-finished B2B onboarding flows as abandoned.
reconcile_venue_compound_state|cron · 04:00 WITA daily|Reconcile venue compound state (is_active, is_claimed, etc).
check_price_watchers|interval · 6h|Refresh price watchers on Shopee/Tokopedia/Lazada products.
daily_nutrition_summary|cron · 21:00 WITA daily|Send users their calorie diary summary.
light_dreaming|cron · 02:00 WITA daily|Lightweight nightly reflection over recent interactions.
deep_dreaming|cron · Mon 04:00 WITA|Weekly deep reflection producing new agent insights.
dlq_cleanup|cron · 02:15 WITA daily|Trim the dead-letter queue of processed failures.
dlq_weekly_report|cron · Mon 06:00 WITA|Weekly DLQ health report to the alerts channel.
faq_compilation|cron · Sun 03:00 WITA|Cluster support conversations into draft FAQ entries.
memory_eviction|cron · 03:30 WITA daily|Evict stale user memory entries past the keep window.
reset_api_key_queries_today|cron · 08:00 WITA (00:00 UTC)|Reset the per-API-key daily query counter.
charge_unbilled_usage|cron · 05:00 WITA daily|Batch metered ApiKeyUsageEvent rows to Stripe.
drain_webhook_retries|interval · 2m|Retry failed outbound webhook deliveries.
prune_error_logs|cron · 05:30 WITA daily|Delete ErrorLog rows past the retention window.
platform_health_monitor|interval · 15m|Run platform health checks and emit alerts on regression.
rating_prompt|interval · 1h|Prompt users to rate recent bookings.
spend_digest|cron · 09:00 WITA daily|Send daily user-spend digest.
rotate_delta_log|cron · Sun 04:30 WITA|Rotate the fleet delta log.
faq_extraction|cron · Sun 23:59 WITA|Extract FAQ candidates from the week's conversations.
rebuild_entity_graph|interval · 1h|Rebuild derived edges in the knowledge graph.
wiki_reconcile|cron · Sun 05:00 WITA|(our decision: the seed gives no row)
"""  # noqa: E501  (the seed's rows, verbatim)
ROWS = [line.split("|") for line in SEED.strip().splitlines()]
BY_ID = {schedule.id: schedule for schedule in SCHEDULES}

INSTANTS = {
    "UTC day boundary (08:00 WITA)": datetime(2026, 3, 3, 23, 59, 30, tzinfo=UTC),
    "Sunday night WITA, still Sunday in UTC": datetime(2026, 3, 8, 15, 30, tzinfo=UTC),
    "1st of a month in WITA, 31st in UTC": datetime(2026, 3, 31, 16, 30, tzinfo=UTC),
    "leap-year 28 February 23:30 WITA": datetime(2028, 2, 28, 15, 30, tzinfo=UTC),
    "leap day noon UTC": datetime(2028, 2, 29, 12, 0, tzinfo=UTC),
    "new year 04:00 WITA, 31 December in UTC": datetime(2026, 12, 31, 20, tzinfo=UTC),
}


def _matcher(text: str) -> Callable[[datetime], bool]:
    """When the seed's schedule text fires, as a test on a WITA wall-clock minute."""
    if interval := re.fullmatch(r"interval · (\d+)([smh])", text):
        count, unit = int(interval[1]), interval[2]
        minutes = {"s": count / 60, "m": count, "h": count * 60}[unit]
        return lambda t: (t.hour * 60 + t.minute) % minutes == 0
    cron = re.fullmatch(
        r"cron · (?:(Mon|Sun) |(1st of month) )?(\d\d):(\d\d) WITA.*", text
    )
    assert cron, f"unparsed seed schedule {text!r}"
    day, monthly, hour, minute = cron[1], cron[2], int(cron[3]), int(cron[4])

    def fires(t: datetime) -> bool:
        if (t.hour, t.minute) != (hour, minute):
            return False
        if day:
            return t.strftime("%a") == day
        return t.day == 1 if monthly else True

    return fires


def _oracle(text: str, after: datetime) -> datetime:
    fires = _matcher(text)
    t = after.astimezone(WITA).replace(second=0, microsecond=0) + timedelta(minutes=1)
    while not fires(t):
        t += timedelta(minutes=1)
    return t


def test_the_40_are_the_seed_rows_plus_wiki_reconcile() -> None:
    assert len(SCHEDULES) == 40
    assert {row[0] for row in ROWS} == set(BY_ID)
    ids = [schedule.id for schedule in DECLARED]
    assert len(ids) == len(set(ids)) == 42
    for id_, _, purpose in ROWS:
        schedule = BY_ID[id_]
        assert schedule.zone == "Asia/Makassar"
        if id_ != "wiki_reconcile":
            assert schedule.description == purpose


@pytest.mark.parametrize("instant", INSTANTS.values(), ids=INSTANTS.keys())
def test_every_next_run_matches_the_seed(instant: datetime) -> None:
    for id_, text, _ in ROWS:
        expected = _oracle(text, instant)
        actual = BY_ID[id_].next_after(instant)
        assert actual == expected, f"{id_} after {instant}"
        assert actual.utcoffset() == timedelta(hours=8), id_


# Hand-checked cases, each a way a UTC or hand-shifted cron would be wrong.
@pytest.mark.parametrize(
    ("id_", "after", "expected_utc"),
    [
        # Mon 04:00 WITA is Sunday 20:00 UTC.
        ("deep_dreaming", "2026-03-08T12:00:00+00:00", "2026-03-08T20:00:00+00:00"),
        # 08:00 WITA is midnight UTC: the next run is the next UTC day.
        (
            "reset_api_key_queries_today",
            "2026-03-03T23:59:30+00:00",
            "2026-03-04T00:00:00+00:00",
        ),
        # 1st 09:00 WITA is 01:00 UTC on the 1st; on 31 March 16:30 UTC it is
        # already 1 April in WITA.
        ("monthly_invoice", "2026-03-31T16:30:00+00:00", "2026-04-01T01:00:00+00:00"),
        # 29 February exists in 2028: daily jobs run on it, monthly ones skip to March.
        ("light_dreaming", "2028-02-28T15:30:00+00:00", "2028-02-28T18:00:00+00:00"),
        ("monthly_invoice", "2028-02-01T02:00:00+00:00", "2028-03-01T01:00:00+00:00"),
        # Sunday 23:59 WITA is Sunday 15:59 UTC.
        ("faq_extraction", "2026-03-08T15:30:00+00:00", "2026-03-08T15:59:00+00:00"),
        # 6h is aligned on WITA midnight: 00/06/12/18 WITA = 16/22/04/10 UTC.
        (
            "check_price_watchers",
            "2026-03-04T06:00:00+00:00",
            "2026-03-04T10:00:00+00:00",
        ),
    ],
)
def test_hand_checked_next_runs(id_: str, after: str, expected_utc: str) -> None:
    actual = BY_ID[id_].next_after(datetime.fromisoformat(after))
    assert actual == datetime.fromisoformat(expected_utc)


def test_latest_at_includes_a_tick_exactly_now() -> None:
    schedule = Schedule("hourly", "0 * * * *", "")
    on_tick = datetime(2026, 3, 4, 10, tzinfo=WITA)
    assert schedule.latest_at(on_tick) == on_tick
    assert schedule.latest_at(on_tick - timedelta(seconds=1)) == on_tick - timedelta(
        hours=1
    )
    assert list(schedule.ticks(on_tick - timedelta(hours=2), on_tick)) == [
        on_tick - timedelta(hours=1),
        on_tick,
    ]


@pytest.mark.parametrize(
    ("cron", "zone"),
    [
        ("0 * * * *", "Asia/Makassar"),
        ("30 2 * * *", "America/New_York"),  # in a skipped hour, and a repeated one
        ("*/7 1-3 * * *", "Europe/Berlin"),
        ("0 9 1 * *", "Asia/Makassar"),
        ("* * * * * */2", "UTC"),
    ],
)
def test_a_kept_next_tick_is_the_one_computed_afresh(cron: str, zone: str) -> None:
    """``next_after`` keeps its last answer; asked at instants that walk forward in
    random steps (past DST changes) and now and then jump back, it gives what a
    schedule that never asked before gives."""
    rng = random.Random(f"{cron} {zone}")
    kept = Schedule("kept", cron, "", zone=zone)
    when = datetime(2026, 3, 7, tzinfo=UTC)
    for _ in range(3000):
        if rng.random() < 0.02:
            when -= timedelta(seconds=rng.randint(1, 86400))
        else:
            when += timedelta(seconds=rng.choice([0, 0.4, 1, 7, 59, 600, 3599, 7200]))
        fresh = Schedule("fresh", cron, "", zone=zone)
        assert kept.next_after(when) == fresh.next_after(when), when


def test_seconds_field_for_test_schedules() -> None:
    schedule = Schedule("every_2s", "* * * * * */2", "")
    start = datetime(2026, 3, 4, 10, 0, 0, 500000, tzinfo=WITA)
    assert schedule.next_after(start) == start.replace(second=2, microsecond=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": "x", "cron": "0 25 * * *"}, "schedule x: invalid cron '0 25 * * *'"),
        ({"id": "x", "cron": "0 1 * *"}, "schedule x: invalid cron '0 1 * *'"),
        ({"id": "x", "cron": "@hourly"}, "schedule x: invalid cron '@hourly'"),
        ({"id": "x", "zone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"id": "Bad-Id"}, "schedule id 'Bad-Id' must be lower-case"),
        (
            {"id": "x", "misfire": "sometimes"},
            "schedule x: unknown misfire policy 'sometimes'",
        ),
    ],
)
def test_malformed_declarations_fail_with_the_schedule_named(
    kwargs: dict, message: str
) -> None:
    fields = {"cron": "0 * * * *", "description": "", **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        Schedule(**fields)


def test_policies_are_decided_per_job() -> None:
    catch_up = {s.id for s in DECLARED if s.misfire is Misfire.CATCH_UP}
    assert {
        "monthly_invoice",
        "charge_unbilled_usage",
        "reconcile_subscription_state",
        "reconcile_venue_compound_state",
        "reset_api_key_queries_today",
        "wiki_reconcile",
    } <= catch_up
    # Interval jobs never build a backlog.
    for id_, text, _ in ROWS:
        if text.startswith("interval"):
            assert BY_ID[id_].misfire is Misfire.SKIP, id_
    assert all(s.misfire is Misfire.SKIP for s in MAINTENANCE)
    assert issubclass(ScheduleError, ValueError)


def test_the_manuals_table_is_the_registry() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "schedules.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `([^`]+)` \| (\w+) \| (\w+) \|", page, re.M)
    assert rows == [
        (s.id, s.cron, str(s.misfire), s.queue) for s in (*SCHEDULES, *MAINTENANCE)
    ]
