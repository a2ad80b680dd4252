"""`opreplay analyze`: hot loops, conflict storms, slow calls, error groups and access patterns.

On a terminal: rich tables. With `--json`: `Analysis.to_json()`, an object with exactly the keys
loops, slow, errors, access and stats (a stable interface for tools and the VS Code extension).
"""

from __future__ import annotations

import os

import click
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from opreplay import analysis
from opreplay.analysis import Analysis, LatencySummary
from opreplay.cli.app import database_option, echo_json, friendly_errors, main
from opreplay.progress import progress_bar
from opreplay.store import Store
from opreplay.timeline import format_moment


@main.command("analyze")
@click.argument("session", default="latest")
@database_option
@click.option(
    "--threshold",
    "threshold_ms",
    type=click.FloatRange(min=0),
    default=analysis.DEFAULT_THRESHOLD_MS,
    show_default=True,
    help="A call slower than this many milliseconds is slow.",
)
@click.option(
    "--window",
    type=click.IntRange(min=0),
    default=analysis.loops.DEFAULT_WINDOW,
    show_default=True,
    help="Hot loop: repeated cycles on one object within this many operations (0: any number)...",
)
@click.option(
    "--window-seconds",
    type=click.FloatRange(min=0),
    default=analysis.loops.DEFAULT_WINDOW_SECONDS,
    show_default=True,
    help="...and within this many seconds (0: any time).",
)
@click.option(
    "--min-count",
    type=click.IntRange(min=2),
    default=analysis.loops.DEFAULT_MIN_COUNT,
    show_default=True,
    help="Hot loop: at least this many cycles within the window.",
)
@click.option(
    "--storm-count",
    type=click.IntRange(min=2),
    default=analysis.errors.DEFAULT_STORM_COUNT,
    show_default=True,
    help="Storm: at least this many errors of one status on one object...",
)
@click.option(
    "--storm-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=analysis.errors.DEFAULT_STORM_WINDOW_SECONDS,
    show_default=True,
    help="...within this many seconds.",
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Rows in the hot objects, slow calls and error groups lists.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON instead of tables.")
@friendly_errors
def analyze_command(
    session: str,
    database: str,
    threshold_ms: float,
    window: int,
    window_seconds: float,
    min_count: int,
    storm_count: int,
    storm_seconds: float,
    top: int,
    as_json: bool,
) -> None:
    """Analyse SESSION (an id, a name or `latest`): loops, storms, slow calls, errors, access patterns."""
    if not window and not window_seconds:
        raise click.BadParameter("--window and --window-seconds cannot both be 0", param_hint="--window")
    with Store.open(database) as store:
        found = store.find_session(session)
        with progress_bar(f"analysing {found.id}") as progress:
            result = analysis.analyze(
                store,
                found,
                threshold_ms=threshold_ms,
                window=window or None,
                window_seconds=window_seconds or None,
                min_count=min_count,
                storm_count=storm_count,
                storm_window_seconds=storm_seconds,
                top=top,
                progress=progress,
            )
    if as_json:
        echo_json(result.to_json())
        return
    render(result, _console())


# -- rendering ---------------------------------------------------------------------------------


def _console() -> Console:
    """Rich's console; piped, 120 columns rather than 80 (unless $COLUMNS says otherwise)."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=120)
    return console


def _ms(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.1f} s"
    if value >= 100:
        return f"{value:.0f} ms"
    return f"{value:.1f} ms"


def _seqs(first: int, last: int) -> str:
    return f"{first}..{last}" if last != first else str(first)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return format_moment(ts, lambda moment: moment.strftime("%H:%M:%S.%f")[:-3], utc=False)


def _table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", overflow="fold")
    return table


def _none(message: str) -> Text:
    return Text(message, style="green")


def render(result: Analysis, console: Console) -> None:
    stats = result.stats
    name = f" ({stats.name})" if stats.name else ""
    rate = f", {stats.rate_per_s:,.0f}/s" if stats.rate_per_s else ""
    console.print(
        f"[bold]session {stats.session}{name}[/bold]: {stats.operations:,} operations"
        f" in {stats.span_s:,.1f} s{rate}, "
        f"[red]{stats.errors:,} errors[/red], {stats.reconciles:,} reconciles, "
        f"{result.slow.count:,} slow (> {result.slow.threshold_ms:g} ms)"
    )
    console.print(_loops(result))
    console.print(_errors(result))
    console.print(_slow(result))
    console.print(_access(result))


def _loops(result: Analysis) -> Panel:
    loops = result.loops
    parts: list[Table | Text] = []
    if loops.hot:
        table = _table(
            "hot loops",
            "object",
            "cycles",
            "writes",
            "seqs",
            "period",
            "lasted",
            "samples",
            right=("cycles", "writes", "period", "lasted"),
        )
        for loop in loops.hot:
            table.add_row(
                f"[bold red]{loop.object}[/bold red]",
                f"{loop.count:,}",
                f"{loop.writes:,}",
                _seqs(loop.first_seq, loop.last_seq),
                f"{loop.period_ops:g} ops / {_ms(loop.period_s * 1000)}",
                f"{loop.duration_s:,.1f} s",
                ", ".join(str(s) for s in loop.sample_seqs[:5]),
            )
        parts.append(table)
    else:
        p = loops.parameters
        parts.append(
            _none(
                f"no hot loop ({p.get('min_count')} cycles on one object within "
                f"{p.get('window')} operations and {p.get('window_seconds')} s)"
            )
        )
    if loops.ping_pong:
        table = _table("ping-pong writers", "object", "writers", "flips", "field", "seqs", right=("flips",))
        for fight in loops.ping_pong:
            field = f"{fight.field}: {' <-> '.join(fight.values)}" if fight.field else "-"
            table.add_row(
                str(fight.object),
                " vs ".join(fight.writers),
                str(fight.flips),
                field,
                _seqs(fight.first_seq, fight.last_seq),
            )
        parts.append(table)
    if loops.periodic:
        table = _table(
            "periodic writes",
            "object",
            "cycles",
            "every",
            "jitter",
            "seqs",
            "in hot loop",
            right=("cycles", "every", "jitter"),
        )
        for periodic in loops.periodic[:20]:
            table.add_row(
                str(periodic.object),
                f"{periodic.count:,}",
                _ms(periodic.period_s * 1000),
                _ms(periodic.jitter_s * 1000),
                _seqs(periodic.first_seq, periodic.last_seq),
                "yes" if periodic.hot_loop else "",
            )
        parts.append(table)
    return Panel(Group(*parts), title="loops", title_align="left")


def _errors(result: Analysis) -> Panel:
    errors = result.errors
    parts: list[Table | Text] = []
    if errors.storms:
        table = _table(
            "error storms (conflict storms are 409s)",
            "status",
            "object",
            "errors",
            "seqs",
            "lasted",
            right=("errors", "lasted"),
        )
        for storm in errors.storms:
            status = f"{storm.status} {storm.reason or ''}".strip()
            table.add_row(
                f"[bold red]{status}[/bold red]",
                str(storm.object),
                str(storm.count),
                _seqs(storm.first_seq, storm.last_seq),
                f"{storm.duration_s:,.2f} s",
            )
        parts.append(table)
    else:
        parts.append(_none("no error storm"))
    if errors.groups:
        table = _table(
            f"{errors.total:,} errors by status, reason and object",
            "status",
            "object",
            "count",
            "verbs",
            "first",
            "last",
            "message",
            right=("count",),
        )
        for group in errors.groups:
            status = f"{group.status} {group.reason or ''}".strip()
            table.add_row(
                status,
                str(group.object),
                f"{group.count:,}",
                ",".join(group.verbs),
                f"{group.first_seq} @ {_when(group.first_ts)}",
                f"{group.last_seq} @ {_when(group.last_ts)}",
                (group.message or "")[:60],
            )
        parts.append(table)
    else:
        parts.append(_none("no errors"))
    return Panel(Group(*parts), title="errors", title_align="left")


def _latency_table(title: str, rows: dict[str, LatencySummary]) -> Table:
    table = _table(
        title,
        "",
        "calls",
        "mean",
        "p50",
        "p95",
        "p99",
        "max",
        "slow",
        right=("calls", "mean", "p50", "p95", "p99", "max", "slow"),
    )
    for key, s in rows.items():
        table.add_row(
            key,
            f"{s.count:,}",
            _ms(s.mean_ms),
            _ms(s.p50_ms),
            _ms(s.p95_ms),
            _ms(s.p99_ms),
            _ms(s.max_ms),
            f"[red]{s.slow}[/red]" if s.slow else "0",
        )
    return table


def _slow(result: Analysis) -> Panel:
    slow = result.slow
    parts: list[Table | Text] = []
    if slow.operations:
        table = _table(
            f"slowest calls over {slow.threshold_ms:g} ms ({slow.count:,} in all)",
            "seq",
            "verb",
            "object",
            "status",
            "duration",
            "thread",
            right=("seq", "duration"),
        )
        for op in slow.operations:
            kind = f"{op.object}" + (f" [{op.subresource}]" if op.subresource else "")
            table.add_row(
                str(op.seq),
                op.verb.upper(),
                kind,
                f"{op.status} {op.reason or ''}".strip(),
                f"[bold yellow]{_ms(op.duration_ms)}[/bold yellow]",
                op.thread,
            )
        parts.append(table)
    else:
        parts.append(_none(f"no call over {slow.threshold_ms:g} ms"))
    parts.append(_latency_table("latency by verb", slow.by_verb))
    parts.append(_latency_table("latency by kind", slow.by_kind))
    return Panel(Group(*parts), title="slow calls", title_align="left")


def _access(result: Analysis) -> Panel:
    access = result.access
    parts: list[Table | Text] = []
    table = _table("hot objects", "object", "operations", "writes", right=("operations", "writes"))
    for hot in access.hot_objects:
        table.add_row(str(hot.object), f"{hot.operations:,}", f"{hot.writes:,}")
    parts.append(table)
    table = _table(
        "reads and writes by kind",
        "kind",
        "operations",
        "reads",
        "writes",
        "lists",
        "watches",
        "events",
        "reads/write",
        right=("operations", "reads", "writes", "lists", "watches", "events", "reads/write"),
    )
    for kind in access.by_kind:
        ratio = f"{kind.read_write_ratio:g}" if kind.read_write_ratio is not None else "-"
        table.add_row(
            kind.kind,
            f"{kind.operations:,}",
            f"{kind.reads:,}",
            f"{kind.writes:,}",
            f"{kind.lists:,}",
            f"{kind.watches:,}",
            f"{kind.watch_events:,}",
            ratio,
        )
    parts.append(table)
    if access.lists:
        table = _table(
            "LIST calls",
            "kind",
            "namespace",
            "lists",
            "share",
            "per reconcile",
            "mean",
            right=("lists", "share", "per reconcile", "mean"),
        )
        for path in access.lists:
            per = f"{path.per_reconcile:g}" if path.per_reconcile is not None else "-"
            table.add_row(
                path.kind,
                path.namespace or "(all)",
                f"{path.count:,}",
                f"{path.share:.1%}",
                per,
                _ms(path.mean_ms),
            )
        parts.append(table)
    if access.watch_restarts:
        table = _table(
            "watch restarts",
            "kind",
            "namespace",
            "watches",
            "restarts",
            "seqs",
            right=("watches", "restarts"),
        )
        for watch in access.watch_restarts:
            table.add_row(
                watch.kind,
                watch.namespace or "(all)",
                str(watch.watches),
                f"[yellow]{watch.restarts}[/yellow]",
                _seqs(watch.first_seq, watch.last_seq),
            )
        parts.append(table)
    return Panel(Group(*parts), title="access patterns", title_align="left")
