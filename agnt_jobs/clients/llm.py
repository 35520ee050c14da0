"""The optional LLM: an OpenAI-compatible chat-completions API that may improve the
heavy jobs' text (reflection summaries, FAQ answers).

It is off unless ``AGNT_LLM_BASE_URL`` and ``AGNT_LLM_MODEL`` are set, and nothing
depends on it: ``Assist`` wraps the client for one job run, returns None whenever the
LLM is off or fails, and counts those fallbacks so the job can use its deterministic
text instead and say so in its result. After ``AGNT_LLM_MAX_FAILURES`` failures in a run
it stops calling, so an LLM outage costs a run a few timeouts, not one per user.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

import httpx

from agnt_jobs import logs
from agnt_jobs.clients.errors import ClientError, RetryableError
from agnt_jobs.clients.http import HttpClient, build_client, request
from agnt_jobs.settings import Settings

logger = logging.getLogger(__name__)


class LLMClient(HttpClient):
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.model = model
        self._client = build_client(
            base_url, timeout, headers, transport, max_connections=4
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMClient | None:
        """The configured client, or None when no LLM is configured."""
        if not settings.llm_base_url or not settings.llm_model:
            return None
        key = settings.llm_api_key
        return cls(
            settings.llm_base_url,
            settings.llm_model,
            key.get_secret_value() if key else None,
            settings.llm_timeout_seconds,
        )

    def complete(self, system: str, prompt: str, max_tokens: int = 400) -> str:
        """One chat completion; the reply's text, or a ClientError."""
        response = request(
            self._client,
            "POST",
            "chat/completions",
            json={
                "model": self.model,
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": prompt},
                ],
                "temperature": 0,
                "max_tokens": max_tokens,
            },
        )
        try:
            body: Any = response.json()
            text = body["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise RetryableError(f"LLM reply not understood: {error!r}") from error
        if not isinstance(text, str) or not text.strip():
            raise RetryableError("LLM reply has no text")
        return text.strip()


class Assist:
    """The LLM as one run uses it: optional, counted, and given up after failures."""

    def __init__(self, client: LLMClient | None, max_failures: int = 3) -> None:
        self._client = client
        self._max_failures = max_failures
        self.used = 0
        self.fallbacks = 0
        self.failures = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Assist:
        return cls(LLMClient.from_settings(settings), settings.llm_max_failures)

    @property
    def enabled(self) -> bool:
        return self._client is not None

    def complete(self, system: str, prompt: str) -> str | None:
        """The LLM's text, or None: the caller then uses its deterministic text."""
        if self._client is None:
            return None
        if self.failures >= self._max_failures:
            self.fallbacks += 1
            return None
        try:
            text = self._client.complete(system, prompt)
        except ClientError as error:
            self.failures += 1
            self.fallbacks += 1
            logger.warning(
                "LLM call failed; using the deterministic text",
                extra=logs.event("llm_fallback", error=str(error)[:200]),
            )
            return None
        self.used += 1
        return text

    def summary(self) -> dict[str, int]:
        """What to add to a job's result: nothing when the LLM is off."""
        if self._client is None:
            return {}
        return {"llm_used": self.used, "llm_fallbacks": self.fallbacks}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> Assist:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
