"""The one Procrastinate App. Importing it registers every task and every schedule,
so the stock CLI works with nothing else:

    procrastinate --app=agnt_jobs.app.app worker
"""

from __future__ import annotations

# Importing a package of bodies registers each of its bodies.
import agnt_jobs.jobs
import agnt_jobs.scheduler.maintenance  # noqa: F401
import cron  # noqa: F401
from agnt_jobs.db.connector import SettingsConnector
from agnt_jobs.scheduler import deploy, tasks
from agnt_jobs.scheduler.history import record_run
from agnt_jobs.scheduler.worker import AgntApp
from periodic import DECLARED

# Nothing here reads the settings: importing the App must work with bad or missing
# ones (the stock CLI imports it before anything else), so that a bad setting is
# reported as one line when the connector opens or a worker is built.
app = AgntApp(
    connector=SettingsConnector(),
    worker_defaults={
        "worker_middleware": [record_run],
        # Finished jobs stay for the run history and the audit views; the
        # clean_finished_jobs schedule deletes them after the retention window.
        "delete_jobs": "never",
    },
)

tasks.register_all(app)
# The rescuer alone takes no job lock: a worker killed while running it would leave
# that lock held, and only the rescuer could release it. Its SQL claims jobs with
# FOR UPDATE SKIP LOCKED, so two runs at once never handle one job.
app.tasks["rescue_stalled_jobs"].lock = None
deploy.register(app, DECLARED)
