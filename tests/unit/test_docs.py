"""The README is the map and docs/ the manual: the map stays short, and neither
points at a page or a file that is not there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")
# A path in backticks that names one of our files: `agnt_jobs/walk.py`, `cron/`, or
# one inside the package as the map writes them, `scheduler/tasks.py`.
TOP = "agnt_jobs|cron|periodic|migrations|tests|docs|deploy"
PACKAGES = "|".join(
    path.name
    for path in (ROOT / "agnt_jobs").iterdir()
    if (path / "__init__.py").exists()
)
PATH = re.compile(rf"`((?:{TOP}|{PACKAGES})/[\w/.]*|[a-z_]+\.py)`")


def test_the_readme_is_a_map_of_at_most_200_lines() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def test_every_relative_link_points_at_a_page_that_exists() -> None:
    broken = [
        f"{page.name}: {target}"
        for page in PAGES
        for target, _ in LINK.findall(page.read_text())
        if "://" not in target and not (page.parent / target).exists()
    ]
    assert broken == []


def test_every_file_the_manual_names_exists() -> None:
    missing = [
        f"{page.name}: {path}"
        for page in PAGES
        for path in PATH.findall(page.read_text())
        if not any(
            (base / path).exists()
            for base in (ROOT, ROOT / "agnt_jobs", ROOT / "periodic", ROOT / "cron")
        )
    ]
    assert missing == []
