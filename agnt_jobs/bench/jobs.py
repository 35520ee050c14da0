"""Every job at volume: each job runs once, in its own process as a worker runs it,
on a fresh copy of the benchmark data (``fixtures``), and is measured for wall
time, rows changed (Postgres' own per-table counters of the copy: inserts, updates
and deletes, whatever the job's summary says) and the process's peak RSS.

Against two baselines taken in the same run:

* for a set-based job, the single hand-written statement of ``cases`` on another
  copy of the same data; the ratio of times is the job's price for chunks, claims
  and summaries (goal: at most 1.5), and the rows it changed must match;
* the same job on data ten times smaller with the same due work: the ratio of
  times shows whether a job's cost follows its work or the table's size.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from agnt_jobs.bench import cases
from agnt_jobs.bench.base import NOOP, TICK, BenchContext
from agnt_jobs.bench.child import child_env, run_module
from agnt_jobs.bench.report import Measurement, ratio
from agnt_jobs.datagen import fixtures, stripe_due
from agnt_jobs.settings import get_settings
from agnt_jobs.standins import localstripe
from agnt_jobs.standins.peer_server import PeerServer

GOAL_SQL_RATIO = 1.5
GOAL_RSS_MB = 256.0
# A job that does the same work on ten times the data may take this much longer
# before we say its cost follows the table (the copies share a busy machine).
SCALING_TOLERANCE = 2.0

CHANGED_ROWS = """
SELECT relname, n_tup_ins + n_tup_upd + n_tup_del AS changed
FROM pg_stat_user_tables
WHERE n_tup_ins + n_tup_upd + n_tup_del > 0
ORDER BY relname
"""


@dataclass(frozen=True)
class Fixture:
    name: str
    sizes: fixtures.Sizes


def job_ids() -> list[str]:
    import agnt_jobs.app  # noqa: F401  (registers every body)
    from agnt_jobs.scheduler.bodies import BODIES

    return sorted(job_id for job_id in BODIES if job_id not in (NOOP, TICK))


def changed_rows(url: str) -> dict[str, int]:
    """Rows inserted, updated or deleted per table since the database was made.

    A backend reports its counts when it exits; read until two reads agree, so a
    child's last backend has surely reported."""
    previous: dict[str, int] | None = None
    for _ in range(20):
        with psycopg.connect(url, autocommit=True) as connection:
            rows = connection.execute(CHANGED_ROWS).fetchall()
        current = {name: int(count) for name, count in rows}
        if current == previous:
            return current
        previous = current
        time.sleep(0.15)
    return previous or {}


def _env(url: str, peer: str, stripe_url: str | None) -> dict[str, str]:
    return child_env(
        url,
        AGNT_CHANNEL_GATEWAY_URL=peer,
        AGNT_ALERTS_WEBHOOK_URL=f"{peer}/alerts",
        AGNT_SHOPEE_BASE_URL=peer,
        AGNT_TOKOPEDIA_BASE_URL=peer,
        AGNT_LAZADA_BASE_URL=peer,
        # The marketplaces' politeness limit would make the run take minutes of
        # waiting; the peer is ours.
        AGNT_MARKETPLACE_RATE_PER_SECOND="100000",
        # Stripe: the run's own localstripe (``stripe_due``), or, without one,
        # the peer, which answers 404 (the billing jobs then find no work).
        AGNT_STRIPE_API_KEY=localstripe.API_KEY,
        AGNT_STRIPE_API_BASE=stripe_url or f"{peer}/stripe",
        AGNT_STRIPE_MAX_NETWORK_RETRIES="0",
    )


def _job_changes(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        table: count - before.get(table, 0)
        for table, count in after.items()
        if count != before.get(table, 0)
    }


def run_job(
    ctx: BenchContext, fixture: Fixture, job_id: str, peer: str
) -> dict[str, Any]:
    copy = ctx.server.create(f"job_{fixture.sizes.scale}", template=fixture.name)
    url = ctx.server.url(copy)
    try:
        with ExitStack() as stack:
            stripe_url, prepared = None, None
            if job_id in stripe_due.STRIPE_JOBS and localstripe.available():
                stripe_url, prepared = _prepare_stripe(ctx, stack, fixture, job_id, url)
            # A fresh copy's counters start at zero: only a prepared copy has
            # writes of its own to leave out (each read waits for them to settle).
            before = changed_rows(url) if prepared else {}
            done = run_module(
                "agnt_jobs.bench.runjob",
                [job_id, f"--at={ctx.at.isoformat()}"],
                _env(url, peer, stripe_url),
            )
        ctx.server.wait_idle(copy)
        changed = _job_changes(before, changed_rows(url))
    finally:
        ctx.server.drop(copy)
    return {
        "seconds": done.output["seconds"],
        "process_seconds": round(done.seconds, 3),
        "peak_rss_mb": done.peak_rss_mb,
        "rss_before_mb": done.output["rss_before_mb"],
        "rows_changed": sum(changed.values()),
        "tables": changed,
        "result": done.output["result"],
        "stripe": prepared.describe() if prepared else None,
    }


def _prepare_stripe(
    ctx: BenchContext, stack: ExitStack, fixture: Fixture, job_id: str, url: str
) -> tuple[str, stripe_due.Prepared]:
    """A localstripe of this run's own, and the job's due work made in it and in
    the copy (``stripe_due``); the server stops when ``stack`` closes."""
    log = stack.enter_context(tempfile.TemporaryDirectory()) + "/localstripe.log"
    server = stack.enter_context(localstripe.LocalStripe(Path(log)))
    objects = localstripe.StripeObjects(server.url, localstripe.API_KEY)
    prepared = stripe_due.prepare(
        job_id, url, objects, fixture.sizes.stripe_due, ctx.at
    )
    return server.url, prepared


def run_baseline(
    ctx: BenchContext, fixture: Fixture, case: cases.JobCase
) -> dict[str, Any]:
    assert case.baseline is not None
    copy = ctx.server.create(f"sql_{fixture.sizes.scale}", template=fixture.name)
    url = ctx.server.url(copy)
    values = case.params(get_settings(), ctx.at) if case.params else {}
    try:
        import sqlalchemy as sa

        from agnt_jobs import db

        engine = db.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                started = time.perf_counter()
                connection.execute(sa.text(case.baseline), values)
                connection.commit()
                seconds = time.perf_counter() - started
        finally:
            engine.dispose()
        ctx.server.wait_idle(copy)
        changed = changed_rows(url)
    finally:
        ctx.server.drop(copy)
    return {
        "seconds": round(seconds, 4),
        "rows_changed": sum(changed.values()),
        "tables": changed,
    }


def build(ctx: BenchContext, sizes: fixtures.Sizes, peer: str) -> Fixture:
    name = ctx.server.migrated(f"fixture_{sizes.scale}")
    ctx.say(f"jobs: filling the scale {sizes.scale} fixture ({sizes.due} due rows)")
    timings = fixtures.fill(ctx.server.url(name), sizes, ctx.at, peer)
    ctx.say(f"jobs: scale {sizes.scale} filled in {sum(timings.values()):.1f}s")
    ctx.server.wait_idle(name)
    return Fixture(name, sizes)


def _measure(
    job_id: str,
    case: cases.JobCase,
    main: dict[str, Any],
    sql: dict[str, Any] | None,
    small: dict[str, Any] | None,
    scales: tuple[int, int],
) -> list[Measurement]:
    sql_ratio = ratio(main["seconds"], sql["seconds"]) if sql else None
    rss_ok = main["peak_rss_mb"] < GOAL_RSS_MB
    notes = [
        f"{main['rows_changed']:,} rows changed",
        f"peak RSS {main['peak_rss_mb']} MB ({main['rss_before_mb']} MB before "
        "the body)",
    ]
    if main["stripe"]:
        notes.append(main["stripe"])
    elif job_id in stripe_due.STRIPE_JOBS:
        notes.append("no Stripe work: install agnt-jobs[bench] for localstripe")
    met = rss_ok
    if sql is not None:
        same = sql["tables"] == main["tables"]
        notes.append(
            f"SQL changed {sql['rows_changed']:,} rows"
            + ("" if same else f" (job {main['tables']}, SQL {sql['tables']})")
        )
        met = met and sql_ratio is not None and sql_ratio <= GOAL_SQL_RATIO and same
    measurements = [
        Measurement(
            family="jobs",
            name=job_id,
            value=main["seconds"],
            unit="s",
            baseline=sql["seconds"] if sql else None,
            ratio=sql_ratio,
            goal=f"<= {GOAL_SQL_RATIO}x SQL, RSS < {GOAL_RSS_MB:.0f} MB"
            if sql
            else f"RSS < {GOAL_RSS_MB:.0f} MB",
            met=met,
            note="; ".join(notes),
            details={"job": main, "sql": sql, "scale": scales[0]},
        )
    ]
    if small is not None:
        growth = ratio(main["seconds"], small["seconds"])
        same_work = small["rows_changed"] == main["rows_changed"]
        judged = not case.table_wide and same_work
        measurements.append(
            Measurement(
                family="jobs-scaling",
                name=job_id,
                value=main["seconds"],
                unit="s",
                baseline=small["seconds"],
                ratio=growth,
                goal=f"scale {scales[0]} vs {scales[1]}: <= {SCALING_TOLERANCE}x",
                met=(growth is not None and growth <= SCALING_TOLERANCE)
                if judged
                else None,
                note=case.table_wide
                or (
                    ""
                    if same_work
                    else f"rows changed differ: {main['rows_changed']} vs "
                    f"{small['rows_changed']}"
                ),
                details={"small": small},
            )
        )
    return measurements


def run(
    ctx: BenchContext, due: int, compare_scale: int | None, only: list[str]
) -> list[Measurement]:
    selected = only or job_ids()
    measurements: list[Measurement] = []
    with PeerServer() as peers:
        main = build(ctx, fixtures.Sizes(ctx.scale, due), peers.url)
        small = None
        if compare_scale and compare_scale != ctx.scale:
            small = build(ctx, fixtures.Sizes(compare_scale, due), peers.url)
        for job_id in selected:
            case = cases.case(job_id)
            ctx.say(f"jobs: {job_id}")
            at_scale = run_job(ctx, main, job_id, peers.url)
            sql = run_baseline(ctx, main, case) if case.baseline else None
            smaller = run_job(ctx, small, job_id, peers.url) if small else None
            measurements += _measure(
                job_id,
                case,
                at_scale,
                sql,
                smaller,
                (ctx.scale, compare_scale or ctx.scale),
            )
    return measurements
