"""Job bodies by domain. Importing this package registers every body in
``agnt_jobs.scheduler.bodies.BODIES``; add a module here when you add a domain."""

from agnt_jobs.jobs import (
    a2a,
    api_keys,
    billing,
    bookings,
    digests,
    fee_ledger,
    fees,
    health,
    housekeeping,
    lifecycle,
    messaging,
    reminders,
    subscriptions,
    watchers,
    webhooks,
)

__all__ = [
    "a2a",
    "api_keys",
    "billing",
    "bookings",
    "digests",
    "fee_ledger",
    "fees",
    "health",
    "housekeeping",
    "lifecycle",
    "messaging",
    "reminders",
    "subscriptions",
    "watchers",
    "webhooks",
]
