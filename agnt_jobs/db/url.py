"""How to connect to the job database given its libpq URL: the connection options
every connection of ours carries, an engine on it, and the URL made safe for logs.
(``connector.py`` is Procrastinate's connector, which opens its pool with these.)

The URL is handed to libpq whole, never taken apart by us: a multi-host URL with
``target_session_attrs=read-write`` (how a client follows a failover) works as libpq
documents it. Every connection gets TCP keepalives and ``tcp_user_timeout`` so that a
database gone silent (a failover that left the TCP connection open with nobody
behind it) is noticed within ``AGNT_DB_SILENT_AFTER_SECONDS``, and a bounded
``connect_timeout``; an option the URL sets itself wins.

A connection that cannot be made is ``Unreachable``: one line naming the cause, the
same from ``agnt-jobs`` and from the stock ``procrastinate`` command.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import sqlalchemy as sa
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy.engine import Engine

from agnt_jobs.db.far import far_values
from agnt_jobs.db.outage import is_server_full
from agnt_jobs.settings import ConfigError, get_settings

SCHEMES = ("postgresql", "postgres")


class Unreachable(Exception):
    """The job database could not be connected to; the message names the cause
    (refused, no answer, unknown host, authentication, no such database) and the
    setting to check. Raised with no chained exception: the stock CLI prints every
    exception of a chain, and this line says all there is."""

    @classmethod
    def because(cls, error: BaseException) -> Unreachable:
        driver = getattr(error, "orig", None) or error
        lines = str(driver).strip().splitlines()
        reason = lines[0] if lines else type(driver).__name__
        if isinstance(driver, psycopg.errors.ConnectionTimeout):
            reason = (
                f"{reason}: the server did not answer within "
                f"{get_settings().db_connect_timeout_seconds} s "
                "(AGNT_DB_CONNECT_TIMEOUT_SECONDS)"
            )
        failure = cls(f"cannot reach the database ({reason}): check AGNT_DATABASE_URL")
        failure.reason = reason
        return failure

    #: The cause alone, for a command that goes on without the database.
    reason: str = ""


# What a failed connection attempt raises, through psycopg or SQLAlchemy.
CONNECT_ERRORS = (psycopg.OperationalError, sa.exc.OperationalError)


def connection_options() -> dict[str, Any]:
    """libpq options of every connection, from the settings."""
    settings = get_settings()
    silent = settings.db_silent_after_seconds
    return {
        "connect_timeout": settings.db_connect_timeout_seconds,
        "keepalives": 1,
        # Idle a third of the bound, then 4 probes across the rest of it.
        "keepalives_idle": max(1, silent // 3),
        "keepalives_interval": max(1, silent // 6),
        "keepalives_count": 4,
        # Data sent and not acknowledged for this long: the connection is dead.
        "tcp_user_timeout": silent * 1000,
    }


def connect_kwargs() -> dict[str, Any]:
    """psycopg options (not libpq's) of every connection. Behind PgBouncer in
    transaction pooling (``AGNT_DATABASE_DIRECT_URL`` set) a prepared statement
    would live on one server connection and be asked for on another: psycopg's
    automatic preparing is off then."""
    if get_settings().database_direct_url is not None:
        return {"prepare_threshold": None}
    return {}


def conninfo(url: str) -> str:
    """``url`` with our connection options added where it does not set them."""
    scheme = url.split("://", 1)[0] if "://" in url else None
    if scheme is not None and scheme not in SCHEMES:
        raise ConfigError(
            f"AGNT_DATABASE_URL must start with postgresql:// (got {scheme}://)"
        )
    reason: str | None = None
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as error:
        # libpq quotes the whole URL, password included: keep only the reason.
        reason = re.sub(r"\s*in URI:.*$", "", str(error).strip().splitlines()[0])
    if reason is not None:
        # Raised outside the handler: no libpq message chained to ours.
        raise ConfigError(f"AGNT_DATABASE_URL is not a valid libpq URL ({reason})")
    for option, value in connection_options().items():
        params.setdefault(option, value)
    return make_conninfo("", **params)


def connected(engine: Engine) -> sa.Connection:
    """``engine.connect()``; a connection that cannot be made raises ``Unreachable``."""
    try:
        return engine.connect()
    except CONNECT_ERRORS as error:
        if is_server_full(error):
            # Not a wrong setting: the caller waits for a slot or says so.
            raise
        failure = Unreachable.because(error)
    raise failure


def with_dbname(url: str, name: str) -> str:
    """The same server (or servers), another database."""
    if "://" not in url:
        return make_conninfo(url, dbname=name)
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def redact(url: str) -> str:
    """The URL with its password replaced, for logs and error messages."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL we can take apart: show none of it
        return "<unparseable URL>"
    if password is None:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def create_engine(url: str, *, for_showing: bool = False, **kwargs: Any) -> Engine:
    """A SQLAlchemy engine (psycopg 3) on ``url``, each connection made by libpq
    from the whole URL and our connection options. ``for_showing``: its
    connections load any timestamp and interval Postgres stores (``db.far``)."""
    info, options = conninfo(url), connect_kwargs()

    def connect() -> psycopg.Connection[Any]:
        connection = psycopg.connect(info, **options)
        return far_values(connection) if for_showing else connection

    return sa.create_engine(
        _display_url(url),
        creator=connect,
        pool_pre_ping=True,
        **kwargs,
    )


def _display_url(url: str) -> sa.URL | str:
    """What ``engine.url`` shows: the database, where SQLAlchemy can parse the URL
    (it cannot take a multi-host one apart; the connections never use it)."""
    bare = "postgresql+psycopg://"
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in SCHEMES:
        return bare
    try:
        parsed = sa.make_url("postgresql+psycopg" + url[len(scheme) :])
    except (ValueError, sa.exc.ArgumentError):
        return bare
    return bare if "," in (parsed.host or "") else parsed
