"""A fleet on one server: 30 ``procrastinate worker`` processes (concurrency 2 each)
on a private cluster with ``max_connections`` 100, straight and through PgBouncer in
transaction pooling, against 3 workers the same ways. Each run ticks a one-second
schedule (``bench_tick``, beside every production schedule) for the duration, with
the cluster restarted halfway, then drains a batch of no-op jobs. Measured: the most
server connections the run held, every tick deferred once (duplicates, misses)
across the restart, tick to start p50/p99 and tick to decision p99 of the ticks
due outside the restart (from a second before the server went down until the fleet
decided a tick again; the same figures with the restart's ticks, and how long the
fleet took to decide again, are reported beside them), no-op jobs per second, the
workers' CPU, and whether every worker lived.

The workers connect as a role that is not a superuser, so the slots the server
keeps for superusers stay free for the benchmark's own sampling session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from agnt_jobs.bench.base import NOOP, NOOP_QUEUE, TICK, BenchContext, wait_until
from agnt_jobs.bench.child import ROOT, child_env, stop_all
from agnt_jobs.bench.report import Measurement, percentile, ratio
from agnt_jobs.bench.scheduling import TICK_FIGURES
from agnt_jobs.db import migrate
from agnt_jobs.testing.cluster import ClusterUnavailable, PgCluster
from agnt_jobs.testing.pgbouncer import PgBouncer, PgBouncerUnavailable

FLEET = 30
BASELINE = 3
CONCURRENCY = 2
MAX_CONNECTIONS = 100
# Server connections PgBouncer may hold for the workers' queue pools; LISTEN and
# job bodies connect straight (docs/operations.md, "PgBouncer").
POOL_SIZE = 20
# What each worker may open straight through PgBouncer (its listener, one body
# connection): 30 x 2 + 20 stays under MAX_CONNECTIONS less the reserved ones.
SERVER_PER_WORKER = 2
NOOP_JOBS = 3000
GOAL_P99_SECONDS = 0.5
# Thirty Pythons importing the App on two busy cores take minutes to start.
START_TIMEOUT_SECONDS = 300.0
DRAIN_TIMEOUT_SECONDS = 300.0
# From the restart's end until a tick is decided again: the workers' reconnection
# backoff (AGNT_DB_RETRY_MAX_SECONDS) on busy cores.
RESTART_TIMEOUT_SECONDS = 120.0
SETTLE_SECONDS = 2.0

CLIENTS = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
# Sessions of the workers waiting on a lock, by what they wait for.
LOCK_WAITS = """
SELECT wait_event, count(*) FROM pg_stat_activity
WHERE usename = 'agnt' AND wait_event_type = 'Lock' GROUP BY 1
"""
DECISION_DELAYS = """
SELECT extract(epoch FROM tick_at), extract(epoch FROM decided_at - tick_at)
FROM schedule_ticks
WHERE schedule_id = %(task)s AND tick_at >= to_timestamp(%(first)s)
  AND tick_at <= to_timestamp(%(last)s)
"""
NOOP_BATCH = """
INSERT INTO procrastinate_jobs (queue_name, task_name, args)
SELECT %(queue)s, %(task)s, '{}'::jsonb FROM generate_series(1, %(count)s)
"""
NOOP_LEFT = """
SELECT count(*) FROM procrastinate_jobs
WHERE task_name = %(task)s AND status IN ('todo', 'doing')
"""
NOOP_SPAN = """
SELECT extract(epoch FROM max(e.at)) FROM procrastinate_events e
JOIN procrastinate_jobs j ON j.id = e.job_id
WHERE j.task_name = %(task)s AND e.type = 'succeeded'
"""

DECIDED_AFTER = """
SELECT extract(epoch FROM min(decided_at)) FROM schedule_ticks
WHERE schedule_id = %(task)s AND tick_at > to_timestamp(%(since)s)
"""

# Ticks of the watched window no decision covers (a true miss), and the decisions
# to skip by reason: under the bench tick's skip policy and queueing lock, a tick
# whose job still waits, or that comes too late, is decided as skipped, which is
# a decision, not a miss. A skip for lateness covers a range of ticks.
TICK_DECISIONS = """
WITH ticks AS (
    SELECT to_timestamp(t) AS tick_at
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS t
)
SELECT
    (SELECT count(*) FROM ticks
     WHERE NOT EXISTS (
         SELECT 1 FROM schedule_ticks s
         WHERE s.schedule_id = %(task)s
           AND (s.tick_at = ticks.tick_at
                OR (s.missed_since <= ticks.tick_at AND ticks.tick_at <= s.tick_at))
     )) AS undecided,
    (SELECT coalesce(jsonb_object_agg(reason, n), '{}'::jsonb) FROM (
         SELECT s.reason, count(*) AS n FROM schedule_ticks s
         WHERE s.schedule_id = %(task)s AND s.outcome = 'skipped'
           AND s.tick_at BETWEEN to_timestamp(%(first)s) AND to_timestamp(%(last)s)
         GROUP BY s.reason
     ) AS skips) AS skipped
"""


class Sampler:
    """Twice a second, on a superuser session opened before the fleet: the server's
    client connections, the workers' lock waits and, through PgBouncer, the clients
    it keeps waiting for a server connection."""

    def __init__(self, url: str, bouncer: PgBouncer | None) -> None:
        self.url = url
        self.bouncer = bouncer
        self.peak = 0
        self.lock_waits: dict[str, int] = {}
        self.most_waiting_clients = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        connection: psycopg.Connection[Any] | None = None
        while not self._stop.is_set():
            try:
                if connection is None or connection.closed:
                    connection = psycopg.connect(self.url, autocommit=True)
                row = connection.execute(CLIENTS).fetchone()
                self.peak = max(self.peak, int(row[0]) if row else 0)
                for event, count in connection.execute(LOCK_WAITS).fetchall():
                    self.lock_waits[event] = self.lock_waits.get(event, 0) + count
                self.samples += 1
                if self.bouncer is not None:
                    self.most_waiting_clients = max(
                        self.most_waiting_clients, self.bouncer.waiting_clients()
                    )
            except psycopg.Error:
                connection = None
            self._stop.wait(0.5)


def _cpu_seconds(pid: int) -> float:
    """User and system CPU a live process used so far (Linux ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _one(url: str, sql: str, **params: Any) -> Any:
    with psycopg.connect(url, connect_timeout=5) as connection:
        row = connection.execute(sql, params).fetchone()
    return None if row is None else row[0]


def _db_epoch(url: str) -> float:
    return float(_one(url, "SELECT extract(epoch FROM now())"))


def fleet(
    ctx: BenchContext, workers: int, through_pgbouncer: bool, seconds: float
) -> dict[str, Any]:
    """``workers`` workers on a private cluster for ``seconds`` of ticks, then a
    batch of no-op jobs; the figures."""
    cluster = PgCluster.temporary()
    cluster.settings["max_connections"] = str(MAX_CONNECTIONS)
    with ExitStack() as stack:
        stack.callback(cluster.cleanup)
        cluster.start()
        admin = cluster.create_database("agnt")
        migrate.upgrade(admin, "head")
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute("CREATE ROLE agnt LOGIN IN ROLE postgres")
        direct = admin.replace("postgresql://postgres@", "postgresql://agnt@")
        extra: dict[str, str] = {}
        bouncer = None
        if through_pgbouncer:
            bouncer = PgBouncer(direct, pool_size=POOL_SIZE)
            stack.callback(bouncer.stop)
            bouncer.start()
            extra["AGNT_DATABASE_DIRECT_URL"] = direct
            # Within the documented budget: thirty workers' listeners and one body
            # connection each, beside PgBouncer's pool, fit max_connections.
            extra["AGNT_DB_MAX_CONNECTIONS_PER_WORKER"] = str(SERVER_PER_WORKER)
        url = bouncer.url("agnt") if bouncer else direct
        env = child_env(
            url,
            AGNT_BENCH_TICK="1",
            AGNT_WORKER_CONCURRENCY=str(CONCURRENCY),
            AGNT_LOG_LEVEL="INFO",
            # A server answering thirty workers' first connections on two busy
            # cores can take longer than the default 3 s, which a worker at its
            # start reads as a wrong URL and exits for.
            AGNT_DB_CONNECT_TIMEOUT_SECONDS="15",
            **extra,
        )
        # Kept when the run fails, for its workers' logs (the error names it).
        logs = Path(tempfile.mkdtemp(prefix="agnt-bench-fleet-"))
        sampler = stack.enter_context(Sampler(cluster.url("agnt"), bouncer))
        processes = [
            subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "procrastinate"),
                    "--app=agnt_jobs.bench.apps.ours",
                    "worker",
                    f"--name=fleet{n}",
                ],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=stack.enter_context((logs / f"w{n}.log").open("w")),
            )
            for n in range(workers)
        ]
        stack.callback(stop_all, processes)
        # Each worker up: started, or (straight, the server full) waiting for a
        # slot and saying so.
        wait_until(
            lambda: all(
                "Starting worker" in text or "refuses more connections" in text
                for text in (path.read_text() for path in logs.glob("w*.log"))
            ),
            START_TIMEOUT_SECONDS,
            f"fleet benchmark: {workers} workers' start (logs in {logs})",
            poll=0.5,
        )
        first = int(_db_epoch(admin)) + 2
        cpu_before = sum(_cpu_seconds(p.pid) for p in processes)
        ticking_until = time.time() + seconds + 2
        time.sleep(seconds / 2 + 2)
        restart = _restart(cluster, admin)
        time.sleep(max(0.0, ticking_until - time.time()))
        cpu = sum(_cpu_seconds(p.pid) for p in processes) - cpu_before
        last = int(
            float(_one(admin, "SELECT extract(epoch FROM now())")) - SETTLE_SECONDS
        )
        time.sleep(SETTLE_SECONDS)

        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                NOOP_BATCH, {"queue": NOOP_QUEUE, "task": NOOP, "count": NOOP_JOBS}
            )
        batched = time.time()
        wait_until(
            lambda: _one(admin, NOOP_LEFT, task=NOOP) == 0,
            DRAIN_TIMEOUT_SECONDS,
            f"fleet benchmark: {NOOP_JOBS} no-op jobs drained (logs in {logs})",
            poll=0.2,
        )
        finished = float(_one(admin, NOOP_SPAN, task=NOOP))
        alive = sum(p.poll() is None for p in processes)
        with psycopg.connect(admin) as connection:
            rows = connection.execute(
                TICK_FIGURES, {"first": first, "last": last, "task": TICK}
            ).fetchall()
            decided = connection.execute(
                TICK_DECISIONS, {"first": first, "last": last, "task": TICK}
            ).fetchone()
            decisions = [
                float(row[1])
                for row in connection.execute(
                    DECISION_DELAYS, {"task": TICK, "first": first, "last": last}
                ).fetchall()
                if restart.steady(float(row[0]))
            ]
        starts = [float(row[2]) for row in rows if row[2] is not None]
        steady = [
            float(row[2])
            for row in rows
            if row[2] is not None and restart.steady(float(row[0]))
        ]
        return {
            "workers": workers,
            "through": "pgbouncer" if through_pgbouncer else "straight",
            "seconds": seconds,
            "ticks": len(rows),
            "duplicates": sum(1 for row in rows if row[1] > 1),
            "misses": int(decided[0]) if decided else len(rows),
            "skipped": dict(decided[1]) if decided else {},
            "start_p50": _round(percentile(steady, 0.5)),
            "start_p99": _round(percentile(steady, 0.99)),
            "start_max": _round(max(steady) if steady else None),
            "start_p99_with_restart": _round(percentile(starts, 0.99)),
            "start_max_with_restart": _round(max(starts) if starts else None),
            "restart_down_seconds": round(restart.up_at - restart.down_at, 3),
            "restart_back_seconds": round(restart.back_at - restart.up_at, 3),
            "decision_p99": _round(percentile(decisions, 0.99)),
            "noop_per_second": round(NOOP_JOBS / max(finished - batched, 1e-3), 1),
            "peak_server_connections": sampler.peak,
            "most_clients_waiting_in_pgbouncer": sampler.most_waiting_clients,
            "lock_waits_sampled": dict(sampler.lock_waits),
            "samples": sampler.samples,
            "worker_cpu_per_second": round(cpu / (seconds + 2), 3),
            "alive": alive,
            "refused_lines": sum(
                (logs / f"w{n}.log").read_text().count("too many clients")
                for n in range(workers)
            ),
        }


@dataclass(frozen=True)
class Restart:
    """When the cluster went down and came up, and when the fleet had decided a
    tick again (epoch seconds of the server's clock, which is this machine's)."""

    down_at: float
    up_at: float
    back_at: float

    def steady(self, tick_at: float) -> bool:
        """Whether a tick was due away from the restart."""
        return not self.down_at - 1 <= tick_at <= self.back_at


def _restart(cluster: PgCluster, admin: str) -> Restart:
    """Restart the cluster under the ticking fleet and wait until a tick due after
    it is up has been decided: the run goes on only once the fleet rode it out."""
    down_at = time.time()
    cluster.restart()
    up_at = time.time()
    back_at = wait_until(
        lambda: _decided_since(admin, up_at),
        RESTART_TIMEOUT_SECONDS,
        "fleet benchmark: a tick decided after the cluster's restart",
        poll=0.2,
    )
    return Restart(down_at, up_at, back_at)


def _decided_since(url: str, since: float) -> float | None:
    """The decision time of the first tick due after ``since``, once there is one."""
    try:
        decided = _one(url, DECIDED_AFTER, task=TICK, since=since)
    except psycopg.OperationalError:
        return None  # the server is still starting
    return None if decided is None else float(decided)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def run(ctx: BenchContext, seconds: float) -> list[Measurement]:
    measurements = []
    for through_pgbouncer in (False, True):
        how = "through PgBouncer" if through_pgbouncer else "straight"
        figures = {}
        try:
            for workers in (BASELINE, FLEET):
                ctx.say(f"fleet: {workers} workers {how}, {seconds:.0f} s of ticks")
                figures[workers] = fleet(ctx, workers, through_pgbouncer, seconds)
        except (ClusterUnavailable, PgBouncerUnavailable) as reason:
            ctx.say(f"fleet: {how} skipped ({reason})")
            continue
        ours, base = figures[FLEET], figures[BASELINE]
        met = (
            ours["alive"] == FLEET
            and ours["duplicates"] == 0
            and ours["misses"] == 0
            and ours["start_p99"] is not None
            and ours["start_p99"] < GOAL_P99_SECONDS
            and ours["noop_per_second"] >= base["noop_per_second"]
            and ours["peak_server_connections"] <= MAX_CONNECTIONS
        )
        measurements.append(
            Measurement(
                family="fleet",
                name=f"tick to start p99, {FLEET} workers {how}",
                value=ours["start_p99"],
                unit="s",
                baseline=base["start_p99"],
                ratio=ratio(ours["start_p99"], base["start_p99"]),
                goal=(
                    f"p99 < {GOAL_P99_SECONDS} s, 0 dup, 0 miss, all alive, "
                    f"<= {MAX_CONNECTIONS} connections, no-op/s >= {BASELINE} workers'"
                ),
                met=met,
                note=(
                    f"{FLEET} vs {BASELINE} workers {how}, {ours['ticks']} ticks: "
                    f"peak {ours['peak_server_connections']} vs "
                    f"{base['peak_server_connections']} server connections, "
                    f"{ours['duplicates']} duplicated, {ours['misses']} undecided, "
                    f"ticking again {ours['restart_back_seconds']} s after the "
                    f"restart, "
                    f"skipped {ours['skipped'] or 'none'}, "
                    f"no-op {ours['noop_per_second']} vs {base['noop_per_second']} "
                    f"jobs/s, {ours['alive']}/{FLEET} alive"
                ),
                details={"fleet": ours, "baseline": base},
            )
        )
        measurements.append(
            Measurement(
                family="fleet",
                name=f"no-op jobs/s, {FLEET} workers {how}",
                value=ours["noop_per_second"],
                unit="jobs/s",
                baseline=base["noop_per_second"],
                ratio=ratio(ours["noop_per_second"], base["noop_per_second"]),
                goal=f">= {BASELINE} workers'",
                met=ours["noop_per_second"] >= base["noop_per_second"],
            )
        )
    return measurements
