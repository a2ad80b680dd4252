"""ReplayApiClient: the operator's own code, run against a recording instead of a cluster.

    from opreplay.replay.client import ReplayApiClient

    with ReplayApiClient("recordings.db", "latest") as api:
        webapp_operator.run(api, "default", stop_after_events=4)   # typed APIs, CustomObjectsApi,
        api.assert_complete()                                        # the dynamic client, watches

`ReplayApiClient` is a `kubernetes.client.ApiClient`: every generated API, `CustomObjectsApi`, the
dynamic client and `kubernetes.watch.Watch` work on it unchanged. Each HTTP request they make is
answered with the response recorded for it, in order, and nothing ever goes over the network.

Interception point. The recorder hooks `pool_manager.request(...)` of the client's
`RESTClientObject`; the replay client sits one level below, in `urlopen` of a urllib3 `PoolManager`
subclass that replaces the rest client's pool manager. So the kubernetes client (both its layouts:
request building, JSON serialisation, the SSLError -> ApiException(status=0) conversion, 429
Retry-After handling, `ApiException.from_response` with its subclasses, `_preload_content`) and
urllib3's own `request()` run exactly as they do live, and the replay sees the request bytes the
recorder saw. The answer is a real `urllib3.HTTPResponse` over a real `http.client.HTTPResponse`,
which parses the recorded response from wire bytes (status line, headers, body) produced lazily by
an in-memory socket: `.status`, `.reason`, `.headers`, `.data`, `read()`, `read1()`, `stream()`,
`read_chunked()`, `release_conn()` and `close()` all behave as they would on a socket. A watch
stream is sent with chunked transfer encoding, one chunk per recorded event, generated as the
client reads it, and then ends. Nothing opens a socket: the pool manager refuses to create
connection pools, and the configuration's host is an unroutable `*.invalid` name, unique to each
client (the dynamic client's discovery cache is a temp file named after the host, so every replay
discovers the API as a fresh process does; `close()` removes that file). A process recorded with a
warm discovery cache made no discovery requests: its replay diverges at `GET /version` in strict
mode (record from a cold cache, or replay such a session leniently).

Responses, as the live client got them:
- status, reason phrase (the standard one for the status: what the API server sends) and body as
  recorded; `Content-Type: application/json` (bodies that were not JSON, such as logs, come back as
  `text/plain`); a Status with `details.retryAfterSeconds` also gets its `Retry-After` header.
  Other headers are not recorded, so they are not replayed; `X-Opreplay-Seq` names the operation.
- A recorded error status raises the same `ApiException` (subclass, status, reason, body), since the
  kubernetes client raises it from the replayed response itself.
- A transport error (recorded status 0, e.g. `MaxRetryError`) is raised again from the pool
  manager, as urllib3 raised it: the same exception type (looked up by name in urllib3.exceptions,
  the builtins, http.client, socket, ssl) with the same message. A read that failed half-way
  through a body gives the recorded bytes, then raises the recorded error.
- LIST bodies are reassembled from their items; the `kind`/`apiVersion` the recorder adds to the
  items of a built-in list are taken off again, so typed list items look as they did live.
- Secrets are redacted in recordings (`<redacted sha256:...>`): replay returns them as recorded,
  placeholders included. A request body sent to a Secret is redacted the same way before it is
  compared with the recorded one, so writing a Secret matches.
- A response the recording does not hold whole (over `max_body_bytes`, or lost to a full recorder
  queue) raises `RecordingIncompleteError` instead of handing out a partial body as if it were all.

Matching rules. A request is described as the recorder describes it (`opreplay.record.parse`):
verb (from the method and `watch=`), api group/version, resource, namespace, name, subresource,
plus its JSON body; for a create the name is the one in the body (none with generateName: any).
The query string is not recorded, so it is not compared (except `watch`, which makes the verb).
Bodies are compared as JSON documents, not bytes; two timestamp strings (RFC 3339) are equal
whatever time they say, since an operator stamps the clock into what it writes, and `volatile=`
names more fields (field paths such as `metadata.annotations["example.com/nonce"]`) to ignore.
resourceVersion is compared: during a replay it comes from recorded responses, so a different one
means the code read a different response.

- strict (default): each thread of the operator replays the recorded requests of one recorded
  thread, in their recorded order. A replay thread is bound to the recorded thread of the same name
  when that one is free, otherwise to the free recorded thread whose next request matches (earliest
  first): so auto-named worker threads (`Thread-7`) find their recording; a thread whose recorded
  thread has nothing left takes over a free one whose next request matches. Across threads no order
  is imposed: the recorded interleaving was the scheduler's. (A worker pool whose work items land
  on other threads than they did live is better replayed leniently.) Any difference with the next
  recorded request of the thread raises `DivergenceError` with both requests side by side and the
  first difference (identity field, or the first differing body field).
- lenient (`strict=False`): a request takes the earliest recorded request not used yet with the
  same verb, api version, resource, subresource, namespace and name (preferring one whose body also
  matches), in any thread: reordered requests and requests of other threads are fine. A read (get,
  list) with nothing unused left is answered again with the latest response recorded for it. Each
  departure from the strict order is appended to `divergences` ("reordered", "repeated", "body",
  "gap"); `DivergenceError` is raised only when nothing recorded matches ("unmatched"). Since the
  query is not recorded, two LISTs of one collection with different label selectors look alike here.
- Watch events are not requests: they are the body of their watch (`watch == seq of the watch`),
  delivered as the stream is read, `{"type": ..., "object": ...}` one per line, in recorded order;
  events recorded before the stream was closed but never read count as replayed with its close.
- A recording with a gap (operations dropped by a full recorder queue) cannot be replayed past the
  gap in strict mode (`DivergenceError`); lenient mode notes it and goes on.

`position` is the seq of the last operation replayed, `remaining` the number still to replay,
`assert_complete()` raises `IncompleteReplayError` (a `DivergenceError`) listing what was not.
The client is thread-safe. It holds the session's operations (not their bodies, which are read when
served) in memory: a few hundred bytes per operation.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import http
import http.client
import inspect
import io
import os
import pathlib
import re
import secrets
import socket
import ssl
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import kubernetes.client
import orjson
import urllib3
import urllib3.exceptions
from urllib3.poolmanager import PoolKey
from urllib3.response import BaseHTTPResponse

from opreplay.errors import OpreplayError
from opreplay.model import GAP, Operation, SessionInfo
from opreplay.record import parse, redact
from opreplay.record.writer import TRUNCATED
from opreplay.replay.paths import Path, format_path, parse_path
from opreplay.store import Store

__all__ = [
    "Divergence",
    "DivergenceError",
    "IncompleteReplayError",
    "RecordingIncompleteError",
    "ReplayApiClient",
]

DivergenceKind = Literal["reordered", "repeated", "body", "gap", "unmatched", "diverged"]

_BODY_SUMMARY: Final = 100
_VALUE_SUMMARY: Final = 60
_INCOMPLETE_PREFIX: Final = "response body incomplete: "
_STOPPED_EARLY: Final = "recording stopped before the response was read to its end"
_READ_VERBS: Final = frozenset({"get", "list"})
_TIMESTAMP: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|z|[+-]\d{2}(?::?\d{2})?)?"
)
_REDACTED_MARK: Final = b"<redacted sha256:"
_TRUNCATED_MARK: Final = b'{"' + TRUNCATED.encode() + b'":true'
_TYPED_LIST: Final = re.compile(rb'\{"kind":"([^"\\]+)List","apiVersion":"([^"\\]+)",')
_QUEUE_FULL: Final = "recorder queue full: part of the response was dropped"
_SECRET_MARK: Final = b'"Secret"'
_METHODS: Final = {
    "get": "GET",
    "list": "GET",
    "watch": "WATCH",
    "create": "POST",
    "update": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
    "deletecollection": "DELETE",
}


class DivergenceError(OpreplayError):
    """The operator did something else than what was recorded; the message shows both requests."""

    def __init__(
        self, message: str, *, seq: int | None = None, expected: str | None = None, actual: str | None = None
    ) -> None:
        super().__init__(message)
        self.seq = seq
        self.expected = expected
        self.actual = actual


class IncompleteReplayError(DivergenceError):
    """`assert_complete()`: recorded operations that the replayed code never asked for."""


class RecordingIncompleteError(OpreplayError):
    """The recording does not hold a whole response (truncated, or lost to a full recorder queue)."""


@dataclass(frozen=True, slots=True)
class Divergence:
    """One departure from the recorded order (lenient mode), or the divergence that was raised.

    `seq` is the recorded operation that answered the request (None when none did), `expected`
    the recorded request strict order expected at that point, `actual` the request that was made.
    """

    kind: DivergenceKind
    seq: int | None
    expected: str | None
    actual: str | None
    detail: str

    def __str__(self) -> str:
        where = f"#{self.seq} " if self.seq is not None else ""
        return f"{self.kind}: {where}{self.detail}"


# -- requests --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Request:
    """An incoming request in the recorder's terms. `name` None: any (a create with generateName)."""

    method: str
    url: str
    verb: str
    api_version: str
    resource: str
    namespace: str
    name: str | None
    subresource: str | None
    body: bytes | None
    thread: str

    @property
    def collection(self) -> tuple[str, str, str, str | None, str]:
        return (self.verb, self.api_version, self.resource, self.subresource, self.namespace)


def _request(method: str, url: str, body: Any, thread: str) -> _Request:
    path, query = parse.split_url(url)
    target = parse.parse_path(path)
    verb = parse.verb_of(method, target, parse.is_watch(query))
    data = _body_bytes(body)
    name: str | None = target.name
    if verb == "create" and not name:
        requested = parse.peek_parsed(parse.loads(data)).name if data else ""
        name = requested or None
    return _Request(
        method, url, verb, target.api_version, target.resource, target.namespace, name,
        target.subresource, data, thread,
    )  # fmt: skip


def _body_bytes(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body) or None
    return None  # a file or an iterator: not recorded either


def _identity_difference(request: _Request, op: Operation) -> str | None:
    """The first identity field in which a request differs from a recorded operation, as text."""
    for label, recorded, actual in (
        ("verb", op.verb, request.verb),
        ("resource", op.resource, request.resource),
        ("apiVersion", op.api_version, request.api_version),
        ("subresource", op.subresource, request.subresource),
    ):
        if recorded != actual:
            return f"{label}: {_show(recorded)} recorded, {_show(actual)} now"
    if op.namespace != request.namespace and not (request.verb == "create" and not request.namespace):
        return f"namespace: {_show(op.namespace)} recorded, {_show(request.namespace)} now"
    # An error on a collection names the object its Status is about: the recorder keeps that name.
    if request.name is not None and op.name != request.name and not (request.name == "" and op.status >= 400):
        return f"name: {_show(op.name)} recorded, {_show(request.name)} now"
    return None


def _show(value: Any) -> str:
    if value is None or value == "":
        return "(none)"
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= _VALUE_SUMMARY else text[: _VALUE_SUMMARY - 3] + "..."


def _where(namespace: str, name: str | None, subresource: str | None) -> str:
    text = "/".join(part for part in (namespace, name or "") if part)
    if subresource:
        text = f"{text}/{subresource}" if text else subresource
    return text


def _summary(body: bytes | None) -> str:
    if not body:
        return ""
    document = parse.loads(body)
    text = body.decode("utf-8", "replace") if document is parse.INVALID else orjson.dumps(document).decode()
    return text if len(text) <= _BODY_SUMMARY else text[: _BODY_SUMMARY - 3] + "..."


def _describe_request(request: _Request) -> str:
    method = "WATCH" if request.verb == "watch" else request.method
    if not request.resource and not request.api_version:
        head = f"{method} {request.name or ''}"
    else:
        where = _where(request.namespace, request.name, request.subresource)
        head = " ".join(part for part in (method, request.api_version, request.resource, where) if part)
    summary = _summary(request.body)
    return f"{head} {summary}" if summary else head


# -- body comparison -------------------------------------------------------------------------------


class _Comparator:
    """Request bodies as JSON documents, modulo timestamps and the `volatile` field paths."""

    def __init__(self, volatile: Iterable[str]) -> None:
        self.volatile: frozenset[Path] = frozenset(parse_path(path) for path in volatile)

    def difference(self, recorded: bytes | None, actual: bytes | None, *, secret: bool) -> str | None:
        if not recorded and not actual:
            return None
        if not recorded:
            return f"body: none recorded, {_summary(actual)} now"
        if not actual:
            return f"body: {_summary(recorded)} recorded, none now"
        if recorded == actual:
            return None
        expected = parse.loads(recorded)
        if isinstance(expected, dict) and expected.get(TRUNCATED) is True:
            return self._truncated(expected, actual)
        document = parse.loads(actual)
        if document is parse.INVALID:
            document = actual.decode("utf-8", "replace")  # the recorder keeps a non-JSON body as a string
        difference = self._walk((), expected, document)
        if difference is not None and (secret or _SECRET_MARK in actual) and _REDACTED_MARK in recorded:
            redacted = _redacted(document, secret=secret)
            if redacted is not None:
                return self._walk((), expected, redacted)
        return difference

    @staticmethod
    def _truncated(expected: dict[str, Any], actual: bytes) -> str | None:
        prefix = str(expected.get("prefix", ""))
        if len(actual) == expected.get("size") and actual.decode("utf-8", "ignore").startswith(prefix):
            return None
        return f"body: {expected.get('size')} bytes recorded (truncated), {len(actual)} bytes now"

    def _walk(self, path: Path, recorded: Any, actual: Any) -> str | None:
        if path in self.volatile or recorded == actual:
            return None
        if isinstance(recorded, dict) and isinstance(actual, dict):
            for key in recorded:
                if key not in actual:
                    if (*path, key) in self.volatile:
                        continue
                    return f"{format_path((*path, key))}: {_show(recorded[key])} recorded, missing now"
                found = self._walk((*path, key), recorded[key], actual[key])
                if found is not None:
                    return found
            for key in actual:
                if key not in recorded and (*path, key) not in self.volatile:
                    return f"{format_path((*path, key))}: missing in the recording, {_show(actual[key])} now"
            return None
        if isinstance(recorded, list) and isinstance(actual, list):
            for index, (old, new) in enumerate(zip(recorded, actual, strict=False)):
                found = self._walk((*path, index), old, new)
                if found is not None:
                    return found
            if len(recorded) != len(actual):
                label = format_path(path) or "body"
                return f"{label}: {len(recorded)} items recorded, {len(actual)} now"
            return None
        if (
            isinstance(recorded, str)
            and isinstance(actual, str)
            and _TIMESTAMP.fullmatch(recorded)
            and _TIMESTAMP.fullmatch(actual)
        ):
            return None
        return f"{format_path(path) or 'body'}: {_show(recorded)} recorded, {_show(actual)} now"


def _redacted(document: Any, *, secret: bool) -> Any:
    """The document as the recorder would have stored it (Secret values replaced), or None."""
    copy = orjson.loads(orjson.dumps(document))
    if secret and isinstance(copy, list):
        changed = redact.redact_json_patch(copy)
    elif secret and isinstance(copy, dict) and isinstance(copy.get("items"), list):
        changed = any([redact.redact_secret(item) for item in copy["items"]])
    elif secret:
        changed = redact.redact_secret(copy)
    else:
        changed = redact.redact_nested(copy)
    return copy if changed else None


# -- responses -------------------------------------------------------------------------------------


class _WireStream(io.RawIOBase):
    """The bytes of one response as a server would send them, produced as they are read."""

    def __init__(self, pieces: Iterator[bytes], on_close: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._pieces = pieces
        self._pending = b""
        self._on_close = on_close

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._pending = piece
        view = memoryview(buffer).cast("B")
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close(self) -> None:
        if not self.closed:
            super().close()
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()


class _ReplaySocket:
    """Just enough of a socket for http.client.HTTPResponse: the recorded bytes, never the network."""

    def __init__(self, stream: _WireStream) -> None:
        self._stream = stream

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(self._stream)


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    lines = [f"HTTP/1.1 {status} {phrase}".rstrip()]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_RESPONSE_OPTIONS = frozenset(inspect.signature(urllib3.HTTPResponse.__init__).parameters)


def _http_response(
    method: str, url: str, headers: Mapping[str, str], pieces: Iterator[bytes], kw: Mapping[str, Any],
    *, on_close: Callable[[], None] | None = None,
) -> BaseHTTPResponse:  # fmt: skip
    """A urllib3 response parsed by http.client from `pieces` (head first), as a connection makes one."""
    stream = _WireStream(pieces, on_close)
    raw = http.client.HTTPResponse(_ReplaySocket(stream), method=method, url=url)  # type: ignore[arg-type]
    raw.begin()
    options: dict[str, Any] = {
        "body": raw,
        "headers": urllib3.HTTPHeaderDict(raw.msg.items()),
        "status": raw.status,
        "version": raw.version,
        "reason": raw.reason,
        "preload_content": kw.get("preload_content", True),
        "decode_content": kw.get("decode_content", True),
        "original_response": raw,
        "enforce_content_length": kw.get("enforce_content_length", True),
        "request_method": method,
        "request_url": url,
    }
    if "version_string" in _RESPONSE_OPTIONS:
        options["version_string"] = "HTTP/1.1"
    return urllib3.HTTPResponse(**{key: value for key, value in options.items() if key in _RESPONSE_OPTIONS})


def _exception_type(name: str | None) -> type[Exception] | None:
    if not name:
        return None
    for namespace in (urllib3.exceptions, builtins, http.client, socket, ssl):
        found = getattr(namespace, name, None)  # not an alias: urllib3's ConnectionError is ProtocolError
        if isinstance(found, type) and issubclass(found, Exception) and found.__name__ == name:
            return found
    return None


class RecordedTransportError(urllib3.exceptions.HTTPError):
    """A recorded transport error of a type this process does not know; `recorded_type` names it."""

    recorded_type: str = ""


def _recorded_error(reason: str | None, message: str | None) -> Exception:
    """The exception a recorded failure was, rebuilt: same type, same `str()`."""
    text = message or reason or "transport error"
    cls = _exception_type(reason)
    if cls is None:
        fallback = RecordedTransportError(f"{reason}: {text}" if reason else text)
        fallback.recorded_type = reason or ""
        return fallback
    error = cls.__new__(cls)
    BaseException.__init__(error, text)  # str(error) is the recorded message, whatever cls.__init__ takes
    if issubclass(cls, urllib3.exceptions.HTTPError):
        for attribute in ("pool", "url", "reason", "conn"):
            if not hasattr(error, attribute):
                with contextlib.suppress(AttributeError):
                    setattr(error, attribute, None)
    return error


# -- the replay --------------------------------------------------------------------------------------


class _Replay:
    """The recording's operations, what has been replayed, and the matching (all under one lock)."""

    def __init__(
        self, store: Store, session: SessionInfo, *, strict: bool, start: int, volatile: Iterable[str]
    ) -> None:
        self.store = store
        self.session = session
        self.strict = strict
        self.comparator = _Comparator(volatile)
        self.lock = threading.RLock()
        self.ops: dict[int, Operation] = {}
        self.used: set[int] = set()
        self.threads: dict[str, list[int]] = {}
        self.heads: dict[str, int] = {}
        self.index_heads: dict[tuple[Any, ...], int] = {}
        self.by_name: dict[tuple[str, str, str, str | None, str, str], list[int]] = {}
        self.by_collection: dict[tuple[str, str, str, str | None, str], list[int]] = {}
        self.events: dict[int, list[int]] = {}
        self.gaps: list[int] = []
        self.passed_gaps: set[int] = set()
        self.position = start - 1
        self.divergences: list[Divergence] = []
        self.owners: dict[str, weakref.ref[threading.Thread]] = {}
        self.bound: weakref.WeakKeyDictionary[threading.Thread, str] = weakref.WeakKeyDictionary()
        for op in store.iter_operations(session):
            if op.seq < start or (op.watch is not None and op.watch < start):
                continue
            if op.verb == GAP:
                self.gaps.append(op.seq)
                continue
            self.ops[op.seq] = op
            if op.verb == "watch-event" and op.watch is not None:
                self.events.setdefault(op.watch, []).append(op.seq)
                continue
            self.threads.setdefault(op.thread, []).append(op.seq)
            collection = (op.verb, op.api_version, op.resource, op.subresource, op.namespace)
            self.by_collection.setdefault(collection, []).append(op.seq)
            self.by_name.setdefault((*collection, op.name), []).append(op.seq)
        self.heads = dict.fromkeys(self.threads, 0)

    # -- bookkeeping ---------------------------------------------------------------------------

    @property
    def remaining(self) -> int:
        return len(self.ops) - len(self.used)

    def unreplayed(self) -> list[Operation]:
        return [op for seq, op in sorted(self.ops.items()) if seq not in self.used]

    def use(self, seq: int) -> None:
        self.used.add(seq)
        self.position = seq

    def next_of(self, thread: str) -> int | None:
        """The first recorded request of a recorded thread not replayed yet."""
        seqs, head = self.threads.get(thread, []), self.heads.get(thread, 0)
        while head < len(seqs) and seqs[head] in self.used:
            head += 1
        self.heads[thread] = head
        return seqs[head] if head < len(seqs) else None

    def describe(self, op: Operation) -> str:
        method = _METHODS.get(op.verb, op.verb.upper())
        if not op.resource and not op.api_version:
            head = f"#{op.seq} {method} {op.name}"
        else:
            where = _where(op.namespace, op.name, op.subresource)
            head = " ".join(
                part for part in (f"#{op.seq}", method, op.api_version, op.resource, where) if part
            )
        summary = _summary(self.request_body(op))
        return f"{head} {summary}" if summary else head

    def request_body(self, op: Operation) -> bytes | None:
        return self.store.body_bytes(op.request_digest) if op.request_digest is not None else None

    def difference(self, request: _Request, op: Operation) -> str | None:
        identity = _identity_difference(request, op)
        if identity is not None:
            return identity
        return self.body_difference(request, op)

    def body_difference(self, request: _Request, op: Operation) -> str | None:
        if op.request_digest is None and request.body is None:
            return None
        return self.comparator.difference(
            self.request_body(op), request.body, secret=request.resource == "secrets"
        )

    # -- threads -------------------------------------------------------------------------------

    def _free(self, name: str) -> bool:
        owner = self.owners.get(name)
        thread = owner() if owner is not None else None
        return thread is None or not thread.is_alive()

    def _bind(self, thread: threading.Thread, name: str) -> None:
        self.bound[thread] = name
        self.owners[name] = weakref.ref(thread)

    def recorded_thread(self, thread: threading.Thread, request: _Request) -> str | None:
        """The recorded thread this thread replays, binding it on its first request (strict rules).

        A thread whose recorded thread has no request left moves on to a free recorded thread whose
        next request matches (a thread that did, in the replay, the work of two recorded threads).
        """
        name = self.bound.get(thread)
        if name is not None and self.next_of(name) is not None:
            return name
        if name is None and thread.name in self.threads and self._free(thread.name):
            self._bind(thread, thread.name)
            return thread.name
        candidates = [
            (seq, other)
            for other in self.threads
            if other != name and self._free(other) and (seq := self.next_of(other)) is not None
        ]
        if not candidates:
            return name
        if name is not None:  # exhausted: only a recorded thread that fits takes over
            candidates = [
                (seq, other) for seq, other in candidates if self.difference(request, self.ops[seq]) is None
            ]
            if not candidates:
                return name
        candidates.sort()
        matching = [other for seq, other in candidates if self.difference(request, self.ops[seq]) is None]
        chosen = matching[0] if matching else candidates[0][1]
        self._bind(thread, chosen)
        return chosen

    # -- matching ------------------------------------------------------------------------------

    def match(self, request: _Request, thread: threading.Thread) -> Operation:
        with self.lock:
            if self.strict:
                return self._match_strict(request, thread)
            return self._match_lenient(request, thread)

    def _diverged(
        self,
        kind: DivergenceKind,
        request: _Request,
        expected: Operation | None,
        detail: str,
        *,
        thread: str | None,
    ) -> DivergenceError:
        actual = _describe_request(request)
        expected_text = self.describe(expected) if expected is not None else None
        seq = expected.seq if expected is not None else None
        self.divergences.append(Divergence(kind, None, expected_text, actual, detail))
        where = f"seq {seq}" if seq is not None else f"position {self.position}"
        recorded_thread = f", recorded thread {thread}" if thread else ""
        lines = [
            f"the operator diverged from the recording at {where}"
            f" (thread {request.thread}{recorded_thread}, session {self.session.id}):",
            f"  expected: {expected_text or '(nothing: the recording has no such request left)'}",
            f"  actual:   {actual}",
            f"  first difference: {detail}",
        ]
        return DivergenceError("\n".join(lines), seq=seq, expected=expected_text, actual=actual)

    def _gap_before(self, seq: int) -> int | None:
        for gap in self.gaps:
            if gap < seq and gap not in self.passed_gaps:
                return gap
        return None

    def _gap_detail(self, gap: int) -> str:
        message = self.ops_message(gap)
        return f"the recording has a gap at seq {gap} ({message}): what happened there was not recorded"

    def ops_message(self, gap: int) -> str:
        op = self.store.operations(self.session, gap, gap + 1)
        return (op[0].message if op and op[0].message else None) or "operations dropped"

    def _match_strict(self, request: _Request, thread: threading.Thread) -> Operation:
        name = self.recorded_thread(thread, request)
        seq = self.next_of(name) if name is not None else None
        if seq is None:
            raise self._diverged(
                "diverged", request, None,
                f"no recorded request left for thread {request.thread}"
                + (f" (replaying recorded thread {name})" if name else ""),
                thread=name,
            )  # fmt: skip
        op = self.ops[seq]
        gap = self._gap_before(seq)
        if gap is not None:
            raise self._diverged("gap", request, op, self._gap_detail(gap), thread=name)
        difference = self.difference(request, op)
        if difference is not None:
            raise self._diverged("diverged", request, op, difference, thread=name)
        self.use(seq)
        return op

    def _unused(self, key: tuple[Any, ...], seqs: list[int], request: _Request) -> list[int]:
        """The recorded requests of an index entry not used yet that match the request's identity."""
        head = self.index_heads.get(key, 0)
        while head < len(seqs) and seqs[head] in self.used:  # the used prefix is not scanned again
            head += 1
        self.index_heads[key] = head
        return [
            seq
            for seq in seqs[head:]
            if seq not in self.used and _identity_difference(request, self.ops[seq]) is None
        ]

    def _match_lenient(self, request: _Request, thread: threading.Thread) -> Operation:
        candidates: list[int] = []
        if request.name is not None:
            named = (*request.collection, request.name)
            candidates = self._unused(named, self.by_name.get(named, []), request)
        if not candidates:
            collection = request.collection
            candidates = self._unused(collection, self.by_collection.get(collection, []), request)
        name = self.bound.get(thread)
        if name is None and thread.name in self.threads and self._free(thread.name):
            self._bind(thread, thread.name)
            name = thread.name
        expected_seq = self.next_of(name) if name is not None else None
        expected = self.ops[expected_seq] if expected_seq is not None else None
        if not candidates:
            return self._repeat(request, expected, name)
        chosen = next(
            (seq for seq in candidates if self.body_difference(request, self.ops[seq]) is None), None
        )
        body_detail = None
        if chosen is None:
            chosen = candidates[0]
            body_detail = self.body_difference(request, self.ops[chosen])
        op = self.ops[chosen]
        if name is None and self._free(op.thread):
            self._bind(thread, op.thread)
            name = op.thread
        actual = _describe_request(request)
        for gap in list(self.gaps):
            if gap < chosen and gap not in self.passed_gaps:
                self.passed_gaps.add(gap)
                self.divergences.append(Divergence("gap", chosen, None, actual, self._gap_detail(gap)))
        if expected is not None and op.thread == name and expected.seq != chosen:
            self.divergences.append(
                Divergence(
                    "reordered", chosen, self.describe(expected), actual,
                    f"answered with #{chosen}; the recorded order expected #{expected.seq} next",
                )
            )  # fmt: skip
        if body_detail is not None:
            self.divergences.append(Divergence("body", chosen, self.describe(op), actual, body_detail))
        self.use(chosen)
        return op

    def _repeat(self, request: _Request, expected: Operation | None, name: str | None) -> Operation:
        """Lenient: a read with nothing unused left gets the latest response recorded for it again."""
        if request.verb in _READ_VERBS:
            keys = (
                [self.by_name.get((*request.collection, request.name), [])]
                if request.name is not None
                else []
            ) + [self.by_collection.get(request.collection, [])]
            for seqs in keys:
                used = [
                    seq
                    for seq in seqs
                    if seq in self.used and _identity_difference(request, self.ops[seq]) is None
                ]
                if used:
                    op = self.ops[used[-1]]
                    self.divergences.append(
                        Divergence(
                            "repeated", op.seq, self.describe(expected) if expected else None,
                            _describe_request(request),
                            f"no unused recording of this read: answered again with #{op.seq}",
                        )
                    )  # fmt: skip
                    return op
        raise self._diverged(
            "unmatched", request, expected, "nothing in the recording matches this request", thread=name
        )

    # -- responses -----------------------------------------------------------------------------

    def respond(self, method: str, url: str, op: Operation, kw: Mapping[str, Any]) -> BaseHTTPResponse:
        """The recorded answer to a request matched with `op` (an exception for a transport error)."""
        if op.status == 0:
            raise _recorded_error(op.reason, op.message)
        if op.verb == "watch" and 200 <= op.status < 300:
            return self._watch_response(method, url, op, kw)
        headers = {"X-Opreplay-Seq": str(op.seq)}
        body = self._response_body(op, headers)
        failure = self._failure(op)
        if failure is None:
            headers["Content-Length"] = str(len(body))
            return _http_response(method, url, headers, iter([_head(op.status, headers), body]), kw)
        headers["Transfer-Encoding"] = "chunked"

        def pieces() -> Iterator[bytes]:
            yield _head(op.status, headers)
            if body:
                yield _chunk(body)
            raise failure

        return _http_response(method, url, headers, pieces(), kw)

    @staticmethod
    def _failure(op: Operation) -> Exception | None:
        message = op.message or ""
        if message.startswith(_INCOMPLETE_PREFIX):
            return _recorded_error(op.reason, message[len(_INCOMPLETE_PREFIX) :])
        if message == _STOPPED_EARLY:
            return urllib3.exceptions.ProtocolError(f"opreplay: seq {op.seq}: {_STOPPED_EARLY}")
        return None

    def _response_body(self, op: Operation, headers: dict[str, str]) -> bytes:
        """The body as the server sent it; sets the headers that follow from it."""
        if op.response_digest is None:
            if op.message == _QUEUE_FULL:
                raise RecordingIncompleteError(
                    f"{self.store.label}: seq {op.seq}: the recording lost part of this response"
                    " (recorder queue full): it cannot be replayed"
                )
            return b""
        with self.lock:
            data = self._document(op.response_digest, op.seq)
            head = _TYPED_LIST.match(data)
            if head is not None:
                items = self.store.list_item_digests(op.response_digest)
                if items:
                    data = self._typed_list(data, head, items)
        headers["Content-Type"] = "application/json"
        if data.startswith(b'"'):  # the recorder keeps a body that was not JSON (a log) as a JSON string
            text = parse.loads(data)
            if isinstance(text, str):
                headers["Content-Type"] = "text/plain; charset=utf-8"
                return text.encode()
        elif op.status >= 400 and b"retryAfterSeconds" in data:
            document = parse.loads(data)
            details = document.get("details") if isinstance(document, dict) else None
            retry = details.get("retryAfterSeconds") if isinstance(details, dict) else None
            if isinstance(retry, int):
                headers["Retry-After"] = str(retry)
        return data

    def _document(self, digest: bytes, seq: int) -> bytes:
        data = self.store.body_bytes(digest)
        if _TRUNCATED_MARK in data:
            start = data.index(_TRUNCATED_MARK)
            marker = parse.loads(data[start : data.index(b"}", start) + 1])
            size = marker.get("size") if isinstance(marker, dict) else None
            raise RecordingIncompleteError(
                f"{self.store.label}: seq {seq}: the recording holds only the first bytes of this"
                f" response ({size} bytes, over the recorder's max_body_bytes): it cannot be replayed"
            )
        return data

    def _typed_list(self, data: bytes, head: re.Match[bytes], items: list[bytes]) -> bytes:
        """A built-in kind's LIST as the API server wrote it: items without their kind and apiVersion.

        The recorder stores each item as a GET shows it (`{"kind":"Pod","apiVersion":"v1",...}`); in
        the Go-struct layout of a built-in list the items carry no TypeMeta, so it is taken off again.
        """
        prefix = b'{"kind":"' + head[1] + b'","apiVersion":"' + head[2] + b'",'
        bodies = [self.store.body_bytes(item) for item in items]
        joined = b",".join(bodies)
        tail = b'"items":[' + joined + b"]}"
        if not data.endswith(tail):
            return data
        stripped = [b"{" + body[len(prefix) :] if body.startswith(prefix) else body for body in bodies]
        return data[: len(data) - len(tail)] + b'"items":[' + b",".join(stripped) + b"]}"

    def _watch_response(
        self, method: str, url: str, op: Operation, kw: Mapping[str, Any]
    ) -> BaseHTTPResponse:
        headers = {
            "X-Opreplay-Seq": str(op.seq),
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
        }
        events = self.events.get(op.seq, [])
        state = {"next": 0}

        def next_event() -> bytes | None:
            with self.lock:
                while state["next"] < len(events):
                    seq = events[state["next"]]
                    state["next"] += 1
                    if seq in self.used:
                        continue
                    self.use(seq)
                    return self._event_line(self.ops[seq])
                return None

        def pieces() -> Iterator[bytes]:
            yield _head(op.status, headers)
            while (line := next_event()) is not None:
                yield _chunk(line)
            yield b"0\r\n\r\n"

        def closed() -> None:
            with self.lock:
                for seq in events[state["next"] :]:  # read off the socket live, never by the code
                    if seq not in self.used:
                        self.use(seq)
                state["next"] = len(events)

        return _http_response(method, url, headers, pieces(), kw, on_close=closed)

    def _event_line(self, op: Operation) -> bytes:
        body = self._document(op.response_digest, op.seq) if op.response_digest is not None else b"null"
        if op.event is None:
            return body + b"\n"
        return b'{"type":' + orjson.dumps(op.event) + b',"object":' + body + b"}\n"


class _ReplayPoolManager(urllib3.PoolManager):
    """The rest client's pool manager during a replay: answers from the recording, never connects."""

    def __init__(self, replay: _Replay) -> None:
        super().__init__(num_pools=1)
        self._replay = replay

    def urlopen(  # type: ignore[override]  # as urllib3's PoolManager.urlopen
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> BaseHTTPResponse:
        request = _request(method.upper(), url, kw.get("body"), threading.current_thread().name)
        op = self._replay.match(request, threading.current_thread())
        return self._replay.respond(method.upper(), url, op, kw)

    def connection_from_pool_key(
        self, pool_key: PoolKey, request_context: dict[str, Any]
    ) -> urllib3.HTTPConnectionPool:
        raise OpreplayError("opreplay: a replay never connects to a server")


def _discovery_cache(host: str) -> pathlib.Path:
    """The kubernetes dynamic client's discovery cache file for `host` (named as its Discoverer does)."""
    digest = hashlib.md5(host.encode("utf-8"), usedforsecurity=False).hexdigest()
    return pathlib.Path(tempfile.gettempdir()) / f"osrcp-{digest}.json"


class ReplayApiClient(kubernetes.client.ApiClient):
    """A `kubernetes.client.ApiClient` that answers from a recorded session; see the module docstring.

    `store_or_path`: an open `Store` (left open) or a recording's path or URL (opened read-only and
    closed with the client). `session`: an id, a name or `latest`. `strict`: recorded order per
    thread (True) or matching by object (False). `start`: the seq to start at (earlier operations
    count as done). `volatile`: field paths of request bodies that are not compared.
    """

    def __init__(
        self,
        store_or_path: Store | str | os.PathLike[str],
        session: str | SessionInfo = "latest",
        *,
        strict: bool = True,
        start: int = 1,
        volatile: Iterable[str] = (),
    ) -> None:
        if start < 1:
            raise ValueError(f"start must be at least 1, not {start}")
        if isinstance(store_or_path, Store):
            store, self._owned_store = store_or_path, False
        else:
            store, self._owned_store = Store.open(store_or_path), True
        try:
            info = session if isinstance(session, SessionInfo) else store.find_session(session)
            self._replay = _Replay(store, info, strict=strict, start=start, volatile=volatile)
        except BaseException:
            if self._owned_store:
                store.close()
            raise
        self._host = f"https://replay-{info.id}-{secrets.token_hex(4)}.opreplay.invalid"
        _discovery_cache(self._host).unlink(missing_ok=True)
        configuration = kubernetes.client.Configuration(host=self._host)
        configuration.proxy = None
        super().__init__(configuration)
        self.rest_client.pool_manager = _ReplayPoolManager(self._replay)
        self._closed = False

    # -- the recording -------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        return self._replay.store

    @property
    def session(self) -> SessionInfo:
        return self._replay.session

    @property
    def strict(self) -> bool:
        return self._replay.strict

    @property
    def position(self) -> int:
        """The seq of the last operation replayed (`start - 1` before the first)."""
        with self._replay.lock:
            return self._replay.position

    @property
    def remaining(self) -> int:
        """How many recorded operations (requests and watch events) have not been replayed yet."""
        with self._replay.lock:
            return self._replay.remaining

    @property
    def divergences(self) -> list[Divergence]:
        """Departures from the recorded order (lenient mode), and any divergence that was raised."""
        with self._replay.lock:
            return list(self._replay.divergences)

    def unreplayed(self) -> list[Operation]:
        """The recorded operations not replayed yet, in seq order."""
        with self._replay.lock:
            return self._replay.unreplayed()

    def assert_complete(self) -> None:
        """Raise `IncompleteReplayError` unless every recorded operation has been replayed."""
        with self._replay.lock:
            missing = self._replay.unreplayed()
            if not missing:
                return
            shown = [f"  {self._replay.describe(op)}" for op in missing[:10]]
            more = [f"  ... and {len(missing) - 10} more"] if len(missing) > 10 else []
            title = f"{len(missing)} recorded operations of session {self.session.id} were not replayed:"
            message = "\n".join([title, *shown, *more])
            raise IncompleteReplayError(
                message, seq=missing[0].seq, expected=self._replay.describe(missing[0])
            )

    def close(self) -> None:
        super().close()  # type: ignore[no-untyped-call]
        if self._closed:
            return
        self._closed = True
        _discovery_cache(self._host).unlink(missing_ok=True)
        if self._owned_store:
            self._replay.store.close()

    def __repr__(self) -> str:
        mode = "strict" if self.strict else "lenient"
        return (
            f"<ReplayApiClient session={self.session.id} {mode} position={self.position}"
            f" remaining={self.remaining}>"
        )
