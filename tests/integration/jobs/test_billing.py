"""monthly_invoice against localstripe and a real Postgres: one invoice per venue per
WITA month, ever, whatever crashes, re-runs or concurrent copies happen; declines and
Stripe outages retried by retry_pending_fees on the fee backoff, until paid or
dead-lettered."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from agnt_jobs.jobs import billing, duplicate_payments, fees, health, invoice_settlement
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
HOUR = timedelta(hours=1)  # the fee backoff's first step, by default


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
        "uncollectible": 0,
        "failed": 0,
        **{f"duplicates_{n}": 0 for n in duplicate_payments.DUPLICATE_OUTCOMES},
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
    crash_once(monkeypatch, invoice_settlement, "_record_created")

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
    crash_once(monkeypatch, invoice_settlement, "_record_payment")

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


def dead_letters(engine: Engine) -> list[Any]:
    return rows(
        engine,
        "SELECT source_id, error_class, attempts FROM dead_letters "
        "WHERE source = 'monthly_invoice'",
    )


def test_declined_card_is_retried_on_the_fee_backoff_then_dead_lettered(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    settings = stripe_settings.model_copy(update={"fee_max_attempts": 3})
    venue_id, customer = subscribed_venue(engine, world, card=DECLINED_ON_CHARGE)
    hour = timedelta(seconds=settings.fee_backoff_base_seconds)

    result = run(billing.monthly_invoice, settings, engine, TICK)

    assert (result["created"], result["payment_failed"], result["paid"]) == (1, 1, 0)
    row = invoice_row(engine, venue_id)
    assert (row.status, row.payment_attempts) == ("OPEN", 1)
    assert row.next_attempt_at == TICK + hour
    assert row.last_error
    assert ledger_types(engine, venue_id) == [("charge", PLAN_AMOUNT)]
    charges = len(world.charges(customer))

    # Re-running the monthly job, or the retry job before the backoff has
    # passed, charges nothing.
    assert run(billing.monthly_invoice, settings, engine, TICK)["payment_failed"] == 0
    early = run(fees.retry_pending_fees, settings, engine, TICK + hour / 2)
    assert early["invoices_payment_failed"] == 0
    assert len(world.charges(customer)) == charges

    # Second decline after one backoff step (1h), the last after two more (2h).
    second = run(fees.retry_pending_fees, settings, engine, TICK + hour)
    assert second["invoices_payment_failed"] == 1
    row = invoice_row(engine, venue_id)
    assert (row.status, row.payment_attempts) == ("OPEN", 2)
    assert row.next_attempt_at == TICK + 3 * hour
    assert dead_letters(engine) == []

    last = run(fees.retry_pending_fees, settings, engine, TICK + 3 * hour)
    assert last["invoices_uncollectible"] == 1
    row = invoice_row(engine, venue_id)
    assert (row.status, row.payment_attempts) == ("UNCOLLECTIBLE", 3)
    assert [tuple(d) for d in dead_letters(engine)] == [
        (ref(venue_id), "card_declined", 3)
    ]
    assert len(world.charges(customer)) == charges + 2  # one charge per try

    after = run(fees.retry_pending_fees, settings, engine, TICK + 30 * hour)
    assert after["invoices_payment_failed"] + after["invoices_uncollectible"] == 0
    assert len(world.charges(customer)) == charges + 2
    assert ledger_types(engine, venue_id) == [("charge", PLAN_AMOUNT)]


def test_a_card_fixed_after_a_decline_is_paid_by_the_retry(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    venue_id, customer = subscribed_venue(engine, world, card=DECLINED_ON_CHARGE)
    run(billing.monthly_invoice, stripe_settings, engine, TICK)
    world.set_card(customer, GOOD_CARD)

    result = run(fees.retry_pending_fees, stripe_settings, engine, TICK + HOUR)

    assert result["invoices_paid"] == 1
    row = invoice_row(engine, venue_id)
    assert (row.status, row.payment_attempts, row.next_attempt_at) == ("PAID", 2, None)
    assert ledger_types(engine, venue_id) == [
        ("charge", PLAN_AMOUNT),
        ("payment", PLAN_AMOUNT),
    ]
    assert world.invoices(customer, ref(venue_id))[0]["status"] == "paid"


def test_stripe_down_on_the_first_is_billed_by_the_retry_not_next_month(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    venue_id, customer = subscribed_venue(engine, world)

    result = run(billing.monthly_invoice, unreachable(stripe_settings), engine, TICK)

    assert (result["planned"], result["failed"], result["created"]) == (1, 1, 0)
    row = invoice_row(engine, venue_id)
    assert (row.status, row.idempotency_key) == ("PENDING", ref(venue_id))
    assert "stripe" in row.last_error
    assert row.next_attempt_at == TICK + HOUR

    still_down = run(
        fees.retry_pending_fees, unreachable(stripe_settings), engine, TICK + HOUR
    )
    assert still_down["invoices_failed"] == 1
    assert invoice_row(engine, venue_id).status == "PENDING"

    result = run(fees.retry_pending_fees, stripe_settings, engine, TICK + 2 * HOUR)

    assert (result["invoices_created"], result["invoices_paid"]) == (1, 1)
    assert len(world.invoices(customer, ref(venue_id))) == 1
    assert invoice_row(engine, venue_id).status == "PAID"
    assert dead_letters(engine) == []


def test_an_invoice_a_crashed_monthly_run_left_planned_is_settled_by_the_retry(
    engine: Engine,
    stripe_settings: Settings,
    world: StripeWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    venue_id, customer = subscribed_venue(engine, world)

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise Crash("worker killed after planning")

    monkeypatch.setattr(invoice_settlement, "settle", crash)
    with pytest.raises(Crash):
        run(billing.monthly_invoice, stripe_settings, engine, TICK)
    monkeypatch.undo()
    assert invoice_row(engine, venue_id).status == "PENDING"

    assert (
        run(fees.retry_pending_fees, stripe_settings, engine, TICK)["invoices_created"]
        == 0
    )  # not due yet: the monthly job's own re-run comes first
    result = run(fees.retry_pending_fees, stripe_settings, engine, TICK + HOUR)

    assert (result["invoices_created"], result["invoices_paid"]) == (1, 1)
    assert len(world.invoices(customer, ref(venue_id))) == 1


def test_an_invoice_stripe_refuses_to_create_is_dead_lettered_at_once(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    with engine.begin() as connection:
        venue_id = venue(connection)
        subscription_row(
            connection, venue_id, "cus_does_not_exist", "sub_gone", created_at=BEFORE
        )

    result = run(billing.monthly_invoice, stripe_settings, engine, TICK)

    assert (result["uncollectible"], result["created"]) == (1, 0)
    row = invoice_row(engine, venue_id)
    assert (row.status, row.next_attempt_at) == ("UNCOLLECTIBLE", None)
    assert [tuple(d)[:2] for d in dead_letters(engine)] == [
        (ref(venue_id), "permanent")
    ]
    later = run(fees.retry_pending_fees, stripe_settings, engine, TICK + 30 * HOUR)
    assert later["invoices_created"] + later["invoices_failed"] == 0


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


# --- an invoice found made more than once -------------------------------------------


def seed_invoice(engine: Engine, world: StripeWorld, venue_id: int, then: str) -> str:
    """An invoice under the venue-month's key, made outside our protocol (as a
    write made twice would be), left draft, open (its payment declined) or paid."""
    customer = scalar(
        engine,
        "SELECT stripe_customer_id FROM subscriptions WHERE venue_id = :v",
        v=venue_id,
    )
    subscription = scalar(
        engine,
        "SELECT stripe_subscription_id FROM subscriptions WHERE venue_id = :v",
        v=venue_id,
    )
    invoice = world.v1.invoices.create(
        params={
            "customer": customer,
            "subscription": subscription,
            "description": f"AGNT venue subscription {MONTH} [{ref(venue_id)}]",
            "metadata": {"agnt_ref": ref(venue_id)},
        }
    )
    if then == "open":
        world.set_card(customer, DECLINED_ON_CHARGE)
        world.v1.invoices.pay(invoice.id)
        world.set_card(customer, GOOD_CARD)
    elif then == "paid":
        world.v1.invoices.pay(invoice.id)
    return invoice.id


def made_twice(
    engine: Engine, world: StripeWorld, *extras: str
) -> tuple[int, str, str, list[str]]:
    """A billable venue whose invoice for the month Stripe holds more than once:
    the kept one (a draft, made first), then one extra per ``extras`` state."""
    venue_id, customer = subscribed_venue(engine, world)
    kept = seed_invoice(engine, world, venue_id, "draft")
    time.sleep(1.1)  # Stripe's ``created`` counts seconds: the kept one is earliest
    return (
        venue_id,
        customer,
        kept,
        [seed_invoice(engine, world, venue_id, then) for then in extras],
    )


def duplicates(engine: Engine) -> list[Any]:
    return rows(engine, "SELECT * FROM duplicate_payments ORDER BY id")


def statuses(world: StripeWorld, customer: str, venue_id: int) -> dict[str, str]:
    return {i["id"]: i["status"] for i in world.invoices(customer, ref(venue_id))}


def test_an_invoice_made_more_than_once_keeps_the_earliest_and_undoes_the_others(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    venue_id, customer, kept, (opened, paid, draft) = made_twice(
        engine, world, "open", "paid", "draft"
    )
    intent = world.v1.invoices.retrieve(paid).payment_intent

    result = run(billing.monthly_invoice, stripe_settings, engine, TICK)

    assert (result["recovered"], result["paid"]) == (1, 1)
    made_right = [result[f"duplicates_{n}"] for n in ("voided", "refunded", "deleted")]
    assert made_right == [1, 1, 1]
    row = invoice_row(engine, venue_id)
    assert (row.status, row.stripe_invoice_id) == ("PAID", kept)
    # The open one is void, the draft gone, the paid one's payment refunded.
    assert statuses(world, customer, venue_id) == {
        kept: "paid",
        opened: "void",
        paid: "paid",
    }
    [refund] = world.v1.refunds.list(params={"payment_intent": intent}).data
    assert (refund.amount, refund.metadata["agnt_ref"]) == (
        PLAN_AMOUNT,
        f"refund:{intent}",
    )
    assert {
        d.stripe_object: (d.kind, d.action, d.status) for d in duplicates(engine)
    } == {
        opened: ("invoice", "void", "VOIDED"),
        paid: ("invoice", "refund", "REFUNDED"),
        draft: ("invoice", "delete", "DELETED"),
    }
    assert all(d.invoice_id == row.id for d in duplicates(engine))
    # Money: the extra payment received, then refunded.
    kept_and_extra = ["charge", "payment", "payment", "refund"]
    assert sorted(ledger_types(engine, venue_id)) == [
        (kind, PLAN_AMOUNT) for kind in kept_and_extra
    ]
    [report] = rows(engine, "SELECT * FROM error_log")
    assert report.level == "CRITICAL"
    assert set(report.context["extra"]) == {opened, paid, draft}
    with engine.connect() as connection:
        assert health.duplicate_payments(connection, None).value == 0  # type: ignore[arg-type]

    again = run(billing.monthly_invoice, stripe_settings, engine, TICK)

    assert [again[f"duplicates_{n}"] for n in ("voided", "refunded", "deleted")] == [
        0,
        0,
        0,
    ]
    assert len(world.v1.refunds.list(params={"payment_intent": intent}).data) == 1
    assert len(duplicates(engine)) == 3


@pytest.mark.parametrize(("then", "done"), [("open", "VOIDED"), ("draft", "DELETED")])
def test_a_crash_after_undoing_an_extra_invoice_then_rerun_does_not_undo_it_again(
    engine: Engine,
    stripe_settings: Settings,
    world: StripeWorld,
    monkeypatch: pytest.MonkeyPatch,
    then: str,
    done: str,
) -> None:
    venue_id, customer, kept, [extra] = made_twice(engine, world, then)
    crash_once(monkeypatch, duplicate_payments, "_record")

    with pytest.raises(Crash):
        run(billing.monthly_invoice, stripe_settings, engine, TICK)

    # The invoice's own transaction committed (the undoing intended); the undoing's
    # recording rolled back after Stripe did it.
    [duplicate] = duplicates(engine)
    assert duplicate.status == {"open": "TO_VOID", "draft": "TO_DELETE"}[then]
    assert statuses(world, customer, venue_id).get(extra) == {"open": "void"}.get(then)

    result = run(billing.monthly_invoice, stripe_settings, engine, TICK)

    assert result[f"duplicates_{done.lower()}"] == 1
    [duplicate] = duplicates(engine)
    assert (duplicate.status, duplicate.last_error) == (done, None)
    assert invoice_row(engine, venue_id).stripe_invoice_id == kept


def test_report_only_leaves_an_extra_invoice_and_keeps_it_in_view(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    settings = stripe_settings.model_copy(update={"stripe_duplicate_action": "report"})
    venue_id, customer, kept, [extra] = made_twice(engine, world, "open")

    run(billing.monthly_invoice, settings, engine, TICK)
    again = run(billing.monthly_invoice, settings, engine, TICK)

    assert again["duplicates_voided"] == 0
    assert statuses(world, customer, venue_id) == {kept: "paid", extra: "open"}
    [duplicate] = duplicates(engine)
    assert (duplicate.kind, duplicate.action, duplicate.status) == (
        "invoice",
        "void",
        "REPORTED",
    )
    [report] = rows(engine, "SELECT * FROM error_log")
    assert report.level == "CRITICAL" and "by hand" in report.message
    with engine.connect() as connection:
        seen = health.duplicate_payments(connection, None)  # type: ignore[arg-type]
    row = invoice_row(engine, venue_id)
    assert (seen.ok, seen.details["invoice_ids"]) == (False, [row.id])
    assert seen.details["by_kind"] == {"invoice": 1}
