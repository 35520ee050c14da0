"""Where the job database is, how connections are made, and how a worker lives through
losing it."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr


class DatabaseSettings(BaseModel):
    database_url: SecretStr | None = Field(
        default=None,
        description="URL of the Postgres database (postgresql://user:pw@host/db). "
        "Unset: an embedded Postgres is started in AGNT_DATA_DIR.",
    )
    database_direct_url: SecretStr | None = Field(
        default=None,
        description="With AGNT_DATABASE_URL pointing at PgBouncer in transaction "
        "pooling: the same database reached straight, for what needs a session of "
        "its own (the worker's LISTEN, job bodies, migrations). Set: the queue "
        "pool, the CLI and the admin go through AGNT_DATABASE_URL with prepared "
        "statements off (docs/operations.md, PgBouncer). Unset: everything uses "
        "AGNT_DATABASE_URL.",
    )
    data_dir: Path = Field(
        default=Path(".agnt"),
        description="Directory of the embedded Postgres used when no URL is set.",
    )
    pool_min_size: int = Field(
        default=1, ge=1, description="Connections the worker's queue pool keeps open."
    )
    pool_max_size: int | None = Field(
        default=None,
        ge=1,
        description="Most connections of the worker's queue pool. Unset: "
        "AGNT_WORKER_CONCURRENCY + 3 (docs/operations.md, Connections).",
    )
    db_max_connections_per_worker: int | None = Field(
        default=None,
        ge=2,
        description="Most connections one worker opens to the database, its pools "
        "and listeners together; the pools shrink to fit (docs/operations.md, "
        "Connections). Through PgBouncer (AGNT_DATABASE_DIRECT_URL set) it counts "
        "the listener and job bodies only, the connections that reach the server "
        "straight. Unset: 3 x AGNT_WORKER_CONCURRENCY + 4 at most.",
    )
    db_retry_initial_seconds: float = Field(
        default=0.25,
        gt=0,
        description="After losing the database, a worker's loops first retry after "
        "about this long, doubling per failure up to AGNT_DB_RETRY_MAX_SECONDS (each "
        "delay drawn from its upper half, so workers do not reconnect in step).",
    )
    db_retry_max_seconds: float = Field(
        default=4.0,
        gt=0,
        description="Longest wait between two reconnection attempts of one loop: "
        "once the database is back, work resumes within about this long.",
    )
    db_outage_report_seconds: float = Field(
        default=30.0,
        gt=0,
        description="While the database stays unreachable, a worker logs one line "
        "per this many seconds (plus one when it is lost and one when it is back).",
    )
    database_outage_limit_seconds: float = Field(
        default=0,
        ge=0,
        description="A worker that cannot reach the database for longer than this "
        "exits with status 1 (for a supervisor to act on). 0: it waits forever.",
    )
    db_connect_timeout_seconds: int = Field(
        default=3,
        ge=1,
        description="libpq connect_timeout of every connection: how long one "
        "connection attempt may take (per host of a multi-host URL). A server "
        "that accepts the connection and never answers is refused at start "
        "after this long.",
    )
    db_silent_after_seconds: int = Field(
        default=30,
        ge=5,
        description="A database that has not answered for this long is treated as "
        "lost: every connection has TCP keepalives (idle a third of it, then probes) "
        "and tcp_user_timeout set from it, and every query of a worker's loops a "
        "deadline of half of it; with heartbeats every AGNT_WORKER_HEARTBEAT_SECONDS, "
        "a silent database is noticed within about this long.",
    )
