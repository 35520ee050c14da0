"""Stripe writes whose answer was lost: the run looks for what the write made before
it records anything, so no row it touched ends disagreeing with Stripe.

A write that times out, or fails on the network or with a 5xx, may have been made
by Stripe all the same, now or once Stripe answers again (it is sent once: the
library never re-sends writes). The row's transaction still holds its lock, so the
job looks the object up (``look``), once a second, until Stripe answers the lookup
or the run's budget (``AGNT_STRIPE_RECONCILE_SECONDS``, shared by all the run's
rows) is spent. Found: it is recorded as if the write had answered. Not found with
Stripe answering: the write was not made, and the row stays due (the next try
looks again before writing, under the same key). Budget spent: the row stays due
and the run ends failed with ``ReconciliationPending``, naming the rows, instead of
``succeeded``; the next run settles them by the same lookup.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from agnt_jobs import logs
from agnt_jobs.checkpoint import checkpoint
from agnt_jobs.clients.errors import RetryableError

logger = logging.getLogger(__name__)

T = TypeVar("T")

POLL_SECONDS = 1.0


class ReconciliationPending(Exception):
    """The run ended with rows whose Stripe writes it could not look up."""

    def __init__(self, job: str, rows: list[str], result: dict[str, Any]) -> None:
        super().__init__(
            f"{job}: Stripe reconciliation pending: the answer of {len(rows)} "
            f"Stripe write(s) was lost and Stripe did not answer a lookup in time "
            f"({', '.join(rows)}); they stay due and the next run looks them up "
            f"before writing again. Counts: {result}"
        )
        self.rows = rows
        self.result = result


class LostAnswers:
    """One run's budget for looking up lost writes, and the rows left unsettled."""

    def __init__(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds
        self.pending: list[str] = []

    def look(self, lookup: Callable[[], T], row: str) -> tuple[bool, T | None]:
        """(True, what ``lookup`` found) once Stripe answers it, or (False, None)
        when the budget is spent first (``row`` is then pending)."""
        while True:
            checkpoint()
            try:
                return True, lookup()
            except RetryableError as error:
                left = self._deadline - time.monotonic()
                if left <= 0:
                    self.pending.append(row)
                    logger.warning(
                        "stripe write not reconciled",
                        extra=logs.event(
                            "stripe_reconcile_pending", row=row, error=str(error)
                        ),
                    )
                    return False, None
                time.sleep(min(POLL_SECONDS, left))

    def settled(self, job: str, result: dict[str, Any]) -> dict[str, Any]:
        """``result``, or ``ReconciliationPending`` if a row was left unsettled."""
        if self.pending:
            raise ReconciliationPending(job, self.pending, result)
        return result
