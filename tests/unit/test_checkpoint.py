"""A checkpoint stops a run only when the run was asked to, and only inside it."""

from __future__ import annotations

import pytest
from procrastinate.exceptions import JobAborted

from agnt_jobs import checkpoint


def test_outside_a_run_nothing_stops() -> None:
    checkpoint.checkpoint()
    assert checkpoint.stop_reason() is None


def test_inside_a_run_asked_to_stop_the_checkpoint_raises_with_the_reason() -> None:
    asked: list[str | None] = [None]
    with checkpoint.stoppable(lambda: asked[0]):
        checkpoint.checkpoint()
        asked[0] = "worker shutting down"
        with pytest.raises(checkpoint.RunStopped, match="worker shutting down"):
            checkpoint.checkpoint()
    checkpoint.checkpoint()  # the run is over: its reason went with it


def test_a_stopped_run_is_an_abort_procrastinate_retries_on_shutdown() -> None:
    assert issubclass(checkpoint.RunStopped, JobAborted)
