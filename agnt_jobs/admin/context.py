"""What the admin view works on: the App (which schedules and job bodies the deployed
code declares), an engine on the job database, and the settings (the token).

By default these are the process's own: ``agnt_jobs.app.app``, the engine of
``AGNT_DATABASE_URL`` and the environment's settings, so a backend that mounts the
router needs nothing else. A backend (or a test) that has its own can override the
``get_context`` dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agnt_jobs.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from agnt_jobs.scheduler.worker import AgntApp


@dataclass(frozen=True)
class AdminContext:
    app: AgntApp
    engine: Engine
    settings: Settings


def get_context() -> AdminContext:
    """The process's App, engine and settings (looked up per request, all cached)."""
    # Imported late: importing the App registers every job, and the engine may start
    # the embedded database; neither should happen at import of the router.
    from agnt_jobs import db
    from agnt_jobs.app import app

    return AdminContext(app=app, engine=db.admin_engine(), settings=get_settings())
