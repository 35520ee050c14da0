"""The lease drain's config and breaker, without a database (the drain itself is
tested against Postgres in tests/integration/test_lease.py)."""

from __future__ import annotations

import pytest

from agnt_jobs.clients.errors import PermanentError, RetryableError
from agnt_jobs.delivery.lease import Breaker, LeaseConfig, NotSent


def test_config_accepts_the_smallest_valid_values() -> None:
    config = LeaseConfig(batch_size=1, concurrency=1, lease_seconds=0.5)
    assert (config.batch_size, config.concurrency, config.lease_seconds) == (1, 1, 0.5)


def test_config_names_every_invalid_field_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        LeaseConfig(batch_size=0, concurrency=-1, lease_seconds=0)
    message = str(raised.value)
    assert "batch_size must be at least 1, not 0" in message
    assert "concurrency must be at least 1, not -1" in message
    assert "lease_seconds must be more than 0, not 0" in message


def test_breaker_opens_after_retryable_failures_in_a_row() -> None:
    breaker = Breaker(2)
    breaker.record(RetryableError("503"))
    breaker.record("ok")  # a success closes it again
    breaker.record(RetryableError("503"))
    assert not breaker.open
    breaker.record(PermanentError("404"))  # about the row, not the peer: not counted
    assert not breaker.open
    breaker.record(RetryableError("timeout"))
    assert breaker.open


def test_breaker_may_count_every_failure() -> None:
    breaker = Breaker(1, counts=lambda error: True)
    breaker.record(PermanentError("422"))
    assert breaker.open


def test_breaker_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Breaker(0)


def test_not_sent_is_retryable() -> None:
    assert NotSent("not sent").retryable
