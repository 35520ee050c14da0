"""The windows of the booking, A2A, reminder and messaging jobs, and of the B2B
onboarding sessions."""

from __future__ import annotations

from pydantic import BaseModel, Field


class BookingSettings(BaseModel):
    reminder_lead_minutes: int = Field(
        default=120, ge=0, description="A reminder is due this long before the slot."
    )
    reminder_horizon_hours: int = Field(
        default=24, ge=1, description="Reminders are created for slots this close."
    )
    re_engagement_idle_days: int = Field(
        default=14, ge=1, description="Users inactive this long get a nudge."
    )
    re_engagement_cooldown_days: int = Field(
        default=28, ge=1, description="No second nudge within this many days."
    )
    rating_prompt_min_age_hours: float = Field(
        default=2.0, ge=0, description="Prompt a rating this long after completion..."
    )
    rating_prompt_max_age_hours: float = Field(
        default=48.0, gt=0, description="...and no later than this."
    )
    auto_confirm_after_minutes: int = Field(
        default=120,
        ge=1,
        description="A booking the venue received but did not answer for this long "
        "is confirmed automatically.",
    )
    stuck_after_minutes: int = Field(
        default=15,
        ge=1,
        description="A booking between A2A states this long is recovered.",
    )
    orphaned_booking_after_minutes: int = Field(
        default=60,
        ge=1,
        description="A waiting booking with no envelope for this long is cancelled "
        "(recovery had its chance).",
    )
    orphaned_response_grace_minutes: int = Field(
        default=15,
        ge=0,
        description="A venue response this old with no live booking is closed.",
    )
    a2a_envelope_ttl_minutes: int = Field(
        default=60,
        ge=1,
        description="TTL of an envelope a job creates: PENDING past it is EXPIRED.",
    )
    b2b_abandon_after_hours: float = Field(
        default=48.0,
        gt=0,
        description="Idle hours before an ACTIVE session is ABANDONED.",
    )
