"""wiki_reconcile against a real Postgres: pages created, updated, retired and
revived from the fleet delta log, whether an entry is still live or already rotated
into the archive, each entry applied once across re-runs, crashes, rotations and
concurrent runs, and the newest entries left to settle."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from agnt_jobs.settings import Settings
from cron import wiki_reconcile as wiki
from tests.support import knowledge_data as data

W47 = datetime(2026, 11, 17, 2, tzinfo=UTC)
W48_START = datetime(2026, 11, 22, 16, tzinfo=UTC)  # Mon 2026-11-23 00:00 WITA
W48 = datetime(2026, 11, 25, 2, tzinfo=UTC)
W49_START = datetime(2026, 11, 29, 16, tzinfo=UTC)
FIRST_RUN = datetime(2026, 11, 28, 21, tzinfo=UTC)  # Sun 05:00 WITA
SECOND_RUN = FIRST_RUN + timedelta(days=7)


def _pages(engine: Engine) -> dict[str, tuple[Any, ...]]:
    return {
        row.slug: (row.title, row.content, row.retired_at is not None)
        for row in data.rows(engine, "SELECT * FROM fleet_wiki_pages")
    }


def _first_week(engine: Engine) -> None:
    data.delta(engine, "dining", "create", W47, "Dining etiquette", "v1")
    data.delta(engine, "spa", "create", W47, "Spa guide", "spa v1")
    data.delta(engine, "dining", "update", W47 + timedelta(hours=1), None, "v2")
    data.delta(engine, "spa", "retire", W48)
    data.delta(engine, "menus", "update", W48, "Menu tips", "menus v1")


def _second_week(engine: Engine) -> None:
    data.delta(engine, "spa", "create", W49_START - timedelta(hours=6), None, "spa v2")
    data.delta(engine, "ghost", "retire", W49_START - timedelta(hours=6))
    data.delta(
        engine, "dining", "update", W49_START + timedelta(days=2), "Dining", None
    )


FINAL = {
    "dining": ("Dining", "v2", False),
    "spa": ("Spa guide", "spa v2", False),
    "menus": ("Menu tips", "menus v1", False),
}


def test_entries_are_applied_from_the_archive_and_the_live_log(
    engine: Engine, env: Settings
) -> None:
    _first_week(engine)
    assert data.rotate(engine, W48_START) == 3  # rotate_delta_log at Sun 04:30

    first = wiki.wiki_reconcile(data.context(engine, env, FIRST_RUN))

    assert first == {
        "entries_applied": 5,
        "entries_from_archive": 3,
        "entries_deferred": 0,
        "pages_created": 3,
        "pages_retired": 1,
        "pages_updated": 1,
        "cursor": 5,
    }
    assert _pages(engine) == {
        "dining": ("Dining etiquette", "v2", False),
        "spa": ("Spa guide", "spa v1", True),
        "menus": ("Menu tips", "menus v1", False),
    }

    # Two entries arrive after the run and are rotated away before the next one.
    _second_week(engine)
    assert data.rotate(engine, W49_START) == 4
    second = wiki.wiki_reconcile(data.context(engine, env, SECOND_RUN))

    assert second == {
        "entries_applied": 3,
        "entries_from_archive": 2,
        "entries_deferred": 0,
        "pages_revived": 1,
        "pages_updated": 1,
        "retires_of_unknown_pages": 1,
        "cursor": 8,
    }
    assert _pages(engine) == FINAL
    assert wiki.wiki_reconcile(data.context(engine, env, SECOND_RUN)) == {
        "entries_applied": 0,
        "entries_from_archive": 0,
        "entries_deferred": 0,
        "cursor": 8,
    }


def test_pages_ignore_entries_they_already_reflect(
    engine: Engine, env: Settings
) -> None:
    _first_week(engine)
    _second_week(engine)
    wiki.wiki_reconcile(data.context(engine, env, SECOND_RUN))
    before = data.rows(engine, "SELECT * FROM fleet_wiki_pages ORDER BY id")
    # An operator resets the cursor.
    data.execute(engine, "UPDATE fleet_wiki_cursor SET last_delta_id = 0")

    again = wiki.wiki_reconcile(data.context(engine, env, SECOND_RUN))

    assert again["entries_superseded"] == 7 and again["retires_of_unknown_pages"] == 1
    assert data.rows(engine, "SELECT * FROM fleet_wiki_pages ORDER BY id") == before


def test_a_crash_then_a_rotation_then_a_rerun_applies_each_entry_once(
    engine: Engine, env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _first_week(engine)
    _second_week(engine)
    real = wiki._apply
    applied: list[int] = []

    def crash_on_fourth(pages: Any, entry: Any) -> str:
        applied.append(entry.id)
        if len(applied) == 4:
            raise RuntimeError("worker killed")
        return real(pages, entry)

    monkeypatch.setattr(wiki, "_apply", crash_on_fourth)
    ctx = data.context(engine, env, SECOND_RUN, job_chunk_size=2)
    with pytest.raises(RuntimeError):
        wiki.wiki_reconcile(ctx)
    cursor = data.rows(engine, "SELECT last_delta_id FROM fleet_wiki_cursor")
    assert cursor[0].last_delta_id == 2  # the chunk with the crash rolled back

    monkeypatch.setattr(wiki, "_apply", real)
    data.rotate(engine, W49_START)
    result = wiki.wiki_reconcile(ctx)

    assert result["entries_applied"] == 6 and result["entries_from_archive"] == 5
    assert _pages(engine) == FINAL


def test_two_runs_at_once_apply_each_entry_once(engine: Engine, env: Settings) -> None:
    for i in range(60):
        data.delta(engine, f"page-{i % 7}", "update", W48, None, f"v{i}")
    data.rotate(engine, W48 + timedelta(seconds=1))
    for i in range(60, 90):
        data.delta(
            engine, f"page-{i % 7}", "update", W48 + timedelta(hours=1), None, f"v{i}"
        )
    ctx = data.context(engine, env, SECOND_RUN, job_chunk_size=4)
    results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda: results.append(wiki.wiki_reconcile(ctx)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r["entries_applied"] for r in results) == 90
    assert sum(r.get("entries_superseded", 0) for r in results) == 0
    pages = _pages(engine)
    assert pages["page-5"] == (None, "v89", False) and pages["page-6"][1] == "v83"


def test_the_newest_entries_wait_for_the_next_run(
    engine: Engine, env: Settings
) -> None:
    now = datetime(2026, 11, 29, 21, tzinfo=UTC)
    data.delta(engine, "a", "create", now - timedelta(hours=1), "A", "old enough")
    data.delta(engine, "b", "create", now - timedelta(minutes=1), "B", "too new")
    data.delta(engine, "c", "create", now - timedelta(hours=1), "C", "behind b")

    early = wiki.wiki_reconcile(data.context(engine, env, now))
    assert (early["entries_applied"], early["entries_deferred"]) == (1, 2)
    assert set(_pages(engine)) == {"a"}

    later = wiki.wiki_reconcile(data.context(engine, env, now + timedelta(minutes=10)))
    assert later["entries_applied"] == 2 and set(_pages(engine)) == {"a", "b", "c"}


PAGE_COLUMNS = (
    "SELECT slug, title, content, created_at, updated_at, retired_at, "
    "last_delta_id, last_agent_id FROM fleet_wiki_pages ORDER BY slug"
)


def test_a_chunk_leaves_its_pages_as_its_entries_one_by_one_would(
    engine: Engine, env: Settings
) -> None:
    # One page through every step within one chunk, others beside it.
    at = W48
    steps = [
        ("cycle", "create", "Cycle", "c1"),
        ("lost", "retire", None, None),
        ("cycle", "update", None, "c2"),
        ("late", "update", "Late", None),
        ("cycle", "retire", None, None),
        ("cycle", "update", "Cycle 2", None),
        ("cycle", "retire", None, None),
        ("lost", "create", None, "found"),
        ("cycle", "create", None, "c3"),
        ("late", "retire", None, None),
        ("late", "update", None, "still retired"),
        ("late", "retire", None, None),  # retired since its first retire
    ]
    for i, (slug, action, title, content) in enumerate(steps):
        data.delta(
            engine, slug, action, at + timedelta(minutes=i), title, content, f"a{i}"
        )

    one_by_one = wiki.wiki_reconcile(
        data.context(engine, env, SECOND_RUN, job_chunk_size=1)
    )
    pages = data.rows(engine, PAGE_COLUMNS)
    data.execute(engine, "DELETE FROM fleet_wiki_pages")
    data.execute(engine, "UPDATE fleet_wiki_cursor SET last_delta_id = 0")
    in_one_chunk = wiki.wiki_reconcile(data.context(engine, env, SECOND_RUN))

    assert (
        in_one_chunk
        == one_by_one
        == {
            "entries_applied": 12,
            "entries_from_archive": 0,
            "entries_deferred": 0,
            "pages_created": 3,
            "pages_retired": 4,
            "pages_revived": 1,
            "pages_updated": 3,
            "retires_of_unknown_pages": 1,
            "cursor": 12,
        }
    )
    assert data.rows(engine, PAGE_COLUMNS) == pages
    assert [(p.slug, p.title, p.content, p.retired_at) for p in pages] == [
        ("cycle", "Cycle 2", "c3", None),
        ("late", "Late", "still retired", at + timedelta(minutes=9)),
        ("lost", None, "found", None),
    ]
