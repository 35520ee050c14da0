"""Job bodies by domain. Importing this package registers every body in
``agnt_jobs.jobs.registry.BODIES``; add a module here when you add a domain."""

from agnt_jobs.jobs import internal

# --- issue 5: billing and API-key jobs ---
# isort: split
from agnt_jobs.jobs import api_keys, billing, fee_ledger, fees, subscriptions

__all__ = [
    "api_keys",
    "billing",
    "fee_ledger",
    "fees",
    "internal",
    "subscriptions",
]
