"""Column helpers shared by the domain models: timestamps are always ``timestamptz``,
and a status is text constrained to its allowed values by a CHECK, which Alembic
diffs reliably (unlike native enums) and a migration can widen in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, overload

from sqlalchemy import CheckConstraint, DateTime, Identity
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import func


def defaults_to_now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


@overload
def timestamp(nullable: Literal[True] = True) -> Mapped[datetime | None]: ...
@overload
def timestamp(nullable: Literal[False]) -> Mapped[datetime]: ...
def timestamp(nullable: bool = True) -> Mapped[datetime | None] | Mapped[datetime]:
    """A ``timestamptz`` column, typed ``datetime`` when it is NOT NULL."""
    return mapped_column(DateTime(timezone=True), nullable=nullable)


def identity() -> Identity:
    return Identity(always=False)


def one_of(
    column: str, values: Sequence[str], name: str | None = None
) -> CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name or column)
