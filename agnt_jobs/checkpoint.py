"""Checkpoints: the places in a run where stopping is safe.

Every long loop of a job body (each chunk of a walk, each batch of a lease drain,
each step of a heavy job) calls ``checkpoint()`` before its next unit of work. When
the run was asked to stop (its worker is shutting down past its grace, an operator
cancelled it), the checkpoint raises ``RunStopped``; when the run is past its
deadline (its schedule's timeout), ``RunTimedOut``. Either way everything committed
before it stands, nothing after it was started, and the next run (a retry after a
shutdown, the next tick after a timeout) does the rest.

What asks a run to stop, and its deadline, are set per run by the task that runs
the body (``agnt_jobs.scheduler.tasks``), in a context variable: a body, and every
loop it calls, checks them without carrying them through each call. Outside a run
(a test calling a body directly, the bench) nothing stops.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from procrastinate.exceptions import JobAborted

StopReason = Callable[[], str | None]


SHUTDOWN = "worker shutting down"
CANCELLED = "cancelled"


class RunStopped(JobAborted):
    """Raised at a checkpoint of a run asked to stop. Procrastinate retries a run
    stopped by a shutdown; a cancelled one is not retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"stopped at a checkpoint: {reason}")
        self.reason = reason


class RunTimedOut(Exception):
    """Raised at the first checkpoint past a run's deadline: the run fails (it is
    not retried) and its history says ``timed_out``."""


def _never() -> str | None:
    return None


_stop_reason: contextvars.ContextVar[StopReason] = contextvars.ContextVar(
    "agnt_stop_reason", default=_never
)
# (monotonic deadline, the timeout it came from), or None: no deadline.
_deadline: contextvars.ContextVar[tuple[float, timedelta] | None] = (
    contextvars.ContextVar("agnt_deadline", default=None)
)


@contextlib.contextmanager
def stoppable(reason: StopReason, timeout: timedelta | None = None) -> Iterator[None]:
    """Within the block, checkpoints stop when ``reason()`` says why, or once
    ``timeout`` has passed since the block began."""
    token = _stop_reason.set(reason)
    deadline = None
    if timeout is not None:
        deadline = (time.monotonic() + timeout.total_seconds(), timeout)
    deadline_token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(deadline_token)
        _stop_reason.reset(token)


def stop_reason() -> str | None:
    """Why the current run should stop now, or None."""
    return _stop_reason.get()()


def checkpoint() -> None:
    """Raise ``RunStopped`` if the current run was asked to stop, ``RunTimedOut``
    if it is past its deadline."""
    reason = stop_reason()
    if reason is not None:
        raise RunStopped(reason)
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline[0]:
        raise RunTimedOut(f"timed out: the run took longer than {deadline[1]}")
