"""``agnt-jobs bench``: benchmarks of the job system, each measured against a
baseline taken in the same run, on scratch databases of their own.

One module per family:

* ``scheduling``: delay from a tick to its job starting, with 1 and 3 real
  ``procrastinate worker`` processes, against stock Procrastinate's deferrer;
* ``queue``: no-op jobs per second through our App against a stock App, with
  our default worker settings and with the tuned ones;
* ``jobs``: every job on a large data set (``fixtures``): wall time, rows
  changed, peak RSS, against one hand-written SQL statement (``cases``) and
  against the same work on a table ten times smaller;
* ``fanout``: messages per second from the send queue to a local gateway, at
  several concurrencies, against the bare gateway calls;
* ``recovery``: three workers on a private cluster stopped for a minute: seconds
  from its return to the first tick and job, and the log lines meanwhile, against
  stock Procrastinate's workers under the same outage (``cluster``); and
  shutdown: SIGTERM to exit past the grace for a checkpointed job, a job blocked
  in SQL and a job waiting on a slow peer, and kill -9 to the job retried
  (``shutdown``);
* ``schedule_change``: three workers, a plain SQL UPDATE of a cron: seconds until
  every worker follows it, against a bare LISTEN/NOTIFY round trip;
* ``metrics``: ``GET /metrics`` of an admin server on the jobs' data set plus a
  month of run history, against the run counters computed from that history;
* ``defer``: a backend's transaction that defers a job with ``agnt_defer``, against
  the same transaction with a plain INSERT into a table of the job table's shape,
  and the server's round trip;
* ``peers``: PgQueuer, graphile-worker and pg-boss, installed into a cache of the
  bench's own, drain the same no-op jobs as plain Procrastinate and ours, one after
  the other on the same server (``peer_queues``);
* ``claim``: the statement a worker claims a job with, p50/p99 with a thousand to a
  million jobs waiting and beside a million finished ones, with its plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agnt_jobs.bench.base import BenchContext
from agnt_jobs.bench.report import Measurement, format_table, write_json
from agnt_jobs.bench.scratch import scratch_server

FAMILIES = (
    "scheduling",
    "queue",
    "jobs",
    "fanout",
    "recovery",
    "schedule_change",
    "metrics",
    "defer",
    "peers",
    "claim",
)


class UnknownBenchmark(ValueError):
    """``--only`` named neither a family nor a job."""


@dataclass
class Options:
    server_url: str
    scale: int = 1
    only: tuple[str, ...] = ()
    json_path: Path | None = None
    #: Due rows per job (default: 1,000 per unit of scale, at most 100,000).
    due: int | None = None
    #: The smaller scale of the cost-versus-size comparison (default scale / 10).
    compare_scale: int | None = None
    repeats: int = 3
    schedule_seconds: float = 30.0
    quiet: bool = False
    #: A migrated database to copy instead of migrating one (tests).
    template: str | None = None

    def resolved_due(self) -> int:
        return self.due if self.due is not None else min(1000 * self.scale, 100_000)

    def resolved_compare_scale(self) -> int:
        if self.compare_scale is not None:
            return self.compare_scale
        return max(1, self.scale // 10)


def plan(only: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The families to run, and the job ids the jobs family is limited to."""
    if not only:
        return list(FAMILIES), []
    from agnt_jobs.bench.jobs import job_ids

    known_jobs = set(job_ids())
    families, jobs = [], []
    for name in only:
        if name in FAMILIES:
            families.append(name)
        elif name in known_jobs:
            jobs.append(name)
        else:
            raise UnknownBenchmark(
                f"--only {name!r} is neither a benchmark family "
                f"({', '.join(FAMILIES)}) nor a job id"
            )
    if jobs and "jobs" not in families:
        families.append("jobs")
    return [f for f in FAMILIES if f in families], jobs


def run(options: Options) -> list[Measurement]:
    """Run the chosen families; print the table and write the JSON file."""
    families, jobs = plan(options.only)
    measurements: list[Measurement] = []
    with scratch_server(options.server_url, options.template) as server:
        ctx = BenchContext(
            server=server,
            scale=options.scale,
            repeats=options.repeats,
            schedule_seconds=options.schedule_seconds,
            quiet=options.quiet,
        )
        for family in families:
            ctx.say(f"{family}: starting (scale {options.scale})")
            if family == "scheduling":
                from agnt_jobs.bench import scheduling

                measurements += scheduling.run(ctx)
            elif family == "queue":
                from agnt_jobs.bench import queue

                measurements += queue.run(ctx)
            elif family == "jobs":
                from agnt_jobs.bench import jobs as job_family

                measurements += job_family.run(
                    ctx,
                    options.resolved_due(),
                    options.resolved_compare_scale(),
                    jobs,
                )
            elif family == "fanout":
                from agnt_jobs.bench import fanout

                measurements += fanout.run(ctx)
            elif family == "recovery":
                from agnt_jobs.bench import recovery

                measurements += recovery.run(ctx)
            elif family == "schedule_change":
                from agnt_jobs.bench import schedule_change

                measurements += schedule_change.run(ctx)
            elif family == "metrics":
                from agnt_jobs.bench import metrics

                measurements += metrics.run(ctx)
            elif family == "defer":
                from agnt_jobs.bench import defer

                measurements += defer.run(ctx)
            elif family == "peers":
                from agnt_jobs.bench import peer_queues

                measurements += peer_queues.run(ctx)
            elif family == "claim":
                from agnt_jobs.bench import claim

                measurements += claim.run(ctx)
    if options.json_path is not None:
        write_json(
            options.json_path,
            measurements,
            {
                "scale": options.scale,
                "only": list(options.only),
                "due": options.resolved_due(),
                "compare_scale": options.resolved_compare_scale(),
                "repeats": options.repeats,
                "schedule_seconds": options.schedule_seconds,
            },
        )
    return measurements


__all__ = ["FAMILIES", "Measurement", "Options", "format_table", "run"]
