"""reconcile_fee_status on a real Postgres: the ledger decides, provable drift is
corrected, the rest reported once, and nothing outside the window is touched."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from agnt_jobs.delivery import deadletters
from agnt_jobs.jobs import fee_ledger, ledger
from agnt_jobs.settings import Settings
from tests.support.billing_data import fee, rows, run, scalar, utc, venue

NOW = utc(2026, 11, 25, 3, 0)
AMOUNT = 1_500_000


def entry(fee_id: int, kind: str, amount: int, n: int = 0) -> ledger.Entry:
    return ledger.Entry(
        idempotency_key=f"test:{fee_id}:{kind}:{n}",
        entry_type=kind,
        amount=amount,
        currency="IDR",
        fee_id=fee_id,
    )


@pytest.fixture
def make(engine: Engine) -> Any:
    def make_fee(status: str, *entries: tuple[str, int], **values: Any) -> int:
        with engine.begin() as connection:
            values.setdefault("updated_at", NOW - timedelta(hours=1))
            fee_id = fee(
                connection, venue(connection), "cus_x", AMOUNT, status=status, **values
            )
            ledger.append(
                connection,
                [
                    entry(fee_id, kind, amount, n)
                    for n, (kind, amount) in enumerate(entries)
                ],
            )
        return fee_id

    return make_fee


def status(engine: Engine, fee_id: int) -> str:
    return scalar(engine, "SELECT status FROM fee_collections WHERE id = :i", i=fee_id)


def reports(engine: Engine) -> dict[int, str]:
    return {
        int(row.context["fee_id"]): row.message
        for row in rows(
            engine, "SELECT * FROM error_log WHERE source = 'reconcile_fee_status'"
        )
    }


def test_the_ledger_decides_and_unprovable_disagreements_are_reported(
    engine: Engine, env: Settings, make: Any
) -> None:
    paid_but_failed = make("FAILED", ("payment", AMOUNT))
    paid_in_two = make("PENDING", ("payment", 1_000_000), ("payment", 500_000))
    refunded = make("PAID", ("payment", AMOUNT), ("refund", AMOUNT))
    uncollectible_then_paid = make("UNCOLLECTIBLE", ("payment", AMOUNT))
    with engine.begin() as connection:
        deadletters.record(
            connection,
            [
                deadletters.DeadLetter(
                    "fee_collection",
                    str(uncollectible_then_paid),
                    "card_declined",
                    "no",
                    5,
                )
            ],
        )
    paid_without_entry = make("PAID")
    partly_paid = make("FAILED", ("payment", 700_000))
    refund_never_paid = make("PENDING", ("refund", AMOUNT))
    overpaid = make("PAID", ("payment", AMOUNT), ("payment", AMOUNT))
    in_sync = [make("PAID", ("payment", AMOUNT)), make("FAILED"), make("UNCOLLECTIBLE")]

    result = run(fee_ledger.reconcile_fee_status, env, engine, NOW)

    assert result == {
        "checked": 11,
        "in_sync": 3,
        "corrected": 4,
        "reported": 4,
        "busy": 0,
        "whole_ledger": False,
    }
    assert status(engine, paid_but_failed) == "PAID"
    assert status(engine, paid_in_two) == "PAID"
    assert status(engine, refunded) == "REFUNDED"
    assert status(engine, uncollectible_then_paid) == "PAID"
    [letter] = rows(engine, "SELECT * FROM dead_letters")
    assert (letter.resolved_at is not None, letter.resolution) == (
        True,
        "paid per ledger",
    )
    # Left as they were, and reported.
    assert status(engine, paid_without_entry) == "PAID"
    assert status(engine, partly_paid) == "FAILED"
    assert status(engine, refund_never_paid) == "PENDING"
    assert status(engine, overpaid) == "PAID"
    found = reports(engine)
    assert set(found) == {paid_without_entry, partly_paid, refund_never_paid, overpaid}
    assert "no payment in the ledger" in found[paid_without_entry]
    assert "partly paid: 700000 of 1500000" in found[partly_paid]
    assert "overpaid" in found[overpaid]
    for fee_id in in_sync:
        assert fee_id not in found


def test_a_rerun_changes_nothing_and_reports_once_a_day(
    engine: Engine, env: Settings, make: Any
) -> None:
    corrected = make("FAILED", ("payment", AMOUNT))
    reported = make("PAID")
    run(fee_ledger.reconcile_fee_status, env, engine, NOW)
    before = rows(engine, "SELECT * FROM fee_collections ORDER BY id")

    again = run(
        fee_ledger.reconcile_fee_status, env, engine, NOW + timedelta(minutes=30)
    )

    assert again["corrected"] == 0
    assert rows(engine, "SELECT * FROM fee_collections ORDER BY id") == before
    assert scalar(engine, "SELECT count(*) FROM error_log") == 1
    assert status(engine, corrected) == "PAID"
    assert status(engine, reported) == "PAID"


def test_fees_outside_the_window_wait_for_the_daily_whole_ledger_run(
    engine: Engine, env: Settings, make: Any
) -> None:
    old = make("FAILED", updated_at=NOW - timedelta(days=30))
    with engine.begin() as connection:
        # An entry written long ago: not in the window either.
        connection.exec_driver_sql(
            "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only"
        )
        ledger.append(connection, [entry(old, "payment", AMOUNT)])
        connection.exec_driver_sql(
            "UPDATE ledger_entries SET created_at = now() - interval '30 days'"
        )
        connection.exec_driver_sql(
            "ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_append_only"
        )

    result = run(fee_ledger.reconcile_fee_status, env, engine, NOW)

    assert (result["checked"], result["whole_ledger"]) == (0, False)
    assert status(engine, old) == "FAILED"

    # The day's first run (00:00 WITA = 16:00 UTC) checks every fee.
    midnight = utc(2026, 11, 25, 16, 0)
    assert run(fee_ledger.reconcile_fee_status, env, engine, midnight)["whole_ledger"]
    assert status(engine, old) == "PAID"
    half_past = midnight + timedelta(minutes=30)
    result = run(fee_ledger.reconcile_fee_status, env, engine, half_past)
    assert result["whole_ledger"] is False


def test_a_payment_written_recently_brings_an_old_fee_into_the_window(
    engine: Engine, env: Settings, make: Any
) -> None:
    old = make("FAILED", ("payment", AMOUNT), updated_at=NOW - timedelta(days=30))

    result = run(fee_ledger.reconcile_fee_status, env, engine, NOW)

    assert (result["checked"], result["corrected"]) == (1, 1)
    assert status(engine, old) == "PAID"


@pytest.mark.parametrize(
    ("status_", "paid", "refunded", "expected"),
    [
        ("FAILED", 0, 0, (None, None)),
        ("FAILED", AMOUNT, 0, ("PAID", None)),
        ("PAID", AMOUNT, AMOUNT, ("REFUNDED", None)),
        ("PAID", AMOUNT, 100, ("REFUNDED", None)),
        ("PAID", 2 * AMOUNT, AMOUNT, ("PAID", None)),
        ("PAID", 2 * AMOUNT, AMOUNT + 1, ("REFUNDED", None)),
        ("REFUNDED", 0, 0, (None, "status REFUNDED but no payment in the ledger")),
    ],
)
def test_ledger_verdict(
    status_: str, paid: int, refunded: int, expected: tuple[str | None, str | None]
) -> None:
    assert fee_ledger.ledger_verdict(status_, AMOUNT, paid, refunded) == expected
