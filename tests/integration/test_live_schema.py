"""docs/schema.sql is the schema the migrations build, read back from the catalogue:
the same text on every Postgres we run on, and a change to the schema shows in it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from agnt_jobs.db import live_schema

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_the_schema_page_is_what_the_migrations_build(db_url: str) -> None:
    assert live_schema.read(db_url) == (ROOT / live_schema.DOC_PATH).read_text(), (
        f"docs/schema.sql differs from the migrations: run '{live_schema.COMMAND}'"
    )


def test_a_change_to_the_schema_shows_in_the_page(db_url: str) -> None:
    before = live_schema.read(db_url)
    with psycopg.connect(db_url) as connection:
        connection.execute("ALTER TABLE schedules ADD COLUMN owner_team text")
        connection.execute(
            "CREATE FUNCTION agnt_noop() RETURNS void LANGUAGE sql AS 'SELECT'"
        )
        connection.execute(
            "CREATE TRIGGER agnt_noop_trigger AFTER INSERT ON procrastinate_jobs "
            "FOR EACH ROW EXECUTE FUNCTION procrastinate_notify_queue_job_inserted_v1()"
        )
    after = live_schema.read(db_url)
    assert after != before
    assert "    owner_team text" in after
    assert "CREATE OR REPLACE FUNCTION public.agnt_noop()" in after
    # A trigger is listed under its table, here in Procrastinate's part.
    assert after.index("CREATE TRIGGER agnt_noop_trigger") > after.index(
        "CREATE TABLE procrastinate_jobs"
    )


def _schema(url: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "agnt-jobs", "db", "schema", *flags],
        env={**os.environ, "AGNT_DATABASE_URL": url},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def _as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    server = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{server}"))


@pytest.fixture
def role_without_createdb(server_url: str) -> Iterator[str]:
    """A role of the test server that may log in and not create databases."""
    role = f"agnt_nocreatedb_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        yield role
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_the_command_checks_the_page_on_a_scratch_database(server_url: str) -> None:
    checked = _schema(server_url, "--check")
    assert (checked.returncode, checked.stderr) == (0, ""), checked.stderr
    assert checked.stdout == "docs/schema.sql is current\n"
    both = _schema(server_url, "--check", "--write")
    assert both.returncode == 2
    assert both.stderr == "agnt-jobs: --write and --check exclude each other\n"


def test_a_role_that_may_not_create_the_scratch_database_is_one_line(
    server_url: str, role_without_createdb: str
) -> None:
    refused = _schema(_as_role(server_url, role_without_createdb))
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        "agnt-jobs: the schema is read from a scratch database, and this role may "
        "not create one (permission denied to create database): give it CREATEDB"
    )
    assert len(refused.stderr.splitlines()) == 1
    assert refused.stdout == ""
