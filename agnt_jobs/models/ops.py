"""The platform's error log: disagreements and failures that a job reports for a
person to look at rather than guess about (reconciliations write here)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, identity, one_of

ERROR_LEVELS = ("WARNING", "ERROR", "CRITICAL")


class ErrorLog(Base):
    __tablename__ = "error_log"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    created_at: Mapped[datetime] = defaults_to_now()
    source: Mapped[str] = mapped_column(Text)
    level: Mapped[str] = mapped_column(Text, server_default="ERROR")
    message: Mapped[str] = mapped_column(Text)
    context: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (
        one_of("level", ERROR_LEVELS),
        Index("ix_error_log_created_at", "created_at"),
    )
