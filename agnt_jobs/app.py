"""The one Procrastinate App. Importing it registers every task (and, through the
schedule registry, every schedule), so the stock CLI works with nothing else:

    procrastinate --app=agnt_jobs.app.app worker
"""

from __future__ import annotations

from procrastinate import App

import agnt_jobs.jobs  # noqa: F401  (registers every job body)
from agnt_jobs import tasks
from agnt_jobs.connector import SettingsConnector
from agnt_jobs.history import record_run
from agnt_jobs.settings import get_settings

_settings = get_settings()

app = App(
    connector=SettingsConnector(),
    worker_defaults={
        "concurrency": _settings.worker_concurrency,
        "shutdown_graceful_timeout": _settings.shutdown_graceful_timeout,
        "worker_middleware": [record_run],
        # Finished jobs stay for the run history and the audit views; a
        # maintenance job deletes them after the retention window.
        "delete_jobs": "never",
    },
)

tasks.register_all(app)
