"""The optional LLM client against a local OpenAI-compatible server: off unless
configured, the request it sends, and how a run falls back when it fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agnt_jobs.clients.errors import PermanentError, RetryableError
from agnt_jobs.clients.llm import Assist, LLMClient
from agnt_jobs.settings import Settings
from agnt_jobs.standins.llm import FakeLLM
from agnt_jobs.standins.server import LocalServer, Reply


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    server = FakeLLM("Cancel from the app, free until 2h before.").start()
    yield server
    server.stop()


def test_off_unless_base_url_and_model_are_set() -> None:
    assert LLMClient.from_settings(Settings(llm_base_url="http://x/v1")) is None
    assert LLMClient.from_settings(Settings(llm_model="m")) is None
    off = Assist.from_settings(Settings())
    assert not off.enabled
    assert off.complete("system", "prompt") is None
    assert off.summary() == {}


def test_chat_completion_request_and_reply(llm: FakeLLM) -> None:
    settings = Settings(
        llm_base_url=llm.base_url, llm_model="tiny-1", llm_api_key="sk-test"
    )
    client = LLMClient.from_settings(settings)
    assert client is not None
    try:
        assert client.complete("Be brief.", "How do I cancel?") == (
            "Cancel from the app, free until 2h before."
        )
    finally:
        client.close()
    [request] = llm.received
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    body = request.json()
    assert body["model"] == "tiny-1"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How do I cancel?"},
    ]
    assert body["temperature"] == 0


def test_failures_are_classified(llm: FakeLLM) -> None:
    client = LLMClient(llm.base_url, "m")
    try:
        llm.failing_status = 503
        with pytest.raises(RetryableError):
            client.complete("s", "p")
        llm.failing_status = 401
        with pytest.raises(PermanentError):
            client.complete("s", "p")
    finally:
        client.close()
    garbled = LocalServer(lambda request: Reply(200, {"choices": []})).start()
    try:
        with pytest.raises(RetryableError, match="not understood"):
            LLMClient(f"{garbled.url}/v1", "m").complete("s", "p")
    finally:
        garbled.stop()


def test_assist_falls_back_and_stops_calling_after_max_failures(llm: FakeLLM) -> None:
    with Assist(LLMClient(llm.base_url, "m"), max_failures=2) as assist:
        assert assist.complete("s", "p") == "Cancel from the app, free until 2h before."
        llm.failing_status = 500
        assert [assist.complete("s", "p") for _ in range(4)] == [None] * 4
        assert assist.summary() == {"llm_used": 1, "llm_fallbacks": 4}
    assert len(llm.received) == 3  # one success, then two failures, then no calls
