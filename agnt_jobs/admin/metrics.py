"""``GET /metrics``: the job system in Prometheus' text format, computed from the
job database at scrape time, so one scrape of any admin server covers every
worker on every machine. The reads are ``db/sql/metrics.sql``: counters kept as
runs end, the schedules table and partial indexes, so a scrape's cost does not
grow with the history or the bookings.

It takes the admin token like every other route: ``Authorization: Bearer`` (what
Prometheus sends with its ``authorization`` setting) or ``X-Internal-Token``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from agnt_jobs.admin.auth import require_token
from agnt_jobs.admin.context import AdminContext, get_context
from agnt_jobs.db import queries
from agnt_jobs.scheduler import broken

SQL = queries.load("metrics.sql")
PATH = "/metrics"


def read(ctx: AdminContext) -> dict[str, list[dict[str, Any]]]:
    """Every query of ``metrics.sql`` in one read-only snapshot: the figures of a
    scrape agree with one another."""
    parameters = {"stalled_seconds": ctx.settings.stalled_worker_seconds}
    with ctx.engine.connect() as connection:
        connection.exec_driver_sql(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
        )
        return {
            name: [
                dict(row._mapping)
                for row in connection.exec_driver_sql(query, parameters)
            ]
            for name, query in SQL.items()
        }


def _seconds(value: Any) -> float:
    return float(value.timestamp()) if value is not None else math.nan


class Snapshot(Collector):
    """The metric families of one read of the database."""

    def __init__(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        self.rows = rows

    def collect(self) -> Iterator[Metric]:
        yield from self._schedules()
        yield from self._runs()
        yield from self._queues()
        yield from self._workers()
        yield from self._backlogs()

    def _schedules(self) -> Iterator[Metric]:
        next_run = GaugeMetricFamily(
            "agnt_schedule_next_run_timestamp_seconds",
            "When the schedule's next tick is due (Unix time); NaN while paused "
            "or before its first pass.",
            labels=["schedule"],
        )
        last_success = GaugeMetricFamily(
            "agnt_schedule_last_success_timestamp_seconds",
            "When the newest successful run of the schedule's job ended (Unix "
            "time); NaN if it never succeeded.",
            labels=["schedule"],
        )
        enabled = GaugeMetricFamily(
            "agnt_schedule_enabled",
            "1 if the schedule ticks, 0 if it is paused.",
            labels=["schedule"],
        )
        overridden = GaugeMetricFamily(
            "agnt_schedule_overridden",
            "1 if an operator's change differs from the code's declaration.",
            labels=["schedule"],
        )
        broken_ = GaugeMetricFamily(
            "agnt_schedule_broken",
            "1 if no worker can follow the schedule (it is set aside and does not "
            "tick; 'agnt-jobs schedules check' says why), else 0.",
            labels=["schedule"],
        )
        now = datetime.now(UTC)
        for row in self.rows["schedules"]:
            labels = [row["id"]]
            is_broken = broken.problem(row, now) is not None
            next_run.add_metric(
                labels, math.nan if is_broken else _seconds(row["next_run_at"])
            )
            last_success.add_metric(labels, _seconds(row["last_success_at"]))
            enabled.add_metric(labels, 1.0 if row["enabled"] else 0.0)
            overridden.add_metric(labels, 1.0 if row["overridden"] else 0.0)
            broken_.add_metric(labels, 1.0 if is_broken else 0.0)
        yield from (next_run, last_success, enabled, overridden, broken_)

    def _runs(self) -> Iterator[Metric]:
        totals = CounterMetricFamily(
            "agnt_job_runs",
            "Runs that ended, by job and status (succeeded, failed, timed_out, "
            "cancelled, stopped, aborted).",
            labels=["job", "status"],
        )
        count: dict[str, int] = defaultdict(int)
        total_seconds: dict[str, float] = defaultdict(float)
        for row in self.rows["run_totals"]:
            totals.add_metric([row["task_name"], row["status"]], row["runs"])
            count[row["task_name"]] += row["runs"]
            total_seconds[row["task_name"]] += row["duration_seconds"]
        yield totals

        durations = HistogramMetricFamily(
            "agnt_job_run_duration_seconds",
            "How long runs took from start to end, by job (every status).",
            labels=["job"],
        )
        buckets: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for row in self.rows["duration_buckets"]:
            buckets[row["task_name"]].append((row["le"], row["runs"]))
        for job in sorted(count):
            cumulative, seen = [], 0
            for le, runs in sorted(buckets[job]):
                if math.isinf(le):
                    continue
                seen += runs
                cumulative.append((_bound(le), seen))
            cumulative.append(("+Inf", count[job]))
            durations.add_metric([job], cumulative, sum_value=total_seconds[job])
        yield durations

    def _queues(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "agnt_queue_jobs",
            "Jobs in the queue now: waiting (todo) and running (doing).",
            labels=["queue", "status"],
        )
        oldest = GaugeMetricFamily(
            "agnt_queue_oldest_waiting_seconds",
            "How long the oldest due waiting job has waited; 0 if none waits.",
            labels=["queue"],
        )
        for row in self.rows["queues"]:
            jobs.add_metric([row["queue_name"], "todo"], row["todo"])
            jobs.add_metric([row["queue_name"], "doing"], row["doing"])
            oldest.add_metric([row["queue_name"]], float(row["oldest_waiting_seconds"]))
        yield from (jobs, oldest)

    def _workers(self) -> Iterator[Metric]:
        (row,) = self.rows["workers"]
        yield GaugeMetricFamily(
            "agnt_workers_alive",
            "Workers whose heartbeat is within AGNT_STALLED_WORKER_SECONDS.",
            value=row["alive"],
        )
        yield GaugeMetricFamily(
            "agnt_workers_silent",
            "Workers still registered whose heartbeat is older than that.",
            value=row["silent"],
        )
        yield GaugeMetricFamily(
            "agnt_workers_starved",
            "Alive workers that cannot get the database connections they ask for "
            "(the server is full); counted in agnt_workers_alive too.",
            value=row["starved"],
        )

    def _backlogs(self) -> Iterator[Metric]:
        (row,) = self.rows["backlogs"]
        send = GaugeMetricFamily(
            "agnt_send_queue_messages",
            "Messages still to deliver: PENDING (not tried) and FAILED (to retry).",
            labels=["status"],
        )
        send.add_metric(["PENDING"], row["send_pending"])
        send.add_metric(["FAILED"], row["send_failed"])
        yield send
        yield GaugeMetricFamily(
            "agnt_send_queue_oldest_due_seconds",
            "How far past due the oldest message still to deliver is; 0 if none.",
            value=float(row["send_oldest_due_seconds"]),
        )
        yield GaugeMetricFamily(
            "agnt_webhook_retry_backlog",
            "Webhook deliveries that failed and wait for a retry.",
            value=row["webhook_failed"],
        )
        a2a = GaugeMetricFamily(
            "agnt_a2a_envelopes",
            "A2A envelopes waiting for dispatch (PENDING) or a retry "
            "(DISPATCH_FAILED).",
            labels=["status"],
        )
        a2a.add_metric(["PENDING"], row["a2a_pending"])
        a2a.add_metric(["DISPATCH_FAILED"], row["a2a_dispatch_failed"])
        yield a2a
        dead = GaugeMetricFamily(
            "agnt_dead_letters_unresolved",
            "Dead letters nobody has resolved yet, by what gave up.",
            labels=["source"],
        )
        for letter in self.rows["dead_letters"]:
            dead.add_metric([letter["source"]], letter["unresolved"])
        yield dead
        duplicates = GaugeMetricFamily(
            "agnt_duplicate_payments",
            "Stripe objects found made twice for one of our rows, by kind (payment, "
            "invoice, invoice_item) and by what became of the extra one: TO_REFUND/"
            "REFUNDED, TO_VOID/VOIDED, TO_DELETE/DELETED, REPORTED (a person makes "
            "it right), REFUSED.",
            labels=["kind", "status"],
        )
        for row in self.rows["duplicate_payments"]:
            duplicates.add_metric([row["kind"], row["status"]], row["payments"])
        yield duplicates


def _bound(le: float) -> str:
    # Prometheus' own spelling of a bucket bound: 0.005, 1.0, 7200.0.
    return repr(float(le))


def exposition(ctx: AdminContext) -> bytes:
    """The text format of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Snapshot(read(ctx)))
    return generate_latest(registry)


router = APIRouter(include_in_schema=False)


@router.get(PATH, dependencies=[Depends(require_token)])
def metrics(ctx: AdminContext = Depends(get_context)) -> Response:
    return Response(exposition(ctx), media_type=CONTENT_TYPE_LATEST)
