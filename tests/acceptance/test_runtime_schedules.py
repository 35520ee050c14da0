"""Schedules changed at runtime, with real ``procrastinate worker`` processes: three
workers follow a plain SQL UPDATE of a cron (each says so once) and decide every
tick under the new cron exactly once; a schedule created in SQL ticks once across
them; the CLI changes, dry-runs and resets a schedule, and refuses bad values with
one line. No timing asserts (the latency is in ``agnt-jobs bench --only
schedule_change``)."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support import ticking
from tests.support.ticking import BIN, ROOT, SECOND

pytestmark = pytest.mark.slow


def _applied(logs: Path, count: int, text: str) -> bool:
    return all(
        text in (logs / f"w{n}.log").read_text(errors="replace") for n in range(count)
    )


def test_three_workers_follow_an_update_and_a_schedule_created_in_sql(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    env = ticking.env(db_url, AGNT_TEST_SCHEDULES="test_skip")
    with ticking.workers(env, count=3, logs=tmp_path):
        ticking.wait_for(lambda: len(ticking.job_ticks(engine, "test_skip")) >= 2)
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "UPDATE schedules SET cron = '* * * * * */3' WHERE id = 'test_skip'"
                )
            )
        changed_at = ticking.db_now(engine)
        ticking.wait_for(
            lambda: _applied(
                tmp_path, 3, "schedule test_skip now follows cron '* * * * * */3'"
            )
        )
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO schedules (id, task_name, cron) VALUES "
                    "('test_skip_odd', 'test_skip', '* * * * * 1-59/3')"
                )
            )
        ticking.wait_for(
            lambda: (
                len(ticking.ticks(engine, "test_skip_odd")) >= 4
                and ticking.ticks(engine, "test_skip")[-1].tick_at
                > changed_at + 6 * SECOND
            )
        )

    for n in range(3):
        log = (tmp_path / f"w{n}.log").read_text(errors="replace")
        assert log.count("schedule test_skip now follows") == 1, log
    # After the change every decided tick is on the new grid, each decided once.
    after = [
        t
        for t in ticking.ticks(engine, "test_skip")
        if t.decided_at > changed_at + timedelta(seconds=0.5)
    ]
    assert after and all(t.tick_at.second % 3 == 0 for t in after)
    ticking.assert_every_tick_decided_once(after, 3 * SECOND)
    # The schedule made in SQL ticks on its own grid, once per tick, and its runs
    # are runs of its job.
    odd = ticking.ticks(engine, "test_skip_odd")
    ticking.assert_every_tick_decided_once(odd, 3 * SECOND)
    assert all(t.tick_at.second % 3 == 1 for t in odd)
    deferred = [t.job_id for t in odd if t.outcome == "deferred"]
    assert deferred
    tasks = ticking.query(
        engine,
        "SELECT DISTINCT task_name FROM procrastinate_jobs WHERE id = ANY(:ids)",
        ids=deferred,
    )
    assert tasks == [("test_skip",)]


def _agnt(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "agnt-jobs", *args],
        env=ticking.env(db_url),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_set_dry_run_reset_and_check_from_the_cli(db_url: str, engine: Engine) -> None:
    def row() -> tuple:
        with engine.connect() as connection:
            return tuple(
                connection.execute(
                    sa.text(
                        "SELECT cron, zone, misfire_policy, timeout, overridden "
                        "FROM schedules WHERE id = 'deliver_reminders'"
                    )
                ).one()
            )

    def audit() -> list[tuple]:
        with engine.connect() as connection:
            return [
                tuple(r)
                for r in connection.execute(
                    sa.text(
                        "SELECT changed_by, source, old, new FROM schedule_changes "
                        "WHERE schedule_id = 'deliver_reminders' AND source <> "
                        "'deploy' ORDER BY id"
                    )
                )
            ]

    # As if a worker had declared it (resuming a running schedule changes nothing).
    assert _agnt(db_url, "schedules", "resume", "deliver_reminders").returncode == 0
    dry = _agnt(db_url, "schedules", "set", "deliver_reminders", "--cron",
                "7 3 * * *", "--dry-run")  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "WITA" in dry.stdout and "UTC" in dry.stdout
    assert dry.stdout.count(" 03:07 ") == 5
    assert dry.stdout.rstrip().endswith("dry run: nothing changed")
    declared = row()
    assert declared[:2] == ("*/5 * * * *", "Asia/Makassar")
    assert audit() == []

    for args, message in [
        (("--cron", "61 * * * *"), "agnt-jobs: schedules.cron '61 * * * *' is not a "
         "valid cron: the minute field '61' has '61': use 0 to 59"),
        (("--zone", "Mars/Olympus"), "agnt-jobs: schedules.zone 'Mars/Olympus' is "
         "not a time zone"),
        (("--misfire", "later"), "agnt-jobs: schedules.misfire_policy 'later' is not "
         "a policy"),
        (("--timeout", "0 seconds"), "agnt-jobs: schedules.timeout '00:00:00' must "
         "be positive"),
    ]:  # fmt: skip
        refused = _agnt(db_url, "schedules", "set", "deliver_reminders", *args)
        assert refused.returncode == 2, args
        [line] = refused.stderr.strip().splitlines()
        assert line.startswith(message), line
    unknown = _agnt(db_url, "schedules", "set", "nope", "--cron", "* * * * *")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("agnt-jobs: unknown schedule 'nope'")
    assert row() == declared and audit() == []

    done = _agnt(db_url, "schedules", "set", "deliver_reminders", "--cron",
                 "7 3 * * *", "--timeout", "10 minutes", "--by", "ana")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert row() == ("7 3 * * *", "Asia/Makassar", "skip", timedelta(minutes=10), True)
    [(by, source, old, new)] = audit()
    assert (by, source) == ("ana", "cli")
    assert (old, new) == (
        {"cron": "*/5 * * * *", "timeout": "00:30:00"},
        {"cron": "7 3 * * *", "timeout": "00:10:00"},
    )

    listed = _agnt(db_url, "schedules", "list", "--json")
    [entry] = [e for e in json.loads(listed.stdout) if e["id"] == "deliver_reminders"]
    assert (entry["cron"], entry["overridden"]) == ("7 3 * * *", True)
    assert entry["declared"]["cron"] == "*/5 * * * *"
    assert entry["next_run_at"].endswith("03:07:00+08:00")

    check = _agnt(db_url, "schedules", "check")
    assert (
        "overridden (ok): deliver_reminders: cron is '7 3 * * *', the code declares "
        "'*/5 * * * *' (set by ana at" in check.stdout
    )

    reset = _agnt(db_url, "schedules", "reset", "deliver_reminders")
    assert reset.returncode == 0, reset.stderr
    assert row() == declared
    assert "overridden" not in _agnt(db_url, "schedules", "check").stdout
