"""charge_unbilled_usage (against localstripe) and reset_api_key_queries_today: usage
is billed exactly once, whatever crashes, and no query count is lost."""

from __future__ import annotations

import threading
import time
from datetime import date
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from agnt_jobs.jobs import api_keys, duplicate_payments, health
from agnt_jobs.settings import Settings
from tests.support.billing_data import (
    Crash,
    StripeWorld,
    api_key,
    crash_once,
    insert,
    rows,
    run,
    scalar,
    unreachable,
    usage,
    utc,
)

TICK = utc(2026, 11, 24, 21, 0)  # 25 Nov 05:00 WITA: cutoff 25 Nov 00:00 WITA
NEXT_TICK = utc(2026, 11, 25, 21, 0)
LAST_MINUTE = utc(2026, 11, 24, 15, 59)  # 24 Nov 23:59 WITA: before the cutoff
FIRST_MINUTE = utc(2026, 11, 24, 16, 1)  # 25 Nov 00:01 WITA: after it
PRICE = 5000


@pytest.fixture
def world(localstripe: Any) -> StripeWorld:
    return StripeWorld(localstripe.url)


def ref(customer: str, day: str = "2026-11-25") -> str:
    return f"usage:{customer}:{day}"


def events(engine: Engine, key_id: int) -> list[Any]:
    return rows(
        engine,
        "SELECT * FROM api_key_usage_events WHERE api_key_id = :k ORDER BY id",
        k=key_id,
    )


def test_bills_each_customer_once_for_usage_before_the_cutoff(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    alice, bob = world.customer(), world.customer()
    with engine.begin() as connection:
        alice_1, alice_2 = api_key(connection, alice), api_key(connection, alice)
        bob_key, free_key = api_key(connection, bob), api_key(connection, None)
        for quantity in (1, 2):
            usage(connection, alice_1, utc(2026, 11, 24, 3), quantity)
        usage(connection, alice_1, LAST_MINUTE, 5)
        after_cutoff = usage(connection, alice_1, FIRST_MINUTE, 100)
        usage(connection, alice_2, utc(2026, 11, 20), 4)
        usage(connection, bob_key, LAST_MINUTE, 10)
        usage(connection, free_key, LAST_MINUTE, 50)

    result = run(api_keys.charge_unbilled_usage, stripe_settings, engine, TICK)

    assert result == {
        "cutoff": "2026-11-24T16:00:00+00:00",
        "batches": 2,
        "events": 5,
        "billed": 2,
        "recovered": 0,
        "free": 0,
        "failed": 0,
        "events_marked": 5,
        **{f"duplicates_{n}": 0 for n in duplicate_payments.DUPLICATE_OUTCOMES},
    }
    for customer, quantity in ((alice, 12), (bob, 10)):
        [item] = world.pending_items(customer)
        assert item["metadata"]["agnt_ref"] == ref(customer)
        assert (item["amount"], item["currency"]) == (quantity * PRICE, "idr")
        [batch] = rows(
            engine,
            "SELECT * FROM usage_batches WHERE stripe_customer_id = :c",
            c=customer,
        )
        assert (batch.status, batch.quantity, batch.amount) == (
            "BILLED",
            quantity,
            quantity * PRICE,
        )
        assert batch.stripe_invoice_item_id == item["id"]
        [entry] = rows(
            engine,
            "SELECT * FROM ledger_entries WHERE usage_batch_id = :b",
            b=batch.id,
        )
        assert (entry.entry_type, entry.amount) == ("usage", quantity * PRICE)
    for key_id in (alice_1, alice_2, bob_key):
        for event in events(engine, key_id):
            billed = event.id != after_cutoff
            assert (event.usage_batch_id is not None) is billed
            assert (event.billed_at is not None) is billed
    assert all(e.usage_batch_id is None for e in events(engine, free_key))


def test_a_rerun_changes_nothing_and_late_events_go_to_the_next_cutoff(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    customer = world.customer()
    with engine.begin() as connection:
        key_id = api_key(connection, customer)
        usage(connection, key_id, LAST_MINUTE, 3)
    run(api_keys.charge_unbilled_usage, stripe_settings, engine, TICK)
    with engine.begin() as connection:
        late = usage(connection, key_id, LAST_MINUTE, 7)  # arrived after batching

    again = run(api_keys.charge_unbilled_usage, stripe_settings, engine, TICK)

    assert (again["batches"], again["billed"], again["events"]) == (0, 0, 0)
    assert len(world.pending_items(customer)) == 1
    assert scalar(engine, "SELECT count(*) FROM ledger_entries") == 1

    tomorrow = run(api_keys.charge_unbilled_usage, stripe_settings, engine, NEXT_TICK)

    assert (tomorrow["batches"], tomorrow["events"], tomorrow["billed"]) == (1, 1, 1)
    amounts = sorted(item["amount"] for item in world.pending_items(customer))
    assert amounts == [3 * PRICE, 7 * PRICE]
    [event] = [e for e in events(engine, key_id) if e.id == late]
    assert event.billed_at is not None


def test_crash_after_the_invoice_item_then_rerun_bills_nothing_twice(
    engine: Engine,
    stripe_settings: Settings,
    world: StripeWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    customer = world.customer()
    with engine.begin() as connection:
        key_id = api_key(connection, customer)
        usage(connection, key_id, LAST_MINUTE, 3)
    crash_once(monkeypatch, api_keys, "_record_billed")

    with pytest.raises(Crash):
        run(api_keys.charge_unbilled_usage, stripe_settings, engine, TICK)

    [batch] = rows(engine, "SELECT * FROM usage_batches")
    assert (batch.status, batch.stripe_invoice_item_id) == ("PENDING", None)
    assert [e.usage_batch_id for e in events(engine, key_id)] == [batch.id]
    assert len(world.pending_items(customer)) == 1

    result = run(api_keys.charge_unbilled_usage, stripe_settings, engine, TICK)

    assert (result["recovered"], result["billed"], result["events_marked"]) == (1, 0, 1)
    [item] = world.pending_items(customer)
    [batch] = rows(engine, "SELECT * FROM usage_batches")
    assert (batch.status, batch.stripe_invoice_item_id) == ("BILLED", item["id"])
    assert scalar(engine, "SELECT count(*) FROM ledger_entries") == 1


def test_crash_then_an_invoice_sweeps_the_item_in_still_bills_once(
    engine: Engine,
    stripe_settings: Settings,
    world: StripeWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    customer = world.customer()
    subscription = world.subscription(customer)
    with engine.begin() as connection:
        key_id = api_key(connection, customer)
        usage(connection, key_id, LAST_MINUTE, 3)
    crash_once(monkeypatch, api_keys, "_record_billed")
    with pytest.raises(Crash):
        run(api_keys.charge_unbilled_usage, stripe_settings, engine, TICK)
    # Before the re-run, Stripe invoices the customer: the item leaves the list of
    # pending items and becomes an invoice line.
    world.v1.invoices.create(
        params={"customer": customer, "subscription": subscription["id"]}
    )
    assert world.pending_items(customer) == []

    result = run(api_keys.charge_unbilled_usage, stripe_settings, engine, TICK)

    assert (result["recovered"], result["billed"]) == (1, 0)
    assert world.pending_items(customer) == []
    [line] = world.invoiced_lines(customer, ref(customer))
    [batch] = rows(engine, "SELECT * FROM usage_batches")
    assert (batch.status, batch.stripe_invoice_item_id) == (
        "BILLED",
        line["invoice_item"],
    )


def test_stripe_unreachable_keeps_the_batch_for_the_next_run(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    customer = world.customer()
    with engine.begin() as connection:
        key_id = api_key(connection, customer)
        usage(connection, key_id, LAST_MINUTE, 3)

    result = run(
        api_keys.charge_unbilled_usage, unreachable(stripe_settings), engine, TICK
    )

    assert (result["batches"], result["failed"], result["billed"]) == (1, 1, 0)
    [event] = events(engine, key_id)
    assert event.usage_batch_id is not None and event.billed_at is None

    result = run(api_keys.charge_unbilled_usage, stripe_settings, engine, TICK)

    assert (result["batches"], result["billed"], result["events_marked"]) == (0, 1, 1)
    assert len(world.pending_items(customer)) == 1


def test_two_copies_at_once_bill_each_customer_once(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    customers = [world.customer() for _ in range(5)]
    with engine.begin() as connection:
        for customer in customers:
            usage(connection, api_key(connection, customer), LAST_MINUTE, 2)
    results: list[dict[str, Any]] = []

    def copy() -> None:
        results.append(
            run(api_keys.charge_unbilled_usage, stripe_settings, engine, TICK)
        )

    threads = [threading.Thread(target=copy) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r["batches"] for r in results) == 5
    assert sum(r["billed"] for r in results) == 5
    for customer in customers:
        assert len(world.pending_items(customer)) == 1


# --- reset_api_key_queries_today ---------------------------------------------------

RESET_TICK = utc(2026, 11, 25, 0, 0)  # 08:00 WITA, 25 Nov: the counters covered 24 Nov


def counters(engine: Engine) -> dict[int, int]:
    return {r.id: r.queries_today for r in rows(engine, "SELECT * FROM api_keys")}


def history(engine: Engine) -> set[tuple[int, date, int]]:
    return {
        (r.api_key_id, r.usage_date, r.queries)
        for r in rows(engine, "SELECT * FROM api_key_daily_usage")
    }


def test_snapshots_then_resets_each_key_once_per_wita_date(
    engine: Engine, env: Settings
) -> None:
    with engine.begin() as connection:
        busy = api_key(connection, "cus_a", queries_today=7)
        idle = api_key(connection, None, queries_today=0)
        done = api_key(
            connection, None, queries_today=3, last_reset_on=date(2026, 11, 25)
        )

    result = run(api_keys.reset_api_key_queries_today, env, engine, RESET_TICK)

    assert result == {"usage_date": "2026-11-24", "snapshots": 1, "reset": 2}
    assert history(engine) == {(busy, date(2026, 11, 24), 7)}
    assert counters(engine) == {busy: 0, idle: 0, done: 3}

    with engine.begin() as connection:  # the API counts queries of the new day
        connection.exec_driver_sql(
            f"UPDATE api_keys SET queries_today = 5 WHERE id = {busy}"
        )
    again = run(api_keys.reset_api_key_queries_today, env, engine, RESET_TICK)

    assert (again["snapshots"], again["reset"]) == (0, 0)
    assert counters(engine) == {busy: 5, idle: 0, done: 3}

    next_day = run(
        api_keys.reset_api_key_queries_today, env, engine, utc(2026, 11, 26, 0, 0)
    )

    assert (next_day["snapshots"], next_day["reset"]) == (2, 3)
    assert history(engine) == {
        (busy, date(2026, 11, 24), 7),
        (busy, date(2026, 11, 25), 5),
        (done, date(2026, 11, 25), 3),
    }
    assert counters(engine) == {busy: 0, idle: 0, done: 0}


def test_an_existing_history_row_is_added_to_not_dropped(
    engine: Engine, env: Settings
) -> None:
    with engine.begin() as connection:
        key_id = api_key(connection, None, queries_today=7)
        insert(
            connection,
            "api_key_daily_usage",
            api_key_id=key_id,
            usage_date=date(2026, 11, 24),
            queries=2,
        )

    run(api_keys.reset_api_key_queries_today, env, engine, RESET_TICK)

    assert history(engine) == {(key_id, date(2026, 11, 24), 9)}


def test_two_copies_at_once_snapshot_each_key_once(
    engine: Engine, env: Settings
) -> None:
    settings = env.model_copy(update={"job_chunk_size": 3})
    with engine.begin() as connection:
        keys = [api_key(connection, None, queries_today=n + 1) for n in range(20)]
    results: list[dict[str, Any]] = []

    def copy() -> None:
        results.append(
            run(api_keys.reset_api_key_queries_today, settings, engine, RESET_TICK)
        )

    threads = [threading.Thread(target=copy) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r["reset"] for r in results) == 20
    assert history(engine) == {
        (key_id, date(2026, 11, 24), n + 1) for n, key_id in enumerate(keys)
    }


def test_free_usage_is_marked_billed_without_a_stripe_item(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    settings = stripe_settings.model_copy(update={"api_usage_unit_price": 0})
    customer = world.customer()
    with engine.begin() as connection:
        key_id = api_key(connection, customer)
        usage(connection, key_id, LAST_MINUTE, 3)

    result = run(api_keys.charge_unbilled_usage, settings, engine, TICK)

    assert (result["free"], result["billed"], result["events_marked"]) == (1, 0, 1)
    assert world.pending_items(customer) == []
    assert scalar(engine, "SELECT count(*) FROM ledger_entries") == 0


# --- an invoice item found made more than once --------------------------------------


def items_made_twice(engine: Engine, world: StripeWorld) -> tuple[str, str, str]:
    """A customer with usage to bill whose invoice item for the cutoff Stripe holds
    twice, made outside our protocol (as a write made twice would be): the kept
    one first, then the extra one."""
    customer = world.customer()
    with engine.begin() as connection:
        usage(connection, api_key(connection, customer), LAST_MINUTE, 3)
    made = []
    for n in range(2):
        if n:
            time.sleep(1.1)  # Stripe's ``created`` counts seconds: kept is earliest
        item = world.v1.invoice_items.create(
            params={
                "customer": customer,
                "amount": 3 * PRICE,
                "currency": "idr",
                "description": f"AGNT API usage [{ref(customer)}]",
                "metadata": {"agnt_ref": ref(customer)},
            }
        )
        made.append(item.id)
    return customer, made[0], made[1]


def duplicates(engine: Engine) -> list[Any]:
    return rows(engine, "SELECT * FROM duplicate_payments ORDER BY id")


def test_an_invoice_item_made_twice_keeps_the_earliest_and_deletes_the_other(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    customer, kept, extra = items_made_twice(engine, world)

    result = run(api_keys.charge_unbilled_usage, stripe_settings, engine, TICK)

    assert (result["recovered"], result["duplicates_deleted"]) == (1, 1)
    [batch] = rows(engine, "SELECT * FROM usage_batches")
    assert (batch.status, batch.stripe_invoice_item_id) == ("BILLED", kept)
    assert [item["id"] for item in world.pending_items(customer)] == [kept]
    [duplicate] = duplicates(engine)
    assert (duplicate.kind, duplicate.action, duplicate.status) == (
        "invoice_item",
        "delete",
        "DELETED",
    )
    assert (duplicate.stripe_object, duplicate.usage_batch_id) == (extra, batch.id)
    assert scalar(engine, "SELECT count(*) FROM ledger_entries") == 1
    [report] = rows(engine, "SELECT * FROM error_log")
    assert report.level == "CRITICAL" and report.context["extra"] == [extra]
    with engine.connect() as connection:
        assert health.duplicate_payments(connection, None).value == 0  # type: ignore[arg-type]

    again = run(api_keys.charge_unbilled_usage, stripe_settings, engine, TICK)

    assert again["duplicates_deleted"] == 0
    assert [item["id"] for item in world.pending_items(customer)] == [kept]


def test_a_crash_after_deleting_an_extra_item_then_rerun_does_not_delete_it_again(
    engine: Engine,
    stripe_settings: Settings,
    world: StripeWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    customer, kept, _ = items_made_twice(engine, world)
    crash_once(monkeypatch, duplicate_payments, "_record")

    with pytest.raises(Crash):
        run(api_keys.charge_unbilled_usage, stripe_settings, engine, TICK)

    [duplicate] = duplicates(engine)
    assert duplicate.status == "TO_DELETE"
    assert [item["id"] for item in world.pending_items(customer)] == [kept]

    result = run(api_keys.charge_unbilled_usage, stripe_settings, engine, TICK)

    assert result["duplicates_deleted"] == 1
    [duplicate] = duplicates(engine)
    assert (duplicate.status, duplicate.last_error) == ("DELETED", None)


def test_report_only_leaves_an_extra_item_and_keeps_it_in_view(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    settings = stripe_settings.model_copy(update={"stripe_duplicate_action": "report"})
    customer, kept, extra = items_made_twice(engine, world)

    run(api_keys.charge_unbilled_usage, settings, engine, TICK)
    again = run(api_keys.charge_unbilled_usage, settings, engine, TICK)

    assert again["duplicates_deleted"] == 0
    assert {item["id"] for item in world.pending_items(customer)} == {kept, extra}
    [duplicate] = duplicates(engine)
    assert (duplicate.action, duplicate.status) == ("delete", "REPORTED")
    [report] = rows(engine, "SELECT * FROM error_log")
    assert "by hand" in report.message
    with engine.connect() as connection:
        seen = health.duplicate_payments(connection, None)  # type: ignore[arg-type]
    [batch] = rows(engine, "SELECT * FROM usage_batches")
    assert (seen.ok, seen.details["usage_batch_ids"]) == (False, [batch.id])
    assert seen.details["by_kind"] == {"invoice_item": 1}
