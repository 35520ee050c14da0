"""Typed SQLAlchemy models, one module per domain. Importing this package registers
every table on ``Base.metadata``, which Alembic's autogenerate and check read."""

from agnt_jobs.models.base import Base
from agnt_jobs.models.billing import Subscription
from agnt_jobs.models.bookings import Booking
from agnt_jobs.models.fleet import FleetDelta, FleetDeltaArchive
from agnt_jobs.models.memory import Memory
from agnt_jobs.models.messaging import DeadLetter, OutboundMessage
from agnt_jobs.models.ops import ErrorLog
from agnt_jobs.models.people import User
from agnt_jobs.models.runs import JobRun
from agnt_jobs.models.venues import Venue

# --- issue 3: scheduling models ---
# --- issue 4: booking / A2A / messaging models ---
# isort: split
from agnt_jobs.models.a2a import A2AEnvelope, VenueResponse
from agnt_jobs.models.diary import CalorieGoal, NutritionEntry, UserSpendEntry
from agnt_jobs.models.engagement import Rating, RatingPrompt, Reminder, UserNudge

# --- issue 5: billing models ---
# --- issue 6: lifecycle / housekeeping models ---
# --- issue 7: heavy-job models ---

__all__ = [
    "A2AEnvelope",
    "Base",
    "Booking",
    "CalorieGoal",
    "DeadLetter",
    "ErrorLog",
    "FleetDelta",
    "FleetDeltaArchive",
    "JobRun",
    "Memory",
    "NutritionEntry",
    "OutboundMessage",
    "Rating",
    "RatingPrompt",
    "Reminder",
    "Subscription",
    "User",
    "UserNudge",
    "UserSpendEntry",
    "Venue",
    "VenueResponse",
]
