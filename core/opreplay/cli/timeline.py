"""`opreplay timeline`: write a session's timeline documents (`*.optrace`, one line per operation)."""

from __future__ import annotations

from pathlib import Path

import click

from opreplay.cli.app import database_option, friendly_errors, main
from opreplay.progress import progress_bar
from opreplay.store import Store
from opreplay.timeline import DEFAULT_PAGE_SIZE, write_timeline


@main.command("timeline")
@click.argument("session", default="latest")
@database_option
@click.option(
    "-o",
    "--output",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the pages to (created if missing).",
)
@click.option(
    "--page-size",
    type=click.IntRange(min=1),
    default=DEFAULT_PAGE_SIZE,
    show_default=True,
    help="Operations per page (one document per page).",
)
@friendly_errors
def timeline_command(session: str, database: str, directory: Path, page_size: int) -> None:
    """Write SESSION's timeline as pages `<session-id>.pNNNN.optrace` in a folder; print their paths."""
    with Store.open(database) as store:
        found = store.find_session(session)
        with progress_bar(f"timeline {found.id}") as progress:
            paths = write_timeline(store, found, directory, page_size=page_size, progress=progress)
    for path in paths:
        click.echo(str(path))
