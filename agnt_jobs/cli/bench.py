"""``agnt-jobs bench``: a thin command over ``agnt_jobs.bench``. It never touches
the configured database: it creates its scratch databases on the same server (or
``--server``) and drops them when it ends."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from agnt_jobs.cli.common import UsageError
from agnt_jobs.settings import get_settings


def _usage(message: str) -> Exception:
    return UsageError(message)


def bench(
    scale: Annotated[
        int,
        typer.Option(
            min=1,
            help="Data size: 100 is about a million bookings (as 'demo seed "
            "--scale 100'); also sizes the queue and fan-out runs.",
        ),
    ] = 1,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Run only this family (scheduling, queue, jobs, fanout, recovery, "
            "schedule_change, metrics, defer, peers, claim) or job id (repeatable).",
        ),
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option(
            "--json",
            help="Where to write the results (default: "
            "bench-results/bench-scale<N>-<time>.json).",
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            help="Postgres server to create scratch databases on (a libpq URL; "
            "default: the server of AGNT_DATABASE_URL). Its user needs CREATEDB.",
        ),
    ] = None,
    due: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Rows each job must change (default 1,000 x scale, at most "
            "100,000), the same at both scales of the size comparison.",
        ),
    ] = None,
    compare_scale: Annotated[
        int | None,
        typer.Option(
            min=1, help="Smaller scale to compare each job with (default scale/10)."
        ),
    ] = None,
    repeats: Annotated[
        int, typer.Option(min=1, help="Runs of each throughput figure (median).")
    ] = 3,
    schedule_seconds: Annotated[
        float, typer.Option(min=3, help="Seconds each scheduling run is watched.")
    ] = 30.0,
) -> None:
    """Benchmark scheduling precision, queue throughput, every job and the send
    queue's fan-out, each against a baseline in the same run; print a table and
    write a JSON file. Figures from a busy machine are noisy: compare the ratios.
    """
    from agnt_jobs import bench
    from agnt_jobs.db import database_url

    url = server or database_url()
    path = json_path or (
        Path("bench-results")
        / f"bench-scale{scale}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    )
    options = bench.Options(
        server_url=url,
        scale=scale,
        only=tuple(only or ()),
        json_path=path,
        due=due,
        compare_scale=compare_scale,
        repeats=repeats,
        schedule_seconds=schedule_seconds,
    )
    try:
        bench.plan(options.only)
    except bench.UnknownBenchmark as error:
        raise _usage(str(error)) from None
    get_settings()  # a bad setting stops here, before any database is made
    measurements = bench.run(options)
    typer.echo(bench.format_table(measurements))
    typer.echo(f"\nresults written to {path}")


def install(cli: typer.Typer) -> None:
    cli.command("bench")(bench)
