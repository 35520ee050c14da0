"""``agnt-jobs demo seed``: a realistic, deterministic data set for every table, so a
new user can watch the jobs work and benchmarks have data.

Each domain has one seeding module registered with ``seeders.seeder``; importing
this package registers them all; the order they run in comes from their ``after``.
To add a domain's data, add a module and import it here.
"""

from agnt_jobs.demo import (
    a2a,
    api_keys,
    billing,
    bookings,
    conversations,
    core,
    diary,
    dreaming,
    graph,
    health,
    housekeeping,
    lifecycle,
    messaging,
    watchers,
    webhooks,
    wiki,
)
from agnt_jobs.demo.seeders import NotEmptyError, Plan, Report, point_at, seed

# The tables a demo data set leaves empty, and who writes them: they record the job
# system at work, and fill as soon as a worker runs.
JOB_WRITTEN_TABLES = {
    "job_runs": "the run history: the worker, around each attempt of a job",
    "job_run_actions": "operators' cancels and retries: the run functions",
    "job_run_totals": "finished runs by job and status: the job_runs trigger",
    "job_run_duration_buckets": "finished runs by duration: the job_runs trigger",
    "admin_sessions": "the admin page's sign-ins: the admin view",
    "duplicate_payments": "Stripe objects found made twice, and their undoing: "
    "retry_pending_fees, monthly_invoice, charge_unbilled_usage",
    "schedules": "the schedule registry: each worker, at start",
    "schedule_changes": "who changed which schedule: the schedules trigger",
    "schedule_ticks": "each scheduled tick and what became of it: the deferrer",
    "schedule_passes": "which worker makes the deferrer's pass for a tick: the "
    "deferrer",
    "schedule_workers": "the workers the deferrer knows: each worker",
    "declared_jobs": "the jobs agnt_defer knows: each worker, at start",
    "schedule_faults": "schedules a worker set aside, and why: the deferrer",
    "job_traces": "the trace context a job carries to its run: a deferrer with "
    "traces on",
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
    "point_at",
    "seed",
    "watchers",
    "webhooks",
    "wiki",
]
