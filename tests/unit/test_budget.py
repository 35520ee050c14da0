"""A worker's connection budget: sized from its concurrency, shrunk in a stated
order to fit a cap, and refused below what a worker needs."""

from __future__ import annotations

import pytest

from agnt_jobs.db.budget import Budget, budget
from agnt_jobs.settings import ConfigError, Settings


def _settings(**values: object) -> Settings:
    return Settings.model_validate(values)


@pytest.mark.parametrize("concurrency", [1, 2, 10, 50])
def test_uncapped_the_most_a_worker_opens_is_3c_plus_4(concurrency: int) -> None:
    share = budget(_settings(worker_concurrency=concurrency))
    assert share == Budget(
        queue_pool=concurrency + 3,
        listeners=1,
        body_pool=concurrency,
        body_overflow=concurrency,
    )
    assert share.total == 3 * concurrency + 4


def test_without_listen_notify_no_listener_is_counted() -> None:
    assert budget(_settings(worker_concurrency=2), listen_notify=False).listeners == 0


def test_a_cap_takes_the_body_overflow_first_then_the_queue_then_the_bodies() -> None:
    # concurrency 10: 13 + 1 + 10 + 10 = 34.
    def capped(cap: int) -> Budget:
        return budget(
            _settings(worker_concurrency=10, db_max_connections_per_worker=cap)
        )

    assert capped(34) == Budget(13, 1, 10, 10)
    assert capped(30) == Budget(13, 1, 10, 6)
    assert capped(24) == Budget(13, 1, 10, 0)
    assert capped(20) == Budget(9, 1, 10, 0)
    assert capped(14) == Budget(3, 1, 10, 0)
    assert capped(5) == Budget(3, 1, 1, 0)
    for cap in range(5, 40):
        assert capped(cap).total <= cap


def test_a_cap_below_what_a_worker_needs_is_refused_with_what_to_do() -> None:
    settings = _settings(worker_concurrency=10, db_max_connections_per_worker=4)
    with pytest.raises(ConfigError, match="AGNT_DB_MAX_CONNECTIONS_PER_WORKER=4"):
        budget(settings)


def test_a_fixed_queue_pool_is_kept_and_the_bodies_give_way() -> None:
    settings = _settings(
        worker_concurrency=10, pool_max_size=12, db_max_connections_per_worker=20
    )
    assert budget(settings) == Budget(12, 1, 7, 0)
    too_big = _settings(
        worker_concurrency=10, pool_max_size=30, db_max_connections_per_worker=20
    )
    with pytest.raises(ConfigError, match="AGNT_POOL_MAX_SIZE=30"):
        budget(too_big)


def test_through_pgbouncer_the_cap_counts_only_what_reaches_the_server() -> None:
    """The queue pool's connections are PgBouncer's clients: a cap of 2 leaves it
    whole and keeps the listener and one body connection."""

    def capped(cap: int) -> Budget:
        return budget(
            _settings(
                worker_concurrency=2,
                db_max_connections_per_worker=cap,
                database_direct_url="postgresql://agnt@db:5432/agnt",
            )
        )

    assert capped(5) == Budget(5, 1, 2, 2)
    assert capped(4) == Budget(5, 1, 2, 1)
    assert capped(2) == Budget(5, 1, 1, 0)
    for cap in range(2, 8):
        share = capped(cap)
        assert share.listeners + share.body_pool + share.body_overflow <= cap
