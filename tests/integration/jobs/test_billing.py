"""monthly_invoice against localstripe and a real Postgres: one invoice per venue per
WITA month, ever, whatever crashes, re-runs or concurrent copies happen."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from agnt_jobs.jobs import billing
from agnt_jobs.settings import Settings
from tests.support.billing_data import (
    DECLINED_ON_CHARGE,
    GOOD_CARD,
    PLAN_AMOUNT,
    Crash,
    StripeWorld,
    crash_once,
    rows,
    run,
    scalar,
    subscription_row,
    unreachable,
    utc,
    venue,
)

# 1 Dec 00:30 WITA, still 30 Nov in UTC: "last month" is November.
TICK = utc(2026, 11, 30, 16, 30)
MONTH = "2026-11"
BEFORE = utc(2026, 10, 1)


@pytest.fixture
def world(localstripe: Any) -> StripeWorld:
    return StripeWorld(localstripe.url)


def subscribed_venue(
    engine: Engine,
    world: StripeWorld,
    status: str = "active",
    card: str = GOOD_CARD,
    created_at: Any = BEFORE,
) -> tuple[int, str]:
    customer = world.customer(GOOD_CARD)
    subscription = world.subscription(customer)
    if card != GOOD_CARD:
        world.set_card(customer, card)
    with engine.begin() as connection:
        venue_id = venue(connection)
        subscription_row(
            connection,
            venue_id,
            customer,
            subscription["id"],
            status,
            created_at=created_at,
        )
    return venue_id, customer


def ref(venue_id: int) -> str:
    return f"invoice:{venue_id}:{MONTH}"


def invoice_row(engine: Engine, venue_id: int) -> Any:
    found = rows(
        engine, "SELECT * FROM monthly_invoices WHERE venue_id = :v", v=venue_id
    )
    assert len(found) <= 1
    return found[0] if found else None


def ledger_types(engine: Engine, venue_id: int) -> list[tuple[str, int]]:
    return [
        (row.entry_type, row.amount)
        for row in rows(
            engine,
            "SELECT entry_type, amount FROM ledger_entries WHERE venue_id = :v "
            "ORDER BY id",
            v=venue_id,
        )
    ]


def test_bills_each_billable_venue_once_for_last_wita_month(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    active, active_customer = subscribed_venue(engine, world, "active")
    past_due, past_due_customer = subscribed_venue(engine, world, "past_due")
    trialing, trialing_customer = subscribed_venue(engine, world, "trialing")
    canceled, canceled_customer = subscribed_venue(engine, world, "canceled")
    late, late_customer = subscribed_venue(
        engine, world, "active", created_at=utc(2026, 11, 30, 16, 1)
    )

    result = run(billing.monthly_invoice, stripe_settings, engine, TICK)

    assert result == {
        "month": MONTH,
        "planned": 2,
        "created": 2,
        "recovered": 0,
        "paid": 2,
        "payment_failed": 0,
        "failed": 0,
    }
    for venue_id, customer in (
        (active, active_customer),
        (past_due, past_due_customer),
    ):
        row = invoice_row(engine, venue_id)
        assert (row.month, row.status, row.amount_due, row.amount_paid) == (
            MONTH,
            "PAID",
            PLAN_AMOUNT,
            PLAN_AMOUNT,
        )
        assert row.period_start == utc(2026, 10, 31, 16)  # 1 Nov 00:00 WITA
        assert row.period_end == utc(2026, 11, 30, 16)
        [stripe_invoice] = world.invoices(customer, ref(venue_id))
        assert stripe_invoice["id"] == row.stripe_invoice_id
        assert stripe_invoice["status"] == "paid"
        assert ledger_types(engine, venue_id) == [
            ("charge", PLAN_AMOUNT),
            ("payment", PLAN_AMOUNT),
        ]
    for venue_id, customer in (
        (trialing, trialing_customer),
        (canceled, canceled_customer),
        (late, late_customer),
    ):
        assert invoice_row(engine, venue_id) is None
        assert world.invoices(customer, ref(venue_id)) == []


def test_a_rerun_changes_nothing(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    venue_id, customer = subscribed_venue(engine, world)
    run(billing.monthly_invoice, stripe_settings, engine, TICK)
    before = (world.invoices(customer), world.charges(customer))
    ledger_before = ledger_types(engine, venue_id)

    again = run(billing.monthly_invoice, stripe_settings, engine, TICK)

    assert (again["planned"], again["created"], again["paid"]) == (0, 0, 0)
    assert (world.invoices(customer), world.charges(customer)) == before
    assert ledger_types(engine, venue_id) == ledger_before


def test_crash_after_the_invoice_is_made_then_rerun_makes_no_second(
    engine: Engine,
    stripe_settings: Settings,
    world: StripeWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    venue_id, customer = subscribed_venue(engine, world)
    crash_once(monkeypatch, billing, "_record_created")

    with pytest.raises(Crash):
        run(billing.monthly_invoice, stripe_settings, engine, TICK)

    row = invoice_row(engine, venue_id)
    assert (row.status, row.stripe_invoice_id) == ("PENDING", None)
    assert len(world.invoices(customer, ref(venue_id))) == 1  # made, not recorded

    result = run(billing.monthly_invoice, stripe_settings, engine, TICK)

    assert (result["recovered"], result["created"], result["paid"]) == (1, 0, 1)
    [stripe_invoice] = world.invoices(customer, ref(venue_id))
    row = invoice_row(engine, venue_id)
    assert (row.status, row.stripe_invoice_id) == ("PAID", stripe_invoice["id"])
    assert stripe_invoice["status"] == "paid"
    assert ledger_types(engine, venue_id) == [
        ("charge", PLAN_AMOUNT),
        ("payment", PLAN_AMOUNT),
    ]


def test_crash_after_payment_then_rerun_records_it_without_paying_again(
    engine: Engine,
    stripe_settings: Settings,
    world: StripeWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    venue_id, customer = subscribed_venue(engine, world)
    crash_once(monkeypatch, billing, "_record_payment")

    with pytest.raises(Crash):
        run(billing.monthly_invoice, stripe_settings, engine, TICK)

    row = invoice_row(engine, venue_id)
    assert (row.status, row.payment_attempts) == ("OPEN", 0)
    charges = world.charges(customer)

    result = run(billing.monthly_invoice, stripe_settings, engine, TICK)

    assert (result["created"], result["paid"]) == (0, 1)
    assert world.charges(customer) == charges  # no second charge
    assert invoice_row(engine, venue_id).status == "PAID"
    assert ledger_types(engine, venue_id)[-1] == ("payment", PLAN_AMOUNT)


def test_declined_card_leaves_the_invoice_open_and_reruns_do_not_retry(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    venue_id, customer = subscribed_venue(engine, world, card=DECLINED_ON_CHARGE)

    result = run(billing.monthly_invoice, stripe_settings, engine, TICK)

    assert (result["created"], result["payment_failed"], result["paid"]) == (1, 1, 0)
    row = invoice_row(engine, venue_id)
    assert (row.status, row.payment_attempts) == ("OPEN", 1)
    assert row.last_error
    assert ledger_types(engine, venue_id) == [("charge", PLAN_AMOUNT)]
    charges = world.charges(customer)

    again = run(billing.monthly_invoice, stripe_settings, engine, TICK)

    assert again["payment_failed"] == 0
    assert world.charges(customer) == charges


def test_stripe_unreachable_keeps_the_intent_for_the_next_run(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    venue_id, customer = subscribed_venue(engine, world)

    result = run(billing.monthly_invoice, unreachable(stripe_settings), engine, TICK)

    assert (result["planned"], result["failed"], result["created"]) == (1, 1, 0)
    row = invoice_row(engine, venue_id)
    assert (row.status, row.idempotency_key) == ("PENDING", ref(venue_id))
    assert "stripe" in row.last_error

    result = run(billing.monthly_invoice, stripe_settings, engine, TICK)

    assert (result["created"], result["paid"]) == (1, 1)
    assert len(world.invoices(customer, ref(venue_id))) == 1


def test_two_copies_at_once_make_one_invoice_per_venue(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    venues = [subscribed_venue(engine, world) for _ in range(4)]
    results: list[dict[str, Any]] = []

    def copy() -> None:
        results.append(run(billing.monthly_invoice, stripe_settings, engine, TICK))

    threads = [threading.Thread(target=copy) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 2
    assert sum(r["created"] for r in results) == 4
    assert sum(r["paid"] for r in results) == 4
    for venue_id, customer in venues:
        assert len(world.invoices(customer, ref(venue_id))) == 1
        assert invoice_row(engine, venue_id).status == "PAID"
    assert scalar(engine, "SELECT count(*) FROM ledger_entries") == 8
