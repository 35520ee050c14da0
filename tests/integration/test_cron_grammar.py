"""One grammar: Postgres (``agnt_cron_problem``, behind the schedules table's check)
and Python (``agnt_jobs.scheduler.cron``) accept and refuse the same expressions,
with the same message, over a corpus of edge cases and seeded random ones."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from procrastinate import PsycopgConnector
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler import cron, deploy, tasks
from agnt_jobs.scheduler.declaration import Schedule
from agnt_jobs.scheduler.worker import AgntApp
from agnt_jobs.settings import ConfigError, Settings
from periodic import DECLARED

MINUTE = ["0", "00", "5", "05", "59", "60", "99", "000", "005", "-1", "1-1", "59-59",
          "0-59", "5-3", "*/1", "*/15", "*/59", "*/60", "*/61", "*/0", "*/00",
          "*/100", "1-30/7", "0-59/60", "5/10", "*/", "/5", "1-", "-5", "1--2",
          "1-2-3", "*-5", "**", "*,5", "5,*", "1,2,3", "1,,2", ",1", "1,", "1-5,*/20",
          "mon", "jan", "x", "1a", "a1"]  # fmt: skip
HOUR = ["0", "23", "24", "*", "*/2", "*/24", "*/25", "0-23/3", "1-5/2", "2", "9-9",
        "22-2", "1,2", "12/2"]  # fmt: skip
DAY_OF_MONTH = ["1", "15", "28", "29", "30", "31", "32", "0", "*", "*/2", "*/10",
                "*/31", "*/32", "1-31/2", "L", "LW", "15W", "?", "30,31", "1-1",
                "31-31"]  # fmt: skip
MONTH = ["1", "2", "12", "13", "0", "*", "feb", "FEB", "Feb", "jan-dec", "jan-dec/3",
         "dec-jan", "4,6,9,11", "apr,jun,sep,nov", "2-2", "*/12", "*/13", "1-dec",
         "february", "jan/2"]  # fmt: skip
DAY_OF_WEEK = ["0", "7", "8", "*", "sun", "SUN", "mon-fri", "MON-FRI", "sat-sun",
               "mon-sun", "sun-sat", "0-7", "5-7", "7-7", "1-1", "*/2", "*/8",
               "*/9", "1#2", "5L", "L", "?", "monday", "mon,wed,fri",
               "1-5/2"]  # fmt: skip
SECOND = ["0", "59", "60", "*", "*/2", "*/60", "*/61", "30-30"]

EDGES = [
    "",
    " ",
    "\t",
    "  \t ",
    "* * * * *",
    " * * * * * ",
    "\t* * * * *\t",
    "*\t*\t*\t*\t*",
    "*  *   *    *     *",
    "* * * *",
    "* * * * * * *",
    "* * * * * * * *",
    "*",
    "* *",
    "0 0 30 2 *",
    "0 0 31 2 *",
    "0 0 29 2 *",
    "0 0 30,31 2 *",
    "0 0 31 4,6,9,11 *",
    "0 0 31 apr,jun,sep,nov *",
    "0 0 31 2,4 *",
    "0 0 31 2,3 *",
    "0 0 30 2 mon",
    "0 0 30 2 */2",
    "0 0 29 2 */7",
    "0 0 */30 2 *",
    "0 0 31 */2 *",
    "0 0 31 2-4/2 *",
    "@daily",
    "@DAILY",
    "@hourly",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
    "@midnight",
    "@reboot",
    "@every 5m",
    "@daily * * * *",
    " @daily",
    "0 9 L * *",
    "0 9 * * 5L",
    "0 9 ? * MON",
    "0 9 * * MON#2",
    "0 9 15W * *",
    "0 0 0 * *",
    "*/5 * * * * *",
    "* * * * * */2",
    "0 0 12 * * ?",
    "0 0 12 * * 60",
    "\u0663 * * * *",
    "\uff15 * * * *",
    "1\u00a0* * * *",
    "* * * * *\n",
    "*\n* * * *",
    "* * * * *\r",
    "\u00a0* * * * *",
    "* * * * \u2003*",
    "5 \u0668 * * *",
    "\u00b2 * * * *",
    "\u2174 * * * *",
    "* * * * mön",
    "* * * * \uff2d\uff2f\uff2e",
    "0 0 * * \u0130",
    "'",
    "0 0 * * '1'",
    '0 0 * * "1"',
    "\\* * * * *",
    "0 0 1 1 * # comment",
    "0 0 1 1 ; *",
    "0 0 1 1 *;",
    "0,30 8-18/2 * 1-6 1-5",
    "5-5 * * * *",
    "0 9-9 * * *",
    "0 9 * * 1-1",
    "0 0 */1 * mon",
    "0 12 * * 7",
    "0 12 * * 0",
    "0 12 * * sun-sat",
    "1-59/59 * * * *",
    "0 0 31 1 *",
]


def corpus() -> list[str]:
    """Edge cases, then every field's edges on a valid background, then seeded
    random expressions mixing them (at least a thousand in all)."""
    expressions = list(EDGES)
    background = ["0", "0", "1", "1", "*", "0"]
    for index, pieces in enumerate((MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK)):
        for piece in pieces:
            fields = background[:5]
            fields[index] = piece
            expressions.append(" ".join(fields))
    for piece in SECOND:
        expressions.append(" ".join([*background[:5], piece]))
    rng = random.Random(1206)
    pools = (MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, SECOND)
    # Half of the random ones from pieces each valid in its field, so that about
    # as many are accepted as refused.
    valid = [[p for p in pool if p.strip() and p[0] not in "-/"] for pool in pools]
    valid = [
        [p for p in pool if cron.problem(_in_field(i, p)) is None]
        for i, pool in enumerate(valid)
    ]
    while len(expressions) < 1_500:
        count = rng.choice([5, 5, 5, 5, 6, 4, 7])
        chosen = valid if rng.random() < 0.5 else pools
        fields = [rng.choice(chosen[i % 6]) for i in range(count)]
        separator = rng.choice([" ", " ", " ", "\t", "  ", " \t"])
        expressions.append(separator.join(fields))
    return expressions


def _in_field(index: int, piece: str) -> str:
    fields = ["0", "0", "1", "1", "*", "0"]
    fields[index] = piece
    return " ".join(fields[: max(5, index + 1)])


def test_python_and_postgres_accept_and_refuse_the_same_crons(engine: Engine) -> None:
    expressions = corpus() + [schedule.cron for schedule in DECLARED]
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT c, agnt_cron_problem(c) "
                "FROM unnest(CAST(:crons AS text[])) WITH ORDINALITY AS t(c, n) "
                "ORDER BY n"
            ),
            {"crons": expressions},
        ).all()
    assert [row[0] for row in rows] == expressions
    disagreements = [
        f"{expression!r}: postgres {theirs!r}, python {cron.problem(expression)!r}"
        for expression, theirs in rows
        if cron.problem(expression) != theirs
    ]
    assert not disagreements, "\n".join(disagreements[:20])
    accepted = [expression for expression, problem in rows if problem is None]
    # The corpus has both kinds in numbers, and every declaration is accepted.
    assert len(expressions) >= 1_000
    assert 0.2 * len(expressions) < len(accepted) < 0.8 * len(expressions)
    assert {schedule.cron for schedule in DECLARED} <= set(accepted)
    # What is accepted fires, and each message is one line.
    now = datetime(2026, 12, 6, tzinfo=UTC)
    for expression in accepted:
        cron.parse(expression).next_after(now, UTC)
    assert all("\n" not in (problem or "") for _, problem in rows)


async def test_a_schedule_postgres_refuses_at_the_sync_is_one_line(
    db_url: str, env: Settings
) -> None:
    """Should the declaration check and Postgres's ever differ, the worker's sync
    stops with Postgres's reason in one line (exit 2 in the CLI)."""
    schedule = Schedule("diverged", "0 0 * * *", "Checked by Python only.")
    # As if Python had accepted a cron that Postgres refuses.
    object.__setattr__(schedule, "parsed", cron.parse("0 0 * * *"))
    object.__setattr__(schedule, "cron", "0 0 30 2 *")
    app = AgntApp(connector=PsycopgConnector(conninfo=db_url))
    tasks.make_task(app, schedule.id, lambda ctx: {})
    deploy.register(app, [schedule])
    async with app.open_async():
        with pytest.raises(ConfigError) as refused:
            await deploy.sync_table(app)
    assert str(refused.value) == (
        "the database refuses a declared schedule: schedules.cron '0 0 30 2 *' is "
        "not a valid cron: it never fires: no month in '2' has a day '30': fix its "
        "declaration in periodic/"
    )
