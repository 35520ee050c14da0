"""``agnt-jobs demo seed``: the data set is the same every time for the same scale
and instant, refuses a database with data unless forced, and gives every booking,
A2A and messaging job something to do."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Engine

from agnt_jobs import db, demo
from agnt_jobs.jobs.registry import BODIES
from tests.support import bookings_data as data
from tests.support.http_peers import FakeChannelGateway
from tests.support.venue_agent import FakeVenueAgent

AT = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
ISSUE_4_TABLES = (
    "users", "venues", "subscriptions", "bookings", "reminders", "rating_prompts",
    "ratings", "a2a_envelopes", "venue_responses", "send_queue", "dead_letters",
    "user_nudges", "user_spend_entries", "nutrition_entries", "calorie_goals",
)  # fmt: skip


def _digest(engine: Engine, table: str) -> str:
    with engine.connect() as connection:
        return connection.execute(
            sa.text(
                f"SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t"
            )
        ).scalar_one()


@pytest.fixture
def venue_agent() -> Iterator[FakeVenueAgent]:
    server = FakeVenueAgent().start()
    yield server
    server.stop()


@pytest.fixture
def other_engine(server_url: str, template_name: str) -> Iterator[Engine]:
    """A second fresh database, to seed the same plan twice."""
    name = f"agnt_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_name)
            )
        )
    url = server_url.rsplit("/", 1)[0] + f"/{name}"
    engine = db.create_engine(url)
    yield engine
    engine.dispose()
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
        )


def test_same_scale_and_instant_give_the_same_data(
    engine: Engine, other_engine: Engine
) -> None:
    demo.seed(engine, demo.Plan(scale=1, at=AT))
    demo.seed(other_engine, demo.Plan(scale=1, at=AT))
    for table in ISSUE_4_TABLES:
        assert data.scalar(engine, f"SELECT count(*) FROM {table}") > 0, table
        assert _digest(engine, table) == _digest(other_engine, table), table


def test_refuses_a_database_with_data_unless_forced(engine: Engine) -> None:
    demo.seed(engine, demo.Plan(scale=1, at=AT))
    users = data.scalar(engine, "SELECT count(*) FROM users")
    with pytest.raises(demo.NotEmptyError, match="table users already has rows"):
        demo.seed(engine, demo.Plan(scale=1, at=AT))
    assert data.scalar(engine, "SELECT count(*) FROM users") == users

    demo.seed(engine, demo.Plan(scale=1, at=AT), force=True)
    assert data.scalar(engine, "SELECT count(DISTINCT id) FROM users") == 2 * users
    # The identity continues after the seeded ids.
    assert data.user(engine) == 2 * users + 1


def test_every_issue_4_job_finds_work(
    engine: Engine, gateway: FakeChannelGateway, venue_agent: FakeVenueAgent
) -> None:
    # The last 15:00 WITA: the data set is laid out by WITA hour, and at 03:00 no
    # reminder is due and nobody has eaten yet today, as in life.
    wita = ZoneInfo("Asia/Makassar")
    now = datetime.now(wita).replace(hour=15, minute=0, second=0, microsecond=0)
    if now > datetime.now(UTC):
        now -= timedelta(days=1)
    demo.seed(engine, demo.Plan(scale=1, at=now, agent_url=venue_agent.url))
    work = {
        "booking_reminders": "reminders_created",
        "deliver_reminders": "reminders_sent",
        "retry_failed_sends": "sent",
        "re_engagement": "nudges_queued",
        "venue_daily_summary": "summaries_queued",
        "rating_prompt": "prompts_queued",
        "spend_digest": "digests_queued",
        "daily_nutrition_summary": "summaries_queued",
        "auto_confirm_stale_bookings": "auto_confirmed",
        "mark_completed_bookings": "completed",
        "recover_stuck_bookings": "dispatched",
        "cancel_orphaned_bookings": "cancelled",
        "reap_stale_envelopes": "expired",
        "sweep_orphaned_responses": "closed",
        "retry_dispatch_failed": "dispatched",
    }
    assert set(work) <= set(BODIES)
    idle = {}
    for job_id, count in work.items():
        result = data.run(job_id, engine, now=now, tick=now)
        if not result[count]:
            idle[job_id] = result
    assert idle == {}
