"""Stripe writes under faults localstripe alone cannot make, through the stand-in in
front of it (agnt_jobs/standins/stripe_proxy.py):

* a pause that begins as Stripe receives a write and outlasts the client timeout,
  after which Stripe serves every request it held: each write was sent once (the
  library re-sends none), so Stripe made one object, and the run found it and
  recorded it before it ended;
* a pause that outlasts the run's reconciliation budget: the run ends failed,
  saying reconciliation is pending, and the next run records what Stripe made;
* Stripe's idempotency keys honoured: a retry after a decline is a new payment
  (a new key), a retry of the same attempt after its answer was lost is the same
  payment (the same key).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from agnt_jobs.jobs import api_keys, billing, fees, lost_answers
from agnt_jobs.settings import Settings
from agnt_jobs.standins.stripe_proxy import StripeStandIn
from tests.support.billing_data import (
    DECLINED_ON_CHARGE,
    GOOD_CARD,
    PLAN_AMOUNT,
    StripeWorld,
    api_key,
    fee,
    rows,
    run,
    subscription_row,
    usage,
    utc,
    venue,
)

NOW = utc(2026, 11, 25, 2, 0)
MONTH_TICK = utc(2026, 11, 30, 16, 30)  # 1 Dec 00:30 WITA: bills November
USAGE_TICK = utc(2026, 11, 24, 21, 0)  # cutoff 25 Nov 00:00 WITA
AMOUNT = 1_500_000
CLIENT_TIMEOUT = 1.0
PAUSE = 2.5 * CLIENT_TIMEOUT


@pytest.fixture
def world(localstripe: Any) -> StripeWorld:
    return StripeWorld(localstripe.url)


@pytest.fixture
def standin(localstripe: Any) -> Iterator[StripeStandIn]:
    proxy = StripeStandIn(localstripe.url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def settings(stripe_settings: Settings, standin: StripeStandIn) -> Settings:
    """Stripe through the stand-in, a short client timeout, and the library's
    default retries (reads use them; writes must not)."""
    return stripe_settings.model_copy(
        update={
            "stripe_api_base": standin.url,
            "stripe_timeout_seconds": CLIENT_TIMEOUT,
            "stripe_max_network_retries": 2,
            "stripe_reconcile_seconds": 30.0,
        }
    )


def due_fee(engine: Engine, world: StripeWorld, card: str = GOOD_CARD) -> tuple:
    customer = world.customer(card)
    with engine.begin() as connection:
        fee_id = fee(
            connection,
            venue(connection),
            customer,
            AMOUNT,
            next_retry_at=NOW - timedelta(minutes=1),
        )
    return fee_id, customer


def fee_row(engine: Engine, fee_id: int) -> Any:
    [row] = rows(engine, "SELECT * FROM fee_collections WHERE id = :id", id=fee_id)
    return row


def ledger(engine: Engine, column: str, value: int) -> list[tuple[str, int]]:
    return [
        (row.entry_type, row.amount)
        for row in rows(
            engine,
            f"SELECT entry_type, amount FROM ledger_entries WHERE {column} = :v "
            "ORDER BY id",
            v=value,
        )
    ]


def succeeded(world: StripeWorld, customer: str) -> list[dict[str, Any]]:
    return [c for c in world.charges(customer) if c["status"] == "succeeded"]


# --- a pause that outlasts the client timeout ---------------------------------------


def test_fee_payment_through_a_pause_makes_one_payment_and_records_it(
    engine: Engine, settings: Settings, world: StripeWorld, standin: StripeStandIn
) -> None:
    fee_id, customer = due_fee(engine, world)
    outage = standin.pause_after("POST", "/v1/payment_intents", PAUSE)

    result = run(fees.retry_pending_fees, settings, engine, NOW)
    outage.join()

    [charge] = succeeded(world, customer)
    assert len(standin.writes("/v1/payment_intents")) == 1
    assert result["recovered"] == 1  # the run found its own payment
    row = fee_row(engine, fee_id)
    assert (row.status, row.attempts) == ("PAID", 1)
    assert row.stripe_payment_intent_id == charge["payment_intent"]
    assert ledger(engine, "fee_id", fee_id) == [("payment", AMOUNT)]
    assert rows(engine, "SELECT * FROM error_log") == []


def subscribed_venue(engine: Engine, world: StripeWorld) -> tuple[int, str]:
    customer = world.customer(GOOD_CARD)
    subscription = world.subscription(customer)
    with engine.begin() as connection:
        venue_id = venue(connection)
        subscription_row(
            connection,
            venue_id,
            customer,
            subscription["id"],
            created_at=utc(2026, 10, 1),
        )
    return venue_id, customer


def invoice_row(engine: Engine, venue_id: int) -> Any:
    [row] = rows(
        engine, "SELECT * FROM monthly_invoices WHERE venue_id = :v", v=venue_id
    )
    return row


def test_invoice_create_through_a_pause_makes_one_invoice_and_pays_it(
    engine: Engine, settings: Settings, world: StripeWorld, standin: StripeStandIn
) -> None:
    venue_id, customer = subscribed_venue(engine, world)
    outage = standin.pause_after("POST", "/v1/invoices", PAUSE)

    result = run(billing.monthly_invoice, settings, engine, MONTH_TICK)
    outage.join()

    [invoice] = world.invoices(customer, f"invoice:{venue_id}:2026-11")
    assert len(standin.writes("/v1/invoices")) == 1
    assert (result["created"], result["paid"], result["failed"]) == (1, 1, 0)
    row = invoice_row(engine, venue_id)
    assert (row.status, row.stripe_invoice_id) == ("PAID", invoice["id"])
    assert world.invoices(customer, f"invoice:{venue_id}:2026-11")[0]["status"] == (
        "paid"
    )
    assert ledger(engine, "venue_id", venue_id) == [
        ("charge", PLAN_AMOUNT),
        ("payment", PLAN_AMOUNT),
    ]


def test_invoice_pay_through_a_pause_pays_once_and_the_run_ends_with_it_paid(
    engine: Engine, settings: Settings, world: StripeWorld, standin: StripeStandIn
) -> None:
    venue_id, customer = subscribed_venue(engine, world)
    charges = len(succeeded(world, customer))  # the subscription's first invoice
    outage = standin.pause_after("POST", "/v1/invoices/[^/]+/pay", PAUSE)

    result = run(billing.monthly_invoice, settings, engine, MONTH_TICK)
    outage.join()

    assert len(succeeded(world, customer)) == charges + 1
    assert len(standin.writes("/v1/invoices/[^/]+/pay")) == 1
    # Not OPEN while Stripe says paid: the run read the invoice before it ended.
    row = invoice_row(engine, venue_id)
    assert (row.status, row.payment_attempts, row.amount_paid) == (
        "PAID",
        1,
        PLAN_AMOUNT,
    )
    assert (result["paid"], result["failed"]) == (1, 0)
    assert ledger(engine, "venue_id", venue_id)[-1] == ("payment", PLAN_AMOUNT)


def test_invoice_item_through_a_pause_makes_one_item_and_records_it(
    engine: Engine, settings: Settings, world: StripeWorld, standin: StripeStandIn
) -> None:
    customer = world.customer()
    with engine.begin() as connection:
        key_id = api_key(connection, customer)
        usage(connection, key_id, utc(2026, 11, 24, 3), 7)
    outage = standin.pause_after("POST", "/v1/invoiceitems", PAUSE)

    result = run(api_keys.charge_unbilled_usage, settings, engine, USAGE_TICK)
    outage.join()

    [item] = world.pending_items(customer)
    assert len(standin.writes("/v1/invoiceitems")) == 1
    assert (result["billed"], result["failed"]) == (1, 0)
    [batch] = rows(engine, "SELECT * FROM usage_batches")
    assert (batch.status, batch.stripe_invoice_item_id) == ("BILLED", item["id"])
    assert ledger(engine, "usage_batch_id", batch.id) == [("usage", 7 * 5000)]


def test_a_pause_past_the_budget_ends_the_run_reconciliation_pending(
    engine: Engine, settings: Settings, world: StripeWorld, standin: StripeStandIn
) -> None:
    fee_id, customer = due_fee(engine, world)
    short = settings.model_copy(
        update={"stripe_reconcile_seconds": 0.5, "stripe_max_network_retries": 0}
    )
    outage = standin.pause_after("POST", "/v1/payment_intents", 6 * CLIENT_TIMEOUT)

    with pytest.raises(lost_answers.ReconciliationPending, match=f"fee {fee_id}"):
        run(fees.retry_pending_fees, short, engine, NOW)
    outage.join()
    standin.served()

    # Not an attempt, still due: the next run looks it up before charging.
    row = fee_row(engine, fee_id)
    assert (row.status, row.attempts) == ("PENDING", 0)
    assert row.next_retry_at <= NOW
    [charge] = succeeded(world, customer)  # Stripe made it once it answered

    result = run(fees.retry_pending_fees, settings, engine, NOW)

    assert result["recovered"] == 1
    assert len(standin.writes("/v1/payment_intents")) == 1
    row = fee_row(engine, fee_id)
    assert (row.status, row.stripe_payment_intent_id) == (
        "PAID",
        charge["payment_intent"],
    )


# --- idempotency keys honoured ------------------------------------------------------


@pytest.fixture
def keyed(standin: StripeStandIn) -> StripeStandIn:
    standin.honour_keys = True
    return standin


def test_a_retry_after_a_decline_is_a_new_payment(
    engine: Engine, settings: Settings, world: StripeWorld, keyed: StripeStandIn
) -> None:
    """Sent under the declined attempt's key, Stripe would replay the decline and
    the fixed card would never be charged."""
    fee_id, customer = due_fee(engine, world, DECLINED_ON_CHARGE)
    assert run(fees.retry_pending_fees, settings, engine, NOW)["declined"] == 1
    world.set_card(customer, GOOD_CARD)

    result = run(
        fees.retry_pending_fees, settings, engine, fee_row(engine, fee_id).next_retry_at
    )

    assert result["paid"] == 1
    assert (fee_row(engine, fee_id).status, fee_row(engine, fee_id).attempts) == (
        "PAID",
        2,
    )
    assert len(succeeded(world, customer)) == 1
    keys = [w.idempotency_key for w in keyed.writes("/v1/payment_intents")]
    assert keys == [f"agnt:fee:{fee_id}:attempt:{n}" for n in (1, 2)]


def test_an_invoice_payment_retried_after_a_decline_is_a_new_payment(
    engine: Engine, settings: Settings, world: StripeWorld, keyed: StripeStandIn
) -> None:
    """Stripe declines the first payment of the invoice (402); the retry is the
    next attempt, under its own key, so Stripe does not replay the decline."""
    venue_id, _ = subscribed_venue(engine, world)
    keyed.decline_next("/v1/invoices/[^/]+/pay")

    first = run(billing.monthly_invoice, settings, engine, MONTH_TICK)

    assert first["payment_failed"] == 1
    row = invoice_row(engine, venue_id)
    assert (row.status, row.payment_attempts) == ("OPEN", 1)

    result = run(fees.retry_pending_fees, settings, engine, row.next_attempt_at)

    assert result["invoices_paid"] == 1
    row = invoice_row(engine, venue_id)
    assert (row.status, row.payment_attempts) == ("PAID", 2)
    keys = [w.idempotency_key for w in keyed.writes("/v1/invoices/[^/]+/pay")]
    assert keys == [f"agnt:invoice:{venue_id}:2026-11:pay:{n}" for n in (1, 2)]


# A worker's run of retry_pending_fees, as a process of its own to kill.
RUN_FEES = """
import sys
from datetime import datetime
from agnt_jobs import db
from agnt_jobs.jobs import fees
from agnt_jobs.scheduler.bodies import RunContext
from agnt_jobs.settings import get_settings
now = datetime.fromisoformat(sys.argv[1])
context = RunContext(engine=db.engine(), settings=get_settings(), tick=now, now=now)
fees.retry_pending_fees(context)
"""


def test_a_retry_after_kill_9_with_the_payment_in_flight_is_the_same_payment(
    engine: Engine, settings: Settings, world: StripeWorld, keyed: StripeStandIn
) -> None:
    """A worker is killed (-9) while its payment is on its way to Stripe. The next
    run's lookup cannot see a payment Stripe has not made yet, so it sends it
    again: under the same key, Stripe makes it once."""
    fee_id, customer = due_fee(engine, world)
    keyed.hold("POST", "/v1/payment_intents")
    worker = subprocess.Popen(
        [sys.executable, "-c", RUN_FEES, NOW.isoformat()],
        env={
            **os.environ,
            "AGNT_STRIPE_API_BASE": keyed.url,
            "AGNT_STRIPE_TIMEOUT_SECONDS": "60",
        },
    )
    try:
        deadline = time.monotonic() + 60
        while keyed.held() < 1:
            assert worker.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        worker.kill()
        worker.wait()
    assert (fee_row(engine, fee_id).status, fee_row(engine, fee_id).attempts) == (
        "PENDING",
        0,
    )
    release = keyed.release_when_held(2)  # the lost payment and its repeat

    result = run(fees.retry_pending_fees, settings, engine, NOW)
    release.join()

    assert result["paid"] + result["recovered"] == 1
    [charge] = succeeded(world, customer)
    row = fee_row(engine, fee_id)
    assert (row.status, row.stripe_payment_intent_id) == (
        "PAID",
        charge["payment_intent"],
    )
    keys = [w.idempotency_key for w in keyed.writes("/v1/payment_intents")]
    assert keys == [f"agnt:fee:{fee_id}:attempt:1"] * 2


def test_a_refund_through_a_pause_makes_one_refund_and_records_it(
    engine: Engine, settings: Settings, world: StripeWorld, standin: StripeStandIn
) -> None:
    """The refund of a payment made twice goes through the same protocol."""
    fee_id, customer = due_fee(engine, world)
    method = world.v1.customers.retrieve(customer).invoice_settings
    extra = [
        world.v1.payment_intents.create(
            params={
                "customer": customer,
                "payment_method": method.default_payment_method,
                "amount": AMOUNT,
                "currency": "idr",
                "confirm": True,
                "off_session": True,
                "metadata": {"agnt_fee_id": str(fee_id), "agnt_attempt": str(n)},
            }
        ).id
        for n in (1, 2)
    ][1]
    outage = standin.pause_after("POST", "/v1/refunds", PAUSE)

    result = run(fees.retry_pending_fees, settings, engine, NOW)
    outage.join()

    listed = world.v1.refunds.list(params={"payment_intent": extra}).data
    [refund] = [r.to_dict() for r in listed]
    assert len(standin.writes("/v1/refunds")) == 1
    assert result["duplicates_refunded"] == 1
    [duplicate] = rows(engine, "SELECT * FROM duplicate_payments")
    assert (duplicate.status, duplicate.stripe_refund_id) == ("REFUNDED", refund["id"])
    assert ledger(engine, "fee_id", fee_id)[-1] == ("refund", AMOUNT)
