"""A private PgBouncer (Debian's ``pgbouncer`` package) in transaction pooling, on a
free port, in front of one Postgres server: what the PgBouncer tests and the fleet
benchmark put between workers and the database. Its ini and auth file live in a
temporary directory of its own; ``SHOW POOLS`` on its admin console says how many
server connections it holds.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from agnt_jobs.testing.cluster import free_port


class PgBouncerUnavailable(RuntimeError):
    """No PgBouncer can be started here; the message says why."""


def _binary() -> Path:
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )
    if found is None:
        raise PgBouncerUnavailable(
            "pgbouncer is not installed (Debian: apt-get install -y pgbouncer)"
        )
    return Path(found)


class PgBouncer:
    """PgBouncer on 127.0.0.1 in front of ``server_url``'s host and port, for any
    database, with at most ``pool_size`` server connections per database and
    user. Any user it is given is let in (``auth_type = trust``): for tests and
    benchmarks on one machine only."""

    def __init__(self, server_url: str, pool_size: int = 20) -> None:
        self.binary = _binary()
        parts = urlsplit(server_url)
        self.server_host = parts.hostname or "127.0.0.1"
        self.server_port = parts.port or 5432
        self.user = parts.username or "postgres"
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="agnt-pgbouncer-"))
        self.pool_size = pool_size
        self._process: subprocess.Popen[bytes] | None = None
        self._as: list[str] = []
        if os.geteuid() == 0:
            # PgBouncer refuses to run as root.
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PgBouncerUnavailable(
                    "pgbouncer will not run as root and there is no 'postgres' user"
                ) from None
            self._as = ["runuser", "-u", "postgres", "--"]
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        (self.root / "users.txt").write_text(f'"{self.user}" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={self.server_host} port={self.server_port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir = {self.root}\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'users.txt'}\n"
            f"admin_users = {self.user}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\nmin_pool_size = 0\n"
            "reserve_pool_size = 0\nmax_client_conn = 2000\n"
            # libpq sends these at connect; PgBouncer must not refuse them.
            "ignore_startup_parameters = extra_float_digits,options\n"
            "server_reset_query =\n"
            f"logfile = {self.root / 'pgbouncer.log'}\n"
            f"pidfile = {self.root / 'pgbouncer.pid'}\n"
        )

    def url(self, dbname: str) -> str:
        """``dbname`` through PgBouncer, as the server's URL's user."""
        return urlunsplit(
            ("postgresql", f"{self.user}@127.0.0.1:{self.port}", f"/{dbname}", "", "")
        )

    def start(self) -> None:
        self._process = subprocess.Popen(
            [*self._as, str(self.binary), str(self.root / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                psycopg.connect(self.url("pgbouncer"), connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    log = self.root / "pgbouncer.log"
                    tail = log.read_text()[-1500:] if log.exists() else ""
                    raise PgBouncerUnavailable(
                        f"pgbouncer did not start: {tail}"
                    ) from None
                time.sleep(0.1)

    def server_connections(self) -> int:
        """Server connections PgBouncer holds now, every pool together."""
        with psycopg.connect(self.url("pgbouncer"), autocommit=True) as admin:
            cursor = admin.cursor()
            cursor.execute("SHOW POOLS")
            names = [column.name for column in cursor.description or []]
            total = 0
            for row in cursor.fetchall():
                pool = dict(zip(names, row, strict=True))
                total += sum(
                    int(pool.get(state, 0) or 0)
                    for state in ("sv_active", "sv_idle", "sv_used", "sv_tested")
                )
                total += int(pool.get("sv_login", 0) or 0)
            return total

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=10)
            if self._process.poll() is None:
                self._process.kill()
        shutil.rmtree(self.root, ignore_errors=True)
