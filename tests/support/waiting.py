"""Waiting in an async test for what a worker running in the same process does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(condition: Callable[[], bool], seconds: float) -> bool:
    """True as soon as ``condition()`` is, False once ``seconds`` have passed
    without it; the event loop runs meanwhile."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
