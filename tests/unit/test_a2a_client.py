"""The A2A dispatch client against a local venue agent: what it sends, and how each
kind of failure is classified."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agnt_jobs.clients.a2a import A2AClient
from agnt_jobs.clients.errors import PermanentError, RetryableError
from agnt_jobs.standins.venue_agent import FakeVenueAgent


@pytest.fixture
def agent() -> Iterator[FakeVenueAgent]:
    server = FakeVenueAgent().start()
    yield server
    server.stop()


def test_posts_the_envelope_with_its_idempotency_key(agent: FakeVenueAgent) -> None:
    with A2AClient(token="t0k") as client:
        assert client.dispatch(agent.endpoint, {"id": 7, "kind": "x"}) == 202
        assert client.dispatch(agent.endpoint, {"id": 7, "kind": "x"}) == 200
    request = agent.received[0]
    assert request.json() == {"id": 7, "kind": "x"}
    assert request.headers["idempotency-key"] == "a2a-envelope-7"
    assert request.headers["authorization"] == "Bearer t0k"
    assert list(agent.envelopes) == ["a2a-envelope-7"]


@pytest.mark.parametrize("status", [503, 429])
def test_server_trouble_is_retryable(agent: FakeVenueAgent, status: int) -> None:
    agent.fail_next(1, status)
    with A2AClient() as client, pytest.raises(RetryableError) as error:
        client.dispatch(agent.endpoint, {"id": 1})
    assert error.value.status == status


def test_refusal_is_permanent(agent: FakeVenueAgent) -> None:
    agent.refuse()
    with A2AClient() as client, pytest.raises(PermanentError) as error:
        client.dispatch(agent.endpoint, {"id": 1})
    assert error.value.status == 422


def test_unreachable_agent_is_retryable() -> None:
    server = FakeVenueAgent().start()
    endpoint = server.endpoint
    server.stop()
    with A2AClient(timeout=2) as client, pytest.raises(RetryableError):
        client.dispatch(endpoint, {"id": 1})


@pytest.mark.parametrize("endpoint", [None, "", "ftp://venue/a2a", "not a url"])
def test_unusable_endpoint_is_permanent(endpoint: str | None) -> None:
    with A2AClient() as client, pytest.raises(PermanentError):
        client.dispatch(endpoint, {"id": 1})
