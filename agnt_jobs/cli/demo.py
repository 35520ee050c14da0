"""``agnt-jobs demo ...``: a realistic, deterministic data set to watch the jobs
work on and to give the benchmarks data."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from agnt_jobs.cli.common import UsageError, ensure_migrated, setup_logging
from agnt_jobs.settings import get_settings

demo_cli = typer.Typer(help="Demo data: watch the jobs work, give benchmarks data.")


def _instant(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--at {value!r} is not an ISO 8601 instant") from None
    if instant.tzinfo is None:
        raise UsageError(f"--at {value!r} needs a zone, e.g. {value}+08:00")
    return instant.astimezone(UTC)


@demo_cli.command("seed")
def demo_seed(
    scale: Annotated[
        int,
        typer.Option(min=1, help="Size: 1 is 10,000 bookings; 100 about a million."),
    ] = 1,
    at: Annotated[
        str | None,
        typer.Option(
            help="ISO instant the data is built around (default: now). The same "
            "scale and instant give the same data."
        ),
    ] = None,
    agent_url: Annotated[
        str, typer.Option(help="Base URL of the venues' A2A agent endpoints.")
    ] = "http://127.0.0.1:8790",
    webhook_url: Annotated[
        str,
        typer.Option(help="Base URL of the seeded outbound webhook endpoints."),
    ] = "http://127.0.0.1:8791",
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Seed a database that has data: adds a second data set."
        ),
    ] = False,
) -> None:
    """Fill an empty database with a realistic, deterministic data set."""
    setup_logging()
    instant = _instant(at)
    ensure_migrated()
    from agnt_jobs import db, demo

    settings = get_settings()
    plan = demo.Plan(
        scale=scale,
        at=instant,
        tz=settings.business_timezone,
        agent_url=agent_url,
        webhook_url=webhook_url,
    )
    started = time.perf_counter()
    try:
        reports = demo.seed(db.engine(), plan, force=force)
    except demo.NotEmptyError as error:
        raise UsageError(str(error)) from None
    for report in reports:
        rows = ", ".join(f"{table} {count:,}" for table, count in report.rows.items())
        typer.echo(f"{report.seeder}: {rows} ({report.seconds:.1f} s)")
    typer.echo(
        f"demo data at scale {scale} around {plan.at.isoformat()} "
        f"in {time.perf_counter() - started:.1f} s"
    )


def install(cli: typer.Typer) -> None:
    cli.add_typer(demo_cli, name="demo")
