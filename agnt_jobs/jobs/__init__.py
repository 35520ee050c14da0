"""Job bodies by domain. Importing this package registers every body in
``agnt_jobs.jobs.registry.BODIES``; add a module here when you add a domain."""

from agnt_jobs.jobs import internal

# --- issue 6: lifecycle, housekeeping, webhooks, watchers, health ---
# isort: split
from agnt_jobs.jobs import housekeeping, lifecycle, watchers, webhooks

__all__ = [
    "housekeeping",
    "internal",
    "lifecycle",
    "watchers",
    "webhooks",
]
