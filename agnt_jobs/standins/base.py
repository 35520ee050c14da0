"""What every stand-in is: something started and stopped, also as a ``with``
block (``with FakeAlerts() as alerts: ...``)."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class StandIn:
    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
