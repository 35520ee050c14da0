"""``agnt-jobs demo seed``: a realistic, deterministic data set for every table, so a
new user can watch the jobs work and benchmarks have data.

Each domain has one seeding module registered with ``registry.seeder``; importing
this package registers them all. To add a domain's data, add a module and import it
under your marker below.
"""

from agnt_jobs.demo.registry import NotEmptyError, Plan, Report, seed

# --- issue 4: core, bookings, A2A, messaging and diary data ---
# isort: split
from agnt_jobs.demo import a2a, bookings, core, diary, messaging

# --- issue 5: billing data ---
# isort: split
from agnt_jobs.demo import api_keys, billing

# --- issue 6: lifecycle / housekeeping data ---
# isort: split
from agnt_jobs.demo import health, housekeeping, lifecycle, watchers, webhooks

# --- issue 7: heavy-job data ---

__all__ = [
    "NotEmptyError",
    "Plan",
    "Report",
    "a2a",
    "api_keys",
    "billing",
    "bookings",
    "core",
    "diary",
    "health",
    "housekeeping",
    "lifecycle",
    "messaging",
    "seed",
    "watchers",
    "webhooks",
]
