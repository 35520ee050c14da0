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
# isort: split
from agnt_jobs.models.scheduling import ScheduleRecord, ScheduleTick, ScheduleWorker

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
# isort: split
from agnt_jobs.models.health import Alert, HealthCheckResult, HealthCheckState
from agnt_jobs.models.lifecycle import B2BSession, ReferralCode
from agnt_jobs.models.watchers import PricePoint, PriceWatcher
from agnt_jobs.models.webhooks import WebhookDelivery, WebhookEndpoint

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
    "Alert",
    "ApiKey",
    "ApiKeyDailyUsage",
    "ApiKeyUsageEvent",
    "B2BSession",
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
    "HealthCheckResult",
    "HealthCheckState",
    "Interaction",
    "JobRun",
    "LedgerEntry",
    "Memory",
    "MonthlyInvoice",
    "OutboundMessage",
    "PricePoint",
    "PriceWatcher",
    "ReferralCode",
    "Reflection",
    "ScheduleRecord",
    "ScheduleTick",
    "ScheduleWorker",
    "Subscription",
    "UsageBatch",
    "User",
    "Venue",
    "WebhookDelivery",
    "WebhookEndpoint",
]
