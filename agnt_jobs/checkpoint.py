"""Checkpoints: the places in a run where stopping is safe.

Every long loop of a job body (each chunk of a walk, each batch of a lease drain,
each step of a heavy job) calls ``checkpoint()`` before its next unit of work. When
the run was asked to stop (its worker is shutting down past its grace, an operator
cancelled it), the checkpoint raises ``RunStopped``: everything committed before it
stands, nothing after it was started, and a retry does the rest.

What asks a run to stop is set per run, by the task that runs the body
(``agnt_jobs.scheduler.tasks``), in a context variable: a body, and every loop it
calls, checks it without carrying it through each call. Outside a run (a test
calling a body directly, the bench) nothing stops.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

from procrastinate.exceptions import JobAborted

StopReason = Callable[[], str | None]


class RunStopped(JobAborted):
    """Raised at a checkpoint of a run asked to stop. Procrastinate retries a run
    stopped by a shutdown; a cancelled one ends aborted."""


def _never() -> str | None:
    return None


_stop_reason: contextvars.ContextVar[StopReason] = contextvars.ContextVar(
    "agnt_stop_reason", default=_never
)


@contextlib.contextmanager
def stoppable(reason: StopReason) -> Iterator[None]:
    """Within the block, checkpoints stop when ``reason()`` says why."""
    token = _stop_reason.set(reason)
    try:
        yield
    finally:
        _stop_reason.reset(token)


def stop_reason() -> str | None:
    """Why the current run should stop now, or None."""
    return _stop_reason.get()()


def checkpoint() -> None:
    """Raise ``RunStopped`` if the current run was asked to stop."""
    reason = stop_reason()
    if reason is not None:
        raise RunStopped(f"stopped at a checkpoint: {reason}")
