"""``agnt-jobs demo ...``: a realistic, deterministic data set to watch the jobs
work on and to give the benchmarks data."""

from __future__ import annotations

import threading
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
    from agnt_jobs.scheduler import run_control

    run_control.check_instant("--at", instant)
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


# Stripe objects made for each billing job's due work.
STRIPE_CUSTOMERS_PER_JOB = 5


@demo_cli.command("run")
def demo_run(
    timeout: Annotated[
        float,
        typer.Option(
            min=1, help="Seconds to wait for every job's first run before saying so."
        ),
    ] = 300,
    stand_in_port: Annotated[
        int,
        typer.Option(
            min=0,
            max=65535,
            envvar="AGNT_DEMO_STAND_IN_PORT",
            help="Port of the stand-ins' server on 127.0.0.1; 0: a free one.",
        ),
    ] = 0,
) -> None:
    """make demo: demo data, local stand-ins for every outside system, a worker and
    the admin page; every job is run once at start and the page shows the result.

    The stand-ins are agnt_jobs/standins, the benchmarks' too: one local server for the
    channel gateway, the venues' A2A agents, the marketplaces' product APIs, the
    webhook receivers and the alerts webhook (on a free port, or --stand-in-port;
    the jobs and the demo data are pointed at it), and localstripe with customers,
    cards and subscriptions for the billing jobs' due work. They run as child
    processes and stop with the command (Ctrl-C).
    """
    import asyncio
    import contextlib
    import os

    from agnt_jobs import db, demo
    from agnt_jobs.cli.worker import admin_sign_in
    from agnt_jobs.datagen import stripe_due
    from agnt_jobs.standins.localstripe import API_KEY, LocalStripe, StripeObjects
    from agnt_jobs.standins.localstripe import available as localstripe_available
    from agnt_jobs.standins.peer_server import PeerServer

    setup_logging()
    settings = get_settings()
    if not localstripe_available():
        raise UsageError(
            "localstripe is not installed: make demo installs it (pip install -e "
            "'.[bench]')"
        )
    with contextlib.ExitStack() as stand_ins:
        try:
            peers = stand_ins.enter_context(PeerServer(port=stand_in_port))
        except OSError as error:
            raise UsageError(
                f"the stand-ins cannot listen on 127.0.0.1:{stand_in_port}: {error}"
            ) from None
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        stripe = stand_ins.enter_context(
            LocalStripe(settings.data_dir / "localstripe.log")
        )
        os.environ.update(
            {
                "AGNT_CHANNEL_GATEWAY_URL": peers.url,
                "AGNT_ALERTS_WEBHOOK_URL": f"{peers.url}/alerts",
                "AGNT_SHOPEE_BASE_URL": peers.url,
                "AGNT_TOKOPEDIA_BASE_URL": peers.url,
                "AGNT_LAZADA_BASE_URL": peers.url,
                "AGNT_STRIPE_API_KEY": API_KEY,
                "AGNT_STRIPE_API_BASE": stripe.url,
            }
        )
        get_settings.cache_clear()
        ensure_migrated()
        engine = db.engine()
        now = datetime.now(UTC).replace(microsecond=0)
        plan = demo.Plan(
            scale=1,
            at=now,
            tz=settings.business_timezone,
            agent_url=peers.url,
            webhook_url=peers.url,
        )
        try:
            demo.seed(engine, plan)
            typer.echo(f"demo data seeded around {now.isoformat()}", err=True)
        except demo.NotEmptyError:
            demo.point_at(engine, peers.url, peers.url)
            typer.echo(
                f"demo data already there: using it, pointed at {peers.url}", err=True
            )
        objects = StripeObjects(stripe.url, API_KEY)
        for job in sorted(stripe_due.STRIPE_JOBS):
            stripe_due.prepare(
                job, db.database_url(), objects, STRIPE_CUSTOMERS_PER_JOB, now
            )
        typer.echo(
            f"stand-ins: {peers.url} (gateway, A2A agents, marketplaces, webhooks, "
            f"alerts), {stripe.url} (localstripe)",
            err=True,
        )
        host, port = admin_sign_in()
        asyncio.run(_run_and_watch(host, port, timeout))


async def _run_and_watch(host: str, port: int, timeout: float) -> None:
    import asyncio

    from agnt_jobs.admin.beside import run_worker_and_admin

    stop = threading.Event()
    watching = asyncio.create_task(
        asyncio.to_thread(_run_every_job_once, timeout, stop)
    )
    try:
        await run_worker_and_admin(host, port)
    finally:
        stop.set()
        await watching


def _run_every_job_once(timeout: float, stop: threading.Event) -> None:
    """Defer one run of every job now and say how each ended, then one line for
    all of them; ``stop`` ends the watch early (the demo is stopping)."""
    import json

    from agnt_jobs import db
    from agnt_jobs.app import app
    from agnt_jobs.scheduler import run_control
    from agnt_jobs.scheduler.bodies import BODIES

    engine, settings = db.engine(), get_settings()
    started = time.monotonic()
    waiting: dict[str, int] = {}
    for job in sorted(BODIES.keys() & app.tasks.keys()):
        try:
            waiting[job] = run_control.run_now(app, engine, settings, job)
        except run_control.AlreadyWaiting as already:
            if already.job_id is not None:
                waiting[job] = already.job_id
    total, failed = len(waiting), []
    while waiting and time.monotonic() - started < timeout and not stop.is_set():
        for job, job_id in list(waiting.items()):
            state = run_control.job_state(engine, job_id) or {}
            if state.get("status") in run_control.FINAL_STATUSES:
                del waiting[job]
                if state["status"] != "succeeded":
                    failed.append(job)
                outcome = state.get("error") or json.dumps(state.get("result"))
                typer.echo(f"demo: {job} {state['status']}: {outcome[:120]}", err=True)
        stop.wait(0.5)
    seconds = time.monotonic() - started
    if failed or waiting:
        typer.echo(
            f"demo: {total - len(failed) - len(waiting)} of {total} jobs succeeded "
            f"in {seconds:.0f} s; failed: {', '.join(failed) or '-'}; not done: "
            f"{', '.join(waiting) or '-'}",
            err=True,
        )
    else:
        typer.echo(f"demo: all {total} jobs succeeded in {seconds:.1f} s", err=True)


def install(cli: typer.Typer) -> None:
    cli.add_typer(demo_cli, name="demo")
