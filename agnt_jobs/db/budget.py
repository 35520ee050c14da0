"""How many connections one worker may open to the database, and how they are shared
out: the connection budget that lets a fleet of workers fit a server's
``max_connections`` (docs/operations.md, "Connections").

A worker's connections, by who holds them:

- the **queue pool** (``agnt_jobs.db.connector``): Procrastinate's fetches and job
  ends, the heartbeat, the deferrer's passes, the abort poller, the probes' schema
  check, and the run-history writer, which keeps one of its connections for the
  worker's life;
- the **listener**: the LISTEN for new jobs and for schedule changes, on one
  connection of its own outside the pool (a LISTEN needs a session);
- the **body engine** (``agnt_jobs.db.engine``): the SQLAlchemy pool that job bodies
  and the stalled-job rescue pass use.

Sized from the concurrency ``c``, the most a worker opens is::

    queue pool   c + 3     every running job can record its end at once, the
                           history writer holds one, the loops share two
    listener     1         (0 without LISTEN/NOTIFY)
    body engine  2c        c kept open, c more for a body's or a rescue pass's
                           second connection
    total        3c + 4

Pools open connections as they are needed (the queue pool keeps
``AGNT_POOL_MIN_SIZE`` open), so an idle worker holds far fewer: its listeners,
the history writer's connection and what its pools kept. With
``AGNT_DB_MAX_CONNECTIONS_PER_WORKER`` set below the total, the budget shrinks in
this order, each part to its floor: the body engine's extra connections (to 0),
the queue pool's working connections (to 2 beside the history writer's), the
body engine's kept connections (to 1). Below the floors the setting is refused.
A query that finds its pool empty waits for a connection to come back; the pool
never asks the server for more than its share.

Through PgBouncer (``AGNT_DATABASE_DIRECT_URL`` set) the queue pool's connections
are PgBouncer's clients, not the server's: the cap counts what the worker opens
on the server itself, its listener and body engine, and shrinks only the body
engine (the extra connections, then the kept ones to 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from agnt_jobs.settings import ConfigError, Settings

LISTENERS = 1
HISTORY = 1
# The loops' share of the queue pool beside the jobs' ends: fetch, heartbeat,
# deferrer, abort poller and probes take turns on two.
LOOPS = 2
QUEUE_FLOOR = HISTORY + LOOPS
BODY_FLOOR = 1


@dataclass(frozen=True)
class Budget:
    """The most connections each part of one worker opens."""

    queue_pool: int
    listeners: int
    body_pool: int
    body_overflow: int

    @property
    def total(self) -> int:
        return self.queue_pool + self.listeners + self.body_pool + self.body_overflow


def budget(settings: Settings, *, listen_notify: bool = True) -> Budget:
    """One worker's connections from its concurrency, within the cap if one is set.
    ``AGNT_POOL_MAX_SIZE``, when set, fixes the queue pool whatever the rest."""
    concurrency = settings.worker_concurrency
    listeners = LISTENERS if listen_notify else 0
    queue = settings.pool_max_size or concurrency + QUEUE_FLOOR
    body, overflow = concurrency, concurrency
    cap = settings.db_max_connections_per_worker
    if cap is None:
        return Budget(queue, listeners, body, overflow)
    # Through PgBouncer the queue pool is not the server's to count.
    pooled = settings.database_direct_url is not None
    counted_queue = 0 if pooled else queue
    floor = listeners + min(counted_queue, QUEUE_FLOOR) + BODY_FLOOR
    if cap < floor:
        needs = (
            "its listener and one for job bodies; the queue pool goes through PgBouncer"
            if pooled
            else "its listener, the run-history writer, two for its loops, one "
            "for job bodies"
        )
        raise ConfigError(
            f"AGNT_DB_MAX_CONNECTIONS_PER_WORKER={cap} is below the {floor} "
            f"connections a worker needs ({needs}): raise it"
        )
    over = listeners + counted_queue + body + overflow - cap
    if over > 0:
        cut = min(over, overflow)
        overflow, over = overflow - cut, over - cut
    if over > 0 and not pooled and settings.pool_max_size is None:
        cut = min(over, queue - QUEUE_FLOOR)
        queue, over = queue - cut, over - cut
    if over > 0:
        cut = min(over, body - BODY_FLOOR)
        body, over = body - cut, over - cut
    if over > 0:
        raise ConfigError(
            f"AGNT_POOL_MAX_SIZE={queue} leaves no room for job bodies within "
            f"AGNT_DB_MAX_CONNECTIONS_PER_WORKER={cap}: lower it or unset it"
        )
    return Budget(queue, listeners, body, overflow)
