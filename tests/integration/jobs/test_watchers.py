"""check_price_watchers against a real Postgres, three local marketplaces answering
in their own shapes, and a local channel gateway: prices recorded once per tick,
one notification per target hit, a marketplace outage that only delays its own
watchers, and two runs at once."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs.jobs import watchers
from agnt_jobs.scheduler.bodies import RunContext
from agnt_jobs.settings import get_settings
from agnt_jobs.standins.gateway import FakeChannelGateway
from agnt_jobs.standins.ops import FakeLazada, FakeShopee, FakeTokopedia
from agnt_jobs.standins.server import Reply
from tests.support.jobs import context, executions, run_concurrently
from tests.support.lifecycle_data import add_user, count, scalar
from tests.support.watchers_data import add_watcher, add_watchers

TICK = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
NEXT_TICK = TICK + timedelta(hours=6)


@dataclass
class Marketplaces:
    shopee: FakeShopee
    tokopedia: FakeTokopedia
    lazada: FakeLazada

    def ctx(
        self, engine: Engine, tick: datetime = TICK, **overrides: object
    ) -> RunContext:
        return context(
            engine,
            get_settings(),
            now=tick,
            tick=tick,
            shopee_base_url=self.shopee.url,
            tokopedia_base_url=self.tokopedia.url,
            lazada_base_url=self.lazada.url,
            marketplace_rate_per_second=1000.0,
            **overrides,
        )


@pytest.fixture
def markets(gateway: FakeChannelGateway) -> Iterator[Marketplaces]:
    servers = Marketplaces(
        FakeShopee({"111.2001": Decimal(149000), "111.2002": Decimal(80000)}),
        FakeTokopedia({"kopibali/kopi-250g": Decimal(99000)}),
        FakeLazada({"3001": Decimal(1250000)}),
    )
    for server in (servers.shopee, servers.tokopedia, servers.lazada):
        server.start()
    yield servers
    for server in (servers.shopee, servers.tokopedia, servers.lazada):
        server.stop()


def _history(engine: Engine) -> dict[int, list[Decimal]]:
    with engine.connect() as c:
        rows = c.execute(
            sa.text("SELECT watcher_id, price FROM price_history ORDER BY tick")
        ).all()
    history: dict[int, list[Decimal]] = {}
    for watcher_id, price in rows:
        history.setdefault(watcher_id, []).append(price)
    return history


def test_prices_are_parsed_recorded_and_a_hit_notified_once(
    engine: Engine, markets: Marketplaces, gateway: FakeChannelGateway
) -> None:
    with engine.begin() as c:
        user = add_user(c, address="+628111")
        hit = add_watcher(c, user, "shopee", "111.2001", 150000)  # 149,000 <= 150,000
        above = add_watcher(c, user, "shopee", "111.2002", 79999)
        toko = add_watcher(c, user, "tokopedia", "kopibali/kopi-250g", 99000)  # equal
        laz = add_watcher(c, user, "lazada", "3001", 1000000)
        paused = add_watcher(c, user, "lazada", "3001", 1, status="PAUSED")

    result = watchers.check_price_watchers(markets.ctx(engine))

    assert result == {
        "checked": 4,
        "targets_hit": 2,
        "notifications_queued": 2,
        "unavailable": 0,
        "deferred": 0,
        "marketplaces_failing": 0,
        "notifications_sent": 2,
        "by_marketplace": {"shopee": 2, "tokopedia": 1, "lazada": 1},
    }
    assert _history(engine) == {
        hit: [Decimal(149000)],
        above: [Decimal(80000)],
        toko: [Decimal(99000)],  # the campaign price, not the list price
        laz: [Decimal(1250000)],
    }
    with engine.connect() as c:
        titles = dict(c.execute(sa.text("SELECT id, title FROM price_watchers")).all())
        notified = scalar(
            c,
            "SELECT array_agg(id ORDER BY id) FROM price_watchers "
            "WHERE notified_at IS NOT NULL",
        )
    assert titles[toko] == "Tokopedia kopibali/kopi-250g" and titles[paused] is None
    assert notified == [hit, toko]
    texts = sorted(m["text"] for m in gateway.delivered.values())
    assert texts[0].startswith("Price drop: Shopee item 2001 is now IDR 149000")
    assert {m["to"] for m in gateway.delivered.values()} == {"+628111"}

    # The same tick again: nothing fetched, recorded or sent.
    again = watchers.check_price_watchers(markets.ctx(engine))
    assert again["checked"] == 0
    assert sum(markets.shopee.asked.values()) == 2
    # The next tick: prices recorded again, but a hit is notified only once.
    later = watchers.check_price_watchers(markets.ctx(engine, NEXT_TICK))
    assert (later["checked"], later["targets_hit"], later["notifications_sent"]) == (
        4,
        0,
        0,
    )
    assert len(_history(engine)[hit]) == 2
    assert len(gateway.received) == 2


def test_a_marketplace_that_is_down_only_delays_its_own_watchers(
    engine: Engine, markets: Marketplaces
) -> None:
    with engine.begin() as c:
        user = add_user(c)
        toko = add_watchers(c, user, "tokopedia", ["kopibali/kopi-250g"] * 20, 1)
        others = [
            add_watcher(c, user, "shopee", "111.2001", 1),
            add_watcher(c, user, "lazada", "3001", 1),
        ]
    markets.tokopedia.down = True
    ctx = markets.ctx(engine, marketplace_breaker_failures=3, marketplace_concurrency=1)

    result = watchers.check_price_watchers(ctx)

    assert result["checked"] == 2 and result["deferred"] == 20
    assert result["marketplaces_failing"] == 1
    # The breaker stopped calling Tokopedia after three failures in a row.
    assert sum(markets.tokopedia.asked.values()) == 3
    with engine.connect() as c:
        unchecked = scalar(
            c,
            "SELECT array_agg(id ORDER BY id) FROM price_watchers "
            "WHERE last_checked_at IS NULL AND claimed_until IS NULL",
        )
    assert unchecked == toko
    # Tokopedia is back: a re-run for the same tick checks only its watchers.
    markets.tokopedia.down = False
    again = watchers.check_price_watchers(ctx)
    assert again["checked"] == 20 and again["by_marketplace"]["tokopedia"] == 20
    assert sum(markets.shopee.asked.values()) == 1
    assert set(_history(engine)) == set(toko) | set(others)


def test_a_product_that_is_gone_is_recorded_as_unavailable(
    engine: Engine, markets: Marketplaces
) -> None:
    with engine.begin() as c:
        user = add_user(c)
        add_watcher(c, user, "shopee", "111.9999", 1)
        add_watcher(c, user, "tokopedia", "kopibali/sold-out", 1)
        add_watcher(c, user, "lazada", "4040", 1)
        add_watcher(c, user, "lazada", "not-a-number", 1)
    result = watchers.check_price_watchers(markets.ctx(engine))
    assert result["unavailable"] == 4 and result["checked"] == 0
    with engine.connect() as c:
        errors = [
            row[0]
            for row in c.execute(
                sa.text("SELECT last_error FROM price_watchers ORDER BY id")
            )
        ]
        assert count(c, "price_watchers", "last_checked_at IS NULL") == 0
    assert "item not found" in errors[0]
    assert "product not found" in errors[1]
    assert "FAIL_SYS_ITEM_NOT_FOUND" in errors[2]
    assert "bad product ref" in errors[3]
    assert watchers.check_price_watchers(markets.ctx(engine))["unavailable"] == 0


def test_opted_out_and_deleted_users(
    engine: Engine, markets: Marketplaces, gateway: FakeChannelGateway
) -> None:
    with engine.begin() as c:
        quiet = add_user(c, opt_in=False)
        gone = add_user(c, deleted_at=TICK - timedelta(days=1))
        quiet_watcher = add_watcher(c, quiet, "shopee", "111.2001", 200000)
        add_watcher(c, gone, "shopee", "111.2002", 200000)
    result = watchers.check_price_watchers(markets.ctx(engine))
    # The deleted user's watcher is not even fetched; the opted-out user's hit is
    # recorded but not sent.
    assert (
        result["checked"],
        result["targets_hit"],
        result["notifications_queued"],
    ) == (1, 1, 0)
    assert dict(markets.shopee.asked) == {"111.2001": 1}
    assert gateway.received == []
    with engine.connect() as c:
        assert (
            scalar(
                c,
                "SELECT notified_at FROM price_watchers WHERE id = :i",
                i=quiet_watcher,
            )
            == TICK
        )


def test_a_crash_after_claiming_is_checked_once_after_the_lease(
    engine: Engine, markets: Marketplaces, gateway: FakeChannelGateway
) -> None:
    with engine.begin() as c:
        add_watcher(c, add_user(c), "lazada", "3001", 2000000)
        c.execute(
            watchers.CLAIM_DUE,
            {"marketplace": "lazada", "tick": TICK, "limit": 10, "lease": 600},
        )
    # ...the run that claimed it died. While its lease holds, nobody re-checks.
    assert watchers.check_price_watchers(markets.ctx(engine))["checked"] == 0
    with engine.begin() as c:
        c.execute(
            sa.text("UPDATE price_watchers SET claimed_until = now() - interval '1s'")
        )
    result = watchers.check_price_watchers(markets.ctx(engine))
    assert (result["checked"], result["notifications_sent"]) == (1, 1)
    assert len(gateway.delivered) == 1


def test_two_runs_at_once_check_each_watcher_once(
    engine: Engine, markets: Marketplaces, gateway: FakeChannelGateway
) -> None:
    refs = [f"111.{5000 + i}" for i in range(60)]
    markets.shopee.prices.update({ref: Decimal(10000) for ref in refs})
    with engine.begin() as c:
        user = add_user(c)
        ids = add_watchers(c, user, "shopee", refs, 20000)
    ctx = markets.ctx(engine, marketplace_concurrency=2)
    results = run_concurrently(lambda: watchers.check_price_watchers(ctx))
    assert sum(r["checked"] for r in results) == 60
    assert set(markets.shopee.asked.values()) == {1}
    assert {k: len(v) for k, v in _history(engine).items()} == dict.fromkeys(ids, 1)
    assert sum(r["notifications_queued"] for r in results) == 60
    assert len(gateway.delivered) == 60 and len(gateway.received) == 60


def test_a_small_batch_checks_every_due_watcher_in_several_claims(
    engine: Engine, markets: Marketplaces
) -> None:
    refs = [f"111.{6000 + i}" for i in range(25)]
    markets.shopee.prices.update({ref: Decimal(10000) for ref in refs})
    with engine.begin() as c:
        ids = add_watchers(c, add_user(c), "shopee", refs, 5000)
    ctx = markets.ctx(engine, price_watcher_batch_size=10)
    with executions(engine, watchers.CLAIM_DUE) as claims:
        result = watchers.check_price_watchers(ctx)
    assert result["checked"] == 25 and result["by_marketplace"]["shopee"] == 25
    shopee = [
        (params["limit"], rows)
        for params, rows in claims
        if params["marketplace"] == "shopee"
    ]
    assert shopee == [(10, 10), (10, 10), (10, 5)]
    assert set(markets.shopee.asked.values()) == {1}
    assert {k: len(v) for k, v in _history(engine).items()} == dict.fromkeys(ids, 1)


def test_a_late_answer_is_not_recorded_or_counted_by_a_run_that_lost_its_lease(
    engine: Engine, markets: Marketplaces, gateway: FakeChannelGateway
) -> None:
    """Run A's lease runs out while the marketplace holds A's request; run B
    claims the watcher and records its price. A's late "item not found" then
    matches no row: the watcher keeps what B recorded, and A counts nothing."""
    with engine.begin() as c:
        watcher = add_watcher(c, add_user(c), "lazada", "3001", 2000000)
    slow = markets.lazada.hold_next(
        Reply(200, {"success": False, "ret": ["FAIL_SYS_ITEM_NOT_FOUND"]})
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            a = pool.submit(watchers.check_price_watchers, markets.ctx(engine))
            slow.wait_arrived()
            with engine.begin() as c:
                c.execute(
                    sa.text(
                        "UPDATE price_watchers "
                        "SET claimed_until = now() - interval '1s'"
                    )
                )
            b = watchers.check_price_watchers(markets.ctx(engine))
            assert (b["checked"], b["unavailable"]) == (1, 0)
            slow.release()
            late = a.result(timeout=10)
        finally:
            slow.release()
    assert (late["checked"], late["unavailable"], late["deferred"]) == (0, 0, 0)
    with engine.connect() as c:
        row = c.execute(
            sa.text(
                "SELECT last_price, last_error, claimed_until FROM price_watchers "
                "WHERE id = :id"
            ),
            {"id": watcher},
        ).one()
    assert tuple(row) == (Decimal(1250000), None, None)
    assert len(gateway.delivered) == 1
