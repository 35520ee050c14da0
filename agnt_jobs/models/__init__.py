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
# --- issue 5: billing models ---
# isort: split
from agnt_jobs.models.api_keys import (
    ApiKey,
    ApiKeyDailyUsage,
    ApiKeyUsageEvent,
    UsageBatch,
)
from agnt_jobs.models.billing import FeeCollection, LedgerEntry, MonthlyInvoice

# --- issue 6: lifecycle / housekeeping models ---
# --- issue 7: heavy-job models ---
# isort: split
from agnt_jobs.models.graph import Entity, EntityEdge
from agnt_jobs.models.knowledge import (
    AgentInsight,
    FaqCandidate,
    FaqDraft,
    Interaction,
    Reflection,
)
from agnt_jobs.models.wiki import FleetWikiCursor, FleetWikiPage

__all__ = [
    "AgentInsight",
    "ApiKey",
    "ApiKeyDailyUsage",
    "ApiKeyUsageEvent",
    "Base",
    "Booking",
    "DeadLetter",
    "Entity",
    "EntityEdge",
    "ErrorLog",
    "FaqCandidate",
    "FaqDraft",
    "FeeCollection",
    "FleetDelta",
    "FleetDeltaArchive",
    "FleetWikiCursor",
    "FleetWikiPage",
    "Interaction",
    "JobRun",
    "LedgerEntry",
    "Memory",
    "MonthlyInvoice",
    "OutboundMessage",
    "Reflection",
    "Subscription",
    "UsageBatch",
    "User",
    "Venue",
]
