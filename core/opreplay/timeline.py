"""Timeline documents (`*.optrace`): a session as text, one line per operation, shared by CLI, DAP and LSP.

A session is cut into pages of `page_size` operations (5,000 by default) so that no document is
huge; page N holds seqs (N-1)*page_size+1 .. N*page_size and is written to
`<session-id>.p<NNNN>.optrace`. A page is a fixed header of `HEADER_LINES` lines starting with
`#`, then one line per operation in seq order, so that line <-> seq is arithmetic:

    line = HEADER_LINES + (seq - 1) % page_size          (0-based, as in LSP; DAP adds 1)

Rendering is deterministic: the same store and session give the same bytes (times are UTC, no
"now", column widths depend only on the page's own operations). An operation line is

    SEQ  TIME  VERB  API-VERSION KIND[/SUB] WHERE  STATUS [REASON]  DURATION  [reconcile R] [watch W] thread=

        1204  06:00:01.123  PATCH   apps/v1 Deployment default/web  409 Conflict     12.0ms  [reconcile 17]
    (continued) thread=MainThread    (all one line: `format_line` of a 409 PATCH in reconcile 17)

- SEQ: right-aligned in 8 columns; TIME: HH:MM:SS.mmm (UTC; the header gives the date).
- VERB: GET LIST WATCH EVENT (a watch event) CREATE UPDATE PATCH DELETE DELETECOLLECTION GAP,
  padded to 6.
- API-VERSION, KIND (with `/subresource`, e.g. `WebApp/status`) and WHERE (`namespace/name`,
  `name` when cluster-scoped, `namespace/*` or `*` for a collection), padded per page to the
  widest on the page (up to 72 columns).
- STATUS: the HTTP status and the Kubernetes reason (`409 Conflict`, `200`), or for a watch event
  its type (`ADDED`, `MODIFIED`, `DELETED`, ...), padded per page (up to 32 columns).
- DURATION: right-aligned in 9 columns: `0.412ms`, `12.0ms`, `312ms`, `12.3s`.
- Tags: `[reconcile R]` and `[watch W]` when known, then `thread=` and the thread name up to
  the end of the line.

Tokens never hold whitespace: a space, a tab or a `%` inside a name or reason is written
`%20`, `%09`, `%25` (Kubernetes names cannot contain those, so this only guards odd input).
`parse_line` reads a line back (the language server's hover, definition and diagnostics).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from opreplay.errors import OpreplayError
from opreplay.model import Operation, SessionInfo
from opreplay.progress import ProgressCallback

DEFAULT_PAGE_SIZE = 5000
HEADER_LINES = 5
SUFFIX = ".optrace"
FORMAT_VERSION = 1

SEQ_WIDTH = 8
VERB_WIDTH = 6
DURATION_WIDTH = 9
MAX_TARGET_WIDTH = 72
MAX_STATUS_WIDTH = 32

_VERB_LABELS = {"watch-event": "EVENT"}
_LABEL_VERBS = {"EVENT": "watch-event"}
_UNSAFE = re.compile(r"[\s%]")
_ESCAPED = re.compile(r"%([0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\r\n\x00-\x08\x0b-\x1f\x7f]")


class TimelineError(OpreplayError):
    """A page that does not exist, a page size that cannot be."""


# -- paging arithmetic -------------------------------------------------------------------------


def _check_page_size(page_size: int) -> None:
    if page_size < 1:
        raise TimelineError(f"page size must be at least 1, not {page_size}")


def page_count(total: int, page_size: int = DEFAULT_PAGE_SIZE) -> int:
    """Pages of a session of `total` operations: at least 1 (an empty session has an empty page)."""
    _check_page_size(page_size)
    return max(1, -(-total // page_size))


def page_of(seq: int, page_size: int = DEFAULT_PAGE_SIZE) -> int:
    """The page (1-based) that shows `seq`."""
    _check_page_size(page_size)
    if seq < 1:
        raise TimelineError(f"seq must be at least 1, not {seq}")
    return (seq - 1) // page_size + 1


def line_of(seq: int, page_size: int = DEFAULT_PAGE_SIZE, header_lines: int = HEADER_LINES) -> int:
    """The 0-based line of `seq` in its page's document."""
    _check_page_size(page_size)
    if seq < 1:
        raise TimelineError(f"seq must be at least 1, not {seq}")
    return header_lines + (seq - 1) % page_size


def seq_at(
    page: int,
    line: int,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    header_lines: int = HEADER_LINES,
    total: int | None = None,
) -> int | None:
    """The seq shown on 0-based `line` of `page`, or None for a header line or past the end."""
    _check_page_size(page_size)
    offset = line - header_lines
    if page < 1 or offset < 0 or offset >= page_size:
        return None
    seq = (page - 1) * page_size + offset + 1
    if total is not None and seq > total:
        return None
    return seq


def page_bounds(page: int, page_size: int, total: int) -> tuple[int, int]:
    """(first, last) seq of `page`; (1, 0) for the empty page of an empty session."""
    pages = page_count(total, page_size)
    if page < 1 or page > pages:
        raise TimelineError(f"no page {page}: the session has {pages} page(s) of {page_size} operations")
    first = (page - 1) * page_size + 1
    return first, min(total, page * page_size)


def page_filename(session_id: str, page: int) -> str:
    return f"{session_id}.p{page:04d}{SUFFIX}"


_FILENAME = re.compile(r"^(?P<session>.+)\.p(?P<page>\d{4,})" + re.escape(SUFFIX) + "$")


def parse_filename(name: str) -> tuple[str, int] | None:
    """(session id, page) of a timeline file name such as `k3x9qa.p0002.optrace`."""
    match = _FILENAME.match(os.path.basename(name))
    if match is None:
        return None
    return match["session"], int(match["page"])


# -- formatting --------------------------------------------------------------------------------


def _token(text: str) -> str:
    if not text:
        return "-"
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", text)


def _untoken(text: str) -> str:
    if "%" not in text:
        return text
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


_INVALID_TIME = "??:??:??.???"
"""A time no clock can show, at the width of `format_time`."""


def format_moment(ts: float, render: Callable[[datetime], str], *, utc: bool = True) -> str:
    """`render` of `ts` to the nearest millisecond, in UTC or local time; `invalid time (ts)` for a
    value no date has.

    A recording is a file from elsewhere: a damaged one can hold NaN, an infinity or a year past
    9999 where a time should be, and `datetime` raises on each. Every time shown goes through here
    or `format_time`, so such a value shows as invalid instead of stopping the command.
    """
    try:
        moment = datetime.fromtimestamp(round(ts * 1000) / 1000, tz=timezone.utc if utc else None)
    except (TypeError, ValueError, OverflowError, OSError):
        return f"invalid time ({ts!r})"
    return render(moment)


def format_time(ts: float) -> str:
    """HH:MM:SS.mmm in UTC, to the nearest millisecond (arithmetic: a page formats thousands)."""
    try:
        millis = round(ts * 1000)
    except (TypeError, ValueError, OverflowError):
        return _INVALID_TIME
    seconds, ms = divmod(millis, 1000)
    day_seconds = seconds % 86400
    hours, rest = divmod(day_seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


def format_datetime(ts: float) -> str:
    return format_moment(ts, lambda m: m.strftime("%Y-%m-%d %H:%M:%S.") + f"{m.microsecond // 1000:03d} UTC")


def format_duration(us: int) -> str:
    if us < 1000:
        return f"{us / 1000:.3f}ms"
    if us < 100_000:
        return f"{us / 1000:.1f}ms"
    if us < 10_000_000:
        return f"{us // 1000}ms"
    return f"{us / 1e6:.1f}s"


def verb_label(verb: str) -> str:
    return _VERB_LABELS.get(verb, verb.upper())


def target_text(op: Operation) -> str:
    """`API-VERSION KIND[/SUBRESOURCE] WHERE` of an operation."""
    kind = _token(op.kind)
    if op.subresource:
        kind = f"{kind}/{_token(op.subresource)}"
    if op.name:
        where = f"{_token(op.namespace)}/{_token(op.name)}" if op.namespace else _token(op.name)
    else:
        where = f"{_token(op.namespace)}/*" if op.namespace else "*"
    return f"{_token(op.api_version)} {kind} {where}"


def status_text(op: Operation) -> str:
    if op.verb == "watch-event":
        return _token(op.event or "EVENT")
    if op.verb == "gap":
        return "-"
    return f"{op.status} {_token(op.reason)}" if op.reason else str(op.status)


@dataclass(frozen=True, slots=True)
class Widths:
    """Column widths of a page: the widest target and status on it, capped."""

    target: int = 0
    status: int = 0

    @classmethod
    def of(cls, ops: Iterable[Operation]) -> Widths:
        target = status = 0
        for op in ops:
            target = max(target, len(target_text(op)))
            status = max(status, len(status_text(op)))
        return cls(min(target, MAX_TARGET_WIDTH), min(status, MAX_STATUS_WIDTH))


def format_line(op: Operation, widths: Widths | None = None) -> str:
    """The timeline line of one operation (no trailing newline)."""
    w = widths or Widths()
    tags = ""
    if op.reconcile is not None:
        tags += f"[reconcile {op.reconcile}] "
    if op.watch is not None:
        tags += f"[watch {op.watch}] "
    thread = _CONTROL.sub(" ", op.thread)
    return (
        f"{op.seq:>{SEQ_WIDTH}}  {format_time(op.ts)}  {verb_label(op.verb):<{VERB_WIDTH}}  "
        f"{target_text(op):<{w.target}}  {status_text(op):<{w.status}}  "
        f"{format_duration(op.duration_us):>{DURATION_WIDTH}}  {tags}thread={thread}"
    )


def _clean(text: str) -> str:
    return _CONTROL.sub(" ", text)


def format_header(
    *,
    database: str,
    session: SessionInfo,
    page: int,
    pages: int,
    first: int,
    last: int,
    page_size: int,
    widths: Widths | None = None,
) -> list[str]:
    """The `HEADER_LINES` header lines of a page."""
    w = widths or Widths()
    name = f"  name: {_clean(session.name)}" if session.name else ""
    where = f"seq {first}-{last}" if last >= first else "no operations"
    legend = (
        f"#{'seq':>{SEQ_WIDTH - 1}}  {'time (UTC)':<12}  {'verb':<{VERB_WIDTH}}  {'object':<{w.target}}  "
        f"{'status':<{w.status}}  {'duration':>{DURATION_WIDTH}}  tags thread"
    ).rstrip()
    lines = [
        f"# opreplay timeline v{FORMAT_VERSION}: one line per operation,"
        f" line {HEADER_LINES + 1} is seq {first}",
        f"# database: {_clean(database)}",
        f"# session: {session.id}  started: {format_datetime(session.started_at)}"
        f"  operations: {session.operations}{name}",
        f"# page {page} of {pages}: {where} (page size {page_size})",
        legend,
    ]
    assert len(lines) == HEADER_LINES
    return lines


def render_operations(
    ops: Sequence[Operation], *, database: str, session: SessionInfo, page: int, page_size: int
) -> str:
    """A page's document from its operations (what `render_page` does after reading them)."""
    pages = page_count(session.operations, page_size)
    first, last = page_bounds(page, page_size, max(session.operations, 0))
    widths = Widths.of(ops)
    lines = format_header(
        database=database,
        session=session,
        page=page,
        pages=pages,
        first=first,
        last=last,
        page_size=page_size,
        widths=widths,
    )
    lines.extend(format_line(op, widths) for op in ops)
    return "\n".join(lines) + "\n"


def render_page(store: Any, session: SessionInfo, page: int, *, page_size: int = DEFAULT_PAGE_SIZE) -> str:
    """Page `page` (1-based) of the session's timeline."""
    first, last = page_bounds(page, page_size, max(session.operations, 0))
    ops = store.operations(session, first, last + 1) if last >= first else []
    return render_operations(ops, database=store.label, session=session, page=page, page_size=page_size)


def write_timeline(
    store: Any,
    session: SessionInfo,
    directory: str | os.PathLike[str],
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    progress: ProgressCallback | None = None,
) -> list[Path]:
    """Write every page to `directory/<session-id>.pNNNN.optrace`; return the paths in page order.

    Each file is replaced atomically (an editor never sees half a page), and pages of this
    session left over from an earlier, longer rendering are removed.
    """
    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise TimelineError(f"{folder}: cannot create the folder ({error.strerror})") from None
    pages = page_count(session.operations, page_size)
    paths: list[Path] = []
    for page in range(1, pages + 1):
        path = folder / page_filename(session.id, page)
        _write_atomically(path, render_page(store, session, page, page_size=page_size))
        paths.append(path)
        if progress is not None:
            progress(page, pages)
    for stale in folder.glob(f"{glob_escape(session.id)}.p*{SUFFIX}"):
        parsed = parse_filename(stale.name)
        if parsed is not None and parsed[0] == session.id and parsed[1] > pages:
            stale.unlink(missing_ok=True)
    return paths


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _write_atomically(path: Path, text: str) -> None:
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
        os.replace(temporary, path)
    except OSError as error:
        raise TimelineError(f"{path}: cannot write ({error.strerror})") from None


# -- parsing -----------------------------------------------------------------------------------

LINE_PATTERN = re.compile(
    r"^\s*(?P<seq>\d+)"
    r"\s+(?P<time>\d{2}:\d{2}:\d{2}\.\d{3})"
    r"\s+(?P<verb>[A-Z][A-Z-]*)"
    r"\s+(?P<api_version>\S+)"
    r"\s+(?P<kind>[^\s/]+)(?:/(?P<subresource>\S+))?"
    r"\s+(?P<where>\S+)"
    r"\s+(?P<status>\d+|[^\s\d]\S*)(?: (?P<reason>(?!\d[\d.]*(?:ms|s)\b)\S+))?"
    r"\s+(?P<duration>\d+(?:\.\d+)?)(?P<unit>ms|s)"
    r"\s+(?:\[reconcile (?P<reconcile>-?\d+)\]\s+)?"
    r"(?:\[watch (?P<watch>-?\d+)\]\s+)?"
    r"thread=(?P<thread>.*)$"
)
"""The operation line, for tools (and a model for the TextMate grammar)."""


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """The fields of an operation line. `status` is None for watch events and gaps; `event` is the
    watch event type. `duration_ms` is as displayed (rounded)."""

    seq: int
    time: str
    verb: str
    api_version: str
    kind: str
    subresource: str | None
    namespace: str
    name: str
    status: int | None
    reason: str | None
    event: str | None
    duration_ms: float
    reconcile: int | None
    watch: int | None
    thread: str

    @property
    def is_error(self) -> bool:
        return self.status is not None and (self.status >= 400 or self.status == 0)

    def span(self, field: str, line: str) -> tuple[int, int] | None:
        """Start and end columns of a field (a `LINE_PATTERN` group name) in `line`."""
        match = LINE_PATTERN.match(line)
        if match is None or match.group(field) is None:
            return None
        return match.span(field)


def parse_line(text: str) -> ParsedLine | None:
    """The operation on a timeline line, or None for a header, blank or foreign line."""
    line = text.rstrip("\r\n")
    if not line or line.lstrip().startswith("#"):
        return None
    match = LINE_PATTERN.match(line)
    if match is None:
        return None
    label = match["verb"]
    verb = _LABEL_VERBS.get(label, label.lower())
    where = match["where"]
    if "/" in where:
        namespace, _, name = where.partition("/")
    else:
        namespace, name = "", where
    if name == "*":
        name = ""
    status_text = match["status"]
    status: int | None = None
    event: str | None = None
    if status_text.isdigit():
        status = int(status_text)
    elif status_text != "-":
        event = status_text
    amount = float(match["duration"])
    duration_ms = amount * 1000.0 if match["unit"] == "s" else amount
    reason = match["reason"]
    subresource = match["subresource"]
    return ParsedLine(
        seq=int(match["seq"]),
        time=match["time"],
        verb=verb,
        api_version=_untoken(match["api_version"]),
        kind=_untoken(match["kind"]),
        subresource=_untoken(subresource) if subresource else None,
        namespace=_untoken(namespace),
        name=_untoken(name),
        status=status,
        reason=_untoken(reason) if reason else None,
        event=event,
        duration_ms=duration_ms,
        reconcile=int(match["reconcile"]) if match["reconcile"] is not None else None,
        watch=int(match["watch"]) if match["watch"] is not None else None,
        thread=match["thread"],
    )


@dataclass(frozen=True, slots=True)
class TimelineHeader:
    database: str
    session: str
    page: int
    pages: int
    first: int
    last: int
    page_size: int


_HEADER_DATABASE = re.compile(r"^# database: (?P<database>.*)$")
_HEADER_SESSION = re.compile(r"^# session: (?P<session>\S+)")
_HEADER_PAGE = re.compile(
    r"^# page (?P<page>\d+) of (?P<pages>\d+): (?:seq (?P<first>\d+)-(?P<last>\d+)|no operations)"
    r" \(page size (?P<size>\d+)\)"
)


def parse_header(lines: Sequence[str] | str) -> TimelineHeader | None:
    """The database, session and page a timeline document shows (from its first lines)."""
    head = lines.splitlines()[:HEADER_LINES] if isinstance(lines, str) else list(lines[:HEADER_LINES])
    found: dict[str, Any] = {}
    for line in head:
        if match := _HEADER_DATABASE.match(line):
            found["database"] = match["database"]
        elif match := _HEADER_SESSION.match(line):
            found["session"] = match["session"]
        elif match := _HEADER_PAGE.match(line):
            found["page"], found["pages"] = int(match["page"]), int(match["pages"])
            found["page_size"] = int(match["size"])
            found["first"] = int(match["first"]) if match["first"] else 1
            found["last"] = int(match["last"]) if match["last"] else 0
    if {"database", "session", "page"} - set(found):
        return None
    return TimelineHeader(**found)
