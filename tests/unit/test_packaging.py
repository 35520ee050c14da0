"""What the wheel ships is decided by pyproject's list of packages: a directory
missing from it would be silently left out of every install."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agnt_jobs.db import embedded, migrate
from agnt_jobs.settings import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_ROOTS = ("agnt_jobs", "cron", "periodic", "migrations")
# The checkout's top directory is this package in the wheel (pyproject's
# package-dir), so migrations/ ships as agnt_jobs/_alembic/migrations.
TOP_PACKAGE = "agnt_jobs._alembic"


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _tracked_directories() -> set[Path]:
    files = subprocess.run(
        ["git", "ls-files", *SHIPPED_ROOTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {Path(file).parent for file in files}


def _package_directory(package: str) -> Path:
    if package == TOP_PACKAGE or package.startswith(f"{TOP_PACKAGE}."):
        return Path(*package.removeprefix(TOP_PACKAGE).split(".")[1:])
    return Path(*package.split("."))


def test_every_directory_of_the_source_tree_is_a_listed_package() -> None:
    listed = {_package_directory(package) for package in _setuptools()["packages"]}
    assert _tracked_directories() - listed == set()
    assert listed - _tracked_directories() == {Path()}


def test_the_top_directory_maps_to_the_package_migrate_reads() -> None:
    assert _setuptools()["package-dir"] == {TOP_PACKAGE: "."}
    assert ROOT / Path(*TOP_PACKAGE.split(".")) == migrate.SHIPPED_ALEMBIC
    assert "alembic.ini" in _setuptools()["package-data"][TOP_PACKAGE]


def test_a_checkout_migrates_with_its_own_alembic_ini() -> None:
    assert not migrate.SHIPPED_ALEMBIC.exists()
    assert migrate.alembic_ini() == ROOT / "alembic.ini"


def test_without_a_url_or_the_embedded_extra_the_error_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules makes the import raise ImportError, as when
    # pgserver is not installed.
    monkeypatch.setitem(sys.modules, "pgserver", None)
    with pytest.raises(ConfigError) as raised:
        embedded.start(tmp_path)
    message = str(raised.value)
    assert "AGNT_DATABASE_URL" in message
    assert "pip install 'agnt-jobs[embedded]'" in message
    assert raised.value.__context__ is None
    assert not (tmp_path / "pgdata").exists()
