"""How schedules are read (their zone) and what happens to the ticks that passed while
no worker ran."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SchedulingSettings(BaseModel):
    business_timezone: str = Field(
        default="Asia/Makassar",
        description="Zone of 'today', 'this week' and of every schedule (WITA).",
    )
    schedule_misfire_tolerance_seconds: float = Field(
        default=600.0,
        gt=0,
        description="skip schedules: how late the latest tick may still be deferred "
        "(e.g. after a restart); older ticks are recorded as missed.",
    )
    schedule_catch_up_grace_seconds: float = Field(
        default=86400.0,
        gt=0,
        description="catch_up schedules: missed ticks younger than this run after a "
        "restart, oldest first; older ones are recorded missed.",
    )
