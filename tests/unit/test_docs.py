"""The README is the map and docs/ the manual: the map stays short, and neither
points at a page or a file that is not there."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")
ANCHORED = re.compile(r"\]\(([^)#\s]*)(#[^)\s]+)\)")
HEADING = re.compile(r"#+ (.*)")
# A file the page names, in backticks or not: `agnt_jobs/walk.py`, `cron/`, one
# inside the package as the map writes them (`scheduler/tasks.py`), or a bare name
# such as JOBS.md. Not a URL's path, a placeholder (`bench-scale<N>.json`) or a
# pattern (`03.05.00_01_....sql`).
TOP = "agnt_jobs|cron|periodic|migrations|tests|docs|deploy"
PACKAGES = "|".join(
    path.name
    for path in (ROOT / "agnt_jobs").iterdir()
    if (path / "__init__.py").exists()
)
DIRECTORY = re.compile(rf"`((?:{TOP}|{PACKAGES})/[\w/]*)`")
FILE = re.compile(
    r"(?<![\w./:<>-])((?:[\w-]+/)*[\w-][\w.-]*\."
    r"(?:md|py|sql|ya?ml|toml|ini|json|js|sh|cfg|mako))(?![\w/<>-])"
)
BASES = (ROOT, ROOT / "agnt_jobs", ROOT / "periodic", ROOT / "cron", ROOT / "docs")
SKIPPED_DIRS = {"__pycache__", "node_modules"}


def _names_in_the_tree() -> set[str]:
    names: set[str] = set()
    for _, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS]
        names.update(files, dirs)
    return names


def _missing(text: str, names: set[str]) -> list[str]:
    missing = set()
    for path in DIRECTORY.findall(text) + FILE.findall(text):
        if ".." in path:
            continue
        if "/" in path.rstrip("/"):
            found = any((base / path).exists() for base in BASES)
        else:
            found = path.rstrip("/") in names
        if not found:
            missing.add(path)
    return sorted(missing)


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


def _anchors(page: Path) -> set[str]:
    """The anchors of a page's headings, as GitHub makes them."""
    anchors, fenced = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else HEADING.match(line)
        if heading:
            words = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(words.replace(" ", "-"))
    return anchors


def test_every_anchor_names_a_heading_of_its_page() -> None:
    broken = []
    for page in PAGES:
        for target, anchor in ANCHORED.findall(page.read_text()):
            linked = page.parent / target if target else page
            if "://" in target or linked.suffix != ".md" or not linked.exists():
                continue  # not a page of ours: the link test speaks for it
            if anchor[1:] not in _anchors(linked):
                broken.append(f"{page.name}: {target}{anchor}")
    assert broken == []


def test_every_file_the_manual_names_exists() -> None:
    names = _names_in_the_tree()
    missing = [
        f"{page.name}: {path}"
        for page in PAGES
        for path in _missing(page.read_text(), names)
    ]
    assert missing == []


def test_a_file_that_is_not_there_is_caught() -> None:
    names = _names_in_the_tree()
    text = (
        "the contracts of `JOBS.md`, and JOBS.md bare; `scheduler/nowhere.py`, "
        "`docs/gone.md`, `agnt_jobs/gone/`; but `scheduler/tasks.py`, `cron/`, "
        "`alembic.ini`, worker.yaml, https://example.com/x.json, "
        "`bench-scale<N>.json`, `/admin/scheduler/openapi.json` are fine"
    )
    assert _missing(text, names) == [
        "JOBS.md",
        "agnt_jobs/gone/",
        "docs/gone.md",
        "scheduler/nowhere.py",
    ]


def test_nothing_cites_a_migration_by_its_number() -> None:
    """A revision's number changes when branches merge, and a later revision may
    redefine what it made: code, SQL and the manual name the object, whose
    definition at head is in docs/schema.sql."""
    cited = re.compile(r"\bmigrations? `?\d{4}\b")
    sources = [
        *PAGES,
        *(
            path
            for top in ("agnt_jobs", "periodic", "cron")
            for pattern in ("*.py", "*.sql")
            for path in (ROOT / top).rglob(pattern)
        ),
    ]
    citing = [
        f"{path.relative_to(ROOT)}: {match.group()}"
        for path in sources
        for match in cited.finditer(path.read_text())
    ]
    assert citing == []
