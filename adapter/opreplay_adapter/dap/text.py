"""The words the debugger shows: frame names, stop descriptions, the session summary, REPL output.

Kept apart from the handlers so that each handler stays a translation, and so that the same
wording is used wherever an operation or a session is named. Operations are named the way the
timeline shows them (verb in capitals, API version, kind, namespace/name), so that a frame name,
a timeline line and a stop description read alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opreplay.model import Operation, ReconcileInfo, SessionInfo
from opreplay.replay import Change
from opreplay.replay.context import status_text
from opreplay.timeline import format_datetime, format_duration, format_moment, verb_label
from opreplay_adapter.dap.variables import format_value


def iso_time(ts: float) -> str:
    """ISO 8601 in UTC with milliseconds, rounded as the timeline rounds: `2026-11-26T08:14:40.451+00:00`."""
    return format_moment(ts, lambda moment: moment.isoformat(timespec="milliseconds"))


def target(op: Operation) -> str:
    """`apps/v1 Deployment/status default/web`; empty parts left out (`GET /version`)."""
    kind = f"{op.kind}/{op.subresource}" if op.subresource else op.kind
    if op.name:
        where = f"{op.namespace}/{op.name}" if op.namespace else op.name
    else:
        where = f"{op.namespace}/*" if op.namespace else "*"
    return " ".join(part for part in (op.api_version, kind, where) if part)


def outcome(op: Operation) -> str:
    """`409 Conflict`, `200 OK`, a watch event's type (`ADDED`), `gap`."""
    if op.verb == "watch-event":
        return op.event or "event"
    if op.verb == "gap":
        return "gap"
    return status_text(op.status, op.reason)


def operation_title(op: Operation) -> str:
    """The top frame: `PATCH apps/v1 Deployment default/web -> 409 Conflict (12.0ms)`."""
    title = f"{verb_label(op.verb)} {target(op)} -> {outcome(op)}"
    if op.verb not in ("watch-event", "gap"):
        title += f" ({format_duration(op.duration_us)})"
    return title


def reconcile_title(reconcile: int | None, info: ReconcileInfo | None) -> str:
    """The reconcile frame: `reconcile WebApp default/web (#12)`, or its number alone."""
    return f"reconcile {info.target} (#{reconcile})" if info is not None else f"reconcile {reconcile}"


def session_title(session: SessionInfo) -> str:
    return f"session {session.id} {session.name}" if session.name else f"session {session.id}"


def launch_summary(
    session: SessionInfo, database: str, first: Operation, last: Operation, total: int, timeline: str
) -> str:
    """What the Debug Console shows at launch: from counts the store keeps, nothing scanned."""
    end = last.ts + last.duration_us / 1e6
    span = max(0.0, end - first.ts)
    errors = f"{session.errors} error{'s' if session.errors != 1 else ''}"
    return (
        f"opreplay: {session_title(session)} of {database}\n"
        f"  {total:,} operations over {span:.1f} s ({format_datetime(first.ts)} to {format_datetime(end)}),"
        f" {errors}\n"
        f"  timeline pages: {timeline}\n"
        "  looking for hot loops in the background...\n"
    )


def _object(ref: Mapping[str, Any]) -> str:
    where = f"{ref['namespace']}/{ref['name']}" if ref.get("namespace") else ref.get("name", "")
    return f"{ref.get('kind', '')} {where}".strip()


def analysis_summary(analysis: Mapping[str, Any]) -> str:
    """The background analysis in a few lines: hot loops, slow calls, threads."""
    loops = analysis["loops"]["hot"]
    lines = [f"opreplay: {len(loops)} hot loop{'s' if len(loops) != 1 else ''}" + (":" if loops else "")]
    for loop in loops[:10]:
        lines.append(
            f"  {_object(loop['object'])}: {loop['writes']} writes,"
            f" seq {loop['first_seq']}-{loop['last_seq']} (every {loop['period_ops']:.0f} operations)"
        )
    slow = analysis["slow"]
    line = f"  {slow['count']} slow call{'s' if slow['count'] != 1 else ''} (>= {slow['threshold_ms']:g} ms)"
    if slow["operations"]:
        worst = slow["operations"][0]
        line += (
            f", the slowest: seq {worst['seq']} {worst['verb'].upper()} {_object(worst['object'])}"
            f" {worst['duration_ms']:.0f} ms"
        )
    lines.append(line)
    threads = analysis["stats"]["threads"]
    lines.append(f"  threads: {', '.join(sorted(threads))}")
    return "\n".join(lines) + "\n"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name or '-'} {count:,}" for name, count in counts.items())


def stats_text(analysis: Mapping[str, Any]) -> str:
    """`:stats`: the session's statistics, errors, slow calls and loops."""
    stats = analysis["stats"]
    duration = stats["duration"]
    lines = [
        f"session {stats['session']}" + (f" {stats['name']}" if stats.get("name") else ""),
        f"operations: {stats['operations']:,} over {stats['span_s']:.1f} s ({stats['rate_per_s']:.1f}/s),"
        f" {stats['reconciles']:,} reconciles",
        f"errors: {stats['errors']:,}"
        + (f" ({_counts(analysis['errors']['by_status'])})" if stats["errors"] else ""),
        f"duration: p50 {duration['p50_ms']:.1f} ms, p99 {duration['p99_ms']:.1f} ms,"
        f" max {duration['max_ms']:.1f} ms",
        f"verbs: {_counts(stats['verbs'])}",
        f"kinds: {_counts(stats['kinds'])}",
        f"statuses: {_counts(stats['statuses'])}",
        f"threads: {_counts(stats['threads'])}",
    ]
    return "\n".join(lines) + "\n" + analysis_summary(analysis).removeprefix("opreplay: ").rstrip("\n")


def change_text(change: Change, *, hex: bool = False) -> str:
    """`2 -> 3`; a field that appears or goes is `(absent)` on that side."""
    old = "(absent)" if change.old is None else format_value(change.old, hex=hex)
    new = "(absent)" if change.new is None else format_value(change.new, hex=hex)
    return f"{old} -> {new}"


def diff_text(changes: Sequence[Change]) -> str:
    """`:diff`: one line per changed field."""
    if not changes:
        return "no field changed"
    return "\n".join(f"{change.path}: {change_text(change)}" for change in changes)
