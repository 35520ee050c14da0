"""Run history: one row per attempt of a job, written by the worker middleware.

Procrastinate's own tables say what was queued and when its status changed; this
table adds what they cannot: the job's returned summary, the error text, and which
worker ran it. It is kept apart from ``procrastinate_jobs`` (no foreign key) so the
job retention can delete finished jobs while the history stays for its own window.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    Identity,
    Index,
    Integer,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import func

from agnt_jobs.models.base import Base

# stopped: at a checkpoint by a shutdown (retried); timed_out: past its schedule's
# timeout; cancelled: by an operator; aborted: by Procrastinate's own abort.
RUN_STATUSES = (
    "running",
    "succeeded",
    "failed",
    "aborted",
    "stopped",
    "timed_out",
    "cancelled",
)


class JobRun(Base):
    __tablename__ = "job_runs"

    job_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_name: Mapped[str] = mapped_column(Text)
    queue_name: Mapped[str] = mapped_column(Text)
    worker_name: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text, server_default="running")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'aborted', 'stopped', "
            "'timed_out', 'cancelled')",
            name="status",
        ),
        Index("ix_job_runs_task_name_started_at", "task_name", "started_at"),
        Index("ix_job_runs_started_at", "started_at"),
    )


class JobRunAction(Base):
    """An operator's request on a run: cancel it, retry it (``new_job_id`` is the
    retry), or a run deferred for a later time. Written by the SQL functions
    ``agnt_cancel_run`` and ``agnt_retry_run(s)``, whoever calls them."""

    __tablename__ = "job_run_actions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    job_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    new_job_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("action IN ('cancel', 'retry', 'run_at')", name="action"),
        Index("ix_job_run_actions_job_id", "job_id"),
    )


class JobRunTotal(Base):
    """How many runs of a job ended with a status, ever (``GET /metrics``'s
    counters). Written by the ``job_runs`` trigger ``agnt_job_runs_count`` as each run
    ends; the history's retention does not take anything back."""

    __tablename__ = "job_run_totals"

    task_name: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[str] = mapped_column(Text, primary_key=True)
    runs: Mapped[int] = mapped_column(BigInteger)
    # The sum of those runs' durations.
    duration_seconds: Mapped[float] = mapped_column(Double)
    last_finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobRunDurationBucket(Base):
    """How many runs of a job, of any status, took at most ``le`` seconds and more
    than the bound below (``agnt_run_duration_bounds()``; the last is Infinity).
    Written with ``job_run_totals``."""

    __tablename__ = "job_run_duration_buckets"

    task_name: Mapped[str] = mapped_column(Text, primary_key=True)
    le: Mapped[float] = mapped_column(Double, primary_key=True)
    runs: Mapped[int] = mapped_column(BigInteger)


class JobTrace(Base):
    """The trace context a job carries from whoever deferred it to its run: the
    deferrer's W3C traceparent, written in the statement that defers the job
    (only with traces on). The row goes with the job's row in
    ``procrastinate_jobs`` (a foreign key, declared in SQL: docs/schema.sql)."""

    __tablename__ = "job_traces"

    job_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False
    )
    traceparent: Mapped[str] = mapped_column(Text)
