"""Queue overhead: no-op jobs per second through our App (its schedules, run
history middleware and connector) against a stock Procrastinate App with the same
task, on identical fresh databases: with our production defaults, then with each
candidate setting (the one that raises both Apps most is reported as tuned), then
with jobs that wait 50 ms as a call to a peer does, where the number of threads
running job bodies decides.

Listen/notify and the polling interval are left at their defaults: a drain never
waits for a new job, so they cannot show here (they set how soon an idle worker
sees a new job; the scheduling benchmark measures that).

Each measurement is its own process (``agnt_jobs.bench.drain``): it batch-defers N
jobs, then one worker drains them with ``wait=False``. The two Apps alternate
(plain, ours, plain, ours...) so that a burst of load from another user of the
machine hits both; the median of the repeats is reported, with the worker's CPU
time per job, which a busy machine disturbs much less than wall time.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from agnt_jobs.bench.base import BenchContext
from agnt_jobs.bench.child import child_env, run_module
from agnt_jobs.bench.report import Measurement, ratio
from agnt_jobs.db.budget import budget
from agnt_jobs.settings import get_settings

GOAL = 0.9


@dataclass(frozen=True)
class WorkerConfig:
    name: str
    concurrency: int
    pool_max: int
    delete_jobs: str = "never"
    listen_notify: bool = True
    polling: float = 5.0

    def args(self) -> list[str]:
        return [
            f"--concurrency={self.concurrency}",
            f"--delete-jobs={self.delete_jobs}",
            f"--polling={self.polling}",
            "--listen-notify" if self.listen_notify else "--no-listen-notify",
        ]


def defaults() -> WorkerConfig:
    """What a worker runs with when nothing is configured."""
    settings = get_settings()
    return WorkerConfig(
        "defaults", settings.worker_concurrency, budget(settings).queue_pool
    )


# What the search tries beside the defaults: fewer jobs at once than the
# defaults (on 2 cores a no-op job is bound by CPU, not by waiting), more, and
# deleting finished jobs instead of keeping them. The pool is concurrency + 2,
# so the listener's and the deferrer's queries never wait behind the jobs.
CANDIDATES = (
    WorkerConfig("concurrency 4", concurrency=4, pool_max=6),
    WorkerConfig("concurrency 6", concurrency=6, pool_max=8),
    WorkerConfig("concurrency 16", concurrency=16, pool_max=18),
    WorkerConfig("delete finished", concurrency=10, pool_max=12, delete_jobs="always"),
)
# The waiting-jobs run: each job waits this long, like a call to a peer.
WAIT_SECONDS = 0.05
# The same-lock run: jobs that hold one lock run back to back, as the runs of one
# job id do. Plain Procrastinate finds each next one at a poll (every 5 s) unless
# its next fetch happens to come after the end, so it gets a few jobs only.
LOCK = "bench_lock"
LOCK_JOBS = {"ours": 200, "plain": 4}
LOCK_GOAL = 100.0


def drain_once(
    ctx: BenchContext,
    app: str,
    config: WorkerConfig,
    jobs: int,
    wait: float = 0.0,
    lock: str | None = None,
) -> dict[str, Any]:
    """One worker of ``app`` (``ours`` or ``plain``) drains ``jobs`` no-op jobs on a
    fresh database of its own: its figures (jobs/s, CPU per job, peak RSS)."""
    name = ctx.server.migrated(f"queue_{app}")
    try:
        env = child_env(
            ctx.server.url(name),
            AGNT_POOL_MAX_SIZE=str(config.pool_max),
            AGNT_WORKER_CONCURRENCY=str(config.concurrency),
            AGNT_BENCH_JOB_SECONDS=str(wait),
        )
        lock_args = [] if lock is None else [f"--lock={lock}"]
        done = run_module(
            "agnt_jobs.bench.drain",
            [app, f"--jobs={jobs}", *config.args(), *lock_args],
            env,
        )
    finally:
        ctx.server.wait_idle(name)
        ctx.server.drop(name)
    figures = dict(done.output)
    if figures["left"] or (
        config.delete_jobs == "never" and figures["succeeded"] != jobs
    ):
        raise RuntimeError(f"{app} left {figures['left']} jobs undone")
    figures["cpu_ms_per_job"] = round(done.cpu_seconds * 1000 / jobs, 3)
    figures["peak_rss_mb"] = done.peak_rss_mb
    return figures


def _median(runs: list[dict[str, Any]], key: str) -> float:
    median: float = statistics.median(run[key] for run in runs)
    return round(median, 3)


def compare(
    ctx: BenchContext, config: WorkerConfig, jobs: int, wait: float = 0.0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Median figures of (ours, plain) over ``ctx.repeats`` alternating runs."""
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "plain": []}
    for number in range(ctx.repeats):
        # Alternate which goes first, so neither always runs on a warmer server.
        order = ("plain", "ours") if number % 2 == 0 else ("ours", "plain")
        for app in order:
            runs[app].append(drain_once(ctx, app, config, jobs, wait))
            ctx.say(
                f"queue {config.name} {app}: {runs[app][-1]['jobs_per_second']} jobs/s"
            )
    summary = {}
    for app, results in runs.items():
        summary[app] = {
            "jobs_per_second": _median(results, "jobs_per_second"),
            "cpu_ms_per_job": _median(results, "cpu_ms_per_job"),
            "defer_per_second": _median(results, "defer_per_second"),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "runs": [r["jobs_per_second"] for r in results],
        }
    return summary["ours"], summary["plain"]


def same_lock(
    ctx: BenchContext, config: WorkerConfig, lock_jobs: dict[str, int] = LOCK_JOBS
) -> Measurement:
    """Jobs that hold one lock, drained one after another: jobs/s of each App, the
    runs alternating as in ``compare``."""
    runs: dict[str, list[float]] = {"ours": [], "plain": []}
    for number in range(ctx.repeats):
        order = ("plain", "ours") if number % 2 == 0 else ("ours", "plain")
        for app in order:
            figures = drain_once(ctx, app, config, lock_jobs[app], lock=LOCK)
            runs[app].append(figures["jobs_per_second"])
            ctx.say(f"queue same lock {app}: {runs[app][-1]} jobs/s")
    ours, plain = (round(statistics.median(runs[app]), 1) for app in runs)
    return Measurement(
        family="queue",
        name="same-lock jobs back to back",
        value=ours,
        unit="jobs/s",
        baseline=plain,
        ratio=ratio(ours, plain),
        goal=f">= {LOCK_GOAL:g} jobs/s",
        met=ours >= LOCK_GOAL,
        note=(
            f"one lock on every job, concurrency {config.concurrency}; "
            f"{lock_jobs['ours']} jobs ours, {lock_jobs['plain']} plain (it finds "
            "the next at a poll, or at once when its next fetch happens to come "
            f"after the end); runs ours {runs['ours']}, plain {runs['plain']}"
        ),
        details=runs,
    )


def jobs_for(scale: int) -> int:
    return max(50, min(100 * scale, 5000))


def _throughput(
    name: str,
    config: WorkerConfig,
    ours: dict[str, Any],
    plain: dict[str, Any],
    jobs: int,
    repeats: int,
) -> Measurement:
    value = ratio(ours["jobs_per_second"], plain["jobs_per_second"])
    return Measurement(
        family="queue",
        name=name,
        value=ours["jobs_per_second"],
        unit="jobs/s",
        baseline=plain["jobs_per_second"],
        ratio=value,
        goal=f">= {GOAL} of plain",
        met=None if value is None else value >= GOAL,
        note=(
            f"concurrency {config.concurrency}, pool {config.pool_max}, delete_jobs "
            f"{config.delete_jobs}; worker CPU per job {ours['cpu_ms_per_job']} ms "
            f"ours vs {plain['cpu_ms_per_job']} ms plain; {jobs} jobs, median of "
            f"{repeats}"
        ),
        details={"config": config.__dict__, "ours": ours, "plain": plain},
    )


def _gain(results: tuple[dict[str, Any], dict[str, Any]], base: Any) -> float:
    """How much a config raises both Apps: the geometric mean of their speed-ups."""
    ours = results[0]["jobs_per_second"] / base[0]["jobs_per_second"]
    plain = results[1]["jobs_per_second"] / base[1]["jobs_per_second"]
    return float((ours * plain) ** 0.5)


def run(
    ctx: BenchContext,
    candidates: tuple[WorkerConfig, ...] = CANDIDATES,
    waiting: bool = True,
    lock_jobs: dict[str, int] = LOCK_JOBS,
) -> list[Measurement]:
    """Our App against stock Procrastinate at the defaults; then each candidate
    configuration for both, reporting the one that raises both most against the
    defaults; then jobs that wait on a peer, where the number of threads counts."""
    jobs = jobs_for(ctx.scale)
    base = defaults()
    results = {base.name: compare(ctx, base, jobs)}
    measurements = [
        _throughput(
            "no-op jobs, defaults", base, *results[base.name], jobs, ctx.repeats
        )
    ]
    for config in candidates:
        results[config.name] = compare(ctx, config, jobs)
    if candidates:
        best = max(candidates, key=lambda c: _gain(results[c.name], results[base.name]))
        ours, plain = results[best.name]
        measurements.append(
            _throughput(
                f"no-op jobs, tuned ({best.name})", best, ours, plain, jobs, ctx.repeats
            )
        )
        for app, index in (("ours", 0), ("plain", 1)):
            before = results[base.name][index]["jobs_per_second"]
            after = results[best.name][index]["jobs_per_second"]
            measurements.append(
                Measurement(
                    family="queue",
                    name=f"tuned vs defaults, {app}",
                    value=after,
                    unit="jobs/s",
                    baseline=before,
                    ratio=ratio(after, before),
                    goal="> defaults",
                    met=after > before,
                    note="; ".join(
                        f"{name}: ours {r[0]['jobs_per_second']}, plain "
                        f"{r[1]['jobs_per_second']}"
                        for name, r in results.items()
                    )
                    if app == "ours"
                    else "",
                    details={
                        name: {"ours": r[0], "plain": r[1]}
                        for name, r in results.items()
                    },
                )
            )
    measurements.append(same_lock(ctx, base, lock_jobs))
    if waiting:
        count = max(20, jobs // 10)
        ours, plain = compare(ctx, base, count, WAIT_SECONDS)
        measurements.append(
            _throughput(
                f"jobs waiting {WAIT_SECONDS * 1000:.0f} ms, defaults",
                base,
                ours,
                plain,
                count,
                ctx.repeats,
            )
        )
    return measurements
