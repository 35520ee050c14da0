"""reconcile_subscription_state against localstripe: Stripe's state is copied where it
provably applies, everything else is reported and left alone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from agnt_jobs.clients.stripe_client import StripeGateway
from agnt_jobs.jobs import subscriptions
from agnt_jobs.settings import Settings
from tests.support.billing_data import (
    StripeWorld,
    rows,
    run,
    scalar,
    subscription_row,
    unreachable,
    utc,
    venue,
)

NOW = utc(2026, 11, 24, 21, 0)  # 05:00 WITA


@pytest.fixture
def world(localstripe: Any) -> StripeWorld:
    return StripeWorld(localstripe.url)


def on_stripe(world: StripeWorld) -> tuple[str, dict[str, Any]]:
    customer = world.customer()
    return customer, world.subscription(customer)


def period_end(remote: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(remote["current_period_end"], UTC)


def local(engine: Engine, subscription_id: int) -> Any:
    [row] = rows(engine, "SELECT * FROM subscriptions WHERE id = :i", i=subscription_id)
    return row


def test_corrects_provable_drift_and_reports_the_rest(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    canceled_customer, canceled = on_stripe(world)
    world.cancel(canceled["id"])
    stale_customer, stale = on_stripe(world)
    synced_customer, synced = on_stripe(world)
    _, foreign = on_stripe(world)
    with engine.begin() as connection:
        was_active = subscription_row(
            connection,
            venue(connection),
            canceled_customer,
            canceled["id"],
            "active",
            period_end(canceled),
        )
        old_period = subscription_row(
            connection,
            venue(connection),
            stale_customer,
            stale["id"],
            "active",
            utc(2026, 10, 1),
        )
        in_sync = subscription_row(
            connection,
            venue(connection),
            synced_customer,
            synced["id"],
            "active",
            period_end(synced),
        )
        missing = subscription_row(
            connection, venue(connection), "cus_ours", "sub_gone", "active"
        )
        other_customer = subscription_row(
            connection, venue(connection), "cus_ours", foreign["id"], "past_due"
        )
        no_stripe_id = subscription_row(
            connection, venue(connection), "cus_local", None, "trialing"
        )

    result = run(
        subscriptions.reconcile_subscription_state, stripe_settings, engine, NOW
    )

    assert result == {
        "checked": 5,
        "in_sync": 1,
        "corrected": 2,
        "changed_meanwhile": 0,
        "unprovable": 2,
        "unreachable": 0,
    }
    row = local(engine, was_active)
    assert (row.status, row.current_period_end) == ("canceled", period_end(canceled))
    assert local(engine, old_period).current_period_end == period_end(stale)
    assert local(engine, in_sync).updated_at is None
    for untouched in (missing, other_customer, no_stripe_id):
        assert local(engine, untouched).updated_at is None
    assert local(engine, other_customer).status == "past_due"
    found = {
        row.context["subscription_id"]: row.message
        for row in rows(engine, "SELECT * FROM error_log")
    }
    assert set(found) == {missing, other_customer}
    assert "not in Stripe" in found[missing]
    assert "customer differs" in found[other_customer]


def test_a_rerun_changes_nothing_and_reports_once_a_day(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    customer, remote = on_stripe(world)
    world.cancel(remote["id"])
    with engine.begin() as connection:
        drifted = subscription_row(
            connection, venue(connection), customer, remote["id"], "active"
        )
        subscription_row(
            connection, venue(connection), "cus_ours", "sub_gone", "active"
        )
    run(subscriptions.reconcile_subscription_state, stripe_settings, engine, NOW)
    before = rows(engine, "SELECT * FROM subscriptions ORDER BY id")

    again = run(
        subscriptions.reconcile_subscription_state, stripe_settings, engine, NOW
    )

    assert (again["corrected"], again["in_sync"], again["unprovable"]) == (0, 1, 1)
    assert rows(engine, "SELECT * FROM subscriptions ORDER BY id") == before
    assert local(engine, drifted).status == "canceled"
    assert scalar(engine, "SELECT count(*) FROM error_log") == 1


def test_a_correction_that_would_make_a_second_live_subscription_is_reported(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    old_customer, old = on_stripe(world)  # Stripe: still active
    new_customer, new = on_stripe(world)
    with engine.begin() as connection:
        venue_id = venue(connection)
        stale = subscription_row(
            connection, venue_id, old_customer, old["id"], "canceled"
        )
        subscription_row(connection, venue_id, new_customer, new["id"], "active")

    result = run(
        subscriptions.reconcile_subscription_state, stripe_settings, engine, NOW
    )

    assert result["unprovable"] == 1
    assert local(engine, stale).status == "canceled"
    [report] = rows(engine, "SELECT * FROM error_log")
    assert "second live subscription" in report.message


def test_stripe_unreachable_changes_nothing(
    engine: Engine, stripe_settings: Settings, world: StripeWorld
) -> None:
    customer, remote = on_stripe(world)
    world.cancel(remote["id"])
    with engine.begin() as connection:
        drifted = subscription_row(
            connection, venue(connection), customer, remote["id"], "active"
        )

    result = run(
        subscriptions.reconcile_subscription_state,
        unreachable(stripe_settings),
        engine,
        NOW,
    )

    assert (result["unreachable"], result["corrected"]) == (1, 0)
    assert local(engine, drifted).status == "active"
    assert scalar(engine, "SELECT count(*) FROM error_log") == 0


def test_a_row_changed_after_it_was_read_is_not_overwritten(
    engine: Engine,
    stripe_settings: Settings,
    world: StripeWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    customer, remote = on_stripe(world)
    world.cancel(remote["id"])
    with engine.begin() as connection:
        drifted = subscription_row(
            connection, venue(connection), customer, remote["id"], "active"
        )
    original = StripeGateway.subscription

    def read_then_webhook(self: StripeGateway, subscription_id: str) -> dict:
        answer = original(self, subscription_id)
        # A webhook lands between our read of Stripe and our write.
        with engine.begin() as connection:
            connection.exec_driver_sql(
                f"UPDATE subscriptions SET status = 'past_due' WHERE id = {drifted}"
            )
        return answer

    monkeypatch.setattr(StripeGateway, "subscription", read_then_webhook)

    result = run(
        subscriptions.reconcile_subscription_state, stripe_settings, engine, NOW
    )

    assert (result["changed_meanwhile"], result["corrected"]) == (1, 0)
    assert local(engine, drifted).status == "past_due"
