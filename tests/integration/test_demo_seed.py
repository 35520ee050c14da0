"""``agnt-jobs demo seed``: the data set fills every table but the ones only the job
system writes, is the same every time for the same scale and instant, refuses a
database with data unless forced, gives every one of the 40 jobs something to do
(billing jobs fail cleanly on its fake Stripe ids), and is what the jobs themselves
would have left behind."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Engine

from agnt_jobs import db, demo, timeutil
from agnt_jobs.db.url import with_dbname
from agnt_jobs.demo.seeders import SEEDERS
from agnt_jobs.scheduler.bodies import BODIES
from agnt_jobs.settings import Settings
from tests.support import bookings_data as data
from tests.support import ops_peers
from tests.support.http_peers import FakeChannelGateway, Reply
from tests.support.ops_peers import FakeAlerts, FakeLazada, FakeShopee, FakeTokopedia
from tests.support.venue_agent import FakeVenueAgent

AT = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
SEEDED_TABLES = sorted({table for s in SEEDERS.values() for table in s.tables})


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
    url = with_dbname(server_url, name)
    engine = db.create_engine(url)
    yield engine
    engine.dispose()
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _empty_tables(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        tables = connection.execute(
            sa.text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
        ).scalars()
        return {
            table
            for table in tables
            if not connection.execute(
                sa.text(f"SELECT EXISTS (SELECT FROM {table})")
            ).scalar_one()
        }


def test_same_scale_and_instant_give_the_same_data_in_every_table(
    engine: Engine, other_engine: Engine
) -> None:
    demo.seed(engine, demo.Plan(scale=1, at=AT))
    demo.seed(other_engine, demo.Plan(scale=1, at=AT))
    # Every table has rows but the ones that record the job system at work.
    assert _empty_tables(engine) == set(demo.JOB_WRITTEN_TABLES)
    for table in SEEDED_TABLES:
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


def _afternoon() -> datetime:
    """The last 15:00 WITA: the data set is laid out by WITA hour, and at 03:00 no
    reminder is due and nobody has eaten yet today, as in life. Not in the future:
    some jobs compare with the database's clock."""
    wita = ZoneInfo("Asia/Makassar")
    now = datetime.now(wita).replace(hour=15, minute=0, second=0, microsecond=0)
    if now > datetime.now(UTC):
        now -= timedelta(days=1)
    return now


def _idle(engine: Engine, now: datetime, work: dict[str, str], **settings: Any) -> dict:
    """Run each job of ``work`` (job id -> the count its work shows in); return the
    results of those that found nothing to do."""
    assert set(work) <= set(BODIES)
    idle = {}
    for job_id, count in work.items():
        result = data.run(job_id, engine, now=now, tick=now, **settings)
        if not result[count]:
            idle[job_id] = result
    return idle


def test_every_booking_a2a_and_messaging_job_finds_work(
    engine: Engine, gateway: FakeChannelGateway, venue_agent: FakeVenueAgent
) -> None:
    now = _afternoon()
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
    assert _idle(engine, now, work) == {}


def test_billing_jobs_find_work_and_fail_cleanly_on_the_fake_stripe_ids(
    engine: Engine, stripe_settings: Settings
) -> None:
    """Against localstripe, which knows none of the seeded customers: every call
    about them is refused, and each job records that and goes on."""
    now = _afternoon()
    demo.seed(engine, demo.Plan(scale=1, at=now))
    ledger = data.scalar(engine, "SELECT count(*) FROM ledger_entries")
    work = {
        # last month's interrupted run: venues still to plan, invoices to create
        "monthly_invoice": "planned",
        "retry_pending_fees": "uncollectible",  # an unknown customer: dead letter
        "reconcile_fee_status": "corrected",  # paid per the ledger, FAILED here
        "reconcile_subscription_state": "unprovable",  # reported, not guessed
        # this morning's batches: events left unmarked, and Stripe refused others
        "charge_unbilled_usage": "events_marked",
        "reset_api_key_queries_today": "reset",  # this morning's reset half done
    }
    assert _idle(engine, now, work) == {}

    # Nothing is left half-done: the invoices Stripe refused are UNCOLLECTIBLE with
    # the error and a dead letter, the usage batches PENDING with theirs, and no
    # money was recorded as moved.
    month = timeutil.month(now, timeutil.zone(), -1).label
    assert data.rows(
        engine,
        "SELECT DISTINCT status, last_error IS NOT NULL, stripe_invoice_id IS NULL, "
        "  EXISTS (SELECT 1 FROM dead_letters d WHERE d.source = 'monthly_invoice' "
        "          AND d.source_id = i.idempotency_key) "
        "FROM monthly_invoices i WHERE month = :month AND stripe_invoice_id IS NULL",
        month=month,
    ) == [("UNCOLLECTIBLE", True, True, True)]
    refused = data.scalar(
        engine,
        "SELECT count(*) FROM usage_batches "
        "WHERE status = 'PENDING' AND last_error LIKE 'stripe: InvalidRequestError%'",
    )
    assert refused > 0
    assert data.scalar(engine, "SELECT count(*) FROM ledger_entries") == ledger
    assert (
        data.scalar(
            engine,
            "SELECT count(*) FROM error_log WHERE context->>'key' LIKE 'usage_batch:%'",
        )
        == refused
    )


@pytest.fixture
def operations_peers(
    gateway: FakeChannelGateway,
) -> Iterator[dict[str, Any]]:
    """The alerts webhook, a webhook receiver that takes anything, and the three
    marketplaces (their prices set once the data is seeded)."""
    servers: dict[str, Any] = {
        "alerts": FakeAlerts(),
        "hooks": ops_peers.LocalServer(lambda request: Reply(200, {})),
        "shopee": FakeShopee({}),
        "tokopedia": FakeTokopedia({}),
        "lazada": FakeLazada({}),
    }
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


def test_lifecycle_and_operations_jobs_find_work(
    engine: Engine, operations_peers: dict[str, Any]
) -> None:
    peers = operations_peers
    now = _afternoon()
    demo.seed(engine, demo.Plan(scale=1, at=now, webhook_url=peers["hooks"].url))
    # Every product is 15% cheaper than at the last check.
    for ref, marketplace, price in data.rows(
        engine, "SELECT product_ref, marketplace, last_price FROM price_watchers"
    ):
        peers[marketplace].prices[ref] = price * Decimal("0.85")
    work = {
        "purge_deleted_users": "users_purged",
        "b2b_session_cleanup": "sessions_deleted",
        "mark_abandoned_b2b_sessions": "sessions_abandoned",
        "expire_stale_referrals": "referrals_expired",
        "reconcile_venue_compound_state": "venues_fixed",
        "check_price_watchers": "targets_hit",
        "drain_webhook_retries": "delivered",
        "dlq_cleanup": "deleted",
        "dlq_weekly_report": "alerts_sent",  # last week's, queued while it was down
        "prune_error_logs": "deleted",
        "platform_health_monitor": "results_pruned",
        "memory_eviction": "deleted",
        "rotate_delta_log": "archived",
    }
    settings = {
        "alerts_webhook_url": peers["alerts"].url,
        **{f"{m}_base_url": peers[m].url for m in ("shopee", "tokopedia", "lazada")},
        "marketplace_rate_per_second": 1000.0,
    }
    assert _idle(engine, now, work, **settings) == {}
    # The archive's oldest week went too.
    assert data.run("rotate_delta_log", engine, now=now, tick=now) == {
        "week": timeutil.iso_week(now, timeutil.zone()).label,
        "archived": 0,
        "archive_expired": 0,
        "chunks": 2,
    }


def test_heavy_jobs_find_work(engine: Engine) -> None:
    now = _afternoon()
    demo.seed(engine, demo.Plan(scale=1, at=now))
    work = {
        "light_dreaming": "reflections_written",  # yesterday's, a night behind
        "deep_dreaming": "memories_merged",  # and last week's insights
        "faq_extraction": "questions_found",  # this week's support questions
        "faq_compilation": "drafts_updated",  # clusters grown since Sunday
        "rebuild_entity_graph": "edges_updated",  # visits of the last hour
        "wiki_reconcile": "entries_applied",  # what the fleet said since Sunday
    }
    assert _idle(engine, now, work) == {}


def test_the_seeded_state_is_what_the_jobs_would_have_left(engine: Engine) -> None:
    """Where the seed plays a job's past runs, re-running the job over the same
    input changes nothing: the data keeps the jobs' own invariants."""
    now = _afternoon()
    tz = timeutil.zone()
    demo.seed(engine, demo.Plan(scale=1, at=now))

    # Every FAQ candidate is exactly what extraction made of the questions asked
    # before its last run (Sunday 23:59 WITA), week after week.
    last_extraction = timeutil.iso_week(now, tz).start - timedelta(minutes=1)
    for week in range(5):
        tick = last_extraction - timedelta(weeks=week)
        result = data.run("faq_extraction", engine, now=tick, tick=tick)
        assert result["candidates_created"] == result["candidates_updated"] == 0

    # A usage batch bills exactly its events.
    assert (
        data.rows(
            engine,
            """
        SELECT b.id FROM usage_batches b
        LEFT JOIN api_key_usage_events e ON e.usage_batch_id = b.id
        GROUP BY b.id
        HAVING b.event_count <> count(e.id)
            OR b.quantity <> coalesce(sum(e.quantity), 0)
            OR b.amount <> b.quantity * b.unit_price
        """,
        )
        == []
    )

    # The graph is what the last hourly rebuild made: with the bookings and users
    # as they were then, a rebuild changes no edge.
    built = now.replace(minute=0) - timedelta(hours=1)
    data.execute(
        engine,
        "UPDATE bookings SET status = 'CONFIRMED' "
        "WHERE status = 'COMPLETED' AND status_changed_at >= :built",
        built=built,
    )
    data.execute(
        engine,
        "UPDATE users SET deleted_at = NULL WHERE deleted_at >= :built",
        built=built,
    )
    rebuilt = data.run("rebuild_entity_graph", engine, now=now, tick=now)
    assert rebuilt["edges"] > 0
    assert rebuilt["edges_inserted"] == rebuilt["edges_updated"] == 0
    assert rebuilt["edges_deleted"] == 0

    # The wiki pages are what wiki_reconcile makes of the delta log up to its
    # cursor: replaying the log from nothing gives the same pages.
    pages = "SELECT * FROM fleet_wiki_pages ORDER BY slug"
    seeded = data.rows(engine, pages)
    data.execute(
        engine,
        """
        WITH cursor AS (SELECT last_delta_id FROM fleet_wiki_cursor),
        live AS (DELETE FROM fleet_delta_log
                 WHERE id > (SELECT last_delta_id FROM cursor)),
        archived AS (DELETE FROM fleet_delta_log_archive
                     WHERE id > (SELECT last_delta_id FROM cursor))
        DELETE FROM fleet_wiki_pages
        """,
    )
    data.execute(engine, "UPDATE fleet_wiki_cursor SET last_delta_id = 0")
    data.run("wiki_reconcile", engine, now=now, tick=now)
    # Ids are made anew; everything else must match.
    assert [row[1:] for row in data.rows(engine, pages)] == [row[1:] for row in seeded]


def test_a_seeded_data_set_is_pointed_at_new_stand_ins(engine: Engine) -> None:
    """``demo run`` on data it seeded before: its stand-ins listen on a new port,
    and the venues' agents and the webhook endpoints are pointed there."""
    demo.seed(
        engine,
        demo.Plan(
            scale=1,
            at=AT,
            agent_url="http://127.0.0.1:1111",
            webhook_url="http://127.0.0.1:2222",
        ),
    )
    changed = demo.point_at(engine, "http://127.0.0.1:3333", "http://127.0.0.1:4444")
    with engine.connect() as connection:
        agents = (
            connection.execute(
                sa.text(
                    "SELECT agent_endpoint FROM venues WHERE agent_endpoint IS NOT NULL"
                )
            )
            .scalars()
            .all()
        )
        hooks = (
            connection.execute(sa.text("SELECT url FROM webhook_endpoints"))
            .scalars()
            .all()
        )
    assert changed == len(agents) + len(hooks) > 0
    assert all(
        re.fullmatch(r"http://127\.0\.0\.1:3333/venues/\d+/a2a", a) for a in agents
    )
    assert all(re.fullmatch(r"http://127\.0\.0\.1:4444/hooks/\d+", h) for h in hooks)
