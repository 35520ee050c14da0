"""The job system's own duties, scheduled like every other job (River-style named
maintenance services): rescue the running jobs of dead workers, and keep the queue
and the history tables to their retention windows. Bodies:
agnt_jobs/scheduler/maintenance.py.
"""

from __future__ import annotations

from agnt_jobs.scheduler.declaration import Schedule

MAINTENANCE: tuple[Schedule, ...] = (
    # Every minute, in the history; every worker also runs the same pass every
    # third of AGNT_STALLED_WORKER_SECONDS, so a killed worker's job (and the lock
    # it holds) is released within that timeout and a third of it.
    Schedule(
        "rescue_stalled_jobs",
        "* * * * *",
        "Retry the running jobs of workers that stopped sending heartbeats.",
    ),
    # Hourly, off the top of the hour where five jobs already start.
    Schedule(
        "clean_finished_jobs",
        "45 * * * *",
        "Delete finished jobs, their events, and run history past their retention.",
    ),
)
