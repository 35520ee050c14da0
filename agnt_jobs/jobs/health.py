"""platform_health_monitor: a set of small named checks, each result stored, and an
alert queued exactly when a check changes state (ok -> failing, failing -> ok).

A check is a function ``(connection, ctx) -> Observation``; its status is failing
when its value passes the threshold from settings. A check that cannot run (an
error, a timeout) is failing too, with the error in its details: a monitor that
cannot look is not healthy.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from agnt_jobs import logs
from agnt_jobs.delivery import alerts
from agnt_jobs.models.scheduling import SkipReason
from agnt_jobs.scheduler import broken
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job, missing_settings
from agnt_jobs.walk import RangeChange, change_by_range

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observation:
    value: float | None
    limit: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        if "error" in self.details:
            return False
        return self.value is None or self.value <= self.limit


Check = Callable[[Connection, RunContext], Observation]


def database_latency(connection: Connection, ctx: RunContext) -> Observation:
    """Median of three round trips of ``SELECT 1``, in milliseconds."""
    samples = []
    for _ in range(3):
        started = time.perf_counter()
        connection.execute(sa.text("SELECT 1"))
        samples.append((time.perf_counter() - started) * 1000)
    return Observation(
        round(statistics.median(samples), 3), ctx.settings.health_db_latency_max_ms
    )


def queue_depth(connection: Connection, ctx: RunContext) -> Observation:
    """Jobs due in the queue and not yet picked up by a worker."""
    rows = connection.execute(
        sa.text(
            """
            SELECT queue_name, count(*) AS waiting FROM procrastinate_jobs
            WHERE status = 'todo' AND (scheduled_at IS NULL OR scheduled_at <= :now)
            GROUP BY queue_name
            """
        ),
        {"now": ctx.now},
    ).all()
    return Observation(
        sum(row.waiting for row in rows),
        ctx.settings.health_queue_depth_max,
        {"by_queue": {row.queue_name: row.waiting for row in rows}},
    )


def oldest_waiting_job(connection: Connection, ctx: RunContext) -> Observation:
    """Seconds the longest-waiting due job has waited: since its ``scheduled_at``,
    or since it was deferred. Job ids grow with defer time, so the oldest
    unscheduled job is the lowest id (one index probe, not a scan)."""
    since = connection.execute(
        sa.text(
            """
            SELECT least(
                (SELECT min(scheduled_at) FROM procrastinate_jobs
                 WHERE status = 'todo' AND scheduled_at <= :now),
                (SELECT min(e.at) FROM procrastinate_events e
                 WHERE e.type = 'deferred' AND e.job_id = (
                     SELECT min(id) FROM procrastinate_jobs
                     WHERE status = 'todo' AND scheduled_at IS NULL))
            )
            """
        ),
        {"now": ctx.now},
    ).scalar_one()
    waited = 0.0 if since is None else max((ctx.now - since).total_seconds(), 0.0)
    return Observation(round(waited, 3), ctx.settings.health_oldest_job_max_seconds)


def failed_jobs(connection: Connection, ctx: RunContext) -> Observation:
    """Jobs that ended failed (retries exhausted) within the window."""
    window = ctx.settings.health_failed_jobs_window_seconds
    rows = connection.execute(
        sa.text(
            """
            SELECT j.task_name, count(*) AS failed
            FROM procrastinate_events e JOIN procrastinate_jobs j ON j.id = e.job_id
            WHERE e.type = 'failed' AND e.at >= :since
            GROUP BY j.task_name ORDER BY j.task_name
            """
        ),
        {"since": ctx.now - timedelta(seconds=window)},
    ).all()
    return Observation(
        sum(row.failed for row in rows),
        ctx.settings.health_failed_jobs_max,
        {"by_task": {row.task_name: row.failed for row in rows}},
    )


# ``defer_delay`` is ``decided_at - tick_at`` (``now() - next_run_at`` if overdue):
# this keeps the ticks decided since :since, and every overdue schedule.
LATE_TICKS = sa.text(
    """
    SELECT schedule_id, kind, count(*) AS ticks, min(missed_since) AS first_missed,
           max(tick_at) AS last_tick, max(start_delay) AS worst_start_delay
    FROM schedule_late_ticks
    WHERE defer_delay >= CAST(:since AS timestamptz) - tick_at
    GROUP BY schedule_id, kind
    ORDER BY schedule_id, kind
    """
)


def missed_schedules(connection: Connection, ctx: RunContext) -> Observation:
    """Schedules that missed a tick, as the schedule registry records them in the
    ``schedule_late_ticks`` view, with ``agnt.late_after`` set to
    ``health_schedule_grace_seconds`` for this check.

    Failing (the value is the number of such schedules, the limit 0):

    - ``overdue``: an enabled schedule with a job body whose ``next_run_at`` passed
      more than the grace ago and no worker has decided that tick: every worker's
      deferrer is down or stuck. (With every worker down the monitor does not run
      either; the first worker back records the ticks it lost as ``missed``.)
    - ``missed``: ticks recorded skipped as ``missed`` (no worker deferred them in
      time, and the schedule's misfire policy gave them up) and decided within
      ``health_missed_ticks_window_seconds``: their work was not done.

    Reported in the details, not failing:

    - ``paused``: ticks skipped because an operator paused the schedule (intent).
    - ``queued``: ticks a skip schedule dropped because its previous run had not
      started yet (still waiting in the queue). That run does the work; a wait
      long enough to matter fails ``oldest_waiting_job`` or ``queue_depth``.
    - ``not_configured``: ticks skipped because a setting the job needs is unset;
      ``unconfigured_schedules`` is the check that fails on it.
    - ``late``: ticks deferred, or started, more than the grace after the tick, or
      still waiting: the run happened or will, and a long wait fails the queue
      checks; an outage behind a late catch-up was ``overdue`` while it lasted.
    """
    grace = ctx.settings.health_schedule_grace_seconds
    window = timedelta(seconds=ctx.settings.health_missed_ticks_window_seconds)
    # The view's threshold, for this transaction only. JIT off: compiling the
    # per-tick lateral join cost ~0.5 s on 130k ticks; the query runs in ~60 ms.
    connection.execute(
        sa.text(
            "SELECT set_config('agnt.late_after', :late_after, true), "
            "set_config('jit', 'off', true)"
        ),
        {"late_after": f"{grace} seconds"},
    )
    rows = connection.execute(LATE_TICKS, {"since": ctx.now - window}).all()
    details: dict[str, dict[str, Any]] = {
        kind: {}
        for kind in ("overdue", "missed", "paused", "queued", "not_configured", "late")
    }
    for row in rows:
        if row.kind == "overdue":
            details["overdue"][row.schedule_id] = row.last_tick.isoformat()
        elif row.kind == SkipReason.MISSED:
            details["missed"][row.schedule_id] = {
                "ranges": row.ticks,
                "since": row.first_missed.isoformat(),
                "until": row.last_tick.isoformat(),
            }
        elif row.kind == "late":
            worst = row.worst_start_delay
            details["late"][row.schedule_id] = {
                "ticks": row.ticks,
                "worst_start_delay_seconds": worst and worst.total_seconds(),
            }
        else:  # paused, queued, not_configured
            details[row.kind][row.schedule_id] = row.ticks
    failing = details["overdue"].keys() | details["missed"].keys()
    return Observation(len(failing), 0, details)


def unconfigured_schedules(connection: Connection, ctx: RunContext) -> Observation:
    """Enabled schedules whose job is not configured: a setting it needs is unset
    (in this worker's settings), so its ticks are skipped as ``not_configured``.
    Failing while there is any: production must not run with a job silently off.
    The details name the variables each waits for."""
    enabled = connection.execute(
        sa.text(
            "SELECT id FROM schedules WHERE enabled AND removed_at IS NULL ORDER BY id"
        )
    ).scalars()
    waiting = {
        schedule: missing
        for schedule in enabled
        if (missing := missing_settings(schedule, ctx.settings))
    }
    return Observation(len(waiting), 0, {"waiting_for": waiting})


def broken_schedules(connection: Connection, ctx: RunContext) -> Observation:
    """Live schedules no worker can follow (``scheduler.broken``): each is set
    aside and does not tick while every other one ticks on. Failing while there
    is any; the details say why each is broken."""
    rows = connection.execute(
        sa.text("SELECT * FROM schedule_rows WHERE removed_at IS NULL ORDER BY id")
    ).mappings()
    reasons = {
        row["id"]: reason
        for row in rows
        if (reason := broken.problem(dict(row), ctx.now)) is not None
    }
    return Observation(len(reasons), 0, {"broken": reasons})


def send_queue_backlog(connection: Connection, ctx: RunContext) -> Observation:
    """Messages due for delivery and not yet sent."""
    row = connection.execute(
        sa.text(
            """
            SELECT count(*) AS due, min(next_attempt_at) AS oldest FROM send_queue
            WHERE status IN ('PENDING', 'FAILED') AND next_attempt_at <= :now
            """
        ),
        {"now": ctx.now},
    ).one()
    details = {"oldest_due": row.oldest and row.oldest.isoformat()}
    return Observation(row.due, ctx.settings.health_send_backlog_max, details)


def webhook_backlog(connection: Connection, ctx: RunContext) -> Observation:
    """Failed webhook deliveries due for retry on enabled endpoints."""
    row = connection.execute(
        sa.text(
            """
            SELECT count(*) AS due, count(DISTINCT d.endpoint_id) AS endpoints
            FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
            WHERE d.status = 'FAILED' AND d.next_attempt_at <= :now
              AND e.disabled_at IS NULL
            """
        ),
        {"now": ctx.now},
    ).one()
    return Observation(
        row.due, ctx.settings.health_webhook_backlog_max, {"endpoints": row.endpoints}
    )


def dead_letter_growth(connection: Connection, ctx: RunContext) -> Observation:
    """Dead letters written within the window, by source."""
    window = ctx.settings.health_dead_letters_window_seconds
    rows = connection.execute(
        sa.text(
            """
            SELECT source, count(*) AS new FROM dead_letters
            WHERE created_at >= :since GROUP BY source ORDER BY source
            """
        ),
        {"since": ctx.now - timedelta(seconds=window)},
    ).all()
    return Observation(
        sum(row.new for row in rows),
        ctx.settings.health_dead_letters_max,
        {"by_source": {row.source: row.new for row in rows}},
    )


def duplicate_payments(connection: Connection, ctx: RunContext) -> Observation:
    """Stripe objects made twice (payments, invoices, invoice items) not yet made
    right: still to refund, void or delete, left to a person by
    ``AGNT_STRIPE_DUPLICATE_ACTION=report``, or refused by Stripe. Failing while
    there is any: a customer was, or may be, charged twice."""
    rows = connection.execute(
        sa.text(
            """
            SELECT kind, status, count(*) AS objects,
                   array_remove(array_agg(fee_id), NULL) AS fees,
                   array_remove(array_agg(invoice_id), NULL) AS invoices,
                   array_remove(array_agg(usage_batch_id), NULL) AS batches
            FROM duplicate_payments
            WHERE status NOT IN ('REFUNDED', 'VOIDED', 'DELETED')
            GROUP BY kind, status ORDER BY kind, status
            """
        )
    ).all()
    by_status: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    for row in rows:
        by_status[row.status] += row.objects
        by_kind[row.kind] += row.objects
    return Observation(
        sum(row.objects for row in rows),
        0,
        {
            "by_status": dict(by_status),
            "by_kind": dict(by_kind),
            "fee_ids": sorted({fee for row in rows for fee in row.fees}),
            "invoice_ids": sorted({i for row in rows for i in row.invoices}),
            "usage_batch_ids": sorted({b for row in rows for b in row.batches}),
        },
    )


def default_checks() -> dict[str, Check]:
    return {
        "database_latency": database_latency,
        "queue_depth": queue_depth,
        "oldest_waiting_job": oldest_waiting_job,
        "failed_jobs": failed_jobs,
        "missed_schedules": missed_schedules,
        "unconfigured_schedules": unconfigured_schedules,
        "broken_schedules": broken_schedules,
        "send_queue_backlog": send_queue_backlog,
        "webhook_backlog": webhook_backlog,
        "dead_letter_growth": dead_letter_growth,
        "duplicate_payments": duplicate_payments,
    }


ENSURE_STATE = sa.text(
    """
    INSERT INTO health_check_state (check_name, status, since, checked_at)
    VALUES (:name, 'ok', :checked_at, '-infinity')
    ON CONFLICT (check_name) DO NOTHING
    """
)
LOCK_STATE = sa.text(
    "SELECT status, checked_at >= :checked_at AS stale FROM health_check_state "
    "WHERE check_name = :name FOR UPDATE"
)
STORE_RESULT = sa.text(
    """
    INSERT INTO health_check_results (check_name, status, value, details, checked_at)
    VALUES (:name, :status, :value, CAST(:details AS jsonb), :checked_at)
    RETURNING id
    """
)
UPDATE_STATE = sa.text(
    """
    UPDATE health_check_state
    SET status = :status, checked_at = :checked_at, value = :value,
        details = CAST(:details AS jsonb),
        since = CASE WHEN status <> :status THEN :checked_at ELSE since END
    WHERE check_name = :name
    """
)


def _observe(ctx: RunContext, check: Check) -> Observation:
    try:
        with ctx.engine.begin() as connection:
            # A check stuck behind a lock must not stall the monitor.
            timeout_ms = int(ctx.settings.health_check_timeout_seconds * 1000)
            connection.execute(sa.text(f"SET LOCAL statement_timeout = {timeout_ms}"))
            return check(connection, ctx)
    except Exception as error:  # a check that cannot run is failing, not a crash
        logger.exception("health check error", extra=logs.event("health_check_error"))
        # The database's own error reads better in an alert than SQLAlchemy's wrap.
        cause = error.orig if isinstance(error, DBAPIError) and error.orig else error
        first_line = str(cause).strip().splitlines()[0] if str(cause) else ""
        return Observation(None, 0, {"error": f"{type(cause).__name__}: {first_line}"})


# Detail keys worth putting in an alert's one-line text.
HINTS = ("overdue", "missed", "by_task", "by_source", "by_queue")


def _summary(name: str, status: str, seen: Observation) -> str:
    word = "FAILING" if status == "failing" else "RECOVERED"
    if "error" in seen.details:
        return f"[{word}] {name}: {seen.details['error']}"
    text = f"[{word}] {name}: {seen.value} (limit {seen.limit})"
    hints = [
        f"{key} {sorted(seen.details[key])}" for key in HINTS if seen.details.get(key)
    ]
    return "; ".join([text, *hints])


def _store(ctx: RunContext, name: str, seen: Observation) -> bool:
    """Store the result and move the state; queue an alert if the status changed.

    Under the state row's lock: a concurrent run either changed the state first
    (then this one sees no change) or observed earlier (then it is stale and only
    its result is stored). Returns whether an alert was queued.
    """
    status = "ok" if seen.ok else "failing"
    details = {**seen.details, "limit": seen.limit}
    params = {
        "name": name,
        "status": status,
        "value": seen.value,
        "details": json.dumps(details, default=str),
        "checked_at": ctx.now,
    }
    with ctx.engine.begin() as connection:
        connection.execute(ENSURE_STATE, params)
        state = connection.execute(LOCK_STATE, params).one()
        result_id = connection.execute(STORE_RESULT, params).scalar_one()
        if state.stale:
            return False
        connection.execute(UPDATE_STATE, params)
        if state.status == status:
            return False
        data = {
            "check": name,
            "from": state.status,
            "to": status,
            "value": seen.value,
            "details": details,
            "checked_at": ctx.now,
        }
        key = f"health:{name}:{result_id}"
        return alerts.queue(
            connection, key, "health", _summary(name, status, seen), data
        )


# No index leads with checked_at (it follows check_name), so no order to claim in.
PRUNE_RESULTS = RangeChange(
    "health_check_results", "checked_at < :cutoff", order_by=None
)


def run_checks(ctx: RunContext, checks: dict[str, Check]) -> JobResult:
    failing: list[str] = []
    queued = 0
    for name, check in checks.items():
        seen = _observe(ctx, check)
        queued += _store(ctx, name, seen)
        if not seen.ok:
            failing.append(name)
    delivered = alerts.deliver_pending(ctx.engine, ctx.settings)
    retention = timedelta(days=ctx.settings.health_results_retention_days)
    pruned = change_by_range(
        ctx.engine,
        PRUNE_RESULTS,
        {"cutoff": ctx.now - retention},
        ctx.settings.job_chunk_size,
        "health_results_pruned",
    )
    result: JobResult = {
        "checks": len(checks),
        "failing": len(failing),
        "failing_checks": sorted(failing),
        "alerts_queued": queued,
        **delivered,
        "results_pruned": pruned.rows,
    }
    logger.info("health checked", extra=logs.event("health_checked", **result))
    return result


@job("platform_health_monitor")
def platform_health_monitor(ctx: RunContext) -> JobResult:
    """Run every check (database latency, queue depth, oldest waiting job, jobs
    failed in the window, missed schedules, send-queue and webhook backlogs,
    dead-letter growth), store each result, and alert on each change of state.

    A check seen for the first time starts from ok, so a first failing result
    alerts and a first ok one does not. Results older than
    ``health_results_retention_days`` are deleted, in chunks, at the end of a run
    (the state rows keep the current picture). Alerts go through the alerts queue: a
    webhook outage delays them, never drops or repeats them.
    """
    return run_checks(ctx, default_checks())
