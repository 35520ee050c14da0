"""Job bodies by domain. Importing this package registers every body in
``agnt_jobs.jobs.registry.BODIES``; add a module here when you add a domain."""

from agnt_jobs.jobs import internal

# --- issue 4: bookings, A2A, messaging jobs ---
# isort: split
from agnt_jobs.jobs import a2a, bookings, digests, messaging, reminders

# --- issue 5: billing and API-key jobs ---
# isort: split
from agnt_jobs.jobs import api_keys, billing, fee_ledger, fees, subscriptions

# --- issue 6: lifecycle, housekeeping, webhooks, watchers, health ---
# isort: split
from agnt_jobs.jobs import health, housekeeping, lifecycle, watchers, webhooks

# --- issue 7: heavy jobs in cron/ ---
# isort: split
from cron import dreaming, faq_compile, graph_builder, wiki_reconcile

__all__ = [
    "a2a",
    "api_keys",
    "billing",
    "bookings",
    "digests",
    "dreaming",
    "faq_compile",
    "fee_ledger",
    "fees",
    "graph_builder",
    "health",
    "housekeeping",
    "internal",
    "lifecycle",
    "messaging",
    "reminders",
    "subscriptions",
    "watchers",
    "webhooks",
    "wiki_reconcile",
]
