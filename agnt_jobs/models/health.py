"""The health monitor's memory and the alerts queue.

Each run of platform_health_monitor stores one result per check; the current state of
each check is one row, changed only under its row lock, so an alert is queued exactly
when a state changes. Alerts (health changes, the weekly DLQ report) are rows of
``alerts`` under an idempotency key, delivered to the alerts webhook until sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Double, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, identity, one_of, timestamp

CHECK_STATUSES = ("ok", "failing")


class HealthCheckResult(Base):
    __tablename__ = "health_check_results"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    check_name: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Double)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    checked_at: Mapped[datetime] = defaults_to_now()

    __table_args__ = (
        one_of("status", CHECK_STATUSES),
        Index(
            "ix_health_check_results_check_name_checked_at", "check_name", "checked_at"
        ),
    )


class HealthCheckState(Base):
    """The current status of one check and since when."""

    __tablename__ = "health_check_state"

    check_name: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime] = defaults_to_now()
    checked_at: Mapped[datetime] = timestamp(nullable=False)
    value: Mapped[float | None] = mapped_column(Double)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (one_of("status", CHECK_STATUSES),)


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    # "health:database_latency:1234" (the result that changed the state),
    # "dlq_weekly:2026-W47": queued once, sent once.
    idempotency_key: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = defaults_to_now()
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    claimed_until: Mapped[datetime | None] = timestamp()
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        Index("ix_alerts_unsent", "id", postgresql_where=text("sent_at IS NULL")),
    )
