"""`opreplay export`: a session as JSON Lines or as a Chrome trace (open it in ui.perfetto.dev)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import IO

import click

from opreplay.cli.app import database_option, friendly_errors, main
from opreplay.export import FORMATS, ExportError, export_chrome_trace, export_jsonl
from opreplay.model import SessionInfo
from opreplay.progress import ProgressCallback, is_terminal, progress_bar
from opreplay.store import Store


@main.command("export")
@click.argument("session", default="latest")
@database_option
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="jsonl",
    show_default=True,
    help="jsonl: one JSON object per operation, bodies decoded; chrome-trace: trace events for Perfetto.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of stdout.",
)
@click.option(
    "--no-bodies", is_flag=True, help="jsonl: leave request and response bodies out (digests stay)."
)
@friendly_errors
def export_command(session: str, database: str, fmt: str, output: Path | None, no_bodies: bool) -> None:
    """Export SESSION (an id, a name or `latest`) as JSON Lines or Chrome trace events."""
    # a bar on stderr only when it cannot interleave with the export on the same terminal
    show = is_terminal() and (output is not None or not is_terminal(sys.stdout))
    with Store.open(database) as store:
        found = store.find_session(session)
        with progress_bar(f"exporting {found.id}", enabled=show) as progress:
            if output is None:
                stdout: IO[bytes] | IO[str] = getattr(sys.stdout, "buffer", None) or sys.stdout
                if fmt == "jsonl":
                    export_jsonl(store, found, stdout, bodies=not no_bodies, progress=progress)
                else:
                    export_chrome_trace(store, found, stdout, progress=progress)
                stdout.flush()
                return
            count = _export_to_file(store, found, output, fmt, bodies=not no_bodies, progress=progress)
    click.echo(f"wrote {count:,} operations to {output}", err=True)


def _export_to_file(
    store: Store,
    session: SessionInfo,
    output: Path,
    fmt: str,
    *,
    bodies: bool,
    progress: ProgressCallback | None,
) -> int:
    """Write next to `output` and rename into place: a failed export leaves no half file."""
    folder = output.parent if str(output.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{output.name}.", suffix=".tmp")
    except OSError as error:
        raise ExportError(f"{output}: cannot write ({error.strerror})") from None
    try:
        with os.fdopen(handle, "wb") as file:
            if fmt == "jsonl":
                count = export_jsonl(store, session, file, bodies=bodies, progress=progress)
            else:
                count = export_chrome_trace(store, session, file, progress=progress)
        os.replace(temporary, output)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise ExportError(f"{output}: cannot write ({error.strerror})") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count
