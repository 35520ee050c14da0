"""``agnt-jobs schedules ...`` and ``agnt-jobs run``: thin commands over
``agnt_jobs.scheduler.control``. Unknown ids, and values the database refuses, are
a one-line error with exit 2, and nothing is written."""

from __future__ import annotations

import getpass
import json
import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import psycopg
import sqlalchemy.exc
import typer

from agnt_jobs.cli.common import UsageError, ensure_migrated
from agnt_jobs.db.url import Unreachable
from agnt_jobs.settings import ConfigError, get_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from agnt_jobs.scheduler.control import Actor, ScheduleState
    from agnt_jobs.scheduler.worker import AgntApp

schedules_cli = typer.Typer(
    help="The schedule registry: list, check, change, pause and resume schedules.",
    no_args_is_help=True,
)


def _usage(message: str) -> Exception:
    return UsageError(message)


def _app() -> AgntApp:
    from agnt_jobs.app import app

    return app


def _engine() -> Engine:
    """The job database's engine, once its schema is known to be this code's."""
    from agnt_jobs import db

    ensure_migrated()
    return db.engine()


def _parse_now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _usage(
            f"--now {value!r} is not ISO 8601 (e.g. 2028-02-28T23:00:00+08:00)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(get_settings().business_timezone))
    return parsed


ByOption = Annotated[
    str | None,
    typer.Option(
        "--by",
        help="Who makes the change, for the audit (schedule_changes); "
        "default: your user@host.",
    ),
]


def _actor(by: str | None) -> Actor:
    from agnt_jobs.scheduler import control

    return control.Actor(
        by=by or f"{getpass.getuser()}@{socket.gethostname()}", source="cli"
    )


@schedules_cli.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
    now: Annotated[
        str | None,
        typer.Option(
            help="Compute next runs from this instant (ISO 8601; without an offset, "
            "WITA) instead of the current time."
        ),
    ] = None,
) -> None:
    """List every schedule with its next run and last run.

    Shows the values in effect (the schedules table's; the code's when the database
    cannot be reached): trigger, zone, misfire policy, whether it is enabled, its
    next run (ISO 8601 in its zone), its last run, the variables a job that is not
    configured waits for, and whether an operator overrode the declaration
    (--json has both). Schedules created in SQL show their job as sql:JOB.
    """
    from agnt_jobs.scheduler import control

    at = _parse_now(now)
    app = _app()
    rows = None
    try:
        rows = control.database_rows(_engine())
    except (
        sqlalchemy.exc.SQLAlchemyError,
        psycopg.Error,
        ConfigError,
        Unreachable,
    ) as error:
        reason = getattr(error, "reason", "") or str(getattr(error, "orig", error))
        reason = reason.strip().splitlines()[0]
        typer.echo(
            f"agnt-jobs: no database state ({reason}): showing the code only", err=True
        )
    states = control.states(app, at, rows, get_settings())
    if as_json:
        typer.echo(json.dumps([state.as_json() for state in states], indent=2))
        return
    lines = [_HEADER, *(_cells(state) for state in states)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADER))]
    for line in lines:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        typer.echo("  ".join(cells).rstrip())


_HEADER = (
    "ID",
    "CRON",
    "ZONE",
    "POLICY",
    "ENABLED",
    "NEXT RUN",
    "LAST RUN",
    "BODY",
    "NOT CONFIGURED",
    "OVERRIDDEN",
)


def _cells(state: ScheduleState) -> tuple[str, ...]:
    enabled = {None: "-", True: "yes", False: "PAUSED"}[state.enabled]
    if state.created_in == "sql":
        body = f"sql:{state.task_name}" if state.has_body else "MISSING"
    else:
        body = "yes" if state.has_body else ("MISSING" if state.in_code else "removed")
    next_run = state.next_run_at.isoformat() if state.next_run_at else "-"
    if state.broken:
        next_run = "BROKEN (schedules check says why)"
    return (
        state.id,
        state.cron,
        state.zone,
        state.misfire_policy,
        enabled,
        next_run,
        state.last_run_status or "-",
        body,
        " ".join(state.missing_settings) or "-",
        "yes" if state.overridden else "-",
    )


@schedules_cli.command("check")
def check() -> None:
    """Compare the code with the database; exit 1 if they disagree or a schedule
    is broken.

    Problems, one line each: a schedule no worker can follow (broken: it alone
    does not tick, and the line says why), a declared schedule without a job
    body, a schedule the database has but the code dropped, a schedule changed
    here but not yet deployed everywhere (a live worker deployed other
    schedules). Each value an operator set that differs from the code is listed as
    overridden (not a disagreement).
    """
    from agnt_jobs.scheduler import control, deploy

    app = _app()
    engine = _engine()
    try:
        problems = control.check(app, engine, get_settings())
    except (sqlalchemy.exc.SQLAlchemyError, psycopg.Error) as error:
        reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
        typer.echo(f"agnt-jobs: cannot read the schedules: {reason}", err=True)
        raise typer.Exit(1) from None
    for problem in problems:
        typer.echo(f"{problem.kind}: {problem.message}")
    # Deliberate, and never undone by a deploy: shown, not a disagreement.
    for override in control.overrides(app, engine):
        typer.echo(f"overridden (ok): {override.message}")
    # A schedule a deployed worker already marked removed is no disagreement any
    # more, but it is shown: a deploy must not drop a job silently.
    for id_, row in control.database_rows(engine).items():
        if id_ not in app.schedules and row["removed_at"] is not None:
            typer.echo(
                f"removed (ok): {id_} is no longer declared; marked removed at "
                f"{row['removed_at'].isoformat()}"
            )
    summary = (
        f"{len(app.schedules)} declared, {len(deploy.deployed(app))} with a body: "
        f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    )
    typer.echo(summary)
    if problems:
        raise typer.Exit(1)


@schedules_cli.command("lint")
def lint() -> None:
    """Check the code's declarations as Postgres checks them, without a database.

    Exits 2 with one line on the first declaration the schedules table would
    refuse (a cron outside the grammar or that never fires, an unknown zone,
    policy or id); `make lint` runs it.
    """
    app = _app()
    typer.echo(f"{len(app.schedules)} declarations: each one Postgres accepts")


def _set_enabled(id_: str, enabled: bool, by: str | None) -> None:
    from agnt_jobs.scheduler import control

    try:
        control.set_enabled(_app(), _engine(), id_, enabled, _actor(by))
    except control.UnknownId as error:
        raise _usage(str(error)) from None
    typer.echo(f"{id_} {'resumed' if enabled else 'paused'}")


@schedules_cli.command("pause")
def pause(
    id_: Annotated[str, typer.Argument(metavar="ID")], by: ByOption = None
) -> None:
    """Pause a schedule: its ticks are recorded as skipped, not run.

    Every worker honours it from the schedule's next tick. A run already waiting
    still runs, and 'agnt-jobs run ID' still works.
    """
    _set_enabled(id_, False, by)


@schedules_cli.command("resume")
def resume(
    id_: Annotated[str, typer.Argument(metavar="ID")], by: ByOption = None
) -> None:
    """Resume a paused schedule from its next tick (paused ticks stay skipped)."""
    _set_enabled(id_, True, by)


def _show(row: dict[str, Any], what: str) -> None:
    wita = ZoneInfo(get_settings().business_timezone)
    typer.echo(
        f"{row['id']} {what}: cron {row['cron']!r} in {row['zone']}, misfire "
        f"{row['misfire_policy']}, timeout {row['timeout']}"
        + ("" if row["enabled"] else ", PAUSED")
        + (", overrides the code" if row["overridden"] else "")
    )
    typer.echo("next runs:")
    for run_at in row["next_runs"]:
        typer.echo(
            f"  {run_at.astimezone(wita):%Y-%m-%d %H:%M %a} WITA  "
            f"{run_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        )


@schedules_cli.command("set")
def set_(
    id_: Annotated[str, typer.Argument(metavar="ID")],
    cron: Annotated[
        str | None, typer.Option(help="5 fields, read in the schedule's zone.")
    ] = None,
    zone: Annotated[
        str | None, typer.Option(help="A zone of pg_timezone_names (Asia/Makassar).")
    ] = None,
    misfire: Annotated[
        str | None, typer.Option(help="skip or catch_up.", metavar="POLICY")
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(help="How long a run may take, e.g. '45 minutes' or '2 hours'."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show the next five runs; change nothing."),
    ] = False,
    by: ByOption = None,
) -> None:
    """Change a schedule at runtime; every running worker follows within a second.

    Postgres checks the new values (the same checks as a plain SQL UPDATE) and
    records the change in schedule_changes. A deploy never undoes it;
    'agnt-jobs schedules reset ID' returns to the code's declaration.
    """
    from agnt_jobs.scheduler import control

    change = control.Change(
        cron=cron, zone=zone, misfire_policy=misfire, timeout=timeout
    )
    try:
        row = control.set_schedule(
            _app(), _engine(), id_, change, _actor(by), datetime.now(UTC), dry_run
        )
    except (control.UnknownId, control.Refused) as error:
        raise _usage(str(error)) from None
    _show(row, "would be" if dry_run else "is now")
    if dry_run:
        typer.echo("dry run: nothing changed")


@schedules_cli.command("reset")
def reset(
    id_: Annotated[str, typer.Argument(metavar="ID")], by: ByOption = None
) -> None:
    """Return a schedule to what the code declares (its pause switch stays)."""
    from agnt_jobs.scheduler import control

    try:
        row = control.reset(_app(), _engine(), id_, _actor(by), datetime.now(UTC))
    except (control.UnknownId, control.Refused) as error:
        raise _usage(str(error)) from None
    _show(row, "is back to its declaration")


def _parse_at(value: str) -> datetime:
    """ISO 8601, or 'YYYY-MM-DD HH:MM'; then an offset, a zone name after a space,
    or nothing: WITA."""
    text, _, zone_name = value.strip().rpartition(" ")
    zone = None
    if text and ("/" in zone_name or zone_name.isupper()):
        try:
            zone = ZoneInfo(zone_name)
        except (ValueError, KeyError):
            raise _usage(f"--at {value!r}: unknown time zone {zone_name!r}") from None
    else:
        text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _usage(
            f"--at {value!r} is not a time: write e.g. '2026-12-24 09:00' (WITA), "
            "'2026-12-24 09:00 Asia/Jakarta' or '2026-12-24T09:00+07:00'"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(
            tzinfo=zone or ZoneInfo(get_settings().business_timezone)
        )
    elif zone is not None:
        raise _usage(f"--at {value!r}: give an offset or a zone, not both")
    from agnt_jobs.scheduler import control

    try:
        control.check_instant("the time", parsed)
    except control.Refused as refused:
        raise _usage(str(refused)) from None
    return parsed


def run(
    id_: Annotated[str, typer.Argument(metavar="ID", help="The job's name.")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the run; exit with its status.")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="With --wait: give up after seconds.")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            help="Run at this time instead of now: '2026-12-24 09:00' is WITA; "
            "add a zone ('... Asia/Jakarta') or an offset for another."
        ),
    ] = None,
    by: ByOption = None,
) -> None:
    """Run job ID now (or --at a time); with --wait, follow it and exit with its
    status.

    The run's tick is now (or the --at time). With --wait the command exits 0 if
    the run succeeded and 1 otherwise; if a run of the job already waits, it
    follows that one. A run --at waits as scheduled (job_run_audit shows it) and
    can be cancelled with 'agnt-jobs runs cancel JOB_ID'.
    """
    from agnt_jobs.scheduler import control

    app = _app()
    try:
        control.job_task(app, id_)
    except control.UnknownId as error:
        raise _usage(str(error)) from None
    when = _parse_at(at) if at is not None else None
    engine = _engine()
    if when is not None:
        try:
            job_id = control.run_at(app, engine, get_settings(), id_, when, _actor(by))
        except (control.NotConfigured, control.Refused) as error:
            raise _usage(str(error)) from None
        wita = ZoneInfo(get_settings().business_timezone)
        typer.echo(
            f"{id_}: deferred as job {job_id} for "
            f"{when.astimezone(wita):%Y-%m-%d %H:%M} WITA "
            f"({when.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"
        )
        if not wait:
            return
    else:
        try:
            job_id = control.run_now(app, engine, get_settings(), id_)
            typer.echo(f"{id_}: deferred as job {job_id}")
        except control.NotConfigured as error:
            raise _usage(str(error)) from None
        except control.AlreadyWaiting as waiting:
            if not wait or waiting.job_id is None:
                typer.echo(f"agnt-jobs: {waiting}; not deferring another", err=True)
                raise typer.Exit(1) from None
            job_id = waiting.job_id
            typer.echo(f"{id_}: a run is already waiting (job {job_id}), following it")
    if not wait:
        return
    state = control.wait_for(engine, job_id, timeout)
    status = state["status"]
    detail = state.get("error") or (
        json.dumps(state["result"]) if state.get("result") is not None else ""
    )
    typer.echo(f"{id_}: job {job_id} {status}" + (f": {detail}" if detail else ""))
    if status != "succeeded":
        raise typer.Exit(1)


runs_cli = typer.Typer(
    help="Runs: cancel a waiting or running run, retry failed ones.",
    no_args_is_help=True,
)


@runs_cli.command("cancel")
def cancel(
    job_id: Annotated[int, typer.Argument(metavar="JOB_ID")], by: ByOption = None
) -> None:
    """Cancel run JOB_ID: a waiting one at once; a running one stops at its next
    checkpoint and ends cancelled (what it finished stands)."""
    from agnt_jobs.scheduler import control

    try:
        outcome = control.cancel(_engine(), job_id, _actor(by))
    except (control.UnknownId, control.Refused) as error:
        raise _usage(str(error)) from None
    if outcome == "cancelled":
        typer.echo(f"job {job_id} cancelled")
    else:
        typer.echo(f"job {job_id} is running: it stops at its next checkpoint")


@runs_cli.command("retry")
def retry(
    job_id: Annotated[
        int | None,
        typer.Argument(metavar="[JOB_ID]", help="One run; or --job with a window."),
    ] = None,
    job: Annotated[
        str | None, typer.Option(help="Retry every failed run of this job ...")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="... that ended at or after this time ...")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="... and before this one (default: now).")
    ] = None,
    by: ByOption = None,
) -> None:
    """Run again a failed, timed-out or cancelled run, or every such run of --job
    that ended between --since and --until (times as for 'run --at')."""
    from agnt_jobs.scheduler import control

    if (job_id is None) == (job is None):
        raise _usage("give a JOB_ID, or --job with --since (and --until)")
    engine = _engine()
    try:
        if job_id is not None:
            if since or until:
                raise _usage("--since and --until go with --job, not a JOB_ID")
            new_id = control.retry(engine, job_id, _actor(by))
            typer.echo(
                f"job {job_id} retried as job {new_id}{_waiting(engine, new_id)}"
            )
            return
        assert job is not None
        if since is None:
            raise _usage("--job needs --since")
        window = (_parse_at(since), _parse_at(until) if until else datetime.now(UTC))
        retried = control.retry_all(engine, job, *window, _actor(by))
    except (control.UnknownId, control.Refused) as error:
        raise _usage(str(error)) from None
    for old, new in retried:
        typer.echo(f"job {old} retried as job {new}")
    typer.echo(f"{job}: {len(retried)} run{'s' if len(retried) != 1 else ''} retried")


def _waiting(engine: Engine, job_id: int) -> str:
    """ ", waiting until ..." for a run set for a later time (a retry keeps the
    time of the run it retries), else nothing."""
    from agnt_jobs.scheduler import control

    at = control.waits_until(engine, job_id)
    if at is None:
        return ""
    wita = ZoneInfo(get_settings().business_timezone)
    return (
        f", waiting until {at.astimezone(wita):%Y-%m-%d %H:%M} WITA "
        f"({at.astimezone(UTC):%Y-%m-%d %H:%M} UTC), the time of the run it retries"
    )


def install(cli: typer.Typer) -> None:
    cli.add_typer(schedules_cli, name="schedules")
    cli.add_typer(runs_cli, name="runs")
    cli.command("run")(run)
