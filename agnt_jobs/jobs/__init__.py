"""Job bodies by domain. Importing this package registers every body in
``agnt_jobs.jobs.registry.BODIES``; add a module here when you add a domain."""

from agnt_jobs.jobs import internal

# --- issue 4: bookings, A2A, messaging jobs ---
# isort: split
from agnt_jobs.jobs import a2a, bookings, digests, messaging, reminders

__all__ = ["a2a", "bookings", "digests", "internal", "messaging", "reminders"]
