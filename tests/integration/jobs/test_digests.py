"""Daily digests against a real Postgres and a local channel gateway: spend_digest
(yesterday, WITA) and daily_nutrition_summary (today, WITA)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.engine import Engine

from agnt_jobs.standins.gateway import FakeChannelGateway
from tests.support import bookings_data as data
from tests.support.bookings_data import run

M, D = timedelta(minutes=1), timedelta(days=1)

# 09:00 WITA on 2026-11-25; yesterday (WITA) is [2026-11-23 16:00Z, 2026-11-24 16:00Z).
MORNING = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
YESTERDAY = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
TODAY = YESTERDAY + D
# 21:00 WITA on 2026-11-25, whose WITA day starts at TODAY.
EVENING = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
# 01:30 WITA on 2026-11-29 is still 2026-11-28 in UTC: a run then (by hand, or a
# schedule moved before 08:00 WITA) must take its dates from WITA, not UTC. The
# WITA day 2026-11-28 is [2026-11-27 16:00Z, 2026-11-28 16:00Z).
SMALL_HOURS = datetime(2026, 11, 28, 17, 30, tzinfo=UTC)
NOV28_WITA = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
NOV29_WITA = NOV28_WITA + D


def _spend(
    engine: Engine, user: int, amount: str, at: datetime, cur: str = "IDR"
) -> None:
    data.insert(
        engine,
        "user_spend_entries",
        user_id=user,
        amount=Decimal(amount),
        currency=cur,
        spent_at=at,
    )


def _eat(engine: Engine, user: int, calories: int, at: datetime) -> None:
    data.insert(
        engine,
        "nutrition_entries",
        user_id=user,
        calories=calories,
        eaten_at=at,
        description="nasi goreng",
    )


# --- spend_digest ---------------------------------------------------------------------


def test_spend_digest_sums_yesterday_per_currency_once(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    spender, edges_only, muted = (
        data.user(engine),
        data.user(engine),
        data.user(engine, notifications_opt_in=False),
    )
    data.user(engine)  # spent nothing
    _spend(engine, spender, "50000", YESTERDAY)
    _spend(engine, spender, "25000.50", TODAY - M)
    _spend(engine, spender, "12", YESTERDAY + 3 * M, cur="USD")
    _spend(engine, spender, "999", TODAY)  # today: tomorrow's digest
    _spend(engine, edges_only, "999", YESTERDAY - M)  # the day before
    _spend(engine, edges_only, "999", TODAY)
    _spend(engine, muted, "10000", YESTERDAY + M)

    result = run("spend_digest", engine, tick=MORNING)

    assert (result["digests_queued"], result["date"]) == (1, "2026-11-24")
    assert gateway.delivered[f"spend_digest:{spender}:2026-11-24"]["text"] == (
        "Your spending on 2026-11-24: IDR 75,000.50 + USD 12.00 across 3 entries."
    )
    late = run("spend_digest", engine, tick=MORNING, now=MORNING + 5 * 60 * M)
    assert (late["digests_queued"], late["sent"]) == (0, 0)
    # The next morning covers 2026-11-25 WITA: both users who spent on it.
    assert run("spend_digest", engine, tick=MORNING + D)["digests_queued"] == 2
    assert len(gateway.received) == 3


def test_spend_digest_takes_yesterday_from_the_wita_date_not_the_utc_one(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    """At 01:30 WITA on the 29th (the 28th in UTC) yesterday is the 28th, WITA."""
    spender, day_before = data.user(engine), data.user(engine)
    _spend(engine, spender, "1000", NOV28_WITA + 30 * M)  # 00:30 WITA, 27th in UTC
    _spend(engine, spender, "2000", NOV28_WITA + 18 * 60 * M)  # 18:00 WITA
    _spend(engine, spender, "4000", NOV29_WITA + 30 * M)  # today, WITA
    _spend(engine, day_before, "9000", NOV28_WITA - 11 * 60 * M)  # 27th, WITA

    result = run("spend_digest", engine, tick=SMALL_HOURS)

    assert (result["digests_queued"], result["date"]) == (1, "2026-11-28")
    assert list(gateway.delivered) == [f"spend_digest:{spender}:2026-11-28"]
    assert gateway.delivered[f"spend_digest:{spender}:2026-11-28"]["text"] == (
        "Your spending on 2026-11-28: IDR 3,000.00 across 2 entries."
    )
    # The regular 09:00 WITA run of the same WITA day finds the digest sent.
    regular = run("spend_digest", engine, tick=datetime(2026, 11, 29, 1, tzinfo=UTC))
    assert (regular["digests_queued"], regular["date"]) == (0, "2026-11-28")
    assert len(gateway.received) == 1


# --- daily_nutrition_summary ----------------------------------------------------------


def test_nutrition_summary_compares_today_with_the_goal(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    under, over, no_goal, ate_yesterday = (data.user(engine) for _ in range(4))
    for u, goal in ((under, 2000), (over, 1800), (ate_yesterday, 2000)):
        data.insert(engine, "calorie_goals", user_id=u, daily_calories=goal)
    _eat(engine, under, 1200, TODAY)
    _eat(engine, under, 650, TODAY + 10 * 60 * M)
    _eat(engine, over, 2100, TODAY + D - M)
    _eat(engine, no_goal, 900, TODAY + 60 * M)
    _eat(engine, ate_yesterday, 900, TODAY - M)
    _eat(engine, ate_yesterday, 900, TODAY + D)  # tomorrow, WITA

    result = run("daily_nutrition_summary", engine, tick=EVENING)

    assert (result["summaries_queued"], result["date"]) == (3, "2026-11-25")
    text = {k.split(":")[1]: v["text"] for k, v in gateway.delivered.items()}
    assert text[str(under)] == (
        "Today (2026-11-25) you logged 1850 kcal in 2 entries: "
        "150 kcal under your 2000 kcal goal."
    )
    assert text[str(over)].endswith(": 300 kcal over your 1800 kcal goal.")
    assert text[str(no_goal)] == "Today (2026-11-25) you logged 900 kcal in 1 entries."
    again = run("daily_nutrition_summary", engine, tick=EVENING)
    assert (again["summaries_queued"], again["sent"]) == (0, 0)
    assert len(gateway.received) == 3


def test_nutrition_summary_takes_today_from_the_wita_date_not_the_utc_one(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    """At 01:30 WITA on the 29th (the 28th in UTC) today is the 29th, WITA."""
    eater, ate_yesterday = data.user(engine), data.user(engine)
    data.insert(engine, "calorie_goals", user_id=eater, daily_calories=2000)
    _eat(engine, eater, 400, NOV29_WITA + 30 * M)  # 00:30 WITA, 28th in UTC
    _eat(engine, eater, 700, NOV29_WITA - 4 * 60 * M)  # 20:00 WITA on the 28th
    _eat(engine, ate_yesterday, 900, NOV29_WITA - 60 * M)  # 23:00 WITA on the 28th

    result = run("daily_nutrition_summary", engine, tick=SMALL_HOURS)

    assert (result["summaries_queued"], result["date"]) == (1, "2026-11-29")
    assert list(gateway.delivered) == [f"nutrition:{eater}:2026-11-29"]
    assert gateway.delivered[f"nutrition:{eater}:2026-11-29"]["text"] == (
        "Today (2026-11-29) you logged 400 kcal in 1 entries: "
        "1600 kcal under your 2000 kcal goal."
    )
    # The regular 21:00 WITA run of the same WITA day finds the summary sent.
    evening = datetime(2026, 11, 29, 13, tzinfo=UTC)
    regular = run("daily_nutrition_summary", engine, tick=evening)
    assert (regular["summaries_queued"], regular["date"]) == (0, "2026-11-29")
    assert len(gateway.received) == 1
