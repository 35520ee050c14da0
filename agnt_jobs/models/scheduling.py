"""The schedule registry as the database sees it.

``schedules``: the schedule at runtime. One row per schedule any deployment ever
declared (``declared``), refreshed by each worker at start, plus the schedules an
operator created in SQL for an existing job. Workers follow the effective values
(``cron``, ``zone``, ``misfire_policy``, ``timeout``, ``enabled``), which an operator
may change at any time; ``declared_*`` keep what the code says, and ``overridden``
tells the two apart. ``removed_at`` marks a schedule the deployed code no longer
declares (declared rows are never deleted). Triggers (docs/schema.sql) refuse a bad
value, write ``schedule_changes`` and NOTIFY the workers.

``schedule_changes``: every change of a schedule, from SQL, the CLI, the admin view
or a deploy, with who made it and the old and new values of what changed.

``schedule_ticks``: the decision taken for each tick of each schedule, written in the
same transaction as the deferral: ``deferred`` (with its run's id in ``job_id``), or
``skipped`` with a reason: ``paused``, ``queued`` (the previous run was still
waiting: the queueing lock), ``missed`` (a range of ticks no worker decided in time)
or ``not_configured``. The words are docs/glossary.md's.

``schedule_workers``: the schedules each running worker deployed, so ``schedules
check`` can tell that a changed schedule is not yet running everywhere.

``declared_jobs``: every job the deployed code can run, with its queue and locks,
which ``agnt_defer`` reads to defer a job from any transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Interval,
    Text,
    false,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import func

from agnt_jobs.models.base import Base


class TickOutcome(StrEnum):
    """How a tick was decided, as ``schedule_ticks.outcome`` stores it."""

    DEFERRED = "deferred"  # a run was deferred for it (``job_id``)
    SKIPPED = "skipped"  # no run: see the ``SkipReason``


class SkipReason(StrEnum):
    """Why a tick was skipped, as ``schedule_ticks.reason`` stores it."""

    PAUSED = "paused"  # the schedule was paused
    QUEUED = "queued"  # a run of the job was still waiting (its queueing lock)
    MISSED = "missed"  # no worker decided it in time; the misfire policy gave it up
    NOT_CONFIGURED = "not_configured"  # a setting the job needs is unset


class Undecided(StrEnum):
    """What ``agnt_defer_schedule_tick`` returns for a tick it did not decide
    (nothing is recorded)."""

    CHANGED = "changed"  # the schedule's row changed since the worker planned
    ALREADY_DECIDED = "already_decided"  # this tick or a later one was decided
    HELD = "held"  # a catch-up schedule's previous run waits: try again later


def _in(values: type[StrEnum]) -> str:
    return ", ".join(f"'{value}'" for value in values)


class ScheduleRecord(Base):
    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    # The job it runs: its own id for a declared schedule.
    task_name: Mapped[str] = mapped_column(Text)
    cron: Mapped[str] = mapped_column(Text)
    zone: Mapped[str] = mapped_column(Text, server_default=text("'Asia/Makassar'"))
    queue: Mapped[str] = mapped_column(Text, server_default=text("'default'"))
    misfire_policy: Mapped[str] = mapped_column(Text, server_default=text("'skip'"))
    # How long a run may take before it is stopped at its next checkpoint.
    timeout: Mapped[timedelta] = mapped_column(
        Interval, server_default=text("'01:00:00'")
    )
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    # False while the deployed code declares the schedule but registers no job body
    # for it: it is not deferred, and ``schedules check`` fails.
    has_body: Mapped[bool] = mapped_column(Boolean, server_default=true())
    declared: Mapped[bool] = mapped_column(Boolean, server_default=false())
    declared_cron: Mapped[str | None] = mapped_column(Text)
    declared_zone: Mapped[str | None] = mapped_column(Text)
    declared_misfire_policy: Mapped[str | None] = mapped_column(Text)
    declared_timeout: Mapped[timedelta | None] = mapped_column(Interval)
    overridden: Mapped[bool] = mapped_column(
        Boolean,
        Computed(
            "declared AND (cron, zone, misfire_policy, timeout) IS DISTINCT FROM "
            "(declared_cron, declared_zone, declared_misfire_policy, "
            "declared_timeout)",
            persisted=True,
        ),
    )
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=true())
    first_seen: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_seen: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Written by the workers as ticks pass, so SQL can see when each runs next.
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the cron, zone or job last changed (the schedules trigger sets it):
    # ticks before it never run.
    cron_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("misfire_policy IN ('skip', 'catch_up')", name="policy"),
        CheckConstraint("timeout > interval '0'", name="timeout"),
    )


class ScheduleFault(Base):
    """Why a worker set a schedule aside (it cannot follow its row): the pages,
    /metrics, the health monitor and ``schedules check`` show it. Lifted when a
    worker follows the schedule again, or its row changes."""

    __tablename__ = "schedule_faults"

    schedule_id: Mapped[str] = mapped_column(Text, primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    noticed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    worker_id: Mapped[int | None] = mapped_column(BigInteger)


class ScheduleTick(Base):
    __tablename__ = "schedule_ticks"

    schedule_id: Mapped[str] = mapped_column(
        Text, ForeignKey("schedules.id", ondelete="CASCADE"), primary_key=True
    )
    # For a missed range, the range's last tick; ``missed_since`` is its first.
    tick_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    outcome: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    missed_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The run deferred for the tick (Procrastinate's job id). No foreign key:
    # finished jobs are deleted after their retention window, the tick record
    # stays for the history's.
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    worker_id: Mapped[int | None] = mapped_column(BigInteger)
    decided_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        CheckConstraint(
            f"(outcome = '{TickOutcome.DEFERRED}' AND reason IS NULL "
            "AND job_id IS NOT NULL) OR "
            f"(outcome = '{TickOutcome.SKIPPED}' AND reason IN ({_in(SkipReason)}))",
            name="outcome",
        ),
        Index("ix_schedule_ticks_job_id", "job_id"),
        Index("ix_schedule_ticks_tick_at", "tick_at"),
    )


class ScheduleWorker(Base):
    __tablename__ = "schedule_workers"

    # procrastinate_workers.id; no foreign key, as Procrastinate deletes its rows
    # itself (the retention job removes ours once theirs is gone).
    worker_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False
    )
    hostname: Mapped[str] = mapped_column(Text)
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # {schedule id: Schedule.signature()} of what this worker defers.
    deployed: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # Set by the heartbeat while the worker's pool cannot get the connections it
    # asks for (a full server): since when, and the server's reason.
    starved_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    starved_reason: Mapped[str | None] = mapped_column(Text)


class ScheduleChange(Base):
    __tablename__ = "schedule_changes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # No foreign key: the record of a deleted schedule stays.
    schedule_id: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("clock_timestamp()")
    )
    # The database role and application_name, or who the CLI or admin names.
    changed_by: Mapped[str] = mapped_column(Text)
    # sql, cli, admin or deploy.
    source: Mapped[str] = mapped_column(Text)
    # The changed columns before and after (the whole row for an insert or delete).
    old: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    new: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (
        Index(
            "ix_schedule_changes_schedule_id_changed_at", "schedule_id", "changed_at"
        ),
    )


class DeclaredJob(Base):
    """A job the deployed code can run, as every worker declares it at start, so
    that ``agnt_defer`` checks a job name and its arguments and puts
    the run on its queue with its locks, from any transaction."""

    __tablename__ = "declared_jobs"

    # The job's name, its task's name (``booking_reminders``).
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    queue: Mapped[str] = mapped_column(Text)
    # Its task's lock (one run at a time) and queueing lock (one waiting).
    lock: Mapped[str | None] = mapped_column(Text)
    queueing_lock: Mapped[str | None] = mapped_column(Text)
    # The names of the arguments its task takes (every job: ``timestamp``, its tick).
    arguments: Mapped[list[str]] = mapped_column(
        ARRAY(Text), server_default=text("'{}'")
    )
    first_seen: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_seen: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # The deployed code no longer has it: agnt_defer refuses it.
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
