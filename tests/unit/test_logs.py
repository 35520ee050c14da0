"""The structured log line: its shape, and that no field can break it."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import logging
import re
import sys
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


def _record(
    level: int, message: str, error: BaseException | None = None, **extra: object
) -> logging.LogRecord:
    exc_info = (type(error), error, error.__traceback__) if error else None
    record = LOGGER.makeRecord(LOGGER.name, level, "f.py", 1, message, (), exc_info)
    record.__dict__.update(extra)
    return record


def _raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:
        return caught


def test_an_expected_failure_is_one_line_and_the_unexpected_keeps_its_traceback() -> (
    None
):
    lost = _raised(ConnectionError("database connection lost: server closed"))
    quiet = json.loads(logs.JsonFormatter().format(_record(logging.INFO, "x", lost)))
    assert quiet["error"] == "ConnectionError: database connection lost: server closed"
    assert "exception" not in quiet
    loud = json.loads(logs.JsonFormatter().format(_record(logging.ERROR, "x", lost)))
    assert loud["error"] == quiet["error"]
    assert "Traceback" in loud["exception"]


def test_a_retried_failure_is_a_warning_of_one_line() -> None:
    """Procrastinate logs a failed attempt that it will retry at INFO with its
    traceback; the line says WARNING, without it."""
    record = _record(
        logging.INFO,
        "Job x ended with status: Error, to retry",
        _raised(RuntimeError("gateway said 502")),
        action="job_error_retry",
    )
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["level"] == "WARNING"
    assert "exception" not in line
    text = logs.TextFormatter().format(record)
    assert "\n" not in text
    assert " WARNING " in text


def test_a_person_at_a_terminal_reads_a_short_line() -> None:
    record = _record(
        logging.INFO, "monthly invoices", **logs.event("monthly_invoice", paid=4)
    )
    with logs.job_context(812, "monthly_invoice"):
        line = logs.TextFormatter().format(record)
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d INFO  monthly_invoice#812 monthly invoices paid=4", line
    )
    long = _record(logging.INFO, "m", **logs.event("a", note="word " * 40, n=None))
    shown = logs.TextFormatter().format(long)
    assert len(shown) < 120
    assert 'note="word word' in shown
    assert "n=null" in shown


def test_procrastinates_lines_name_their_job_at_a_terminal() -> None:
    record = _record(
        logging.INFO,
        "Job ended",
        job={"id": 7, "task_name": "booking_reminders", "queue": "default"},
    )
    assert " booking_reminders#7 Job ended" in logs.TextFormatter().format(record)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_text_at_a_terminal_and_json_elsewhere() -> None:
    assert logs.resolved_format("auto", _Terminal()) == "text"
    assert logs.resolved_format("auto", io.StringIO()) == "json"
    assert logs.resolved_format("json", _Terminal()) == "json"
    assert logs.resolved_format("text", io.StringIO()) == "text"


def test_logging_a_process_did_not_start_through_the_stock_cli_is_left_alone() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    logs.configure_stock_cli("DEBUG", "json")
    assert root.handlers == before


def test_under_the_stock_cli_ours_replace_its_logging_at_the_more_verbose_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import types

    from procrastinate import cli

    script = types.ModuleType("__main__")
    script.main = cli.main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "__main__", script)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        for cli_level, ours, expected in [
            (logging.DEBUG, "INFO", logging.DEBUG),
            (logging.WARNING, "INFO", logging.INFO),
        ]:
            root.handlers[:] = [logging.StreamHandler(io.StringIO())]
            root.setLevel(cli_level)
            logs.configure_stock_cli(ours, "json")
            (handler,) = root.handlers
            assert isinstance(handler.formatter, logs.JsonFormatter)
            assert root.level == expected
            # Once ours, a second worker of the process changes nothing.
            logs.configure_stock_cli("ERROR", "text")
            assert root.handlers == [handler]
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
