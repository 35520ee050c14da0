"""The schedule registry as the database sees it.

``schedules``: one row per schedule any deployment ever declared, upserted by each
worker at start; ``enabled`` is the operator's pause switch, ``removed_at`` marks a
schedule the deployed code no longer declares (rows are never deleted).

``schedule_ticks``: the decision taken for each tick of each schedule, written in the
same transaction as the deferral: ``deferred`` (with its job), or ``skipped`` because
the schedule was paused, because the previous run was still waiting (the queueing
lock), or because the tick was missed (a range of ticks while no worker ran).

``schedule_workers``: the registry each running worker deployed, so ``schedules
check`` can tell that a changed schedule is not yet running everywhere.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import func

from agnt_jobs.models.base import Base

TICK_OUTCOMES = ("deferred", "skipped")
SKIP_REASONS = ("paused", "queued", "misfire")


class ScheduleRecord(Base):
    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    task_name: Mapped[str] = mapped_column(Text)
    cron: Mapped[str] = mapped_column(Text)
    zone: Mapped[str] = mapped_column(Text)
    queue: Mapped[str] = mapped_column(Text)
    misfire_policy: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    # False while the deployed code declares the schedule but registers no job body
    # for it: it is not deferred, and ``schedules check`` fails.
    has_body: Mapped[bool] = mapped_column(Boolean)
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

    __table_args__ = (
        CheckConstraint("misfire_policy IN ('skip', 'catch_up')", name="policy"),
    )


class ScheduleTick(Base):
    __tablename__ = "schedule_ticks"

    schedule_id: Mapped[str] = mapped_column(
        Text, ForeignKey("schedules.id"), primary_key=True
    )
    # For a missed range, the range's last tick; ``missed_since`` is its first.
    tick_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    outcome: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    missed_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # No foreign key: finished jobs are deleted after their retention window, the
    # tick record stays for the history's.
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    worker_id: Mapped[int | None] = mapped_column(BigInteger)
    decided_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        CheckConstraint(
            "(outcome = 'deferred' AND reason IS NULL AND job_id IS NOT NULL) OR "
            "(outcome = 'skipped' AND reason IN ('paused', 'queued', 'misfire', "
            "'not_configured'))",
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
