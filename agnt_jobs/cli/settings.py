"""``agnt-jobs settings ...``: the manual's configuration page, from the code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agnt_jobs.cli.common import UsageError

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

    if write and check:
        raise UsageError("--write and --check exclude each other")
    text = markdown()
    path = Path(DOC_PATH)
    if write:
        path.write_text(text)
        typer.echo(f"wrote {path}")
    elif check:
        if not path.exists() or path.read_text() != text:
            typer.echo(
                f"agnt-jobs: {path} differs from the settings: run "
                "'agnt-jobs settings docs --write'",
                err=True,
            )
            raise typer.Exit(1)
        typer.echo(f"{path} is current")
    else:
        typer.echo(text, nl=False)


def install(cli: typer.Typer) -> None:
    cli.add_typer(settings_cli, name="settings")
