"""rebuild_entity_graph against a real Postgres: the derived edges it computes from
completed bookings, hand-made edges left alone, nothing rewritten when nothing
changed, and the swap seen by another connection as all old or all new."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import Engine

from agnt_jobs.settings import Settings
from cron import graph_builder
from tests.support import knowledge_data as data

TICK = datetime(2026, 11, 25, 3, tzinfo=UTC)
PAUSE_KEY = 4242

EDGES = """
SELECT e.kind, s.kind || ':' || coalesce(s.label, s.key) AS src,
       d.kind || ':' || coalesce(d.label, d.key) AS dst, e.weight, e.source
FROM entity_edges e
JOIN entities s ON s.id = e.src_id
JOIN entities d ON d.id = e.dst_id
"""

Edge = tuple[str, str, str, float, str]


def _edges(engine: Engine) -> set[Edge]:
    return {tuple(row) for row in data.rows(engine, EDGES)}  # type: ignore[misc]


def _world(engine: Engine) -> dict[str, int]:
    ids = {
        "ayu": data.user(engine, "Ayu"),
        "budi": data.user(engine, "Budi"),
        "citra": data.user(engine, "Citra"),
        "gone": data.user(engine, "Gone", deleted=True),
        "sushi": data.venue(engine, "Sushi Tei", "Japanese"),
        "mozaic": data.venue(engine, "Mozaic", "Fine dining"),
        "spa": data.venue(engine, "Fivelements", "spa "),
        "kiosk": data.venue(engine, "Kiosk", None),
    }
    for user, venue, status in [
        ("ayu", "sushi", "COMPLETED"),
        ("ayu", "sushi", "COMPLETED"),
        ("ayu", "mozaic", "COMPLETED"),
        ("budi", "sushi", "COMPLETED"),
        ("budi", "mozaic", "CANCELLED"),
        ("budi", "spa", "CONFIRMED"),
        ("citra", "spa", "COMPLETED"),
        ("citra", "kiosk", "COMPLETED"),
        ("gone", "sushi", "COMPLETED"),
        ("gone", "mozaic", "COMPLETED"),
    ]:
        data.booking(engine, ids[user], ids[venue], status)
    return ids


def _manual_edges(engine: Engine) -> None:
    """Hand-made: a 'likes' edge, and a 'visited' edge the bookings do not explain."""
    data.execute(
        engine,
        """
        INSERT INTO entities (kind, key, label)
        VALUES ('topic', 'wine', 'wine');
        INSERT INTO entities (kind, key, source, user_id)
        SELECT 'user', id::text, 'manual', id FROM users
        WHERE display_name = 'Budi';
        INSERT INTO entity_edges (src_id, dst_id, kind, weight)
        SELECT u.id, t.id, 'likes', 0.9 FROM entities u, entities t
        WHERE u.kind = 'user' AND t.kind = 'topic';
        INSERT INTO entities (kind, key, label)
        VALUES ('venue', 'x', 'Old bar');
        INSERT INTO entity_edges (src_id, dst_id, kind, weight)
        SELECT u.id, v.id, 'visited', 1 FROM entities u, entities v
        WHERE u.kind = 'user' AND v.key = 'x';
        """,
    )


MANUAL = {
    ("likes", "user:{budi}", "topic:wine", 0.9, "manual"),
    ("visited", "user:{budi}", "venue:Old bar", 1.0, "manual"),
}


def _expected(ids: dict[str, int]) -> set[Edge]:
    derived = {
        ("visited", f"user:{ids['ayu']}", "venue:Sushi Tei", 2.0),
        ("visited", f"user:{ids['ayu']}", "venue:Mozaic", 1.0),
        ("visited", f"user:{ids['budi']}", "venue:Sushi Tei", 1.0),
        ("visited", f"user:{ids['citra']}", "venue:Fivelements", 1.0),
        ("visited", f"user:{ids['citra']}", "venue:Kiosk", 1.0),
        ("co_visited", "venue:Sushi Tei", "venue:Mozaic", 1.0),
        ("co_visited", "venue:Fivelements", "venue:Kiosk", 1.0),
        ("affinity", f"user:{ids['ayu']}", "category:Japanese", 0.6667),
        ("affinity", f"user:{ids['ayu']}", "category:Fine dining", 0.3333),
        ("affinity", f"user:{ids['budi']}", "category:Japanese", 1.0),
        ("affinity", f"user:{ids['citra']}", "category:spa", 1.0),
    }
    manual = {
        (kind, src.format(**ids), dst, weight, source)
        for kind, src, dst, weight, source in MANUAL
    }
    return {(*edge, "derived") for edge in derived} | manual


def test_rebuild_derives_visits_co_visits_and_affinity(
    engine: Engine, env: Settings
) -> None:
    ids = _world(engine)
    _manual_edges(engine)

    result = graph_builder.rebuild_entity_graph(data.context(engine, env, TICK))

    assert result == {
        "edges": 11,
        "edges_inserted": 11,
        "edges_updated": 0,
        "edges_deleted": 0,
    }
    assert _edges(engine) == _expected(ids)


def test_a_second_rebuild_rewrites_nothing_and_changes_are_applied(
    engine: Engine, env: Settings
) -> None:
    ids = _world(engine)
    _manual_edges(engine)
    ctx = data.context(engine, env, TICK, job_chunk_size=2)
    graph_builder.rebuild_entity_graph(ctx)
    before = data.rows(engine, "SELECT * FROM entity_edges ORDER BY id")

    again = graph_builder.rebuild_entity_graph(ctx)

    assert again == {
        "edges": 11,
        "edges_inserted": 0,
        "edges_updated": 0,
        "edges_deleted": 0,
    }
    assert data.rows(engine, "SELECT * FROM entity_edges ORDER BY id") == before

    # Budi visits Mozaic; Citra asks to be deleted: her edges go, Budi's change.
    data.booking(engine, ids["budi"], ids["mozaic"])
    data.execute(
        engine, "UPDATE users SET deleted_at = now() WHERE id = :id", id=ids["citra"]
    )
    changed = graph_builder.rebuild_entity_graph(ctx)

    assert changed == {
        "edges": 9,
        "edges_inserted": 2,  # Budi visited Mozaic; Budi's fine-dining affinity
        "edges_updated": 2,  # Sushi Tei/Mozaic co-visits; Budi's Japanese affinity
        "edges_deleted": 4,  # Citra's 3, and the Fivelements/Kiosk co-visit
    }
    edges = _edges(engine)
    assert ("co_visited", "venue:Sushi Tei", "venue:Mozaic", 2.0, "derived") in edges
    assert not any(f"user:{ids['citra']}" == edge[1] for edge in edges)
    assert {e for e in edges if e[4] == "manual"} == {
        (k, s.format(**ids), d, w, src) for k, s, d, w, src in MANUAL
    }


def _derived(connection: psycopg.Connection[Any]) -> set[tuple[Any, ...]]:
    rows = connection.execute(
        "SELECT src_id, dst_id, kind, weight FROM entity_edges WHERE source = 'derived'"
    ).fetchall()
    connection.commit()
    return set(rows)


def test_readers_see_the_old_graph_or_the_new_never_half(
    engine: Engine, env: Settings, db_url: str
) -> None:
    ids = _world(engine)
    ctx = data.context(engine, env, TICK)
    graph_builder.rebuild_entity_graph(ctx)
    data.booking(engine, ids["budi"], ids["mozaic"])
    data.execute(
        engine, "UPDATE users SET deleted_at = now() WHERE id = :id", id=ids["citra"]
    )
    # Test-only: hold the swap between its DELETE and its upsert (as the
    # upsert starts), where a non-atomic swap would show a half-built graph.
    data.execute(
        engine,
        f"""
        CREATE FUNCTION pause_swap() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_advisory_xact_lock({PAUSE_KEY}); RETURN NULL; END $$;
        CREATE TRIGGER pause_swap BEFORE INSERT ON entity_edges
        FOR EACH STATEMENT EXECUTE FUNCTION pause_swap();
        """,
    )
    with psycopg.connect(db_url) as holder, psycopg.connect(db_url) as reader:
        old = _derived(reader)
        holder.execute("SELECT pg_advisory_lock(%s)", [PAUSE_KEY])
        results: list[dict[str, Any]] = []
        rebuild = threading.Thread(
            target=lambda: results.append(graph_builder.rebuild_entity_graph(ctx))
        )
        rebuild.start()
        deadline = time.monotonic() + 30
        while not holder.execute(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'advisory' "
            "AND datname = current_database()"
        ).fetchone():
            assert time.monotonic() < deadline, "the rebuild never reached its swap"
            assert rebuild.is_alive(), "the rebuild ended without swapping"
            time.sleep(0.02)

        # The stale edges are deleted by now, in the swap's uncommitted transaction.
        during = _derived(reader)
        holder.execute("SELECT pg_advisory_unlock(%s)", [PAUSE_KEY])
        rebuild.join()
        new = _derived(reader)

    assert results[0]["edges_deleted"] == 4 and results[0]["edges_inserted"] == 2
    assert old != new
    assert during == old


def test_two_rebuilds_at_once_leave_one_correct_graph(
    engine: Engine, env: Settings
) -> None:
    ids = _world(engine)
    _manual_edges(engine)
    ctx = data.context(engine, env, TICK, job_chunk_size=1)
    results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(graph_builder.rebuild_entity_graph(ctx))
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(r == {"skipped": 1} or r["edges"] == 11 for r in results)
    assert _edges(engine) == _expected(ids)


@pytest.mark.parametrize("purge", ["user", "venue"])
def test_purging_a_user_or_venue_removes_its_entity_and_edges(
    engine: Engine, env: Settings, purge: str
) -> None:
    ids = _world(engine)
    graph_builder.rebuild_entity_graph(data.context(engine, env, TICK))
    if purge == "user":
        data.execute(engine, "DELETE FROM users WHERE id = :id", id=ids["ayu"])
    else:
        data.execute(
            engine, "DELETE FROM bookings WHERE venue_id = :id", id=ids["kiosk"]
        )
        data.execute(engine, "DELETE FROM venues WHERE id = :id", id=ids["kiosk"])
    gone = f"user:{ids['ayu']}" if purge == "user" else "venue:Kiosk"
    assert not any(gone in (edge[1], edge[2]) for edge in _edges(engine))
