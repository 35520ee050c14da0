"""Test harness: a real Postgres for every test that touches data.

The server is, in order of preference: ``AGNT_TEST_DATABASE_URL`` (an existing server,
as CI uses), a Testcontainers Postgres when a Docker engine answers, else the embedded
server (pgserver) in a temporary directory. The schema is migrated once into a template
database named after the migrations' content; each test gets its own database cloned
from it, so tests are isolated and a run costs one migration at most.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import psycopg
import pytest
from procrastinate import App, PsycopgConnector
from psycopg import sql
from sqlalchemy.engine import Engine

import agnt_jobs.app  # noqa: F401  (every body registered, as in a worker)
from agnt_jobs import db, logs, settings
from agnt_jobs.db.migrate import PROJECT_ROOT, upgrade
from agnt_jobs.db.url import with_dbname

TEMPLATE_LOCK_KEY = 0x74706C  # "tpl": one process builds a given template


class _RaisingJsonHandler(logging.Handler):
    """Formats every record with the project's JSON formatter and lets any error
    escape to the log call, where a ``logging.StreamHandler`` would print it and go
    on: a log line that cannot be written fails the test that reaches it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logs.JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


@pytest.fixture(scope="session", autouse=True)
def _log_everything() -> Iterator[None]:
    """Every test runs with logging on at DEBUG through our own formatter, so a log
    call that raises (a field colliding with a ``LogRecord`` attribute, a value the
    formatter cannot write) fails the test instead of hiding below the level."""
    root = logging.getLogger()
    handler = _RaisingJsonHandler()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(handler)
    root.setLevel(level)


def _docker_url() -> str | None:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return None
    from testcontainers.postgres import PostgresContainer

    container = PostgresContainer("postgres:16-alpine", driver=None)
    container.start()
    _cleanups.append(container.stop)
    return container.get_connection_url()


def _embedded_url(tmp: Path) -> str:
    import pgserver

    _cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
    server = pgserver.get_server(tmp / "pgdata", cleanup_mode="delete")
    _cleanups.append(server.cleanup)
    return server.get_uri("postgres")


_cleanups: list = []


def _schema_fingerprint() -> str:
    digest = hashlib.sha256(metadata.version("procrastinate").encode())
    for path in sorted((PROJECT_ROOT / "migrations").rglob("*.py")):
        digest.update(path.read_bytes())
    digest.update(
        (PROJECT_ROOT / "agnt_jobs" / "db" / "procrastinate_schema.py").read_bytes()
    )
    return digest.hexdigest()[:12]


@pytest.fixture
def embedded_dir() -> Iterator[Path]:
    """A directory for an embedded server's data directory, outside pytest's
    basetemp: each pytest run makes that root 0700 again, and when the tests run as
    root the server runs as an OS user of its own, which another pytest run on the
    machine would then lock out of its data (its stop fails, the server outlives it)."""
    path = Path(tempfile.mkdtemp(prefix="agnt-embedded-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """An admin URL on a Postgres server the tests may create databases on."""
    url = os.environ.get("AGNT_TEST_DATABASE_URL") or _docker_url()
    if url is None:
        # Not under pytest's basetemp: a second pytest run on this machine prunes
        # all but its three newest basetemps, and would delete a running server's
        # data directory with them.
        url = _embedded_url(Path(tempfile.mkdtemp(prefix="agnt-test-pg-")))
    yield url
    while _cleanups:
        with contextlib.suppress(Exception):
            _cleanups.pop()()


@pytest.fixture(scope="session")
def template_name(server_url: str) -> str:
    name = f"agnt_tpl_{_schema_fingerprint()}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute("SELECT pg_advisory_lock(%s)", [TEMPLATE_LOCK_KEY])
        try:
            exists = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [name]
            ).fetchone()
            if not exists:
                # Build under a scratch name and rename: a run killed half-way
                # never leaves a half-migrated template behind.
                building = f"{name}_building"
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(building)
                    )
                )
                admin.execute(
                    sql.SQL("CREATE DATABASE {}").format(sql.Identifier(building))
                )
                upgrade(with_dbname(server_url, building), "head")
                admin.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(building), sql.Identifier(name)
                    )
                )
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s)", [TEMPLATE_LOCK_KEY])
    return name


@pytest.fixture
def db_url(server_url: str, template_name: str) -> Iterator[str]:
    """A fresh, fully migrated database of this test's own."""
    name = f"agnt_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(template_name)
            )
        )
    try:
        yield with_dbname(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )


@pytest.fixture
def empty_url(server_url: str) -> Iterator[str]:
    """A database on the test server that was never migrated."""
    name = f"agnt_empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield with_dbname(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[settings.Settings]:
    """Settings of a process configured on this test's database."""
    monkeypatch.setenv("AGNT_DATABASE_URL", db_url)
    settings.get_settings.cache_clear()
    db.engine.cache_clear()
    db.admin_engine.cache_clear()
    yield settings.get_settings()
    for made in (db.engine, db.admin_engine):
        if made.cache_info().currsize:
            with contextlib.suppress(Exception):
                made().dispose()
        made.cache_clear()
    settings.get_settings.cache_clear()


@pytest.fixture
def engine(env: settings.Settings) -> Engine:
    return db.engine()


@pytest.fixture
def app(db_url: str, env: settings.Settings) -> Iterator[App]:
    """The real App, its connector pointed at this test's database."""
    from agnt_jobs.app import app as agnt_app

    with agnt_app.replace_connector(PsycopgConnector(conninfo=db_url)) as replaced:
        yield replaced


@pytest.fixture
def gateway(env: settings.Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """A local channel gateway, and settings that point at it."""
    from tests.support.http_peers import FakeChannelGateway

    server = FakeChannelGateway().start()
    monkeypatch.setenv("AGNT_CHANNEL_GATEWAY_URL", server.url)
    settings.get_settings.cache_clear()
    yield server
    server.stop()


# --- localstripe, the fake Stripe the billing jobs are tested against -------------


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """One localstripe server for the session; each test makes its own customers."""
    from agnt_jobs.bench.localstripe import LocalStripe

    log = tmp_path_factory.mktemp("localstripe") / "localstripe.log"
    with LocalStripe(log) as server:
        yield server


@pytest.fixture
def stripe_settings(
    env: settings.Settings, localstripe, monkeypatch: pytest.MonkeyPatch
) -> settings.Settings:
    """Settings on this test's database, with Stripe pointed at localstripe."""
    from agnt_jobs.bench.localstripe import API_KEY

    monkeypatch.setenv("AGNT_STRIPE_API_KEY", API_KEY)
    monkeypatch.setenv("AGNT_STRIPE_API_BASE", localstripe.url)
    monkeypatch.setenv("AGNT_STRIPE_MAX_NETWORK_RETRIES", "0")
    settings.get_settings.cache_clear()
    return settings.get_settings()
