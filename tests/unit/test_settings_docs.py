"""docs/configuration.md is made from the settings, and the settings are complete
enough to make it."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings

from agnt_jobs.settings import GROUPS, Settings
from agnt_jobs.settings.docs import DOC_PATH, markdown

ROOT = Path(__file__).resolve().parents[2]


def test_the_configuration_page_is_what_the_settings_make() -> None:
    assert (ROOT / DOC_PATH).read_text() == markdown(), (
        "docs/configuration.md differs from the settings: run "
        "'agnt-jobs settings docs --write'"
    )


def test_every_setting_has_a_description_and_one_group() -> None:
    seen: list[str] = []
    for group in GROUPS:
        for name, field in group.model_fields.items():  # type: ignore[attr-defined]
            assert field.description, f"{name} has no description"
            seen.append(name)
    assert sorted(seen) == sorted(Settings.model_fields)


def test_the_groups_are_validated_in_their_reading_order() -> None:
    """A group's checks may read the fields of the groups before it; Pydantic
    validates the last base first, so the bases are the groups reversed."""
    bases = [base for base in Settings.__bases__ if base is not BaseSettings]
    assert bases == list(reversed(GROUPS))
