"""Export a session: JSON Lines (every field, bodies decoded) and Chrome trace events (Perfetto).

Both stream: operations are read in batches and written as they come, so exporting a session of
any length holds one batch and a bounded cache of decoded bodies in memory.

Chrome trace (`export_chrome_trace`): the "traceEvents" JSON format that chrome://tracing and
https://ui.perfetto.dev open. One process for the session; one track per recorded thread (named
with `M` thread_name metadata); one complete `X` slice per operation named like
"PATCH Deployment default/web", with ts/dur in microseconds from the first operation and the
operation's seq, status and reason in `args`. Calls that overlap on one thread (asyncio
operators, long watch streams) go to extra lanes of that thread ("MainThread #2") because a
track's slices must nest. Errors have category "error", the color "terrible" (red) and an
instant `i` event at their start; watch events have category "watch"; recording gaps "gap".
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Callable
from typing import IO, Any

import orjson

from opreplay.errors import OpreplayError
from opreplay.model import GAP, JSONValue, Operation, SessionInfo
from opreplay.progress import ProgressCallback

FORMATS = ("jsonl", "chrome-trace")
_BODY_CACHE = 4096
_MAX_LANES = 16
_PID = 1


class ExportError(OpreplayError):
    """An export that cannot be written."""


def _sink(out: IO[bytes] | IO[str]) -> Callable[[bytes], Any]:
    if isinstance(out, io.TextIOBase):
        text: IO[str] = out
        return lambda data: text.write(data.decode("utf-8"))
    binary: IO[bytes] = out  # type: ignore[assignment]
    return binary.write


class _Bodies:
    """Decoded bodies by digest, the most recent few thousand kept (the same state recurs a lot)."""

    def __init__(self, store: Any, size: int = _BODY_CACHE) -> None:
        self.store = store
        self.size = size
        self.cache: OrderedDict[bytes, JSONValue] = OrderedDict()

    def get(self, digest: bytes | None) -> JSONValue:
        if digest is None:
            return None
        try:
            value = self.cache[digest]
        except KeyError:
            pass
        else:
            self.cache.move_to_end(digest)
            return value
        value = self.store.body(digest)
        self.cache[digest] = value
        if len(self.cache) > self.size:
            self.cache.popitem(last=False)
        return value


def operation_record(op: Operation, session: SessionInfo, bodies: _Bodies | None = None) -> dict[str, Any]:
    """The JSON object of one operation: every field, digests in hex, bodies decoded."""
    return {
        "session": session.id,
        "seq": op.seq,
        "ts": op.ts,
        "duration_us": op.duration_us,
        "thread": op.thread,
        "verb": op.verb,
        "api_version": op.api_version,
        "resource": op.resource,
        "kind": op.kind,
        "namespace": op.namespace,
        "name": op.name,
        "subresource": op.subresource,
        "status": op.status,
        "reason": op.reason,
        "message": op.message,
        "resource_version": op.resource_version,
        "reconcile": op.reconcile,
        "watch": op.watch,
        "event": op.event,
        "error": op.is_error and op.verb != GAP,
        "request_digest": op.request_digest.hex() if op.request_digest is not None else None,
        "response_digest": op.response_digest.hex() if op.response_digest is not None else None,
        "request": bodies.get(op.request_digest) if bodies is not None else None,
        "response": bodies.get(op.response_digest) if bodies is not None else None,
    }


def export_jsonl(
    store: Any,
    session: SessionInfo,
    out: IO[bytes] | IO[str],
    *,
    bodies: bool = True,
    progress: ProgressCallback | None = None,
) -> int:
    """Write one JSON object per operation (see `operation_record`), one per line; return the count."""
    write = _sink(out)
    cache = _Bodies(store) if bodies else None
    total = max(session.operations, 0)
    count = 0
    for op in store.iter_operations(session):
        write(orjson.dumps(operation_record(op, session, cache)) + b"\n")
        count += 1
        if progress is not None and count % 1000 == 0:
            progress(count, max(total, count))
    if progress is not None:
        progress(count, max(total, count))
    return count


def _where(op: Operation) -> str:
    if op.name:
        return f"{op.namespace}/{op.name}" if op.namespace else op.name
    return f"{op.namespace}/*" if op.namespace else "*"


def slice_name(op: Operation) -> str:
    """ "PATCH Deployment default/web", "MODIFIED WebApp default/web" for a watch event."""
    kind = f"{op.kind}/{op.subresource}" if op.subresource else op.kind
    if op.verb == "watch-event":
        return f"{op.event or 'EVENT'} {kind} {_where(op)}"
    if op.verb == GAP:
        return "GAP (operations dropped)"
    return f"{op.verb.upper()} {kind} {_where(op)}"


class _Tracks:
    """Thread -> lanes -> tid; a new lane when a slice would overlap the lane's last one."""

    def __init__(self, write: Callable[[bytes], Any]) -> None:
        self.write = write
        self.threads: dict[str, list[list[float]]] = {}  # thread -> lanes of [end_us, tid]
        self.order: dict[str, int] = {}
        self.next_tid = 1

    def tid(self, thread: str, start: float, end: float) -> int:
        lanes = self.threads.get(thread)
        if lanes is None:
            lanes = self.threads[thread] = []
            self.order[thread] = len(self.order)
        for lane in lanes:
            if lane[0] <= start:
                lane[0] = end
                return int(lane[1])
        if len(lanes) >= _MAX_LANES:
            lane = min(lanes, key=lambda item: item[0])
            lane[0] = max(lane[0], end)
            return int(lane[1])
        tid = self.next_tid
        self.next_tid += 1
        lanes.append([end, float(tid)])
        index = len(lanes)
        name = thread if index == 1 else f"{thread} #{index}"
        self._meta("thread_name", tid, {"name": name})
        self._meta("thread_sort_index", tid, {"sort_index": self.order[thread] * _MAX_LANES + index - 1})
        return tid

    def _meta(self, name: str, tid: int, args: dict[str, Any]) -> None:
        self.write(orjson.dumps({"ph": "M", "pid": _PID, "tid": tid, "name": name, "args": args}) + b",\n")


def export_chrome_trace(
    store: Any,
    session: SessionInfo,
    out: IO[bytes] | IO[str],
    *,
    progress: ProgressCallback | None = None,
) -> int:
    """Write the session as Chrome trace event JSON; return the number of operations written."""
    write = _sink(out)
    write(b'{"displayTimeUnit":"ms","traceEvents":[\n')
    label = f"opreplay {session.id}" + (f" ({session.name})" if session.name else "")
    write(orjson.dumps({"ph": "M", "pid": _PID, "name": "process_name", "args": {"name": label}}) + b",\n")
    tracks = _Tracks(write)
    origin: float | None = None
    total = max(session.operations, 0)
    count = 0
    for op in store.iter_operations(session):
        if origin is None:
            origin = op.ts
        start = round((op.ts - origin) * 1e6, 3)
        duration = max(1, op.duration_us)
        tid = tracks.tid(op.thread, start, start + duration)
        error = op.is_error and op.verb != GAP
        args: dict[str, Any] = {"seq": op.seq, "status": op.status}
        for key, value in (
            ("reason", op.reason),
            ("message", op.message),
            ("api_version", op.api_version),
            ("namespace", op.namespace or None),
            ("name", op.name or None),
            ("subresource", op.subresource),
            ("reconcile", op.reconcile),
            ("watch", op.watch),
            ("event", op.event),
            ("resource_version", op.resource_version),
        ):
            if value is not None:
                args[key] = value
        args["duration_us"] = op.duration_us
        event: dict[str, Any] = {
            "ph": "X",
            "pid": _PID,
            "tid": tid,
            "ts": start,
            "dur": duration,
            "name": slice_name(op),
            "cat": "error"
            if error
            else "watch"
            if op.verb == "watch-event"
            else "gap"
            if op.verb == GAP
            else "api",
            "args": args,
        }
        if error:
            event["cname"] = "terrible"
        elif op.verb == GAP:
            event["cname"] = "grey"
        write(orjson.dumps(event) + b",\n")
        if error:
            what = f"{op.status} {op.reason}" if op.reason else f"{op.status} error"
            write(
                orjson.dumps(
                    {
                        "ph": "i",
                        "s": "t",
                        "pid": _PID,
                        "tid": tid,
                        "ts": start,
                        "name": what,
                        "cat": "error",
                        "args": {"seq": op.seq, "status": op.status, "reason": op.reason},
                    }
                )
                + b",\n"
            )
        count += 1
        if progress is not None and count % 1000 == 0:
            progress(count, max(total, count))
    other = {
        "session": session.id,
        "name": session.name,
        "database": getattr(store, "label", None),
        "origin_ts": origin,
        "operations": count,
    }
    # a last metadata event closes the array without a trailing comma
    write(orjson.dumps({"ph": "M", "pid": _PID, "name": "process_sort_index", "args": {"sort_index": 0}}))
    write(b'\n],"otherData":' + orjson.dumps(other) + b"}\n")
    if progress is not None:
        progress(count, max(total, count))
    return count


def export(
    store: Any,
    session: SessionInfo,
    out: IO[bytes] | IO[str],
    *,
    format: str,
    progress: ProgressCallback | None = None,
) -> int:
    """`export_jsonl` or `export_chrome_trace` by name (one of `FORMATS`)."""
    if format == "jsonl":
        return export_jsonl(store, session, out, progress=progress)
    if format == "chrome-trace":
        return export_chrome_trace(store, session, out, progress=progress)
    raise ExportError(f"unknown export format {format!r} (choose from {', '.join(FORMATS)})")
