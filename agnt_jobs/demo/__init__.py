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
# isort: split
from agnt_jobs.demo import conversations, dreaming, graph, wiki

# The tables a demo data set leaves empty, and who writes them: they record the job
# system at work, and fill as soon as a worker runs.
JOB_WRITTEN_TABLES = {
    "job_runs": "the run history: the worker, around each attempt of a job",
    "schedules": "the schedule registry: each worker, at start",
    "schedule_ticks": "each scheduled tick and what became of it: the deferrer",
    "schedule_workers": "the workers the deferrer knows: each worker",
    "procrastinate_jobs": "the queue: Procrastinate, as jobs are deferred",
    "procrastinate_events": "job status changes: Procrastinate",
    "procrastinate_periodic_defers": "periodic deduplication: Procrastinate",
    "procrastinate_workers": "live workers: Procrastinate",
}

__all__ = [
    "JOB_WRITTEN_TABLES",
    "NotEmptyError",
    "Plan",
    "Report",
    "a2a",
    "api_keys",
    "billing",
    "bookings",
    "conversations",
    "core",
    "diary",
    "dreaming",
    "graph",
    "health",
    "housekeeping",
    "lifecycle",
    "messaging",
    "seed",
    "watchers",
    "webhooks",
    "wiki",
]
