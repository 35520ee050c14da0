"""The admin view: the schedule registry, run history and manual control over HTTP,
for scripts (JSON, ``X-Internal-Token``) and for people (a server-rendered page).

Mount ``router`` (and ``metrics_router``, ``GET /metrics``) in the platform's
FastAPI backend, or serve ``create_app()`` alone (``agnt-jobs admin``). Both read
the job database; the view's only state is its sign-ins (``admin_sessions``).
"""

from agnt_jobs.admin.app import create_app, router
from agnt_jobs.admin.context import AdminContext, get_context
from agnt_jobs.admin.metrics import router as metrics_router

__all__ = ["AdminContext", "create_app", "get_context", "metrics_router", "router"]
