"""A private PostgreSQL cluster that may be restarted, stopped and started: the
recovery benchmark's database, and the fault tests'.

It runs the server's own ``initdb`` and ``pg_ctl``: the machine's (``pg_config
--bindir``) when they are installed, else the embedded ``pgserver`` wheel's, which
ships the same programs, so fault tests run on a bare machine too. ``initdb``
refuses to run as root: as root, the programs run as the ``postgres`` OS user on a
data directory that user owns; with no such user ``ClusterUnavailable`` says so.
The cluster listens on 127.0.0.1 on a port of its own, trusts local connections and
skips durability (``fsync=off``): it lives for one test or one benchmark.

``standby()`` makes a streaming standby of a running cluster with the server's own
``pg_basebackup -R``, and ``promote()`` makes a standby the primary: a failover.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql


class ClusterUnavailable(RuntimeError):
    """This machine cannot run a private cluster; the message says why."""


def _bindir() -> Path:
    try:
        machine = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if (Path(machine) / "initdb").exists():
            return Path(machine)
    except (OSError, subprocess.CalledProcessError):
        pass
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PgCluster:
    """``root`` must be a fresh directory outside any directory private to root
    (``tempfile.mkdtemp()`` is); ``PgCluster.temporary()`` makes one."""

    @classmethod
    def temporary(cls) -> PgCluster:
        return cls(Path(tempfile.mkdtemp(prefix="agnt-pg-")))

    def standby(self) -> PgCluster:
        """A streaming standby of this running cluster, in a directory of its own,
        not started yet."""
        return PgCluster(Path(tempfile.mkdtemp(prefix="agnt-pg-")), primary=self)

    def __init__(self, root: Path, primary: PgCluster | None = None) -> None:
        self.bindir = _bindir()
        self.port = free_port()
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self._as: list[str] = []
        #: Server settings beyond ours, e.g. ``{"max_connections": "100"}``.
        self.settings: dict[str, str] = {}
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise ClusterUnavailable(
                    "a private cluster run as root needs a 'postgres' OS user"
                ) from None
            self._as = ["runuser", "-u", "postgres", "--"]
            os.chown(root, owner.pw_uid, owner.pw_gid)
        if primary is None:
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        else:
            # -R writes primary_conninfo and standby.signal: it starts streaming.
            self._run(
                "pg_basebackup",
                *("-D", str(self.data), "-R", "-X", "stream", "-c", "fast"),
                *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
            )

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            [*self._as, str(self.bindir / program), *args],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} failed: {result.stderr}\n{tail}")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        for name, value in self.settings.items():
            options += f" -c {name}={value}"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def promote(self) -> None:
        """Make this standby the primary; returns once it accepts writes."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "promote")

    def restart(self) -> None:
        self.stop()
        self.start()

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def require_password(self, password: str) -> None:
        """From now on, TCP connections must give ``password`` for ``postgres``
        (SCRAM); the Unix socket stays trusted."""
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(
                sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(password))
            )
            hba = admin.execute("SHOW hba_file").fetchone()
            assert hba is not None
            Path(hba[0]).write_text(
                "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
            )
            admin.execute("SELECT pg_reload_conf()")

    def accepting(self) -> bool:
        try:
            psycopg.connect(self.url(), connect_timeout=1).close()
        except psycopg.OperationalError:
            return False
        return True

    def wait_until_accepting(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.accepting():
            assert time.monotonic() < deadline, "the cluster did not come up"
            time.sleep(0.1)

    def cleanup(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
