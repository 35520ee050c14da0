"""How to connect to the job database given its libpq URL: the same database as a
SQLAlchemy URL, an engine on it, and the URL made safe for logs."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs.settings import ConfigError


def sqlalchemy_url(url: str) -> str:
    """The same database as a SQLAlchemy URL, always on the psycopg 3 driver."""
    scheme = urlsplit(url).scheme
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return "postgresql+psycopg" + url[len(scheme) :]
    raise ConfigError(
        f"AGNT_DATABASE_URL must start with postgresql:// (got {scheme}://)"
    )


def redact(url: str) -> str:
    """The URL with its password replaced, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def create_engine(url: str, **kwargs: object) -> Engine:
    return sa.create_engine(sqlalchemy_url(url), pool_pre_ping=True, **kwargs)
