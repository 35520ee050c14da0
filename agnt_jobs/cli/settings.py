"""``agnt-jobs settings ...``: the manual's configuration page, from the code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agnt_jobs.cli.common import generated_page

settings_cli = typer.Typer(help="The settings: their documentation, from the code.")


@settings_cli.command("docs")
def docs(
    write: Annotated[
        bool, typer.Option("--write", help="Write docs/configuration.md.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="Exit 1 if docs/configuration.md is not current."),
    ] = False,
) -> None:
    """Print docs/configuration.md as the settings' descriptions make it."""
    from agnt_jobs.settings.docs import DOC_PATH, markdown

    generated_page(
        Path(DOC_PATH),
        markdown(),
        source="the settings",
        command="agnt-jobs settings docs --write",
        write=write,
        check=check,
    )


def install(cli: typer.Typer) -> None:
    cli.add_typer(settings_cli, name="settings")
