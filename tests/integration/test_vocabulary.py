"""The tick-outcome and run-status words are one set in the Python names, in what
Postgres admits and returns, and in docs/glossary.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs.models.runs import RUN_STATUSES
from agnt_jobs.models.scheduling import SkipReason, TickOutcome, Undecided

GLOSSARY = Path(__file__).parents[2] / "docs" / "glossary.md"


def _section(title: str) -> str:
    text = GLOSSARY.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _first_columns(section: str, column: int = 0) -> set[str]:
    """The backticked words in ``column`` of a section's table rows."""
    words = set()
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) > column:
            words.update(re.findall(r"^`([a-z_]+)`$", cells[column]))
    return words


def _definition(engine: Engine, sql: str) -> str:
    with engine.connect() as connection:
        return connection.execute(sa.text(sql)).scalar_one()


def test_the_glossary_names_every_tick_outcome_reason_and_undecided_result() -> None:
    section = _section("Tick outcomes")
    assert _first_columns(section) == set(TickOutcome) | set(Undecided)
    assert _first_columns(section, 1) == set(SkipReason)


def test_the_glossary_names_every_run_status() -> None:
    assert _first_columns(_section("Run statuses")) == set(RUN_STATUSES)


@pytest.mark.usefixtures("db_url")
def test_the_database_stores_exactly_the_glossary_outcomes_and_reasons(
    engine: Engine,
) -> None:
    check = _definition(
        engine,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conname = 'ck_schedule_ticks_outcome'",
    )
    assert set(re.findall(r"'([a-z_]+)'::text", check)) == set(TickOutcome) | set(
        SkipReason
    )
    statuses = _definition(
        engine,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conname = 'ck_job_runs_status'",
    )
    assert set(re.findall(r"'([a-z_]+)'::text", statuses)) == set(RUN_STATUSES)


# The string literals of the deciding functions that are not tick words.
NOT_WORDS = {"timestamp", "procrastinate_jobs_queueing_lock_idx_v1"}


@pytest.mark.usefixtures("db_url")
def test_the_deciding_functions_use_only_glossary_words(engine: Engine) -> None:
    """Every word the functions return or record: a tick outcome, a reason or an
    undecided result (``not_configured`` comes in as an argument)."""
    words: set[str] = set()
    for function in (
        "agnt_defer_schedule_tick",
        "agnt_skip_schedule_tick",
        "agnt_record_missed_ticks",
    ):
        source = _definition(
            engine, f"SELECT prosrc FROM pg_proc WHERE proname = '{function}'"
        )
        words.update(re.findall(r"'([a-z_0-9]+)'", source))
    assert words - NOT_WORDS == (
        set(TickOutcome) | set(Undecided) | set(SkipReason) - {"not_configured"}
    )
