"""`opreplay sessions` and `opreplay info`: what a database holds.

The JSON shapes are a stable interface (the VS Code extension's session picker reads them):
`sessions --json` is a list of objects with id, name, started_at, ended_at, operations, errors,
dropped, host, pid, command, labels; `info --json` an object with id, name, operations, errors,
verbs, kinds, statuses, started_at, ended_at, first_ts, last_ts, duration_s, size_bytes.
Timestamps are seconds since the epoch (UTC).
"""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from opreplay.cli.app import database_option, echo_json, friendly_errors, main
from opreplay.model import SessionInfo
from opreplay.store import Store
from opreplay.timeline import format_moment


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return format_moment(ts, lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S"), utc=False)


def session_json(session: SessionInfo) -> dict[str, Any]:
    return {
        "id": session.id,
        "name": session.name,
        "started_at": session.started_at,
        "ended_at": session.ended_at,
        "operations": session.operations,
        "errors": session.errors,
        "dropped": session.dropped,
        "host": session.host,
        "pid": session.pid,
        "command": session.command,
        "labels": session.labels,
    }


@main.command()
@database_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@friendly_errors
def sessions(database: str, as_json: bool) -> None:
    """List the recorded sessions, newest first."""
    with Store.open(database) as store:
        found = store.sessions()
    if as_json:
        echo_json([session_json(s) for s in found])
        return
    table = Table(title=f"{len(found)} session(s) in {database}")
    for column in ("id", "name", "started", "ended", "operations", "errors", "command"):
        table.add_column(column, justify="right" if column in ("operations", "errors") else "left")
    for s in found:
        errors = f"[red]{s.errors}[/red]" if s.errors else "0"
        table.add_row(
            s.id, s.name or "", _when(s.started_at), _when(s.ended_at), f"{s.operations:,}", errors, s.command
        )
    Console().print(table)


@main.command()
@click.argument("session", default="latest")
@database_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of tables.")
@friendly_errors
def info(session: str, database: str, as_json: bool) -> None:
    """Summarise SESSION (an id, a name or `latest`): counts by verb, kind and status, errors, time span."""
    with Store.open(database) as store:
        found = store.find_session(session)
        summary = store.summary(found)
        size = store.size_on_disk()
    first, last = summary["first_ts"], summary["last_ts"]
    report: dict[str, Any] = {
        **session_json(found),
        "verbs": summary["verbs"],
        "kinds": summary["kinds"],
        "statuses": {str(status): count for status, count in summary["statuses"].items()},
        "first_ts": first,
        "last_ts": last,
        "duration_s": (last - first) if first is not None and last is not None else 0.0,
        "size_bytes": size,
    }
    if as_json:
        echo_json(report)
        return
    console = Console()
    name = f" ({found.name})" if found.name else ""
    console.print(
        f"[bold]session {found.id}{name}[/bold]: {found.operations:,} operations, "
        f"[red]{found.errors:,} errors[/red], {report['duration_s']:.2f} s "
        f"from {_when(first)}" + (f", {size / 1e6:.1f} MB on disk" if size else "")
    )
    if found.dropped:
        console.print(f"[yellow]{found.dropped:,} operations were dropped (recorder queue full)[/yellow]")
    for title, counts in (
        ("verb", report["verbs"]),
        ("kind", report["kinds"]),
        ("status", report["statuses"]),
    ):
        table = Table(title=f"by {title}")
        table.add_column(title)
        table.add_column("operations", justify="right")
        for key, count in counts.items():
            table.add_row(str(key), f"{count:,}")
        console.print(table)
