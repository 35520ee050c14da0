"""How Stripe library errors map to what the billing jobs do with them, and how a
crashed attempt's object is recognised."""

from __future__ import annotations

import pytest
import stripe

from agnt_jobs.clients.errors import PermanentError, RetryableError
from agnt_jobs.clients.stripe_client import (
    CardDeclinedError,
    StripeGateway,
    _matches,
    classify,
    ref_tag,
)
from agnt_jobs.settings import ConfigError, Settings


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            stripe.CardError("declined", None, "card_declined", http_status=402),
            CardDeclinedError,
        ),
        (stripe.APIConnectionError("reset"), RetryableError),
        (stripe.RateLimitError("slow down", http_status=429), RetryableError),
        (stripe.APIError("boom", http_status=500), RetryableError),
        (
            stripe.InvalidRequestError("in flight", None, http_status=409),
            RetryableError,
        ),
        (
            stripe.InvalidRequestError("No such customer", None, http_status=404),
            PermanentError,
        ),
        (
            stripe.IdempotencyError(
                "key reused with other parameters", http_status=400
            ),
            RetryableError,
        ),
        (
            stripe.InvalidRequestError("bad param", "amount", http_status=400),
            PermanentError,
        ),
        (stripe.AuthenticationError("bad key", http_status=401), PermanentError),
    ],
)
def test_classify(error: stripe.StripeError, expected: type) -> None:
    mapped = classify(error)
    assert type(mapped) is expected
    assert mapped.status == error.http_status or expected is CardDeclinedError


def test_card_declined_keeps_the_decline_code() -> None:
    mapped = classify(
        stripe.CardError("no", None, "insufficient_funds", http_status=402)
    )
    assert isinstance(mapped, CardDeclinedError)
    assert mapped.code == "insufficient_funds"


def test_an_object_matches_by_metadata_or_by_the_tag_in_its_description() -> None:
    key = "invoice:7:2026-11"
    assert _matches({"metadata": {"agnt_ref": key}}, key)
    assert _matches(
        {"metadata": {}, "description": f"AGNT 2026-11 {ref_tag(key)}"}, key
    )
    assert not _matches({"metadata": {"agnt_ref": "invoice:7:2026-10"}}, key)
    assert not _matches({"description": "[invoice:7:2026-111]"}, key)


def test_a_missing_api_key_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="AGNT_STRIPE_API_KEY"):
        StripeGateway.from_settings(Settings(stripe_api_key=None))
