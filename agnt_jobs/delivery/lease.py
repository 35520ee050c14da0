"""The lease drain: how a queue of ours is worked off against the peer it talks to.

A drain repeats one batch until a batch comes back short:

1. **claim** up to ``batch_size`` due rows in one short transaction: the claim SQL
   picks them ``FOR UPDATE SKIP LOCKED`` (two drains never claim one row, and
   neither waits for the other) and writes a lease on each, a token the row is
   returned with (``claimed_until``, or the attempt count it was claimed at);
2. **send**: call the peer for each row, ``concurrency`` calls at once, with no
   transaction open, so a slow peer holds no lock and no connection;
3. **record** every outcome in one transaction, each write conditioned on the
   token the row was claimed with.

The token is what makes a slow peer safe. If a call outlasts the lease, another
drain may claim the row, send it again (peers deduplicate on our idempotency key)
and record it; the first drain's late outcome then matches no row and is dropped,
so only the current lease holder ever records a result. A drain that dies between
claim and record leaves its rows claimed until the lease passes; they are then due
again. Attempts, where a queue counts them, are counted by the claim, so a row that
kills its drain cannot be retried for ever.

Each queue is a specialisation that states only its claim SQL, its call to the peer
and its record step: ``delivery.send_queue`` (to the channel gateway),
``delivery.dispatch`` (A2A envelopes to venue agents), ``delivery.alerts`` (alerts
to the alerts webhook), ``jobs.webhooks`` (webhook retries) and ``jobs.watchers``
(price watchers to marketplaces).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from agnt_jobs import logs
from agnt_jobs.checkpoint import checkpoint
from agnt_jobs.clients.errors import ClientError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class NotSent(ClientError):
    """The outcome of a row the drain did not send because its breaker was open.
    Retryable: nothing is wrong with the row, and the record step releases it."""

    retryable = True


@dataclass(frozen=True)
class LeaseConfig:
    """How a drain claims and sends. Checked once, when it is made."""

    batch_size: int
    """Rows claimed in one transaction, then sent, then recorded in one transaction.
    A batch that comes back shorter ends the drain: nothing more was due. At least 1.
    """

    concurrency: int
    """Peer calls in flight at once, each on a thread of the drain's pool. 1 calls
    the peer one row at a time in the claim's order, which a queue whose rows must
    not overtake one another relies on. At least 1."""

    lease_seconds: float
    """How long a claim holds its rows, given to the claim SQL as ``:lease``. It must
    outlast the slowest batch (``batch_size / concurrency`` rounds of the peer's
    timeout), or another drain may claim rows this one is still sending: harmless
    to the rows (only one records), but the peer is called twice. The settings
    check this where the batch size is configurable. More than 0."""

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be at least 1, not {value!r}"
            for name, value in (
                ("batch_size", self.batch_size),
                ("concurrency", self.concurrency),
            )
            if value < 1
        ]
        if not self.lease_seconds > 0:
            problems.append(
                f"lease_seconds must be more than 0, not {self.lease_seconds!r}"
            )
        if problems:
            raise ValueError("invalid lease drain config: " + "; ".join(problems))


class Breaker:
    """Stops a drain calling a peer that keeps failing, for the rest of the run.

    Opens after ``limit`` failures in a row, counting the ``ClientError``s for which
    ``counts(error)`` is true (by default the retryable ones: a permanent error says
    something about the row, not about the peer); a success closes it again. Once
    it is open, rows of the batch not yet sent get the outcome ``NotSent``, which
    the record step releases, and the drain claims no further batch.
    """

    def __init__(
        self,
        limit: int,
        counts: Callable[[ClientError], bool] = lambda error: error.retryable,
    ) -> None:
        if limit < 1:
            raise ValueError(f"a breaker's limit must be at least 1, not {limit!r}")
        self.limit = limit
        self.counts = counts
        self.failures = 0
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        return self.failures >= self.limit

    def record(self, outcome: object) -> None:
        with self._lock:
            if not isinstance(outcome, ClientError):
                self.failures = 0
            elif self.counts(outcome):
                self.failures += 1


@dataclass(frozen=True)
class Batch:
    """One claim's worth of work: how many rows it claimed, and the counts its
    record step returned."""

    claimed: int
    counts: Counter[str]


@dataclass(frozen=True)
class Drained:
    """What a drain did: the summed counts of its record steps, how many batches
    claimed rows, and whether ``stop`` ended it (rather than a short batch or an
    open breaker)."""

    counts: Counter[str]
    batches: int
    stopped: bool


Record = Callable[
    [Connection, Sequence[Row[Any]], Sequence[T | ClientError]], Counter[str]
]


@dataclass(frozen=True)
class LeaseDrain(Generic[T]):
    """One queue's drain: its claim SQL, its call to the peer, its record step."""

    name: str
    """The queue's name in logs (``send_queue``, ``a2a_dispatch``...)."""

    engine: Engine
    config: LeaseConfig

    claim_sql: sa.TextClause
    """Claims due rows: takes ``:limit`` and ``:lease`` (seconds) and the
    ``claim_params``, selects ``FOR UPDATE SKIP LOCKED``, writes the lease and
    returns each claimed row with its claim token."""

    send: Callable[[Row[Any]], T]
    """Calls the peer for one claimed row. Runs on a pool thread with no transaction
    open; a ``ClientError`` it raises becomes the row's outcome. Any other exception
    ends the drain with the batch unrecorded (its rows wait for their lease)."""

    record: Record[T]
    """Writes a batch's outcomes, in the transaction it is given, each only under
    the claim token its row was claimed with, and returns the batch's counts."""

    claim_params: Mapping[str, Any] = field(default_factory=dict)

    breaker: Breaker | None = None
    """Optional: stop calling a failing peer for the rest of the run."""

    def claim(self, limit: int | None = None) -> list[Row[Any]]:
        """Claim up to ``limit`` rows (default ``batch_size``) in their own
        transaction and return them, leased."""
        params = {
            **self.claim_params,
            "limit": self.config.batch_size if limit is None else limit,
            "lease": self.config.lease_seconds,
        }
        with self.engine.begin() as connection:
            return list(connection.execute(self.claim_sql, params))

    def run_once(self, pool: Executor | None = None) -> Batch:
        """Claim one batch, send it (on ``pool``, or on a pool of ``concurrency``
        threads made for this call) and record it."""
        if pool is None:
            with ThreadPoolExecutor(max_workers=self.config.concurrency) as own:
                return self.run_once(own)
        rows = self.claim()
        if not rows:
            return Batch(0, Counter())
        outcomes = list(pool.map(self._call, rows))
        with self.engine.begin() as connection:
            counts = self.record(connection, rows, outcomes)
        logger.debug(
            "lease batch recorded",
            extra=logs.event(
                "lease_batch_recorded", drain=self.name, claimed=len(rows), **counts
            ),
        )
        return Batch(len(rows), counts)

    def run(self, stop: Callable[[], bool] | None = None) -> Drained:
        """Run batches until one comes back short, the breaker opens, or ``stop()``
        is true, and return what was done.

        ``stop`` is asked before each batch is claimed, never inside one: a batch
        once claimed is sent and recorded whole. So a stop finds no row claimed and
        unsent (there is nothing to release or to leave to its lease), and returns
        the counts of every batch done, each recorded. The price is that a stop
        waits for the batch under way: at worst ``batch_size / concurrency`` rounds
        of the peer's timeout, the time the lease is sized for. Stopping inside a
        batch would shorten that wait, but its unsent rows would then either lose
        the attempt their claim counted (repeated stops could dead-letter a message
        never sent) or need a release, in every queue, that gives the attempt back;
        and a call already made cannot be taken back, only recorded. Rows a breaker
        skipped are released by the record step at once.
        """
        totals: Counter[str] = Counter()
        batches = 0
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            while True:
                checkpoint()
                if stop is not None and stop():
                    logger.info(
                        "lease drain stopped",
                        extra=logs.event(
                            "lease_drain_stopped", drain=self.name, batches=batches
                        ),
                    )
                    return Drained(totals, batches, stopped=True)
                batch = self.run_once(pool)
                totals.update(batch.counts)
                batches += batch.claimed > 0
                if batch.claimed < self.config.batch_size or self._tripped():
                    return Drained(totals, batches, stopped=False)

    def _tripped(self) -> bool:
        return self.breaker is not None and self.breaker.open

    def _call(self, row: Row[Any]) -> T | ClientError:
        if self._tripped():
            return NotSent(f"not sent: {self.name} breaker open")
        try:
            outcome: T | ClientError = self.send(row)
        except ClientError as error:
            outcome = error
        if self.breaker is not None:
            self.breaker.record(outcome)
        return outcome
