"""retry_pending_fees against localstripe and a real Postgres: a fee is charged at
most once, a decline follows the backoff to UNCOLLECTIBLE and a dead letter, and a
crash between Stripe and our commit is recovered from Stripe, not repeated."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from agnt_jobs.delivery.backoff import backoff_seconds
from agnt_jobs.jobs import duplicate_payments, fee_ledger, fees, health
from agnt_jobs.settings import Settings
from agnt_jobs.standins.server import RecordingProxy
from tests.support.billing_data import (
    DECLINED_ON_CHARGE,
    GOOD_CARD,
    Crash,
    StripeWorld,
    crash_once,
    fee,
    rows,
    run,
    unreachable,
    utc,
    venue,
)

NOW = utc(2026, 11, 25, 2, 0)
AMOUNT = 1_500_000


@pytest.fixture
def world(localstripe: Any) -> StripeWorld:
    return StripeWorld(localstripe.url)


def fee_of(
    engine: Engine, world: StripeWorld, card: str | None = GOOD_CARD, **values: Any
) -> tuple[int, str]:
    customer = world.customer(card)
    with engine.begin() as connection:
        values.setdefault("next_retry_at", NOW - timedelta(minutes=1))
        fee_id = fee(connection, venue(connection), customer, AMOUNT, **values)
    return fee_id, customer


def fee_row(engine: Engine, fee_id: int) -> Any:
    [row] = rows(engine, "SELECT * FROM fee_collections WHERE id = :id", id=fee_id)
    return row


def payments(engine: Engine, fee_id: int) -> list[tuple[str, int]]:
    return [
        (row.entry_type, row.amount)
        for row in rows(
            engine, "SELECT * FROM ledger_entries WHERE fee_id = :id", id=fee_id
        )
    ]


def charges_by_status(world: StripeWorld, customer: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for charge in world.charges(customer):
        counts[charge["status"]] = counts.get(charge["status"], 0) + 1
    return counts


def test_collects_due_fees_and_leaves_the_rest(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    pending, pending_customer = fee_of(engine, world)
    failed, failed_customer = fee_of(engine, world, status="FAILED", attempts=1)
    not_due, not_due_customer = fee_of(
        engine, world, status="FAILED", next_retry_at=NOW + timedelta(minutes=5)
    )
    paid, paid_customer = fee_of(engine, world, status="PAID")

    result = run(fees.retry_pending_fees, stripe_settings, engine, NOW)

    assert (result["paid"], result["declined"], result["uncollectible"]) == (2, 0, 0)
    for fee_id, customer, attempts in (
        (pending, pending_customer, 1),
        (failed, failed_customer, 2),
    ):
        row = fee_row(engine, fee_id)
        assert (row.status, row.attempts, row.last_error) == ("PAID", attempts, None)
        [charge] = world.charges(customer)
        assert charge["payment_intent"] == row.stripe_payment_intent_id
        assert (charge["amount"], charge["status"]) == (AMOUNT, "succeeded")
        assert payments(engine, fee_id) == [("payment", AMOUNT)]
    for fee_id, customer, status in (
        (not_due, not_due_customer, "FAILED"),
        (paid, paid_customer, "PAID"),
    ):
        assert fee_row(engine, fee_id).status == status
        assert world.charges(customer) == []
        assert payments(engine, fee_id) == []


def test_a_rerun_changes_nothing(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    fee_id, customer = fee_of(engine, world)
    run(fees.retry_pending_fees, stripe_settings, engine, NOW)
    before = fee_row(engine, fee_id)

    again = run(fees.retry_pending_fees, stripe_settings, engine, NOW)

    assert again["paid"] == again["recovered"] == 0
    assert fee_row(engine, fee_id) == before
    assert len(world.charges(customer)) == 1
    assert payments(engine, fee_id) == [("payment", AMOUNT)]


def test_crash_after_the_charge_then_rerun_records_it_without_charging_again(
    engine: Engine,
    stripe_settings: Settings,
    world: StripeWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fee_id, customer = fee_of(engine, world)
    crash_once(monkeypatch, fees, "_record")

    with pytest.raises(Crash):
        run(fees.retry_pending_fees, stripe_settings, engine, NOW)

    row = fee_row(engine, fee_id)
    assert (row.status, row.attempts, row.stripe_payment_intent_id) == (
        "PENDING",
        0,
        None,
    )
    assert charges_by_status(world, customer) == {"succeeded": 1}

    result = run(fees.retry_pending_fees, stripe_settings, engine, NOW)

    assert (result["recovered"], result["paid"]) == (1, 0)
    assert charges_by_status(world, customer) == {"succeeded": 1}
    row = fee_row(engine, fee_id)
    [charge] = world.charges(customer)
    assert (row.status, row.attempts) == ("PAID", 1)
    assert row.stripe_payment_intent_id == charge["payment_intent"]
    assert payments(engine, fee_id) == [("payment", AMOUNT)]


def test_declined_card_follows_the_backoff_then_dead_letters(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    settings = stripe_settings.model_copy(update={"fee_max_attempts": 3})
    fee_id, customer = fee_of(engine, world, card=DECLINED_ON_CHARGE)
    now = NOW
    for attempt in (1, 2):
        result = run(fees.retry_pending_fees, settings, engine, now)
        assert result["declined"] == 1
        row = fee_row(engine, fee_id)
        delay = backoff_seconds(
            attempt, settings.fee_backoff_base_seconds, settings.fee_backoff_max_seconds
        )
        assert (row.status, row.attempts) == ("FAILED", attempt)
        assert row.next_retry_at == now + timedelta(seconds=delay)
        assert "declined" in row.last_error
        # Not due yet: a run just before the retry time does nothing.
        early = run(
            fees.retry_pending_fees,
            settings,
            engine,
            row.next_retry_at - timedelta(seconds=1),
        )
        assert early["declined"] == 0
        now = row.next_retry_at

    result = run(fees.retry_pending_fees, settings, engine, now)

    assert result["uncollectible"] == 1
    row = fee_row(engine, fee_id)
    assert (row.status, row.attempts) == ("UNCOLLECTIBLE", 3)
    [letter] = rows(engine, "SELECT * FROM dead_letters")
    assert (letter.source, letter.source_id, letter.error_class, letter.attempts) == (
        "fee_collection",
        str(fee_id),
        "card_declined",
        3,
    )
    assert charges_by_status(world, customer) == {"failed": 3}
    assert payments(engine, fee_id) == []
    later = run(fees.retry_pending_fees, settings, engine, now + timedelta(days=30))
    assert later["declined"] == later["uncollectible"] == 0
    assert charges_by_status(world, customer) == {"failed": 3}


def test_crash_after_a_decline_counts_that_attempt_without_repeating_it(
    engine: Engine,
    stripe_settings: Settings,
    world: StripeWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fee_id, customer = fee_of(engine, world, card=DECLINED_ON_CHARGE)
    crash_once(monkeypatch, fees, "_record")
    with pytest.raises(Crash):
        run(fees.retry_pending_fees, stripe_settings, engine, NOW)
    assert fee_row(engine, fee_id).attempts == 0

    result = run(fees.retry_pending_fees, stripe_settings, engine, NOW)

    assert result["declined"] == 1
    row = fee_row(engine, fee_id)
    assert (row.status, row.attempts) == ("FAILED", 1)
    assert row.next_retry_at > NOW
    assert charges_by_status(world, customer) == {"failed": 1}


def test_no_saved_card_counts_as_a_decline(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    fee_id, _ = fee_of(engine, world, card=None)

    result = run(fees.retry_pending_fees, stripe_settings, engine, NOW)

    assert result["declined"] == 1
    row = fee_row(engine, fee_id)
    assert (row.status, row.attempts, row.last_error) == (
        "FAILED",
        1,
        "no default payment method",
    )


def test_unknown_customer_is_uncollectible_at_once(
    engine: Engine, stripe_settings: Settings
) -> None:
    with engine.begin() as connection:
        fee_id = fee(
            connection,
            venue(connection),
            "cus_doesnotexist",
            AMOUNT,
            next_retry_at=NOW - timedelta(minutes=1),
        )

    result = run(fees.retry_pending_fees, stripe_settings, engine, NOW)

    assert result["uncollectible"] == 1
    assert fee_row(engine, fee_id).status == "UNCOLLECTIBLE"
    [letter] = rows(engine, "SELECT error_class FROM dead_letters")
    assert letter.error_class == "permanent"


def test_stripe_unreachable_is_not_an_attempt(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    fee_id, customer = fee_of(engine, world)

    result = run(fees.retry_pending_fees, unreachable(stripe_settings), engine, NOW)

    assert result["unavailable"] == 1
    row = fee_row(engine, fee_id)
    assert (row.status, row.attempts) == ("PENDING", 0)
    assert row.next_retry_at <= NOW  # still due
    assert row.last_error

    assert run(fees.retry_pending_fees, stripe_settings, engine, NOW)["paid"] == 1
    assert len(world.charges(customer)) == 1


def test_two_copies_at_once_charge_each_fee_once(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    created = [fee_of(engine, world) for _ in range(6)]
    results: list[dict[str, Any]] = []

    def copy() -> None:
        results.append(run(fees.retry_pending_fees, stripe_settings, engine, NOW))

    threads = [threading.Thread(target=copy) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r["paid"] for r in results) == 6
    for fee_id, customer in created:
        assert fee_row(engine, fee_id).status == "PAID"
        assert charges_by_status(world, customer) == {"succeeded": 1}


async def test_deferred_through_the_real_app_a_worker_collects_the_fee(
    app: Any, engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    """The wiring: the task reads Stripe settings from the environment."""
    customer = world.customer()
    with engine.begin() as connection:
        fee_id = fee(connection, venue(connection), customer, AMOUNT)  # due now

    async with app.open_async():
        job_id = await app.tasks["retry_pending_fees"].defer_async()
        await app.run_worker_async(wait=False, install_signal_handlers=False)

    [history] = rows(engine, "SELECT * FROM job_runs WHERE job_id = :j", j=job_id)
    assert history.status == "succeeded"
    assert history.result["paid"] == 1
    assert fee_row(engine, fee_id).status == "PAID"
    assert len(world.charges(customer)) == 1


def charged_twice(engine: Engine, world: StripeWorld) -> tuple[int, list[str]]:
    """A due fee whose card was charged twice in Stripe, for attempts 1 and 2, as
    a payment made outside our protocol (or by a library re-send) would be."""
    fee_id, customer = fee_of(engine, world)
    settings = world.v1.customers.retrieve(customer).invoice_settings
    made = [
        world.v1.payment_intents.create(
            params={
                "customer": customer,
                "payment_method": settings.default_payment_method,
                "amount": AMOUNT,
                "currency": "idr",
                "confirm": True,
                "off_session": True,
                "metadata": {"agnt_fee_id": str(fee_id), "agnt_attempt": str(n)},
            }
        ).id
        for n in (1, 2)
    ]
    return fee_id, made


def refunds(world: StripeWorld, payment_intent: str) -> list[dict[str, Any]]:
    listed = world.v1.refunds.list(params={"payment_intent": payment_intent})
    return [refund.to_dict() for refund in listed.data]


def duplicates(engine: Engine) -> list[Any]:
    return rows(engine, "SELECT * FROM duplicate_payments ORDER BY id")


def ledger_of(engine: Engine, fee_id: int) -> list[tuple[str, int, str]]:
    return [
        (row.entry_type, row.amount, row.stripe_reference)
        for row in rows(
            engine,
            "SELECT * FROM ledger_entries WHERE fee_id = :id ORDER BY id",
            id=fee_id,
        )
    ]


def test_a_fee_found_charged_twice_has_the_extra_payment_refunded(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    fee_id, (kept, extra) = charged_twice(engine, world)

    result = run(fees.retry_pending_fees, stripe_settings, engine, NOW)

    assert (result["recovered"], result["duplicates_refunded"]) == (1, 1)
    row = fee_row(engine, fee_id)
    assert (row.status, row.stripe_payment_intent_id) == ("PAID", kept)
    [refund] = refunds(world, extra)
    assert refunds(world, kept) == []
    assert (refund["amount"], refund["status"]) == (AMOUNT, "succeeded")
    assert refund["metadata"]["agnt_ref"] == f"refund:{extra}"
    [duplicate] = duplicates(engine)
    assert (duplicate.payment_intent, duplicate.status) == (extra, "REFUNDED")
    assert duplicate.stripe_refund_id == refund["id"]
    assert ledger_of(engine, fee_id) == [
        ("payment", AMOUNT, kept),
        ("payment", AMOUNT, extra),
        ("refund", AMOUNT, refund["id"]),
    ]
    [report] = rows(engine, "SELECT * FROM error_log")
    assert report.level == "CRITICAL" and "making right" in report.message
    assert report.context["extra"] == [extra]
    # The ledger agrees: paid once net, so the fee stays PAID and nothing is
    # reported; the health check is ok again.
    checked = run(fee_ledger.reconcile_fee_status, stripe_settings, engine, NOW)
    assert (checked["corrected"], checked["reported"]) == (0, 0)
    assert fee_row(engine, fee_id).status == "PAID"
    with engine.connect() as connection:
        assert health.duplicate_payments(connection, None).value == 0  # type: ignore[arg-type]

    again = run(fees.retry_pending_fees, stripe_settings, engine, NOW)

    assert again["duplicates_refunded"] == 0
    assert len(refunds(world, extra)) == 1
    assert len(duplicates(engine)) == 1


def test_a_crash_after_the_refund_then_rerun_records_it_without_refunding_again(
    engine: Engine,
    stripe_settings: Settings,
    world: StripeWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fee_id, (_, extra) = charged_twice(engine, world)
    crash_once(monkeypatch, duplicate_payments, "_record")

    with pytest.raises(Crash):
        run(fees.retry_pending_fees, stripe_settings, engine, NOW)

    # The fee's own transaction committed (PAID, the refund intended); the
    # refund's recording rolled back after Stripe made it.
    assert fee_row(engine, fee_id).status == "PAID"
    assert [d.status for d in duplicates(engine)] == ["TO_REFUND"]
    assert len(refunds(world, extra)) == 1

    result = run(fees.retry_pending_fees, stripe_settings, engine, NOW)

    assert result["duplicates_refunded"] == 1
    [refund] = refunds(world, extra)
    [duplicate] = duplicates(engine)
    assert (duplicate.status, duplicate.stripe_refund_id) == ("REFUNDED", refund["id"])
    assert [e[0] for e in ledger_of(engine, fee_id)] == ["payment", "payment", "refund"]


def test_report_only_refunds_nothing_and_keeps_the_duplicate_in_view(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    settings = stripe_settings.model_copy(update={"stripe_duplicate_action": "report"})
    fee_id, (kept, extra) = charged_twice(engine, world)

    result = run(fees.retry_pending_fees, settings, engine, NOW)
    again = run(fees.retry_pending_fees, settings, engine, NOW)

    assert result["duplicates_refunded"] == again["duplicates_refunded"] == 0
    assert refunds(world, extra) == refunds(world, kept) == []
    [duplicate] = duplicates(engine)
    assert (duplicate.payment_intent, duplicate.status) == (extra, "REPORTED")
    assert fee_row(engine, fee_id).status == "PAID"
    [report] = rows(engine, "SELECT * FROM error_log")
    assert "by hand" in report.message
    # Visible until a person acts: the health check fails, the ledger says
    # overpaid, /metrics counts it.
    with engine.connect() as connection:
        seen = health.duplicate_payments(connection, None)  # type: ignore[arg-type]
    assert (seen.ok, seen.details["fee_ids"]) == (False, [fee_id])
    checked = run(fee_ledger.reconcile_fee_status, settings, engine, NOW)
    assert checked["reported"] == 1


def test_each_attempt_after_a_decline_is_a_new_payment_with_its_own_key(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    """A retry after a decline must be a new payment: sent under the declined
    attempt's idempotency key, real Stripe would answer with the stored decline
    and never charge again. localstripe ignores the keys, so they are read off
    the wire."""
    proxy = RecordingProxy(stripe_settings.stripe_api_base).start()
    try:
        settings = stripe_settings.model_copy(
            update={"fee_max_attempts": 3, "stripe_api_base": proxy.url}
        )
        fee_id, _ = fee_of(engine, world, card=DECLINED_ON_CHARGE)
        now = NOW
        for _ in range(3):
            run(fees.retry_pending_fees, settings, engine, now)
            now = fee_row(engine, fee_id).next_retry_at or now
    finally:
        proxy.stop()
    keys = [
        r.headers.get("idempotency-key")
        for r in proxy.received
        if (r.method, r.path) == ("POST", "/v1/payment_intents")
    ]
    assert keys == [f"agnt:fee:{fee_id}:attempt:{n}" for n in (1, 2, 3)]
    assert fee_row(engine, fee_id).status == "UNCOLLECTIBLE"
