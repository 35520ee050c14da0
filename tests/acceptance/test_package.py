"""The package stands alone: the wheel, installed into a fresh virtualenv outside
the checkout, migrates a database and runs a worker from any directory; and the
Dockerfile's recipe, run step by step in that virtualenv (no image can be built
here), gives an image whose documented commands do the same."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from agnt_jobs.db.migrate import PROJECT_ROOT, head_revision
from agnt_jobs.db.url import with_dbname
from tests.support import dockerfile

TIMEOUT = 600


def _run(args: list[str | Path], **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=TIMEOUT, **kwargs
    )
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done


def _clean_env(**extra: str) -> dict[str, str]:
    """This machine's environment less anything that points at the checkout or
    its virtualenv, or configures agnt-jobs."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AGNT_", "PYTHON", "VIRTUAL_ENV", "PROCRASTINATE_"))
    }
    env["PATH"] = os.pathsep.join(
        entry
        for entry in env.get("PATH", "").split(os.pathsep)
        if not entry.startswith(str(PROJECT_ROOT))
    )
    return {**env, **extra}


@pytest.fixture
def empty_database(server_url: str) -> Iterator[Callable[[], str]]:
    """A database with nothing in it, dropped afterwards."""
    names: list[str] = []

    def make() -> str:
        name = f"agnt_pkg_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        names.append(name)
        return with_dbname(server_url, name)

    yield make
    with psycopg.connect(server_url, autocommit=True) as admin:
        for name in names:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )


def _revision(url: str) -> str:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row is not None
    return row[0]


def _runs_until_sigterm(
    args: list[str], env: dict[str, str], cwd: Path, url: str, stop: str = "SIGTERM"
) -> None:
    """Start a worker, wait until it has registered in the database and declared
    the schedules, then stop it as the orchestrator would: it must exit 0."""
    worker = subprocess.Popen(
        args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert worker.poll() is None, worker.communicate()[1].decode()[-3000:]
            with psycopg.connect(url) as connection:
                row = connection.execute(
                    "SELECT (SELECT count(*) FROM procrastinate_workers),"
                    " (SELECT count(*) FROM schedules)"
                ).fetchone()
            if row is not None and row[0] > 0 and row[1] > 0:
                break
            assert time.monotonic() < deadline, "the worker never registered"
            time.sleep(0.3)
    finally:
        worker.send_signal(getattr(signal, stop))
        _, stderr = worker.communicate(timeout=120)
    assert worker.returncode == 0, stderr.decode()[-3000:]


@pytest.mark.slow
def test_the_wheel_and_the_dockerfile_stand_alone(
    tmp_path: Path, empty_database: Callable[[], str]
) -> None:
    # Build and check the distributions as PyPI would see them.
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--outdir", dist, PROJECT_ROOT])
    (wheel,) = dist.glob("agnt_jobs-*.whl")
    _run([sys.executable, "-m", "twine", "check", "--strict", *dist.iterdir()])

    # A fresh virtualenv, standing where the image keeps its own, outside the tree;
    # the base interpreter, not the checkout's virtualenv, makes it.
    root = tmp_path / "image"
    base_bin = root / "usr" / "local" / "bin"
    base_bin.mkdir(parents=True)
    (base_bin / "python").symlink_to(sys._base_executable)  # type: ignore[attr-defined]
    venv = root / "opt" / "venv"
    _run([base_bin / "python", "-m", "venv", venv])
    _run([venv / "bin" / "pip", "install", "--quiet", wheel], env=_clean_env())

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    url = empty_database()
    env = _clean_env(AGNT_DATABASE_URL=url)
    _run([venv / "bin" / "agnt-jobs", "db", "upgrade"], env=env, cwd=elsewhere)
    assert _revision(url) == head_revision()
    _runs_until_sigterm(
        [str(venv / "bin" / "agnt-jobs"), "worker"], env, elsewhere, url
    )

    # No URL and no embedded extra: one line that says what to do, exit non-zero,
    # and nothing created on the way.
    data_dir = elsewhere / ".agnt"
    no_url = subprocess.run(
        [venv / "bin" / "agnt-jobs", "worker"],
        env=_clean_env(AGNT_DATA_DIR=str(data_dir)),
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert no_url.returncode == 2
    assert no_url.stderr.count("\n") == 1, no_url.stderr
    assert "pip install 'agnt-jobs[embedded]'" in no_url.stderr
    assert not data_dir.exists()

    # The Dockerfile's steps, in that virtualenv, then its documented commands.
    image = dockerfile.build(
        PROJECT_ROOT / "Dockerfile",
        context=PROJECT_ROOT,
        root=root,
        base_env=_clean_env(PATH=f"{base_bin}{os.pathsep}{_clean_env()['PATH']}"),
    )
    assert image.cmd == ["procrastinate", "worker"]
    assert "pgserver" not in _run([venv / "bin" / "pip", "list"]).stdout
    url = empty_database()
    env = {**image.env, "AGNT_DATABASE_URL": url}
    _run(["agnt-jobs", "db", "upgrade"], env=env, cwd=image.workdir)
    assert _revision(url) == head_revision()
    _runs_until_sigterm(image.cmd, env, image.workdir, url, stop=image.stop_signal)
