"""Job bodies by domain. Importing this package registers every body in
``agnt_jobs.jobs.registry.BODIES``; add a module here when you add a domain."""

from agnt_jobs.jobs import internal

# --- issue 6: lifecycle, housekeeping, webhooks, watchers, health ---
# isort: split
from agnt_jobs.jobs import health, housekeeping, lifecycle, watchers, webhooks

__all__ = [
    "health",
    "housekeeping",
    "internal",
    "lifecycle",
    "watchers",
    "webhooks",
]
