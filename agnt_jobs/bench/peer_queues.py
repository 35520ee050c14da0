"""Peers: other Postgres job queues drain the same no-op jobs on the same server in
the same run, one after the other, against plain Procrastinate:

* PgQueuer (Python, asyncpg), in a virtualenv of its own that this family creates
  in its cache directory (``pgqueuer_drain``);
* graphile-worker and pg-boss (Node.js), npm-installed into the cache directory
  (``peer_queues_node``);
* plain Procrastinate and ours, as the queue family drains them
  (``agnt_jobs.bench.drain``).

Each system gets a fresh database of its own, ``jobs`` no-op jobs deferred in one
batch (Procrastinate's in batches of 1,000), and one process at concurrency 10;
the figure is jobs/s from the worker's start until the last job's end is recorded,
with the process's CPU time per job. A peer that cannot be installed (no npm, no
network) or fails is reported with the reason in one line and skipped; the rest
of the bench goes on. The cache directory is ``AGNT_BENCH_PEERS_DIR``, else
``$XDG_CACHE_HOME/agnt-jobs/bench-peers`` (``~/.cache`` by default): installed
once, reused by every later run while the pinned versions stay the same.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

from agnt_jobs.bench import queue
from agnt_jobs.bench.base import BenchContext
from agnt_jobs.bench.child import ChildResult, run_command
from agnt_jobs.bench.report import Measurement, ratio

JOBS = 5000
CONCURRENCY = 10
# pg-boss waits its polling interval after every fetch, even one that found jobs:
# each of its 10 workers fetches this many at a time.
PG_BOSS_BATCH = 20
PGQUEUER_REQUIREMENTS = ("pgqueuer==1.6.0", "asyncpg==0.32.0")
NODE_DIR = Path(__file__).resolve().parent / "peer_queues_node"
PGQUEUER_DRIVER = Path(__file__).resolve().parent / "pgqueuer_drain.py"
INSTALL_TIMEOUT = 600.0
RUN_TIMEOUT = 900.0
# The goal against graphile-worker: at least half its jobs/s in the same run.
GRAPHILE_GOAL = 0.5

PLAIN, OURS = "plain", "ours"
SYSTEMS = ("pgqueuer", "graphile-worker", "pg-boss", PLAIN, OURS)


class Unavailable(Exception):
    """A peer that cannot run here; the message is the one-line reason."""


def cache_dir(env: Mapping[str, str]) -> Path:
    if env.get("AGNT_BENCH_PEERS_DIR"):
        return Path(env["AGNT_BENCH_PEERS_DIR"])
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agnt-jobs" / "bench-peers"


def _node_versions() -> dict[str, str]:
    manifest = json.loads((NODE_DIR / "package.json").read_text())
    return dict(manifest["dependencies"])


def labels() -> dict[str, str]:
    node = _node_versions()
    return {
        "pgqueuer": f"PgQueuer {PGQUEUER_REQUIREMENTS[0].split('==')[1]}",
        "graphile-worker": f"graphile-worker {node['graphile-worker']}",
        "pg-boss": f"pg-boss {node['pg-boss']}",
        PLAIN: f"plain Procrastinate {metadata.version('procrastinate')}",
        OURS: "ours",
    }


def _reason(output: str) -> str:
    """The line of an installer's output that says what went wrong."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [
        line
        for line in lines
        if re.match(r"(ERROR|npm (ERR!|error))", line)
        and not re.search(r"complete log|A complete log", line)
    ]
    picked = errors[-2:] if errors else lines[-1:]
    return "; ".join(picked)[:300] or "no output"


def _install(command: list[str], cwd: Path, env: Mapping[str, str], what: str) -> None:
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(
            f"{what} took more than {INSTALL_TIMEOUT:g}s (no network?)"
        ) from None
    except OSError as error:
        raise Unavailable(f"{what} could not start: {error}") from None
    if done.returncode != 0:
        raise Unavailable(f"{what} failed: {_reason(done.stderr + done.stdout)}")


def prepare_node(cache: Path, env: Mapping[str, str]) -> Path:
    """The directory the Node.js drivers run in, with their pinned packages."""
    path = env.get("PATH", "")
    for tool in ("node", "npm"):
        if shutil.which(tool, path=path) is None:
            raise Unavailable(f"{tool} is not on PATH")
    npm = str(shutil.which("npm", path=path))
    target = cache / "node"
    target.mkdir(parents=True, exist_ok=True)
    manifest = (NODE_DIR / "package.json").read_text()
    stamp = target / ".installed"
    if not stamp.exists() or stamp.read_text() != manifest:
        stamp.unlink(missing_ok=True)
        (target / "package.json").write_text(manifest)
        _install(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            target,
            env,
            "npm install",
        )
        stamp.write_text(manifest)
    # ES modules resolve their imports from their own directory: the drivers run
    # beside node_modules.
    for script in NODE_DIR.glob("*.mjs"):
        shutil.copyfile(script, target / script.name)
    return target


def prepare_pgqueuer(cache: Path, env: Mapping[str, str]) -> Path:
    """The Python of PgQueuer's own virtualenv, with its pinned packages."""
    venv = cache / "pgqueuer-venv"
    python = venv / "bin" / "python"
    wanted = "\n".join(PGQUEUER_REQUIREMENTS)
    stamp = venv / ".installed"
    if not stamp.exists() or stamp.read_text() != wanted:
        cache.mkdir(parents=True, exist_ok=True)
        _install(
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            cache,
            env,
            "creating PgQueuer's virtualenv",
        )
        _install(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                *PGQUEUER_REQUIREMENTS,
            ],
            cache,
            env,
            "pip install " + " ".join(PGQUEUER_REQUIREMENTS),
        )
        stamp.write_text(wanted)
    return python


@dataclass(frozen=True)
class External:
    """How to run one peer: the command, in which directory, with which extras."""

    command: list[str]
    cwd: Path
    extra: dict[str, str]


def prepare(system: str, cache: Path, env: Mapping[str, str]) -> External:
    if system == "pgqueuer":
        # -I: the driver's directory is not put on sys.path (this package's
        # queue.py would hide the standard library's), nor is ours inherited.
        python = prepare_pgqueuer(cache, env)
        return External([str(python), "-I", str(PGQUEUER_DRIVER)], cache, {})
    node_dir = prepare_node(cache, env)
    node = str(shutil.which("node", path=env.get("PATH", "")))
    if system == "graphile-worker":
        return External([node, "graphile_worker.mjs"], node_dir, {})
    if system == "pg-boss":
        return External([node, "pg_boss.mjs"], node_dir, {"B": str(PG_BOSS_BATCH)})
    raise ValueError(f"unknown peer {system!r}")


def _run_external(
    ctx: BenchContext,
    system: str,
    external: External,
    jobs: int,
    env: Mapping[str, str],
) -> dict[str, Any]:
    name = ctx.server.create(f"peers_{system.replace('-', '_')}")
    try:
        done: ChildResult = run_command(
            external.command,
            {
                **env,
                "DB": ctx.server.url(name),
                "N": str(jobs),
                "C": str(CONCURRENCY),
                **external.extra,
            },
            cwd=external.cwd,
            timeout=RUN_TIMEOUT,
        )
    finally:
        ctx.server.wait_idle(name)
        ctx.server.drop(name)
    figures = done.output
    return {
        "jobs_per_second": round(figures["jobs_per_second"], 1),
        "drain_seconds": round(figures["drain_seconds"], 4),
        "cpu_ms_per_job": round(done.cpu_seconds * 1000 / jobs, 3),
        "peak_rss_mb": done.peak_rss_mb,
    }


def _run_ours(ctx: BenchContext, app: str, jobs: int) -> dict[str, Any]:
    config = queue.WorkerConfig(
        "peers", concurrency=CONCURRENCY, pool_max=CONCURRENCY + 2
    )
    return queue.drain_once(ctx, app, config, jobs)


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "jobs_per_second": round(
            statistics.median(r["jobs_per_second"] for r in runs), 1
        ),
        "cpu_ms_per_job": round(
            statistics.median(r["cpu_ms_per_job"] for r in runs), 3
        ),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "runs": [r["jobs_per_second"] for r in runs],
    }


def run(
    ctx: BenchContext,
    jobs: int = JOBS,
    systems: tuple[str, ...] = SYSTEMS,
    env: Mapping[str, str] | None = None,
) -> list[Measurement]:
    """Every system of ``systems`` that can run here, ``ctx.repeats`` rounds, the
    order reversed every other round; the median of each against plain's."""
    env = dict(os.environ if env is None else env)
    cache = cache_dir(env)
    names = labels()
    skipped: dict[str, str] = {}
    runners: dict[str, Callable[[], dict[str, Any]]] = {}
    for system in systems:
        if system in (PLAIN, OURS):
            runners[system] = partial(_run_ours, ctx, system, jobs)
            continue
        try:
            external = prepare(system, cache, env)
        except Unavailable as unavailable:
            skipped[system] = str(unavailable)
            ctx.say(f"peers: skipping {names[system]}: {unavailable}")
            continue
        runners[system] = partial(_run_external, ctx, system, external, jobs, env)

    results: dict[str, list[dict[str, Any]]] = {system: [] for system in runners}
    for number in range(ctx.repeats):
        order = list(runners) if number % 2 == 0 else list(reversed(runners))
        for system in order:
            if system in skipped:
                continue
            try:
                figures = runners[system]()
            except RuntimeError as error:
                if system in (PLAIN, OURS):
                    raise
                failure = _reason(str(error))
                skipped[system] = f"failed: {failure}"
                ctx.say(f"peers: {names[system]} failed, left out: {failure}")
                continue
            results[system].append(figures)
            ctx.say(f"peers {names[system]}: {figures['jobs_per_second']} jobs/s")

    summaries = {
        system: _summary(runs)
        for system, runs in results.items()
        if runs and system not in skipped
    }
    plain = summaries.get(PLAIN, {}).get("jobs_per_second")
    measurements = []
    for system in systems:
        if system not in summaries:
            measurements.append(
                Measurement(
                    family="peers",
                    name=names[system],
                    value=None,
                    unit="jobs/s",
                    baseline=plain,
                    note=f"skipped: {skipped.get(system, 'not run')}",
                    details={"skipped": skipped.get(system, "not run")},
                )
            )
            continue
        summary = summaries[system]
        settings = f"concurrency {CONCURRENCY}"
        if system == "pg-boss":
            settings = (
                f"{CONCURRENCY} workers fetching {PG_BOSS_BATCH} each, polling "
                "every 0.5 s"
            )
        elif system == "pgqueuer":
            settings += f", dequeuing {max(1, CONCURRENCY // 2)} per round trip"
        measurements.append(
            Measurement(
                family="peers",
                name=names[system],
                value=summary["jobs_per_second"],
                unit="jobs/s",
                baseline=plain,
                ratio=ratio(summary["jobs_per_second"], plain),
                note=(
                    f"{settings}; CPU per job {summary['cpu_ms_per_job']} ms; "
                    f"{jobs} jobs; runs {summary['runs']}"
                ),
                details=summary,
            )
        )
    ours = summaries.get(OURS, {}).get("jobs_per_second")
    graphile = summaries.get("graphile-worker", {}).get("jobs_per_second")
    if ours is not None and OURS in systems:
        against = ratio(ours, graphile)
        measurements.append(
            Measurement(
                family="peers",
                name="ours against graphile-worker",
                value=ours,
                unit="jobs/s",
                baseline=graphile,
                ratio=against,
                goal=f">= {GRAPHILE_GOAL} of graphile-worker",
                met=None if against is None else against >= GRAPHILE_GOAL,
                note="" if graphile else "graphile-worker did not run",
            )
        )
    return measurements
