"""The structured log line: its shape, and that no field can break it."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from agnt_jobs import logs

ROOT = Path(__file__).resolve().parents[2]
RECORD_ATTRIBUTES = [*sorted(logging.makeLogRecord({}).__dict__), "message", "asctime"]
LOGGER = logging.getLogger("agnt_jobs.test_logs")


@contextlib.contextmanager
def json_lines() -> Iterator[list[dict]]:
    """The lines our formatter writes for ``agnt_jobs.test_logs`` inside the block,
    parsed as JSON when the block ends."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.DEBUG)
    parsed: list[dict] = []
    try:
        yield parsed
    finally:
        LOGGER.removeHandler(handler)
    parsed.extend(json.loads(line) for line in stream.getvalue().splitlines())


def test_fields_named_like_record_attributes_are_logged_not_refused() -> None:
    colliding = dict.fromkeys(RECORD_ATTRIBUTES, 1) | {"action": "inner"}
    with json_lines() as lines:
        LOGGER.info("result", extra=logs.event("monthly_invoice", **colliding))
    [line] = lines
    assert line["action"] == "monthly_invoice"
    assert line["message"] == "result"
    assert line["level"] == "INFO"
    assert line["fields"] == colliding


def test_a_plain_dict_extra_with_a_record_attribute_is_what_logging_refuses() -> None:
    """The failure ``logs.event`` rules out, shown once so the test above means
    something."""
    with pytest.raises(KeyError, match="Attempt to overwrite 'created'"):
        LOGGER.info("x", extra={"created": 1})


def test_lines_logged_while_a_job_body_runs_name_the_job() -> None:
    with json_lines() as lines:
        with logs.job_context(812, "monthly_invoice"):
            LOGGER.info("inside", extra=logs.event("monthly_invoice", created=5))
        LOGGER.info("outside", extra=logs.event("other"))
    inside, outside = lines
    assert inside["job"] == {"id": 812, "task": "monthly_invoice"}
    assert inside["fields"] == {"created": 5}
    assert "job" not in outside


def _extra_values(path: Path) -> Iterator[tuple[int, ast.expr]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "extra":
                    yield node.lineno, keyword.value


def _is_logs_event(value: ast.expr) -> bool:
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr == "event"
        and isinstance(value.func.value, ast.Name)
        and value.func.value.id == "logs"
    )


def test_every_structured_log_call_goes_through_logs_event() -> None:
    """A dict literal in ``extra=`` is one renamed field away from a KeyError at
    INFO; the only way in is ``logs.event``."""
    offenders = [
        f"{path.relative_to(ROOT)}:{lineno}"
        for package in ("agnt_jobs", "cron", "periodic")
        for path in sorted((ROOT / package).rglob("*.py"))
        for lineno, value in _extra_values(path)
        if not _is_logs_event(value)
        # pydantic's model_config takes ``extra=`` too; it is not a log call.
        and not (isinstance(value, ast.Constant) and isinstance(value.value, str))
    ]
    assert offenders == []
