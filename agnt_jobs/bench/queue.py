"""Queue overhead: no-op jobs per second through our App (its schedules, run
history middleware and connector) against a stock Procrastinate App with the same
task, on identical fresh databases, first with our production defaults and then
with the tuned worker settings.

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
    return WorkerConfig("defaults", settings.worker_concurrency, settings.pool_max_size)


# Found with the sweep below (README "Performance"): on 2 cores a no-op job is
# bound by the round trips of fetch, finish and history, and sync tasks run in the
# event loop's default thread pool (min(32, cpus + 4) threads), so concurrency
# past that pool only queues; a pool of concurrency + 2 connections keeps the
# listener's and the deferrer's queries from waiting behind the jobs.
TUNED = WorkerConfig("tuned", concurrency=6, pool_max=8)


def _drain(
    ctx: BenchContext, app: str, config: WorkerConfig, jobs: int
) -> dict[str, Any]:
    name = ctx.server.migrated(f"queue_{app}")
    try:
        env = child_env(
            ctx.server.url(name),
            AGNT_POOL_MAX_SIZE=str(config.pool_max),
            AGNT_WORKER_CONCURRENCY=str(config.concurrency),
        )
        done = run_module(
            "agnt_jobs.bench.drain", [app, f"--jobs={jobs}", *config.args()], env
        )
    finally:
        ctx.server.wait_idle(name)
        ctx.server.drop(name)
    figures = dict(done.output)
    if figures["left"]:
        raise RuntimeError(f"{app} left {figures['left']} jobs undone")
    figures["cpu_ms_per_job"] = round(done.cpu_seconds * 1000 / jobs, 3)
    figures["peak_rss_mb"] = done.peak_rss_mb
    return figures


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(run[key] for run in runs), 3)


def compare(
    ctx: BenchContext, config: WorkerConfig, jobs: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Median figures of (ours, plain) over ``ctx.repeats`` alternating runs."""
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "plain": []}
    for number in range(ctx.repeats):
        # Alternate which goes first, so neither always runs on a warmer server.
        order = ("plain", "ours") if number % 2 == 0 else ("ours", "plain")
        for app in order:
            runs[app].append(_drain(ctx, app, config, jobs))
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


def jobs_for(scale: int) -> int:
    return max(50, min(100 * scale, 5000))


def run(
    ctx: BenchContext, configs: list[WorkerConfig] | None = None
) -> list[Measurement]:
    jobs = jobs_for(ctx.scale)
    measurements = []
    results: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for config in configs or [defaults(), TUNED]:
        ours, plain = compare(ctx, config, jobs)
        results[config.name] = (ours, plain)
        value = ratio(ours["jobs_per_second"], plain["jobs_per_second"])
        measurements.append(
            Measurement(
                family="queue",
                name=f"throughput, {config.name}",
                value=ours["jobs_per_second"],
                unit="jobs/s",
                baseline=plain["jobs_per_second"],
                ratio=value,
                goal=f">= {GOAL} of plain",
                met=None if value is None else value >= GOAL,
                note=(
                    f"{config.name}: concurrency {config.concurrency}, pool "
                    f"{config.pool_max}, delete_jobs {config.delete_jobs}, "
                    f"listen_notify {config.listen_notify}; worker CPU per job "
                    f"{ours['cpu_ms_per_job']} ms ours vs {plain['cpu_ms_per_job']} "
                    f"ms plain; {jobs} jobs, median of {ctx.repeats}"
                ),
                details={"config": config.__dict__, "ours": ours, "plain": plain},
            )
        )
    if "defaults" in results and "tuned" in results:
        for app, index in (("ours", 0), ("plain", 1)):
            before = results["defaults"][index]["jobs_per_second"]
            after = results["tuned"][index]["jobs_per_second"]
            measurements.append(
                Measurement(
                    family="queue",
                    name=f"tuning, {app}",
                    value=after,
                    unit="jobs/s",
                    baseline=before,
                    ratio=ratio(after, before),
                    goal="> defaults",
                    met=after > before,
                )
            )
    return measurements
