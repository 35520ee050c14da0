"""Which of several Stripe objects made under one key a row keeps: the earliest made,
whatever order Stripe lists them in (real Stripe lists newest first, localstripe
oldest first), never an invoice someone voided while another is live."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from agnt_jobs.clients.stripe_client import _earliest_first
from agnt_jobs.jobs.duplicate_payments import (
    extra_invoice,
    extra_invoice_item,
    keep_earliest,
)


def test_the_earliest_is_kept_in_every_listing_order() -> None:
    rng = random.Random(7)
    for _ in range(200):
        made: list[dict[str, Any]] = [
            {"id": f"in_{rng.randrange(10**6):06d}", "created": rng.randrange(5)}
            for _ in range(rng.randrange(1, 6))
        ]
        expected = min(made, key=lambda obj: (obj["created"], obj["id"]))
        for listed in itertools.islice(itertools.permutations(made), 24):
            kept, extras = keep_earliest(_earliest_first(list(listed)))
            assert kept == expected
            assert sorted(str(e["id"]) for e in extras) == sorted(
                str(obj["id"]) for obj in made if obj is not expected
            )


def test_an_invoice_already_void_is_not_kept_nor_counted_extra() -> None:
    void = {"id": "in_a", "created": 1, "status": "void"}
    first = {"id": "in_b", "created": 2, "status": "open"}
    second = {"id": "in_c", "created": 3, "status": "draft"}

    assert keep_earliest([void, first, second]) == (first, [second])
    assert keep_earliest([void]) == (void, [])
    assert keep_earliest([]) == (None, [])


@pytest.mark.parametrize(
    ("make", "invoice", "action"),
    [
        (extra_invoice, {"id": "in_1", "status": "draft", "amount_due": 5}, "delete"),
        (extra_invoice, {"id": "in_1", "status": "open", "amount_due": 5}, "void"),
        (
            extra_invoice,
            {
                "id": "in_1",
                "status": "paid",
                "amount_paid": 5,
                "payment_intent": "pi_1",
            },
            "refund",
        ),
    ],
)
def test_each_extra_invoice_gets_the_call_that_undoes_it(
    make: Any, invoice: dict[str, Any], action: str
) -> None:
    extra = make(invoice)
    assert (extra.action, extra.why) == (action, None)


def test_an_extra_that_no_call_undoes_is_only_reported() -> None:
    on_invoice = extra_invoice_item({"id": "ii_1", "amount": 5, "invoice": "in_9"})
    paid_for_nothing = extra_invoice({"id": "in_1", "status": "paid", "amount_paid": 0})
    pending = extra_invoice_item({"id": "ii_2", "amount": 5, "invoice": None})

    assert on_invoice.action == "delete" and "in_9" in (on_invoice.why or "")
    assert paid_for_nothing.why is not None and paid_for_nothing.amount == 0
    assert (pending.action, pending.why) == ("delete", None)
