"""A stand-in run as a child process (the demo's and the bench's peer server,
localstripe): started on entering a ``with`` block, stopped on leaving it."""

from __future__ import annotations

import subprocess

from agnt_jobs.standins.base import StandIn


class ChildProcess(StandIn):
    _process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """Terminate the child; kill it if it is still there ten seconds later."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
