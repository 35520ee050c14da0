"""Structured logging: one JSON object per line, filterable by ``action``, job and run.

Every structured log call of ours passes ``extra=logs.event("action", **fields)``.
The fields travel nested under one key, ``fields``, so no field name (a job's
``created`` count, a worker's ``name``) can collide with an attribute of
``logging.LogRecord``, which would make ``logging`` raise at the call site. A line
looks like::

    {"ts": "...", "level": "INFO", "logger": "agnt_jobs.jobs.billing",
     "message": "monthly invoices", "action": "monthly_invoice",
     "job": {"id": 812, "task": "monthly_invoice"},
     "fields": {"planned": 5, "created": 5, "paid": 4}}

``job`` is present on every line logged while a job body runs. Procrastinate's own
lines keep its own top-level keys (``job``, ``worker``...). ``AGNT_LOG_FORMAT=text``
gives a human format instead. docs/logging.md is the reader's version of this.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

# The job whose body the current thread runs, for the ``job`` key of its lines.
_current_job: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "agnt_current_job", default=None
)


def event(action: str, /, **fields: Any) -> dict[str, Any]:
    """The ``extra`` of a structured log call: its ``action`` and its ``fields``.

    ``action`` is positional-only so that a field may itself be named ``action``.
    """
    return {"action": action, "fields": fields}


@contextlib.contextmanager
def job_context(job_id: int | None, task: str) -> Iterator[None]:
    """Tag every line logged inside the block with the job it belongs to."""
    token = _current_job.set({"id": job_id, "task": task})
    try:
        yield
    finally:
        _current_job.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job = _current_job.get()
        if job is not None:
            entry["job"] = job
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic and pgserver narrate every step at INFO; their warnings are what matter.
    for chatty in ("alembic", "pgserver"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
