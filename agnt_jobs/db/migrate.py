"""Alembic, driven from Python: the CLI, the embedded default and the tests all
migrate through these functions, so there is one way the schema gets built."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from agnt_jobs.db.connect import create_engine

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
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            heads = MigrationContext.configure(connection).get_current_heads()
    finally:
        engine.dispose()
    return ",".join(sorted(heads)) or None


# The revision a database is at, read through any connection: first whether
# Alembic ever ran there, then its revision (one query cannot name a table that
# may not exist).
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
