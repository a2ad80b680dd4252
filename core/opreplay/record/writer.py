"""The writer side of recording: queued exchanges become numbered operations in the store.

`Assembler` is pure (no threads, no I/O): it turns the caller-side messages of `capture` into
`NewOperation`s, assigning seq 1..N in the order the operations complete (a watch when its stream
opens, each event as its line arrives). It is where the cost of recording lives, so:

- a body is parsed at most once: results are cached by the body's bytes (a GET of an unchanged
  object, the watch event that echoes an update, a list that has not changed all hit the cache);
- a body is not parsed at all when its first bytes say what the operation needs (see
  `parse.peek`), and a request body only when it may hold a Secret;
- only bodies that can hold a Secret (resource `secrets`, or bytes containing `"Secret"`) are
  parsed for redaction.

`Writer` is the thread: it owns the store (opened in the thread, so the connection is its own),
drains the queue at least every `flush_interval`, and appends batches of up to `batch_size`
operations, each batch one transaction.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from opreplay.model import GAP, NewOperation, ReconcileInfo, SessionInfo
from opreplay.record import parse, redact
from opreplay.record.capture import DATA, DONE, FLUSH, GAP_MARKER, OPEN, RECONCILE, Call, Message, Sink
from opreplay.store import Store

TRUNCATED = "opreplay.truncated"
_PREFIX_BYTES = 1024
_CACHE_BYTES = 16 << 20  # parsed-body cache, per recorder
_ROUTE_CACHE_SIZE = 20_000
_SECRET_MARK = b'"Secret"'
_WATCH_EVENT = re.compile(rb'\{\s*"type"\s*:\s*"([A-Z]+)"\s*,\s*"object"\s*:\s*')
_WRITER_THREAD = "opreplay-writer"

log = logging.getLogger("opreplay.record")


@dataclass(slots=True)
class _Body:
    """A response (or event object) as it will be stored, with the fields the row needs."""

    stored: bytes
    items: tuple[bytes, ...] | None
    peek: parse.Peek | None


@dataclass(slots=True)
class _Stream:
    """An open watch: its seq, its target, and the bytes of an event not complete yet."""

    seq: int
    target: parse.Target
    buffer: bytes = b""
    resync: bool = False  # a chunk was lost: skip to the next line
    guessed: bool = False  # the watch's kind was a guess from the resource name


@dataclass(slots=True)
class _Pending:
    """A call whose response is being read, with its (target, verb)."""

    route: tuple[parse.Target, str]
    chunks: list[bytes] = field(default_factory=list)
    lossy: bool = False


class _Cache:
    """Processed bodies keyed by their raw bytes, bounded by the bytes they hold (oldest out first)."""

    def __init__(self, limit: int) -> None:
        self._entries: dict[bytes, _Body] = {}
        self._size = 0
        self._limit = limit

    def get(self, raw: bytes) -> _Body | None:
        return self._entries.get(raw)

    def put(self, raw: bytes, body: _Body) -> None:
        self._entries[raw] = body
        self._size += 2 * len(raw)
        while self._size > self._limit and self._entries:
            oldest = next(iter(self._entries))
            del self._entries[oldest]
            self._size -= 2 * len(oldest)


class Assembler:
    """Turns one recorder's messages into operations; `take()` hands over what is ready."""

    def __init__(self, *, token: object, redact: bool, max_body_bytes: int) -> None:
        self.token = token
        self.redact = redact
        self.max_body_bytes = max_body_bytes
        self.next_seq = 1
        self._ops: list[NewOperation] = []
        self._dropped = 0
        self._streams: dict[Call, _Stream] = {}
        self._pending: dict[Call, _Pending] = {}
        self._kinds: dict[tuple[str, str], str] = {}
        self._routes: dict[tuple[str, str], tuple[parse.Target, str]] = {}
        self._plain = _Cache(_CACHE_BYTES)
        self._secret = _Cache(_CACHE_BYTES // 4)
        self._items = parse.SeenItems(_CACHE_BYTES // 2)

    # -- input ---------------------------------------------------------------------------------

    def feed(self, message: Message) -> None:
        kind = message[0]
        if kind == DATA:
            _, call, chunk, ns = message
            stream = self._streams.get(call)
            if stream is not None:
                self._stream_data(stream, call, chunk, ns)
            else:
                pending = self._pending.get(call)
                if pending is not None:
                    pending.chunks.append(chunk)
        elif kind == DONE:
            _, call, data, ns, error = message
            self._done(call, data, ns, error)
        elif kind == OPEN:
            self._open(message[1], message[2])

    def gap(self, count: int, calls: set[Call]) -> None:
        """Operations were dropped here; streams in `calls` lost a chunk."""
        for call in calls:
            stream = self._streams.get(call)
            if stream is not None:
                stream.buffer, stream.resync = b"", True
            pending = self._pending.get(call)
            if pending is not None:
                pending.lossy = True
        self._dropped += count
        self._emit(
            NewOperation(
                ts=time.time(),
                duration_us=0,
                thread=_WRITER_THREAD,
                verb=GAP,
                api_version="",
                resource="",
                kind="",
                namespace="",
                name="",
                message=f"{count} operations dropped: recorder queue full",
            )
        )

    def close(self) -> None:
        """Recording stops: calls whose response was not read to the end are recorded as they are."""
        now = time.perf_counter_ns()
        for call, pending in list(self._pending.items()):
            del self._pending[call]
            self._operation(
                call,
                pending.route,
                b"".join(pending.chunks) or None,
                now,
                None,
                incomplete="recording stopped before the response was read to its end",
            )
        self._streams.clear()

    def take(self) -> tuple[int, list[NewOperation], int]:
        """(first seq, operations, operations dropped among them), and start a new batch."""
        ops, dropped = self._ops, self._dropped
        self._ops, self._dropped = [], 0
        return self.next_seq - len(ops), ops, dropped

    @property
    def ready(self) -> int:
        return len(self._ops)

    # -- calls ---------------------------------------------------------------------------------

    def _open(self, call: Call, ns: int) -> None:
        route = self._route(call)
        target, verb = route
        if verb == "watch" and 200 <= call.status < 300:
            duration_us = (ns - call.start_ns) // 1000
            seq = self._emit(self._new(call, target, verb, duration_us=duration_us, kind=self._kind(target)))
            self._streams[call] = _Stream(seq, target, guessed=not self._knows_kind(target))
        else:
            self._pending[call] = _Pending(route)

    def _done(self, call: Call, data: bytes | None, ns: int, error: BaseException | None) -> None:
        stream = self._streams.pop(call, None)
        if stream is not None:
            if data:
                self._stream_data(stream, call, data, ns)
            return
        pending = self._pending.pop(call, None)
        if pending is None:
            self._operation(call, self._route(call), data, ns, error)
            return
        if data:
            pending.chunks.append(data)
        body = None if pending.lossy or not pending.chunks else b"".join(pending.chunks)
        incomplete = "recorder queue full: part of the response was dropped" if pending.lossy else None
        self._operation(call, pending.route, body, ns, error, incomplete=incomplete)

    def _route(self, call: Call) -> tuple[parse.Target, str]:
        """(target, verb) of a call; cached by URL: an operator asks for the same URLs again and again."""
        url = parse.full_url(call.method, call.url, call.fields)
        key = (call.method, url)
        route = self._routes.get(key)
        if route is None:
            path, query = parse.split_url(url)
            target = parse.parse_path(path)
            route = (target, parse.verb_of(call.method, target, parse.is_watch(query)))
            if len(self._routes) >= _ROUTE_CACHE_SIZE:
                self._routes.clear()
            self._routes[key] = route
        return route

    def _operation(
        self,
        call: Call,
        route: tuple[parse.Target, str],
        data: bytes | None,
        end_ns: int,
        error: BaseException | None,
        *,
        incomplete: str | None = None,
    ) -> None:
        target, verb = route
        secret = self.redact and target.resource == "secrets"
        status = call.status
        reason: str | None = None
        message: str | None = incomplete
        if error is not None:
            reason = type(error).__name__
            detail = str(error) or reason
            message = detail if status == 0 else f"response body incomplete: {detail}"
        namespace, name, kind = target.namespace, target.name, self._kind(target)
        request = self._request(call.body, secret)
        response: bytes | None = None
        items: tuple[bytes, ...] | None = None
        version: str | None = None
        if verb == "watch" and 200 <= status < 300:
            # The whole stream was read at once (no OPEN: a preloaded watch): events follow their watch.
            duration_us = (end_ns - call.start_ns) // 1000
            seq = self._emit(
                self._new(
                    call,
                    target,
                    verb,
                    duration_us=duration_us,
                    kind=kind,
                    request=request,
                    reason=reason,
                    message=message,
                )
            )
            stream = _Stream(seq, target)
            if data:
                self._stream_data(stream, call, data + b"\n", end_ns)
            return
        if data and status >= 400:
            document = parse.loads(data)
            status_reason, status_message, detail_name = parse.status_fields(document)
            reason = status_reason or call.reason or reason
            message = status_message or message
            response = self._body(data, secret=secret, listing=False).stored
            name = name or detail_name
        elif data:
            body = self._body(data, secret=secret, listing=verb in ("list", "deletecollection"))
            response, items, peek = body.stored, body.items, body.peek
            if peek is not None:
                version = peek.resource_version
                kind = self._learn(target, peek.kind, data) or kind
                if verb == "create":
                    name = peek.name or name
                    namespace = namespace or peek.namespace
        elif status >= 400:
            reason = call.reason or reason
        if verb == "create" and not name and request is not None:
            name = self._requested_name(request)
        self._emit(
            self._new(
                call,
                target,
                verb,
                duration_us=(end_ns - call.start_ns) // 1000,
                kind=kind,
                namespace=namespace,
                name=name,
                reason=reason,
                message=message,
                version=version,
                request=request,
                response=response,
                items=items,
            )
        )

    def _new(
        self,
        call: Call,
        target: parse.Target,
        verb: str,
        *,
        duration_us: int,
        kind: str,
        namespace: str | None = None,
        name: str | None = None,
        reason: str | None = None,
        message: str | None = None,
        version: str | None = None,
        request: bytes | None = None,
        response: bytes | None = None,
        items: tuple[bytes, ...] | None = None,
    ) -> NewOperation:
        reconcile = call.reconcile
        return NewOperation(
            ts=call.ts,
            duration_us=duration_us,
            thread=call.thread,
            verb=verb,
            api_version=target.api_version,
            resource=target.resource,
            kind=kind,
            namespace=target.namespace if namespace is None else namespace,
            name=target.name if name is None else name,
            subresource=target.subresource,
            status=call.status,
            reason=reason,
            message=message,
            resource_version=version,
            reconcile=reconcile[1] if reconcile is not None and reconcile[0] is self.token else None,
            request=request,
            response=response,
            response_items=items,
        )

    def _emit(self, op: NewOperation) -> int:
        self._ops.append(op)
        seq = self.next_seq
        self.next_seq = seq + 1
        return seq

    # -- watch streams -------------------------------------------------------------------------

    def _stream_data(self, stream: _Stream, call: Call, chunk: bytes, ns: int) -> None:
        data = stream.buffer + chunk if stream.buffer else chunk
        if stream.resync:
            newline = data.find(b"\n")
            if newline < 0:
                stream.buffer = b""
                return
            data, stream.resync = data[newline + 1 :], False
        # find() is memchr; split() compares byte by byte, several times slower on event-sized lines
        start = 0
        newline = data.find(b"\n")
        while newline >= 0:
            line = data[start:newline].strip()
            if line:
                self._event(stream, call, line, ns)
            start = newline + 1
            newline = data.find(b"\n", start)
        stream.buffer = data[start:] if start else data

    def _event(self, stream: _Stream, call: Call, line: bytes, ns: int) -> None:
        target = stream.target
        secret = self.redact and target.resource == "secrets"
        event: str | None
        match = _WATCH_EVENT.match(line)
        if match is not None and line.endswith(b"}"):
            event, raw = match[1].decode(), line[match.end() : -1].rstrip()
        else:
            document = parse.loads(line)
            if isinstance(document, dict) and isinstance(document.get("type"), str):
                event, raw = document["type"], orjson.dumps(document.get("object"))
            else:
                event, raw = None, line
        status, reason, message = call.status, None, None
        namespace, name, version, kind = target.namespace, target.name, None, self._kind(target)
        if event == "ERROR":
            document = parse.loads(raw)
            reason, message, _ = parse.status_fields(document)
            code = document.get("code") if isinstance(document, dict) else None
            status = code if isinstance(code, int) else 0
            response = self._body(raw, secret=secret, listing=False).stored
        elif event is None:
            message = "unrecognised watch event"
            response = self._body(raw, secret=secret, listing=False).stored
        else:
            body = self._body(raw, secret=secret, listing=False)
            response = body.stored
            if body.peek is not None:
                namespace = body.peek.namespace or namespace
                name = body.peek.name or name
                version = body.peek.resource_version
                kind = self._learn(target, body.peek.kind, raw) or kind
                if stream.guessed:
                    self._correct_kind(stream, kind)
        reconcile = call.reconcile
        self._emit(
            NewOperation(
                ts=call.ts + (ns - call.start_ns) / 1e9,
                duration_us=0,
                thread=call.thread,
                verb="watch-event",
                api_version=target.api_version,
                resource=target.resource,
                kind=kind,
                namespace=namespace,
                name=name,
                subresource=target.subresource,
                status=status,
                reason=reason,
                message=message,
                resource_version=version,
                reconcile=reconcile[1] if reconcile is not None and reconcile[0] is self.token else None,
                watch=stream.seq,
                event=event,
                response=response,
            )
        )

    # -- bodies --------------------------------------------------------------------------------

    def _correct_kind(self, stream: _Stream, kind: str) -> None:
        """The first event tells the kind a watch had to guess: fix the watch if it is not written yet."""
        stream.guessed = False
        index = stream.seq - (self.next_seq - len(self._ops))
        if 0 <= index < len(self._ops):
            self._ops[index] = replace(self._ops[index], kind=kind)

    def _knows_kind(self, target: parse.Target) -> bool:
        return (target.api_version, target.resource) in self._kinds or target.resource in parse.BUILTIN_KINDS

    def _kind(self, target: parse.Target) -> str:
        known = self._kinds.get((target.api_version, target.resource))
        return known if known is not None else parse.guess_kind(target.resource)

    def _learn(self, target: parse.Target, kind: str, raw: bytes) -> str | None:
        """Remember the kind a body declared for its resource; the kind to record, or None.

        Discovery (an APIResourceList) names the kind of every resource of a group version: learnt
        from there, a watch or an error on a custom resource gets its kind right before any object
        of it was seen.
        """
        if not kind or kind == "Status" or target.subresource is not None:
            return None
        if not target.resource:
            if kind == "APIResourceList":
                self._learn_discovery(raw)
            return kind
        kind = kind.removesuffix("List")
        self._kinds[(target.api_version, target.resource)] = kind
        return kind

    def _learn_discovery(self, raw: bytes) -> None:
        document = parse.loads(raw)
        group_version = document.get("groupVersion") if isinstance(document, dict) else None
        resources = document.get("resources") if isinstance(document, dict) else None
        if not isinstance(group_version, str) or not isinstance(resources, list):
            return
        for resource in resources:
            if isinstance(resource, dict) and isinstance(resource.get("kind"), str):
                name = resource.get("name")
                if isinstance(name, str) and "/" not in name:
                    self._kinds.setdefault((group_version, name), resource["kind"])

    def _request(self, body: Any, secret: bool) -> bytes | None:
        if isinstance(body, str):
            data = body.encode()
        elif isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        else:
            return None
        if not data:
            return None
        if secret or (self.redact and _SECRET_MARK in data):
            return self._body(data, secret=secret, listing=False).stored
        if data[:1] not in (b"{", b"[") and parse.loads(data) is parse.INVALID:
            data = orjson.dumps(data.decode("utf-8", "replace"))
        return self._limit(data)

    def _requested_name(self, request: bytes) -> str:
        return parse.peek_parsed(parse.loads(request)).name

    def _body(self, raw: bytes, *, secret: bool, listing: bool) -> _Body:
        cache = self._secret if secret else self._plain
        body = cache.get(raw)
        if body is None or (listing and body.items is None):
            body = self._process(raw, secret=secret, listing=listing)
            cache.put(raw, body)
        return body

    def _process(self, raw: bytes, *, secret: bool, listing: bool) -> _Body:
        if listing and not secret:
            split = parse.split_list(raw, self._items)
            if split is not None and not self._may_hold_secret(raw, split.kind):
                fields = parse.Peek(split.kind, "", "", split.resource_version)
                return _Body(self._limit(split.envelope), tuple(map(self._limit, split.items)), fields)
        elif not secret:
            peek = parse.peek(raw)
            if peek is not None and not self._may_hold_secret(raw, peek.kind):
                # Without the encoder's trailing newline: the same bytes as in a watch event or a list.
                return _Body(self._limit(raw.rstrip()), None, peek)
        document = parse.loads(raw)
        if document is parse.INVALID:
            return _Body(self._limit(orjson.dumps(raw.decode("utf-8", "replace"))), None, None)
        if secret:
            changed = _redact_secret_document(document)
        else:
            changed = self.redact and _SECRET_MARK in raw and redact.redact_nested(document)
        if listing and isinstance(document, dict) and isinstance(document.get("items"), list):
            envelope = {key: value for key, value in document.items() if key != "items"}
            items = tuple(self._limit(orjson.dumps(item)) for item in _as_objects(document))
            return _Body(self._limit(orjson.dumps(envelope)), items, parse.peek_parsed(envelope))
        stored = orjson.dumps(document) if changed else raw
        return _Body(self._limit(stored), None, parse.peek_parsed(document))

    def _may_hold_secret(self, raw: bytes, kind: str) -> bool:
        """Whether a server-written object (or list) of `kind` needs parsing for redaction.

        A built-in kind other than Secret cannot embed one; a custom resource can (a template).
        """
        if not self.redact:
            return False
        return kind == "Secret" or (not raw.startswith(b'{"kind":') and _SECRET_MARK in raw)

    def _limit(self, data: bytes) -> bytes:
        """Bodies over max_body_bytes are stored as a visible marker with their size and first KiB."""
        if len(data) <= self.max_body_bytes:
            return data
        prefix = data[:_PREFIX_BYTES].decode("utf-8", "ignore")
        return orjson.dumps({TRUNCATED: True, "size": len(data), "prefix": prefix})


def _as_objects(listing: dict[str, Any]) -> list[Any]:
    """A list's items with the kind and apiVersion a GET of each would show (typed lists omit them)."""
    kind, api_version = listing.get("kind"), listing.get("apiVersion")
    if not (isinstance(kind, str) and kind.endswith("List") and isinstance(api_version, str)):
        return list(listing["items"])
    head = {"kind": kind[: -len("List")], "apiVersion": api_version}
    return [
        {**head, **item} if isinstance(item, dict) and "kind" not in item else item
        for item in listing["items"]
    ]


def _redact_secret_document(document: Any) -> bool:
    """Redact a body sent to or from the `secrets` resource: an object, a list, a patch."""
    if isinstance(document, list):
        return redact.redact_json_patch(document)
    if not isinstance(document, dict):
        return False
    items = document.get("items")
    if isinstance(items, list):
        changed = False
        for item in items:
            changed = redact.redact_secret(item) or changed
        return changed
    return redact.redact_secret(document)


class Writer(threading.Thread):
    """The recorder's writer thread: opens the store, creates the session, drains, appends."""

    def __init__(
        self,
        sink: Sink,
        assembler: Assembler,
        open_store: Callable[[], tuple[Store, SessionInfo, bool]],
        *,
        batch_size: int,
        flush_interval: float,
    ) -> None:
        super().__init__(name=_WRITER_THREAD, daemon=True)
        self.sink = sink
        self.assembler = assembler
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.session: SessionInfo | None = None
        self.error: BaseException | None = None
        self.started_up = threading.Event()
        self._open_store = open_store
        self._store: Store | None = None
        self._owns_store = False
        self._stopping = False
        self._reconciles: list[ReconcileInfo] = []

    def run(self) -> None:
        try:
            self._store, self.session, self._owns_store = self._open_store()
        except BaseException as error:
            self.error = error
            self.started_up.set()
            return
        self.started_up.set()
        wake, sink = self.sink.wake, self.sink
        try:
            while not self._stopping:
                wake.wait(self.flush_interval)
                wake.clear()
                self.drain()
            self.drain()
            sink.close()
            self.drain()
            self.assembler.close()
            self._commit()
        except BaseException as error:  # the store failed: stop recording rather than grow the queue
            log.error("opreplay: recording stopped: %s", error)
            self.error = error
            sink.close()
            sink.queue.clear()
        try:
            self._finish()
        except BaseException as error:
            log.error("opreplay: could not close the recording session: %s", error)
            self.error = self.error or error

    def stop(self) -> None:
        self._stopping = True
        self.sink.wake.set()

    def drain(self) -> None:
        """Process everything queued so far, committing every batch_size operations."""
        queue, feed, assembler, sink = self.sink.queue, self.assembler.feed, self.assembler, self.sink
        while queue:
            message = queue.popleft()
            kind = message[0]
            if kind == GAP_MARKER:
                assembler.gap(*sink.close_gap(message[1]))
            elif kind == FLUSH:
                self._commit()
                message[1].set()
            elif kind == RECONCILE:
                self._reconciles.append(ReconcileInfo(*message[1:]))
            else:
                feed(message)
            if assembler.ready >= self.batch_size:
                self._commit()
        self._commit()

    def _commit(self) -> None:
        first, ops, dropped = self.assembler.take()
        if ops or self._reconciles:
            assert self._store is not None and self.session is not None
            self._store.append(self.session, first, ops, dropped=dropped, reconciles=self._reconciles)
            self._reconciles = []
        self.sink.made_room()

    def _finish(self) -> None:
        store, session = self._store, self.session
        assert store is not None and session is not None
        try:
            store.end_session(session, time.time())
        finally:
            if self._owns_store:
                store.close()
