"""A private PgBouncer (Debian's ``pgbouncer`` package) in transaction pooling, on a
free port, in front of one Postgres server: what the PgBouncer tests and the fleet
benchmark put between workers and the database. Its ini and auth file live in a
temporary directory of its own; ``SHOW POOLS`` on its admin console says how many
server connections it holds.

The server may listen on TCP or on a Unix socket (the embedded server's URL names
its socket directory as ``host``): PgBouncer reaches either, a socket by its
directory. PgBouncer refuses to run as root; as root it runs as the OS user who owns
the server's socket directory (who alone may enter it), else as ``postgres``.
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
from urllib.parse import urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

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
    """PgBouncer on 127.0.0.1 in front of ``server_url``'s host (or socket
    directory) and port, for any database, with at most ``pool_size`` server
    connections per database and user. Any user it is given is let in
    (``auth_type = trust``): for tests and benchmarks on one machine only."""

    def __init__(self, server_url: str, pool_size: int = 20) -> None:
        self.binary = _binary()
        parts = conninfo_to_dict(server_url)
        self.server_host = str(parts.get("host") or "127.0.0.1")
        self.server_port = int(parts.get("port") or 5432)
        self.user = str(parts.get("user") or "postgres")
        socket_dir = (
            Path(self.server_host) if self.server_host.startswith("/") else None
        )
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="agnt-pgbouncer-"))
        self.pool_size = pool_size
        self._process: subprocess.Popen[bytes] | None = None
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = (
                    pwd.getpwuid(socket_dir.stat().st_uid)
                    if socket_dir is not None
                    else pwd.getpwnam("postgres")
                )
            except (KeyError, OSError):
                raise PgBouncerUnavailable(
                    "pgbouncer will not run as root and there is no 'postgres' user"
                    if socket_dir is None
                    else f"pgbouncer will not run as root and {socket_dir} has no owner"
                ) from None
            if owner.pw_uid == 0:
                raise PgBouncerUnavailable(
                    f"pgbouncer will not run as root, who owns {socket_dir}"
                )
            self._as = ["runuser", "-u", owner.pw_name, "--"]
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
            # After a failed login to the server (a restart), try again in a
            # second, not the default 15: until then every client waits.
            "server_login_retry = 1\n"
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

    def _pools(self) -> list[dict[str, object]]:
        with psycopg.connect(self.url("pgbouncer"), autocommit=True) as admin:
            cursor = admin.cursor()
            cursor.execute("SHOW POOLS")
            names = [column.name for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _total(self, *states: str) -> int:
        return sum(
            int(str(pool.get(state, 0) or 0))
            for pool in self._pools()
            for state in states
        )

    def server_connections(self) -> int:
        """Server connections PgBouncer holds now, every pool together."""
        return self._total("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")

    def waiting_clients(self) -> int:
        """Clients waiting now for a server connection, every pool together."""
        return self._total("cl_waiting")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=10)
            if self._process.poll() is None:
                self._process.kill()
        shutil.rmtree(self.root, ignore_errors=True)
