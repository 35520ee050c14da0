"""The two ways an outside call fails, as every job sees them: try again later
(timeouts, connection errors, 5xx, 429) or give up (the request itself is wrong)."""

from __future__ import annotations

from agnt_jobs.errors import AgntJobsError


class ClientError(AgntJobsError):
    """A call to an outside system failed. ``status`` is the HTTP status, if any."""

    retryable: bool = False

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryableError(ClientError):
    retryable = True


class PermanentError(ClientError):
    retryable = False
