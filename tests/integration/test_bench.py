"""The benchmark harness at a tiny scale: each family runs end to end on scratch
databases and reports well-formed figures. Speed is never asserted (that is what
the benchmark is for); structure and correctness are: the fixture puts the due
work where the jobs look, every baseline statement changes exactly what its job
changes, the send queue delivers every message, no tick is deferred twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs import bench
from agnt_jobs.bench import (
    cases,
    claim,
    defer,
    fanout,
    fleet,
    jobs,
    metrics,
    peer_queues,
    queue,
    schedule_change,
    scheduling,
)
from agnt_jobs.bench.base import BenchContext
from agnt_jobs.datagen import fixtures
from agnt_jobs.scheduler.bodies import BODIES, RunContext
from agnt_jobs.settings import Settings
from agnt_jobs.testing.cluster import ClusterUnavailable
from agnt_jobs.testing.pgbouncer import PgBouncerUnavailable
from agnt_jobs.testing.scratch import scratch_server

ROOT = Path(__file__).resolve().parents[2]
DUE = 12
# The instant the data is built around and the jobs run at. Now, not a fixed date:
# some jobs compare with the database's clock (a message is due at now()).
AT = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def ctx(server_url: str, template_name: str) -> Iterator[BenchContext]:
    with scratch_server(server_url, template_name) as server:
        yield BenchContext(server=server, scale=1, repeats=1, at=AT, quiet=True)


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(sql)).scalar_one())


def test_fixture_puts_the_due_work_where_each_job_looks(
    db_url: str, engine: Engine, env: Settings
) -> None:
    fixtures.fill(db_url, fixtures.Sizes(1, DUE), AT, "http://127.0.0.1:9")
    # The background's bookings; the due ones come after them.
    assert _count(engine, "SELECT count(*) FROM bookings WHERE id <= 10000") == 10_000
    assert _count(engine, "SELECT count(*) FROM users") == 2_000 + DUE

    def run(job_id: str) -> dict:
        return BODIES[job_id](RunContext(engine=engine, settings=env, tick=AT, now=AT))

    # The due rows and nothing else, whatever the background holds.
    assert run("prune_error_logs")["deleted"] == DUE
    assert run("memory_eviction")["deleted"] == DUE
    assert run("dlq_cleanup")["deleted"] == DUE
    assert run("b2b_session_cleanup")["sessions_deleted"] == DUE
    assert run("mark_abandoned_b2b_sessions")["sessions_abandoned"] == DUE
    assert run("expire_stale_referrals")["referrals_expired"] == DUE
    assert run("reset_api_key_queries_today")["reset"] == DUE
    assert run("reconcile_venue_compound_state")["venues_fixed"] == min(DUE, 40)
    purged = run("purge_deleted_users")
    assert (purged["users_purged"], purged["bookings_anonymised"]) == (DUE, 3 * DUE)
    rotated = run("rotate_delta_log")
    assert (rotated["archived"], rotated["archive_expired"]) == (DUE, DUE)
    cleaned = run("clean_finished_jobs")
    assert (cleaned["jobs_deleted"], cleaned["runs_deleted"]) == (DUE, DUE)
    assert run("mark_completed_bookings")["completed"] == DUE
    assert run("reap_stale_envelopes")["expired"] == DUE
    assert run("sweep_orphaned_responses")["closed"] == DUE
    assert run("booking_reminders")["reminders_created"] == DUE
    # Run again: the due work is done, the background was never due.
    assert run("prune_error_logs")["deleted"] == 0
    assert run("purge_deleted_users")["users_purged"] == 0
    assert run("booking_reminders")["reminders_created"] == 0
    assert run("sweep_orphaned_responses")["closed"] == 0


# http_due = 5: every variant of each job's due rows occurs at least once.
PEER_DUE = 50
PEER_JOBS = {
    "auto_confirm_stale_bookings": {"auto_confirmed": 5, "sent": 5},
    "cancel_orphaned_bookings": {
        "envelope_expired": 1,
        "no_envelope": 2,
        "slot_passed": 2,
        "sent": 5,
    },
    "recover_stuck_bookings": {
        "responses_applied": 5,
        "envelopes_created": 5,
        "dispatched": 5,
        "dispatch_failed": 0,
        "sent": 5,
    },
    "retry_dispatch_failed": {"retired": 1, "dispatched": 4, "dispatch_failed": 0},
    "deliver_reminders": {"reminders_sent": 4, "reminders_skipped": 1, "sent": 4},
    "retry_failed_sends": {"sent": 10, "stranded_pending": 5, "failed": 0},
    "spend_digest": {"digests_queued": 5, "sent": 5},
    "daily_nutrition_summary": {"summaries_queued": 5, "sent": 5},
    "rating_prompt": {"prompts_queued": 5, "sent": 5},
}


def test_jobs_that_call_peers_find_exactly_their_due_work(ctx: BenchContext) -> None:
    """Each message or A2A job does its ``http_due`` rows through the peer, and
    nothing of the background (whose rows would make the counts larger)."""
    assert fixtures.Sizes(1, PEER_DUE).http_due == 5
    measurements = jobs.run(ctx, PEER_DUE, None, sorted(PEER_JOBS))
    for m in measurements:
        result = m.details["job"]["result"]
        wanted = PEER_JOBS[m.name]
        assert {key: result.get(key) for key in wanted} == wanted, m.name


# stripe_due = 5 at PEER_DUE: the first customer's card is declined.
STRIPE_JOBS = {
    "monthly_invoice": {"planned": 5, "created": 5, "paid": 4, "payment_failed": 1},
    "retry_pending_fees": {"paid": 4, "declined": 1, "uncollectible": 0},
    "reconcile_subscription_state": {"checked": 5, "in_sync": 3, "corrected": 2},
    "charge_unbilled_usage": {"batches": 5, "events": 50, "billed": 5, "failed": 0},
}


def test_stripe_jobs_do_their_due_work_on_a_localstripe_of_their_own(
    ctx: BenchContext,
) -> None:
    """Each billing job finds its ``stripe_due`` rows linked to objects of its own
    localstripe, and the rows the preparation wrote are not counted as the job's."""
    assert fixtures.Sizes(1, PEER_DUE).stripe_due == 5
    measurements = jobs.run(ctx, PEER_DUE, None, sorted(STRIPE_JOBS))
    for m in measurements:
        job = m.details["job"]
        wanted = STRIPE_JOBS[m.name]
        assert {key: job["result"].get(key) for key in wanted} == wanted, m.name
        assert "on localstripe" in job["stripe"], m.name
    tables = {m.name: m.details["job"]["tables"] for m in measurements}
    # Only the two drifted subscriptions are written, not the five linked.
    assert tables["reconcile_subscription_state"] == {"subscriptions": 2}
    assert "api_keys" not in tables["charge_unbilled_usage"]


def test_each_baseline_changes_exactly_what_its_job_changes(
    ctx: BenchContext,
) -> None:
    set_based = sorted(job for job, case in cases.CASES.items() if case.baseline)
    measurements = jobs.run(ctx, DUE, None, set_based)
    assert [m.name for m in measurements] == set_based
    for m in measurements:
        job, sql = m.details["job"], m.details["sql"]
        assert job["rows_changed"] > 0, m.name
        assert job["tables"] == sql["tables"], m.name
        assert m.value is not None and m.baseline is not None and m.ratio is not None
        assert 0 < job["rss_before_mb"] <= job["peak_rss_mb"]


def test_jobs_family_compares_two_scales_with_the_same_work(
    ctx: BenchContext,
) -> None:
    measurements = jobs.run(ctx, DUE, 2, ["dlq_cleanup", "light_dreaming"])
    by_family = {(m.family, m.name): m for m in measurements}
    assert set(by_family) == {
        ("jobs", "dlq_cleanup"),
        ("jobs-scaling", "dlq_cleanup"),
        ("jobs", "light_dreaming"),
        ("jobs-scaling", "light_dreaming"),
    }
    for job_id in ("dlq_cleanup", "light_dreaming"):
        main = by_family[("jobs", job_id)].details["job"]
        small = by_family[("jobs-scaling", job_id)].details["small"]
        assert main["rows_changed"] == small["rows_changed"] > 0
    assert by_family[("jobs", "light_dreaming")].baseline is None


@pytest.mark.slow
def test_every_job_runs_on_the_benchmark_data(ctx: BenchContext) -> None:
    measurements = jobs.run(ctx, DUE, None, [])
    assert {m.name for m in measurements} == set(jobs.job_ids())
    for m in measurements:
        assert m.details["job"]["peak_rss_mb"] > 0
        assert isinstance(m.details["job"]["result"], dict), m.name


def test_fanout_delivers_every_message_and_names_the_best(ctx: BenchContext) -> None:
    measurements = fanout.run(ctx, concurrencies=(1, 4))
    assert [m.name for m in measurements] == [
        "send queue, concurrency 1",
        "send queue, concurrency 4",
    ]
    for m in measurements:
        assert m.details["queue"]["sent"] == fanout.messages_for(1)
        assert m.details["raw"]["sent"] == fanout.messages_for(1)
        assert m.value and m.baseline and m.ratio
    assert [m.met for m in measurements].count(True) == 1


@pytest.mark.slow
def test_queue_family_drains_every_job_through_both_apps(ctx: BenchContext) -> None:
    measurements = queue.run(
        ctx, candidates=(queue.CANDIDATES[0],), lock_jobs={"ours": 5, "plain": 2}
    )
    assert [m.name for m in measurements] == [
        "no-op jobs, defaults",
        "no-op jobs, tuned (concurrency 4)",
        "tuned vs defaults, ours",
        "tuned vs defaults, plain",
        "same-lock jobs back to back",
        "jobs waiting 50 ms, defaults",
    ]
    assert all(runs for runs in measurements[-2].details.values())
    for measurement in measurements[:2] + measurements[-1:]:
        for app in ("ours", "plain"):
            figures = measurement.details[app]
            assert figures["jobs_per_second"] > 0
            assert figures["cpu_ms_per_job"] > 0
        assert measurement.ratio is not None


@pytest.mark.slow
def test_scheduling_defers_each_tick_once_with_both_apps(ctx: BenchContext) -> None:
    ctx.schedule_seconds = 4
    [evaluator, measurement] = scheduling.run(ctx, worker_counts=(2,))
    assert evaluator.value is not None and evaluator.baseline is not None
    assert evaluator.value > 0 and evaluator.baseline > 0
    for app in ("ours", "plain"):
        figures = measurement.details[app]
        assert figures["ticks"] >= 3
        assert figures["duplicates"] == 0, figures
        assert figures["p50"] is not None
        assert figures["p50"] <= figures["p99"] <= figures["max"]


@pytest.mark.slow
def test_schedule_change_times_every_worker_following_each_update(
    ctx: BenchContext,
) -> None:
    [measurement] = schedule_change.run(ctx, changes=3)
    ours, floor = measurement.details["ours"], measurement.details["bare_notify"]
    assert len(ours) == len(floor) == 3 * schedule_change.WORKERS
    assert all(0 < latency < schedule_change.APPLY_TIMEOUT_SECONDS for latency in ours)
    assert measurement.ratio is not None


def test_defer_times_each_case_against_both_plain_inserts(ctx: BenchContext) -> None:
    measurements = defer.run(ctx, count=20)
    assert [m.name for m in measurements] == [
        "transaction with agnt_defer, a new job, median",
        "transaction with agnt_defer, a new job, against the job table, median",
        "transaction with agnt_defer, joining the job already waiting, median",
    ]
    for measurement in measurements:
        assert measurement.details["transactions"] == 20
        medians = measurement.details["median_us"]
        assert set(medians) == {
            "no_job",
            "plain_insert",
            "job_table_insert",
            "defer_new",
            "defer_join",
            "round_trip",
        }
        assert all(value > 0 for value in medians.values())
        assert measurement.ratio is not None and measurement.met is not None


@pytest.mark.slow
def test_metrics_scrapes_an_admin_server_on_the_run_history(
    ctx: BenchContext,
) -> None:
    [measurement] = metrics.run(ctx, count=3, days=1)
    assert len(measurement.details["ours"]) == 3
    assert len(measurement.details["from_history"]) == 3
    rows = measurement.details["rows"]
    # Every tick of every schedule over the day: two of them tick every minute.
    assert rows["job_runs"] > 2 * 1440 and rows["bookings"] >= 10_000
    assert "samples" in measurement.note and measurement.ratio is not None


def test_peers_and_claim_are_families_of_their_own() -> None:
    assert bench.plan(("peers",)) == (["peers"], [])
    assert bench.plan(("claim", "peers")) == (["peers", "claim"], [])


def _offline(tmp_path: Path) -> dict[str, str]:
    """An environment where no peer can install: no node or npm on PATH, and pip
    with no index and nothing to find."""
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    return {
        **os.environ,
        "PATH": str(empty),
        "AGNT_BENCH_PEERS_DIR": str(tmp_path / "cache"),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(empty),
    }


def test_a_peer_that_cannot_install_is_skipped_with_its_reason(
    ctx: BenchContext, tmp_path: Path
) -> None:
    env = _offline(tmp_path)
    with pytest.raises(peer_queues.Unavailable, match="node is not on PATH"):
        peer_queues.prepare("graphile-worker", tmp_path / "cache", env)
    measurements = peer_queues.run(
        ctx, jobs=5, systems=("graphile-worker", "pg-boss"), env=env
    )
    assert [(m.name, m.value, m.details) for m in measurements] == [
        ("graphile-worker 0.17.3", None, {"skipped": "node is not on PATH"}),
        ("pg-boss 10.4.2", None, {"skipped": "node is not on PATH"}),
    ]
    assert not ctx.server.created  # no scratch database for a peer that never ran


@pytest.mark.slow
def test_peers_drain_plain_procrastinate_and_ours_beside_the_skipped(
    ctx: BenchContext, tmp_path: Path
) -> None:
    measurements = peer_queues.run(ctx, jobs=20, env=_offline(tmp_path))
    by_name = {m.name: m for m in measurements}
    plain = by_name[peer_queues.labels()["plain"]]
    ours = by_name["ours"]
    for measured in (plain, ours):
        assert measured.value and measured.value > 0
        assert measured.details["cpu_ms_per_job"] > 0
        assert measured.baseline == plain.value
    assert plain.ratio == 1.0
    reason = by_name["PgQueuer 1.6.0"].details["skipped"]
    assert reason.startswith("pip install pgqueuer==1.6.0 asyncpg==0.32.0 failed: ")
    assert "No matching distribution" in reason and "\n" not in reason
    assert by_name["graphile-worker 0.17.3"].value is None
    against = by_name["ours against graphile-worker"]
    assert (against.met, against.note) == (None, "graphile-worker did not run")


@pytest.mark.slow
def test_claim_times_each_scenario_reads_its_plan_and_applies_retention(
    ctx: BenchContext,
) -> None:
    measurements = claim.run(ctx, waiting=(20, 60), finished=200, claims=5)
    assert [m.name for m in measurements] == [
        "claim p99, 20 waiting",
        "claim p99, 60 waiting",
        "claim p99, 20 waiting, 200 finished",
        "claim p99, after retention",
        "claim p99, after retention and VACUUM",
    ]
    for m in measurements:
        details = m.details
        # Our worker's claim, and Procrastinate's fetch beside it as the baseline.
        for way in claim.WAYS:
            assert 0 < details[way]["p50_ms"] <= details[way]["p99_ms"]
        # Each claim walks the waiting jobs' index in order, whatever the size.
        for plan, function in (
            (details["plan"], "agnt_claim_jobs"),
            (details["fetch_plan"], "procrastinate_fetch_job_v2"),
        ):
            assert plan["function"] == function
            assert plan["indexes"][0] == "procrastinate_jobs_priority_idx_v1"
            assert "Update on procrastinate_jobs" in plan["runs"]
        assert f"LIMIT {claim.BATCH}" in details["plan"]["runs"] or (
            f"rows={claim.BATCH}" in details["plan"]["runs"]
        )
    # Each claimed job was finished and replaced: the number waiting holds.
    assert [m.details["table"]["todo"] for m in measurements[:3]] == [20, 60, 20]
    assert measurements[2].details["table"]["succeeded"] >= 200
    [goal_60, goal_finished] = [m.met is not None for m in measurements[1:3]]
    assert goal_60 and goal_finished and measurements[0].met is None
    retention = measurements[3].details["retention"]
    assert retention["jobs_deleted"] == 200
    assert retention["after"]["succeeded"] == retention["before"]["succeeded"] - 200


def test_cli_runs_one_job_and_writes_the_json(server_url: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "agnt-jobs"),
            "bench",
            "--only=selfcheck",
            "--due=5",
            f"--server={server_url}",
            f"--json={out}",
        ],
        env={**os.environ, "AGNT_DATABASE_URL": server_url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "selfcheck" in done.stdout
    document = json.loads(out.read_text())
    assert document["options"]["only"] == ["selfcheck"]
    assert document["machine"]["cpus"] >= 1
    [measurement] = document["measurements"]
    assert (measurement["family"], measurement["name"]) == ("jobs", "selfcheck")
    assert "database_ms" in measurement["details"]["job"]["result"]


def test_unknown_benchmark_is_a_usage_error(server_url: str) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "agnt-jobs"), "bench", "--only=nope"],
        env={**os.environ, "AGNT_DATABASE_URL": server_url},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "neither a benchmark family" in done.stderr
    with pytest.raises(bench.UnknownBenchmark):
        bench.plan(("nope",))


def test_scratch_databases_are_dropped(server_url: str, template_name: str) -> None:
    with scratch_server(server_url, template_name) as server:
        name = server.migrated("probe")
        copy = server.create("probe_copy", template=name)
        assert {name, copy} <= set(server.created)
    with psycopg.connect(server_url) as admin:
        left = admin.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE %s",
            [f"%{server.run_id}%"],
        ).fetchone()
    assert left == (0,)


@pytest.mark.slow
def test_fleet_through_pgbouncer_rides_out_a_restart_deciding_each_tick_once(
    ctx: BenchContext,
) -> None:
    try:
        figures = fleet.fleet(ctx, workers=2, through_pgbouncer=True, seconds=8)
    except (ClusterUnavailable, PgBouncerUnavailable) as reason:
        pytest.skip(str(reason))
    assert figures["alive"] == 2
    assert figures["ticks"] >= 7
    assert figures["restart_down_seconds"] > 0
    assert figures["restart_back_seconds"] >= 0
    assert figures["duplicates"] == 0, figures
    assert figures["misses"] == 0, figures
    assert figures["start_p99"] is not None
    assert figures["noop_per_second"] > 0
    assert 0 < figures["peak_server_connections"] <= fleet.MAX_CONNECTIONS
