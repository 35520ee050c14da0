"""Alembic, driven from Python: the CLI, the embedded default and the tests all
migrate through these functions, so there is one way the schema gets built."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from agnt_jobs.db.url import connected, create_engine
from agnt_jobs.settings import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Where a wheel puts alembic.ini and migrations/ (pyproject maps the checkout's top
# directory there); a checkout has no such directory and uses its own top.
SHIPPED_ALEMBIC = Path(__file__).resolve().parents[1] / "_alembic"

# Two processes starting on one fresh database must not both run migrations.
_MIGRATION_LOCK_KEY = 0x61676E74  # "agnt"


def alembic_ini() -> Path:
    """The alembic.ini shipped in the installed package, else the checkout's; its
    ``migrations/`` is beside it in both."""
    shipped = SHIPPED_ALEMBIC / "alembic.ini"
    return shipped if shipped.is_file() else PROJECT_ROOT / "alembic.ini"


def alembic_config(url: str | None = None) -> Config:
    ini = alembic_ini()
    config = Config(str(ini))
    config.set_main_option("script_location", str(ini.parent / "migrations"))
    if url is not None:
        config.attributes["database_url"] = url
    return config


def _locked(url: str, action: str, revision: str) -> None:
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(
                sa.text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
            connection.commit()
            try:
                config = alembic_config(url)
                config.attributes["connection"] = connection
                getattr(command, action)(config, revision)
                connection.commit()
            finally:
                connection.execute(
                    sa.text("SELECT pg_advisory_unlock(:key)"),
                    {"key": _MIGRATION_LOCK_KEY},
                )
                connection.commit()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    _locked(url, "upgrade", revision)


def downgrade(url: str, revision: str) -> None:
    _locked(url, "downgrade", revision)


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    return ",".join(sorted(heads))


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None: never migrated); a
    database that cannot be reached raises ``Unreachable``."""
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with connected(engine) as connection:
            # Read as plain SQL: Alembic's MigrationContext logs at INFO, which
            # the stock CLI would print above its one line.
            if not connection.execute(sa.text(HAS_REVISION)).scalar_one():
                return None
            current = connection.execute(sa.text(CURRENT_REVISION)).scalar_one()
    finally:
        engine.dispose()
    return current or None


# Whether Alembic ever ran there, then its revision (one query cannot name a table
# that may not exist). The probes read the columns by name.
HAS_REVISION = "SELECT to_regclass('alembic_version') IS NOT NULL AS present"
CURRENT_REVISION = """
SELECT string_agg(version_num, ',' ORDER BY version_num) AS revision
FROM alembic_version
"""


def behind(current: str | None, head: str) -> str | None:
    """The one line to show when a database is not at this code's revision."""
    if current == head:
        return None
    return (
        f"the database is at revision {current or 'base'} but this code needs "
        f"{head}: run 'agnt-jobs db upgrade'"
    )


def check_current(url: str) -> None:
    """Refuse, with one line, a database this code cannot work on: one it cannot
    reach (``Unreachable``, naming the cause) or one not at the code's head
    (``ConfigError``, saying what to run). Every command that needs the schema,
    ``agnt-jobs`` and the stock ``procrastinate`` alike, starts with this."""
    problem = behind(current_revision(url), head_revision())
    if problem is not None:
        raise ConfigError(problem)
