"""Which of several Stripe objects made under one key a row keeps: the earliest made,
whatever order Stripe lists them in (real Stripe lists newest first, localstripe
oldest first), never an invoice someone voided while another is live."""

from __future__ import annotations

import itertools
import random

from agnt_jobs.clients.stripe_client import _earliest_first
from agnt_jobs.jobs.duplicate_payments import keep_earliest


def test_the_earliest_is_kept_in_every_listing_order() -> None:
    rng = random.Random(7)
    for _ in range(200):
        made = [
            {"id": f"in_{rng.randrange(10**6):06d}", "created": rng.randrange(5)}
            for _ in range(rng.randrange(1, 6))
        ]
        expected = min(made, key=lambda obj: (obj["created"], obj["id"]))
        for listed in itertools.islice(itertools.permutations(made), 24):
            kept, extras = keep_earliest(_earliest_first(list(listed)))
            assert kept == expected
            assert sorted(e["id"] for e in extras) == sorted(
                obj["id"] for obj in made if obj is not expected
            )


def test_an_invoice_already_void_is_not_kept_nor_counted_extra() -> None:
    void = {"id": "in_a", "created": 1, "status": "void"}
    first = {"id": "in_b", "created": 2, "status": "open"}
    second = {"id": "in_c", "created": 3, "status": "draft"}

    assert keep_earliest([void, first, second]) == (first, [second])
    assert keep_earliest([void]) == (void, [])
    assert keep_earliest([]) == (None, [])
