"""Procrastinate's schema under Alembic.

Procrastinate ships its schema as ``schema.sql`` (the whole current schema) plus one
SQL file per change in ``sql/migrations``, and keeps no record in the database of which
it has applied. We keep that record in ``agnt_procrastinate_migrations``:

* the first revision applies the installed ``schema.sql`` and records every migration
  file of that version as applied (the schema already contains them);
* a later revision, written when we upgrade Procrastinate, calls ``apply_migrations``
  with the new files' names; on a database built from the newer ``schema.sql`` they
  are already recorded and skipped, on an older one they run in order.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from alembic import op

RECORD_TABLE = "agnt_procrastinate_migrations"


def _sql_dir() -> Traversable:
    return resources.files("procrastinate.sql")


def installed_migration_names() -> list[str]:
    return sorted(
        entry.name
        for entry in (_sql_dir() / "migrations").iterdir()
        if entry.name.endswith(".sql")
    )


def _execute_raw(sql: str) -> None:
    # Straight to the driver with no parameters: this SQL contains '%' (RAISE and
    # format() patterns) that a parameterised execute would take for placeholders.
    dbapi = op.get_bind().connection.dbapi_connection
    assert dbapi is not None, "alembic runs migrations on an open connection"
    dbapi.cursor().execute(sql)


def _execute_file(path: Traversable) -> None:
    _execute_raw(path.read_text(encoding="utf-8"))


def apply_baseline() -> None:
    bind = op.get_bind()
    _execute_file(_sql_dir() / "schema.sql")
    bind.exec_driver_sql(
        f"CREATE TABLE {RECORD_TABLE} ("
        " name text PRIMARY KEY,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for name in installed_migration_names():
        bind.exec_driver_sql(
            f"INSERT INTO {RECORD_TABLE} (name) VALUES (%(name)s)", {"name": name}
        )


def apply_migrations(names: list[str]) -> None:
    """Run the named Procrastinate migration files not yet applied, in order."""
    bind = op.get_bind()
    available = set(installed_migration_names())
    for name in sorted(names):
        if name not in available:
            raise RuntimeError(
                f"Procrastinate migration {name} is not in the installed package: "
                "install the Procrastinate version this revision was written for"
            )
        done = bind.exec_driver_sql(
            f"SELECT 1 FROM {RECORD_TABLE} WHERE name = %(name)s", {"name": name}
        ).first()
        if done:
            continue
        _execute_file(_sql_dir() / "migrations" / name)
        bind.exec_driver_sql(
            f"INSERT INTO {RECORD_TABLE} (name) VALUES (%(name)s)", {"name": name}
        )


def drop_all() -> None:
    """Remove every Procrastinate object, found by name in the catalogue, so a
    downgrade leaves nothing behind whatever version built the schema."""
    _execute_raw(
        r"""
        DO $$
        DECLARE r record;
        BEGIN
            FOR r IN SELECT tablename FROM pg_tables
                     WHERE schemaname = current_schema()
                       AND tablename LIKE 'procrastinate\_%'
            LOOP
                EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', r.tablename);
            END LOOP;
            FOR r IN SELECT p.oid::regprocedure AS signature
                     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = current_schema()
                       AND p.proname LIKE 'procrastinate\_%'
            LOOP
                EXECUTE format('DROP ROUTINE IF EXISTS %s CASCADE', r.signature);
            END LOOP;
            FOR r IN SELECT t.typname FROM pg_type t
                     JOIN pg_namespace n ON n.oid = t.typnamespace
                     WHERE n.nspname = current_schema()
                       AND t.typname LIKE 'procrastinate\_%'
                       AND t.typtype IN ('e', 'c')
            LOOP
                EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', r.typname);
            END LOOP;
        END $$;
        """
    )
    _execute_raw(f"DROP TABLE IF EXISTS {RECORD_TABLE}")
