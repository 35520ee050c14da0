"""A stand-in run as a child process (the demo's and the bench's peer server,
localstripe): started on entering a ``with`` block, stopped on leaving it."""

from __future__ import annotations

import subprocess
from types import TracebackType
from typing import Self


class ChildProcess:
    _process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        raise NotImplementedError

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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
