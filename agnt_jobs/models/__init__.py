"""Typed SQLAlchemy models, one module per domain. Importing this package registers
every table on ``Base.metadata``, which Alembic's autogenerate and check read."""

from agnt_jobs.models.a2a import A2AEnvelope, VenueResponse
from agnt_jobs.models.admin import AdminSession
from agnt_jobs.models.api_keys import (
    ApiKey,
    ApiKeyDailyUsage,
    ApiKeyUsageEvent,
    UsageBatch,
)
from agnt_jobs.models.base import Base
from agnt_jobs.models.billing import (
    FeeCollection,
    LedgerEntry,
    MonthlyInvoice,
    Subscription,
)
from agnt_jobs.models.bookings import Booking
from agnt_jobs.models.diary import CalorieGoal, NutritionEntry, UserSpendEntry
from agnt_jobs.models.engagement import Rating, RatingPrompt, Reminder, UserNudge
from agnt_jobs.models.fleet import FleetDelta, FleetDeltaArchive
from agnt_jobs.models.graph import Entity, EntityEdge
from agnt_jobs.models.health import Alert, HealthCheckResult, HealthCheckState
from agnt_jobs.models.knowledge import (
    AgentInsight,
    FaqCandidate,
    FaqDraft,
    Interaction,
    Reflection,
)
from agnt_jobs.models.lifecycle import B2BSession, ReferralCode
from agnt_jobs.models.memory import Memory
from agnt_jobs.models.messaging import DeadLetter, OutboundMessage
from agnt_jobs.models.ops import ErrorLog
from agnt_jobs.models.people import User
from agnt_jobs.models.runs import (
    JobRun,
    JobRunAction,
    JobRunDurationBucket,
    JobRunTotal,
    JobTrace,
)
from agnt_jobs.models.scheduling import (
    DeclaredJob,
    ScheduleChange,
    ScheduleRecord,
    ScheduleTick,
    ScheduleWorker,
)
from agnt_jobs.models.venues import Venue
from agnt_jobs.models.watchers import PricePoint, PriceWatcher
from agnt_jobs.models.webhooks import WebhookDelivery, WebhookEndpoint
from agnt_jobs.models.wiki import FleetWikiCursor, FleetWikiPage

__all__ = [
    "A2AEnvelope",
    "AdminSession",
    "AgentInsight",
    "Alert",
    "ApiKey",
    "ApiKeyDailyUsage",
    "ApiKeyUsageEvent",
    "B2BSession",
    "Base",
    "Booking",
    "CalorieGoal",
    "DeadLetter",
    "DeclaredJob",
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
    "JobRunAction",
    "JobRunDurationBucket",
    "JobRunTotal",
    "JobTrace",
    "LedgerEntry",
    "Memory",
    "MonthlyInvoice",
    "NutritionEntry",
    "OutboundMessage",
    "PricePoint",
    "PriceWatcher",
    "Rating",
    "RatingPrompt",
    "ReferralCode",
    "Reflection",
    "Reminder",
    "ScheduleChange",
    "ScheduleRecord",
    "ScheduleTick",
    "ScheduleWorker",
    "Subscription",
    "UsageBatch",
    "User",
    "UserNudge",
    "UserSpendEntry",
    "Venue",
    "VenueResponse",
    "WebhookDelivery",
    "WebhookEndpoint",
]
