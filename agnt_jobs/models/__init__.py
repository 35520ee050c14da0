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
# --- issue 6: lifecycle / housekeeping models ---
# isort: split
from agnt_jobs.models.health import Alert, HealthCheckResult, HealthCheckState
from agnt_jobs.models.lifecycle import B2BSession, ReferralCode
from agnt_jobs.models.watchers import PricePoint, PriceWatcher
from agnt_jobs.models.webhooks import WebhookDelivery, WebhookEndpoint

# --- issue 7: heavy-job models ---

__all__ = [
    "Alert",
    "B2BSession",
    "Base",
    "Booking",
    "DeadLetter",
    "ErrorLog",
    "FleetDelta",
    "FleetDeltaArchive",
    "HealthCheckResult",
    "HealthCheckState",
    "JobRun",
    "Memory",
    "OutboundMessage",
    "PricePoint",
    "PriceWatcher",
    "ReferralCode",
    "Subscription",
    "User",
    "Venue",
    "WebhookDelivery",
    "WebhookEndpoint",
]
