"""Housekeeping jobs against a real Postgres: retention deletes in chunks, the
delta log rotation that never loses or doubles an entry, and the weekly
dead-letter report posted once to a local alerts webhook."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from agnt_jobs.jobs import housekeeping
from agnt_jobs.settings import Settings
from agnt_jobs.standins.ops import FakeAlerts
from tests.support.jobs import (
    context,
    count_commits,
    run_concurrently,
    run_while_rows_held,
)
from tests.support.lifecycle_data import add_memory, add_user, count, scalar

# Sunday 04:30 WITA, rotate_delta_log's tick; the current ISO week (WITA) began
# Monday 2026-11-16 00:00 WITA = Sunday 2026-11-15 16:00 UTC.
ROTATE_TICK = datetime(2026, 11, 21, 20, 30, tzinfo=UTC)
WEEK_START = datetime(2026, 11, 15, 16, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


@pytest.fixture
def alerts_server() -> Iterator[FakeAlerts]:
    server = FakeAlerts().start()
    yield server
    server.stop()


def _error_logs(
    c: Connection, count: int, created_at: datetime, apart: timedelta = SECOND
) -> None:
    """``count`` entries, the first at ``created_at``, then one every ``apart``."""
    c.execute(
        sa.text(
            "INSERT INTO error_log (source, message, created_at) "
            "SELECT 'test', 'boom ' || i, :at + (i - 1) * :apart "
            "FROM generate_series(1, :n) AS i"
        ),
        {"n": count, "at": created_at, "apart": apart},
    )


def _dead_letters(
    c: Connection,
    source: str,
    error_class: str,
    count: int,
    created_at: datetime,
    resolved_at: datetime | None = None,
) -> None:
    c.execute(
        sa.text(
            """
            INSERT INTO dead_letters (source, source_id, error_class, created_at,
                                      resolved_at)
            SELECT :source, :error_class || ':' || :at || ':' || i, :error_class,
                   :at, :resolved
            FROM generate_series(1, :n) AS i
            """
        ),
        {
            "source": source,
            "error_class": error_class,
            "n": count,
            "at": created_at,
            "resolved": resolved_at,
        },
    )


def _deltas(c: Connection, created_at: datetime, count: int = 1) -> list[int]:
    rows = c.execute(
        sa.text(
            """
            INSERT INTO fleet_delta_log (created_at, agent_id, page_slug, action,
                                         title, content, meta)
            SELECT :at, 'agent-1', 'page-' || i, 'update', 'Title ' || i,
                   'content ' || i, jsonb_build_object('n', i)
            FROM generate_series(1, :n) AS i
            RETURNING id
            """
        ),
        {"at": created_at, "n": count},
    )
    return [row.id for row in rows]


def test_memory_eviction_keeps_pinned_and_recently_used(
    engine: Engine, env: Settings
) -> None:
    with engine.begin() as c:
        user = add_user(c)
        old = NOW - 91 * DAY
        doomed = [
            add_memory(c, user, created_at=old - DAY, last_accessed_at=old),
            add_memory(c, user, created_at=old),  # never read
        ]
        kept = [
            add_memory(c, user, created_at=old - 100 * DAY, pinned=True),
            add_memory(c, user, created_at=old, last_accessed_at=NOW - DAY),
            add_memory(c, user, created_at=NOW - 89 * DAY),
            add_memory(c, user, created_at=NOW - 90 * DAY),  # the edge: kept
        ]
    result = housekeeping.memory_eviction(context(engine, env, NOW))
    assert result["deleted"] == len(doomed)
    with engine.connect() as c:
        assert scalar(c, "SELECT array_agg(id ORDER BY id) FROM memories") == kept
    assert housekeeping.memory_eviction(context(engine, env, NOW))["deleted"] == 0


def _old_memories(engine: Engine, n: int) -> None:
    with engine.begin() as c:
        user = add_user(c)
        c.execute(
            sa.text(
                "INSERT INTO memories (user_id, content, created_at) "
                "SELECT :u, 'm' || i, :at + i * interval '1 second' "
                "FROM generate_series(1, :n) AS i"
            ),
            {"u": user, "at": NOW - 200 * DAY, "n": n},
        )
        add_memory(c, user, created_at=NOW - 200 * DAY, pinned=True)


def test_memory_eviction_runs_in_chunks(engine: Engine, env: Settings) -> None:
    _old_memories(engine, 95)
    with count_commits(engine) as commits:
        result = housekeeping.memory_eviction(
            context(engine, env, NOW, job_chunk_size=10)
        )
    assert result == {"deleted": 95, "chunks": 10}
    assert commits[0] == 10


def test_dlq_cleanup_deletes_only_long_resolved(engine: Engine, env: Settings) -> None:
    with engine.begin() as c:
        _dead_letters(c, "send_queue", "exhausted", 3, NOW - 30 * DAY, NOW - 8 * DAY)
        _dead_letters(c, "webhook", "exhausted", 2, NOW - 30 * DAY, NOW - 6 * DAY)
        _dead_letters(c, "webhook", "gone", 4, NOW - 300 * DAY)  # unresolved
    result = housekeeping.dlq_cleanup(context(engine, env, NOW))
    assert result["deleted"] == 3
    with engine.connect() as c:
        assert count(c, "dead_letters") == 6
        assert count(c, "dead_letters", "resolved_at IS NULL") == 4
    assert housekeeping.dlq_cleanup(context(engine, env, NOW))["deleted"] == 0


def test_prune_error_logs_in_chunks(engine: Engine, env: Settings) -> None:
    with engine.begin() as c:
        _error_logs(c, 95, NOW - 31 * DAY)
        _error_logs(c, 4, NOW - 30 * DAY + SECOND)
    with count_commits(engine) as commits:
        result = housekeeping.prune_error_logs(
            context(engine, env, NOW, job_chunk_size=10)
        )
    assert result == {"deleted": 95, "chunks": 10}
    assert commits[0] == 10
    with engine.connect() as c:
        assert count(c, "error_log") == 4


def test_rows_of_one_instant_are_deleted_in_one_chunk(
    engine: Engine, env: Settings
) -> None:
    """A chunk ends at a time, not inside one: 30 entries a second apart, then 45
    written at one instant (one transaction's), then 20 more, in chunks of 10."""
    with engine.begin() as c:
        _error_logs(c, 30, NOW - 40 * DAY)
        _error_logs(c, 45, NOW - 35 * DAY, apart=timedelta(0))
        _error_logs(c, 20, NOW - 32 * DAY)
        _error_logs(c, 4, NOW - 30 * DAY + SECOND)
    with count_commits(engine) as commits:
        result = housekeeping.prune_error_logs(
            context(engine, env, NOW, job_chunk_size=10)
        )
    # Three chunks of 10, one of the 45, two of 10, one that finds none left.
    assert result == {"deleted": 95, "chunks": 7}
    assert commits[0] == 7
    with engine.connect() as c:
        assert count(c, "error_log") == 4


def test_a_retention_delete_does_not_wait_out_a_row_held_elsewhere(
    engine: Engine, env: Settings
) -> None:
    """On an engine with no lock timeout of its own, a run meets rows another
    transaction holds in its first chunk: it deletes every other due row and ends
    while they are still held, instead of waiting for their holder."""
    with engine.begin() as c:
        _error_logs(c, 30, NOW - 40 * DAY)
    held, result = run_while_rows_held(
        engine,
        "SELECT id FROM error_log ORDER BY id LIMIT 3 FOR UPDATE",
        lambda: housekeeping.prune_error_logs(
            context(engine, env, NOW, job_chunk_size=10)
        ),
    )
    assert result["deleted"] == 30 - len(held)
    with engine.connect() as c:
        assert scalar(c, "SELECT array_agg(id ORDER BY id) FROM error_log") == held


def test_rotation_moves_past_weeks_with_their_ids_and_content(
    engine: Engine, env: Settings
) -> None:
    with engine.begin() as c:
        last_week = _deltas(c, WEEK_START - SECOND, 3)  # Sun 23:59:59 WITA
        this_week = _deltas(c, WEEK_START, 2)  # Mon 00:00 WITA
        before = (
            c.execute(sa.text("SELECT * FROM fleet_delta_log ORDER BY id"))
            .mappings()
            .all()
        )
    result = housekeeping.rotate_delta_log(context(engine, env, tick=ROTATE_TICK))
    assert result["week"] == "2026-W47"
    assert result["archived"] == 3
    with engine.connect() as c:
        live = scalar(c, "SELECT array_agg(id ORDER BY id) FROM fleet_delta_log")
        archived = (
            c.execute(
                sa.text(
                    "SELECT id, created_at, agent_id, page_slug, action, title, "
                    "content, meta FROM fleet_delta_log_archive ORDER BY id"
                )
            )
            .mappings()
            .all()
        )
    assert live == this_week
    assert [dict(row) for row in archived] == [
        dict(row) for row in before if row["id"] in last_week
    ]
    again = housekeeping.rotate_delta_log(context(engine, env, tick=ROTATE_TICK))
    assert again["archived"] == 0 and again["archive_expired"] == 0


def test_rotation_keeps_twelve_weeks_of_archive(engine: Engine, env: Settings) -> None:
    oldest_kept = WEEK_START - timedelta(weeks=12)
    with engine.begin() as c:
        c.execute(
            sa.text(
                """
                INSERT INTO fleet_delta_log_archive
                    (id, created_at, agent_id, page_slug, action)
                VALUES (1, :expired, 'a', 'p', 'create'), (2, :kept, 'a', 'p', 'update')
                """
            ),
            {"expired": oldest_kept - SECOND, "kept": oldest_kept},
        )
    result = housekeeping.rotate_delta_log(context(engine, env, tick=ROTATE_TICK))
    assert result["archive_expired"] == 1
    with engine.connect() as c:
        assert scalar(c, "SELECT array_agg(id) FROM fleet_delta_log_archive") == [2]


def test_readers_see_every_entry_exactly_once_during_rotation(
    engine: Engine, env: Settings
) -> None:
    """Two rotations at once, and a reader of both tables (as wiki_reconcile reads
    them, in one statement) looking all the while: no entry is ever missing or
    seen twice, and each entry is archived by exactly one rotation."""
    with engine.begin() as c:
        _deltas(c, WEEK_START - 3 * DAY, 600)
        _deltas(c, WEEK_START + DAY, 50)
    stop = threading.Event()
    seen: list[tuple[int, int]] = []

    def reader() -> None:
        with engine.connect() as c:
            while not stop.is_set():
                row = c.execute(
                    sa.text(
                        "SELECT count(*), count(DISTINCT id) FROM ("
                        "SELECT id FROM fleet_delta_log UNION ALL "
                        "SELECT id FROM fleet_delta_log_archive) AS entries"
                    )
                ).one()
                seen.append(tuple(row))
                c.commit()

    watcher = threading.Thread(target=reader)
    watcher.start()
    ctx = context(engine, env, tick=ROTATE_TICK, job_chunk_size=25)
    try:
        results = run_concurrently(lambda: housekeeping.rotate_delta_log(ctx))
    finally:
        stop.set()
        watcher.join()
    assert sum(r["archived"] for r in results) == 600
    assert seen and set(seen) == {(650, 650)}
    with engine.connect() as c:
        assert count(c, "fleet_delta_log") == 50
        assert count(c, "fleet_delta_log_archive") == 600


def _report_world(engine: Engine) -> None:
    # The report runs Monday 06:00 WITA 2026-11-23 for ISO week 2026-W47, which is
    # [Sun 2026-11-15 16:00 UTC, Sun 2026-11-22 16:00 UTC).
    with engine.begin() as c:
        _dead_letters(c, "send_queue", "exhausted", 3, WEEK_START)
        _dead_letters(
            c, "webhook", "gone", 1, WEEK_START + 6 * DAY, WEEK_START + 7 * DAY
        )
        _dead_letters(c, "webhook", "exhausted", 2, WEEK_START + 7 * DAY - SECOND)
        _dead_letters(c, "send_queue", "permanent", 5, WEEK_START - SECOND)  # W46
        _dead_letters(c, "send_queue", "permanent", 4, WEEK_START + 7 * DAY)  # W48


REPORT_TICK = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)  # Mon 06:00 WITA


def test_weekly_report_is_posted_once_with_the_weeks_figures(
    engine: Engine, env: Settings, alerts_server: FakeAlerts
) -> None:
    _report_world(engine)
    ctx = context(engine, env, tick=REPORT_TICK, alerts_webhook_url=alerts_server.url)
    result = housekeeping.dlq_weekly_report(ctx)
    assert result == {
        "week": "2026-W47",
        "report_queued": 1,
        "alerts_sent": 1,
        "alerts_unsent": 0,
    }
    assert list(alerts_server.alerts) == ["dlq_weekly:2026-W47"]
    report = alerts_server.alerts["dlq_weekly:2026-W47"]
    assert report["kind"] == "dlq_weekly"
    assert report["data"]["total"] == 6
    assert report["data"]["unresolved"] == 5
    assert report["data"]["unresolved_all"] == 14
    assert report["data"]["by_source"] == [
        {
            "source": "send_queue",
            "error_class": "exhausted",
            "total": 3,
            "unresolved": 3,
        },
        {"source": "webhook", "error_class": "exhausted", "total": 2, "unresolved": 2},
        {"source": "webhook", "error_class": "gone", "total": 1, "unresolved": 0},
    ]
    assert "2026-W47: 6 new (no previous report)" in report["text"]

    assert housekeeping.dlq_weekly_report(ctx)["report_queued"] == 0
    assert len(alerts_server.received) == 1


def test_two_weekly_reports_at_once_post_the_report_once(
    engine: Engine, env: Settings, alerts_server: FakeAlerts
) -> None:
    _report_world(engine)
    ctx = context(engine, env, tick=REPORT_TICK, alerts_webhook_url=alerts_server.url)
    results = run_concurrently(lambda: housekeeping.dlq_weekly_report(ctx))
    assert sum(r["report_queued"] for r in results) == 1
    assert sum(r["alerts_sent"] for r in results) == 1
    assert sum(r["alerts_unsent"] for r in results) == 0
    assert len(alerts_server.received) == 1
    assert list(alerts_server.alerts) == ["dlq_weekly:2026-W47"]
    with engine.connect() as c:
        assert count(c, "alerts", "sent_at IS NOT NULL AND attempts = 1") == 1
        assert count(c, "alerts") == 1


def test_weekly_report_trend_compares_with_the_previous_report(
    engine: Engine, env: Settings, alerts_server: FakeAlerts
) -> None:
    _report_world(engine)
    url = alerts_server.url
    housekeeping.dlq_weekly_report(
        context(
            engine, env, tick=REPORT_TICK - timedelta(weeks=1), alerts_webhook_url=url
        )
    )
    housekeeping.dlq_weekly_report(
        context(engine, env, tick=REPORT_TICK, alerts_webhook_url=url)
    )
    week46 = alerts_server.alerts["dlq_weekly:2026-W46"]["data"]
    week47 = alerts_server.alerts["dlq_weekly:2026-W47"]["data"]
    assert (week46["total"], week47["previous_total"], week47["change"]) == (5, 5, 1)


def test_weekly_report_survives_an_alerts_outage(
    engine: Engine, env: Settings, alerts_server: FakeAlerts
) -> None:
    _report_world(engine)
    ctx = context(engine, env, tick=REPORT_TICK, alerts_webhook_url=alerts_server.url)
    alerts_server.fail_next(1)
    first = housekeeping.dlq_weekly_report(ctx)
    assert (first["report_queued"], first["alerts_sent"]) == (1, 0)
    assert alerts_server.alerts == {}
    second = housekeeping.dlq_weekly_report(ctx)
    assert (second["report_queued"], second["alerts_sent"]) == (0, 1)
    assert list(alerts_server.alerts) == ["dlq_weekly:2026-W47"]
    with engine.connect() as c:
        assert scalar(c, "SELECT attempts FROM alerts") == 2


def test_weekly_report_waits_queued_without_an_alerts_url(
    engine: Engine, env: Settings
) -> None:
    _report_world(engine)
    result = housekeeping.dlq_weekly_report(context(engine, env, tick=REPORT_TICK))
    assert (result["report_queued"], result["alerts_unsent"]) == (1, 1)
