"""Alembic environment: the URL comes from agnt-jobs settings, the target metadata
from agnt_jobs.models, and Procrastinate's own objects are left out of autogenerate
(its schema is applied verbatim by revisions, not modelled)."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool

from agnt_jobs.db import database_url
from agnt_jobs.db.url import create_engine
from agnt_jobs.models import Base

config = context.config
if config.config_file_name is not None and not config.attributes.get("connection"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata

# Procrastinate's tables and our record of its migrations are not modelled.
PROCRASTINATE_PREFIXES = ("procrastinate_", "idx_procrastinate_", "agnt_procrastinate_")


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    if name and name.startswith(PROCRASTINATE_PREFIXES):
        return False
    return not (type_ == "table" and name == "alembic_version")


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        compare_type=True,
        compare_server_default=True,
        transaction_per_migration=True,
    )


def run_migrations_offline() -> None:
    url = config.attributes.get("database_url") or database_url(migrate=False)
    context.configure(
        url=url,
        target_metadata=target_metadata,
        include_object=include_object,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.attributes.get("database_url") or database_url(migrate=False)
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
