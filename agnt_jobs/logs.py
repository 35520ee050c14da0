"""Structured logging: one JSON object per line, filterable by ``action``, job and run,
or, at a terminal, one short line for a person.

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
lines keep its own top-level keys (``job``, ``worker``...). A line logged with an
exception carries it as one line under ``error``; its traceback (``exception``) is
written at ERROR only. At a terminal the lines are short text for a person instead
(``AGNT_LOG_FORMAT``: auto, json, text). docs/logging.md is the reader's version of
this.
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


# Procrastinate logs a failed attempt that will be retried at INFO, with its
# traceback: a retried failure is worth a look, not a page, and not a traceback.
_RAISED_TO_WARNING = {"job_error_retry"}


def presented_level(record: logging.LogRecord) -> int:
    """The level a line is written at: the record's, or WARNING for a retried
    failure."""
    if getattr(record, "action", None) in _RAISED_TO_WARNING:
        return max(record.levelno, logging.WARNING)
    return record.levelno


def _error(record: logging.LogRecord) -> tuple[str | None, bool]:
    """The exception of a record as one line, and whether its traceback is
    written: only at ERROR and above, for the unexpected. A run stopped at a
    checkpoint, a retried failure, a lost database are expected: one line each."""
    if not record.exc_info or record.exc_info[1] is None:
        return None, False
    error = record.exc_info[1]
    text = str(error).strip().splitlines()
    summary = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    return summary, presented_level(record) >= logging.ERROR


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": logging.getLevelName(presented_level(record)),
            "logger": record.name,
            "message": record.getMessage(),
        }
        job = _current_job.get()
        if job is not None:
            entry["job"] = job
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        error, traceback = _error(record)
        if error is not None:
            entry["error"] = error
        if traceback and record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """A short line for a person at a terminal: local time, level, the job
    (``task#id``), the message, and the event's fields as ``key=value``::

        09:41:03 INFO  monthly_invoice#812 monthly invoices planned=5 created=5

    A traceback follows on its own lines, at ERROR only, as in JSON."""

    VALUE_LIMIT = 80

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        parts = [when, f"{logging.getLevelName(presented_level(record)):<5}"]
        job = _job_label(record)
        if job:
            parts.append(job)
        parts.append(record.getMessage())
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            parts.extend(f"{key}={self._value(value)}" for key, value in fields.items())
        error, traceback = _error(record)
        if error is not None and error not in record.getMessage():
            parts.append(f"error={self._value(error)}")
        line = " ".join(parts)
        if traceback and record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line

    def _value(self, value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > self.VALUE_LIMIT:
            text = text[: self.VALUE_LIMIT - 1] + "…"
        return json.dumps(text) if (" " in text or not text) else text


def _job_label(record: logging.LogRecord) -> str | None:
    job = _current_job.get()
    if job is None:
        # Procrastinate's lines about a job carry it whole.
        procrastinate_job = getattr(record, "job", None)
        if isinstance(procrastinate_job, dict) and "task_name" in procrastinate_job:
            job = {
                "id": procrastinate_job.get("id"),
                "task": procrastinate_job["task_name"],
            }
    if job is None:
        return None
    return f"{job['task']}#{job['id']}" if job.get("id") is not None else job["task"]


FORMATS = ("auto", "json", "text")


def resolved_format(fmt: str, stream: Any = None) -> str:
    """``auto``: text for a person at a terminal, JSON for anything else (a file,
    a pipe, a container's log)."""
    if fmt != "auto":
        return fmt
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "text" if callable(isatty) and isatty() else "json"


def configure(level: str | int = "INFO", fmt: str = "auto") -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter() if resolved_format(fmt) == "json" else TextFormatter()
    handler.setFormatter(formatter)
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic and pgserver narrate every step at INFO, and Procrastinate says at INFO
    # that it loads its own builtin tasks at every import of the App; their warnings
    # are what matter.
    for chatty in ("alembic", "pgserver", "procrastinate.blueprints"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))


_HANDLER_NAME = "agnt-jobs"


def configure_stock_cli(level: str, fmt: str) -> None:
    """In a process the stock ``procrastinate`` CLI started, replace the plain
    text logging it set up (``logging.basicConfig``) with ours, so that
    ``procrastinate worker`` writes the lines ``agnt-jobs worker`` writes. The level
    is the more verbose of its ``--log-level`` and ``AGNT_LOG_LEVEL``. Anywhere
    else (``agnt-jobs``, a backend running a worker) nothing changes: logging
    there is its owner's."""
    if not _started_by_stock_cli():
        return
    root = logging.getLogger()
    if any(handler.get_name() == _HANDLER_NAME for handler in root.handlers):
        return
    configure(min(root.level or logging.INFO, logging.getLevelName(level)), fmt)


def _started_by_stock_cli() -> bool:
    cli = sys.modules.get("procrastinate.cli")
    main = sys.modules.get("__main__")
    if cli is None or main is None:
        return False
    # The ``procrastinate`` script imports ``main``; ``python -m procrastinate``
    # imports the module.
    return getattr(main, "main", None) is getattr(cli, "main", object()) or (
        getattr(main, "cli", None) is cli
    )
