"""The operator's side of recording: catch each HTTP exchange, queue references, return.

Where to intercept. The `kubernetes` client has two layouts: the swagger one (up to 2024-era
releases, e.g. 30.x), whose `RESTClientObject.request(method, url, query_params=...,
_preload_content=...)` reads the body itself and raises `ApiException` on errors, and the
openapi-generator one (e.g. 37.x), whose `request(method, url, headers, body, post_params,
_request_timeout)` always streams and leaves reading to `RESTResponse.read()`. Their signatures,
query handling and error paths differ, but both send every request with
`self.pool_manager.request(method, url, body=<JSON text>, fields=..., preload_content=...)` and get
a urllib3 `HTTPResponse` back; typed APIs, `CustomObjectsApi`, the dynamic client and
`watch.Watch` all end there. So that call is the interception point:

- `RESTClientObject.request` is wrapped at class level, only to find pool managers: the first time
  a rest client makes a request, an instance attribute `request` is set on its `pool_manager`
  (with `api_client=`, only that client's pool manager is hooked and the class is left alone).
- The hook takes two clocks and the thread name, calls the real `request`, and queues a reference
  to what it got. It records transport errors (status 0) and re-raises them unchanged.
- The response is the very object urllib3 returned. Its body is teed, not read ahead: `read`,
  `read1`, `read_chunked` and `close` are shadowed by instance attributes that hand each chunk the
  caller reads to the queue as it is read, so a watch stream or a followed log flows exactly as
  before and nothing changes for the caller: same object, same return values, same exceptions.
  When the body is complete (or the response closed) the attributes are removed again.

Everything else (URL parsing, JSON, redaction, seq numbers, SQLite) happens in the writer thread.

The queue is a `collections.deque` (an append is atomic and takes ~50 ns) bounded by the recorder's
`queue_size`. When it is full, `overflow="drop"` counts the loss and queues one gap marker at the
point of loss; `overflow="block"` makes the caller wait for the writer.
"""

from __future__ import annotations

import collections
import contextvars
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

OPEN, DATA, DONE, GAP_MARKER, FLUSH, RECONCILE = range(6)
"""Message kinds: (OPEN, call, ns), (DATA, call, chunk, ns), (DONE, call, chunk|None, ns, error|None),
(GAP_MARKER, Gap), (FLUSH, threading.Event), (RECONCILE, id, kind, namespace, name, wall time)."""

Message = tuple[Any, ...]

current_reconcile: contextvars.ContextVar[tuple[object, int] | None] = contextvars.ContextVar(
    "opreplay_reconcile", default=None
)
"""(recorder token, reconcile id) of the reconcile the current context is in."""

_perf_ns = time.perf_counter_ns
_wall = time.time
_current_thread = threading.current_thread


class Call:
    """One HTTP request as the operator's thread saw it: references and timestamps, nothing parsed."""

    __slots__ = (
        "body",
        "done",
        "fields",
        "method",
        "reason",
        "reconcile",
        "start_ns",
        "status",
        "thread",
        "ts",
        "url",
    )

    def __init__(
        self,
        method: str,
        url: str,
        fields: Any,
        body: Any,
        ts: float,
        start_ns: int,
        thread: str,
        reconcile: tuple[object, int] | None,
    ) -> None:
        self.method = method
        self.url = url
        self.fields = fields
        self.body = body
        self.ts = ts
        self.start_ns = start_ns
        self.thread = thread
        self.reconcile = reconcile
        self.status = 0
        self.reason = ""
        self.done = False


class Gap:
    """Where operations were lost to a full queue: how many, and which streams lost a chunk."""

    __slots__ = ("calls", "count", "open")

    def __init__(self) -> None:
        self.count = 0
        self.calls: set[Call] = set()
        self.open = True


class Sink:
    """A recorder's bounded queue, as the operator's threads see it."""

    def __init__(self, limit: int, *, block: bool, wake_at: int) -> None:
        self.queue: collections.deque[Message] = collections.deque()
        self.limit = limit
        self.block = block
        self.wake_at = wake_at
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.room = threading.Condition(self.lock)
        self.gap: Gap | None = None
        self.dropped = 0
        self.closed = False

    def offer(self, message: Message) -> bool:
        """Queue a message that may be refused (a new call, a stream chunk); False when it was not."""
        queue = self.queue
        if len(queue) < self.limit:
            queue.append(message)
            if len(queue) == self.wake_at:
                self.wake.set()
            return True
        return self._full(message)

    def put(self, message: Message) -> None:
        """Queue a message that completes an accepted call: never refused, so never a dangling call."""
        if not self.closed:
            self.queue.append(message)

    def _full(self, message: Message) -> bool:
        if self.closed:
            return False
        self.wake.set()
        if self.block:
            with self.room:
                while len(self.queue) >= self.limit and not self.closed:
                    self.room.wait(0.05)
                    self.wake.set()
                if self.closed:
                    return False
                self.queue.append(message)
            return True
        with self.lock:
            gap = self.gap
            if gap is None or not gap.open:
                gap = self.gap = Gap()
                self.queue.append((GAP_MARKER, gap))
            gap.count += 1
            self.dropped += 1
            if message[0] == DATA:
                gap.calls.add(message[1])
        return False

    def close_gap(self, gap: Gap) -> tuple[int, set[Call]]:
        """Called by the writer when it reaches a gap: later losses start a new one."""
        with self.lock:
            gap.open = False
            return gap.count, gap.calls

    def close(self) -> None:
        """Refuse everything from now on (a stopped recorder, a forked child)."""
        self.closed = True
        self.limit = 0

    def made_room(self) -> None:
        if self.block:
            with self.room:
                self.room.notify_all()


class _Tee:
    """Shadows a response's read methods to copy what the caller reads into the sinks."""

    __slots__ = ("call", "chunked", "close_", "read1_", "read_", "reading", "response", "sinks")

    def __init__(self, call: Call, sinks: tuple[Sink, ...], response: Any, methods: tuple[str, ...]) -> None:
        self.call = call
        self.sinks = sinks
        self.response = response
        self.reading = False
        self.read_ = response.read
        self.read1_ = response.read1 if "read1" in methods else None
        self.chunked = response.read_chunked if "read_chunked" in methods else None
        self.close_ = response.close
        attributes = response.__dict__
        attributes["read"] = self.read
        attributes["close"] = self.close
        if self.read1_ is not None:
            attributes["read1"] = self.read1
        if self.chunked is not None:
            attributes["read_chunked"] = self.read_chunked

    def read(self, amt: Any = None, *args: Any, **kwargs: Any) -> Any:
        self.reading = True
        try:
            data = self.read_(amt, *args, **kwargs)
        except BaseException as error:
            self.reading = False
            self.finish(None, error)
            raise
        self.reading = False
        if amt is None or not data:
            self.finish(data, None)
        else:
            self.emit(data)
        return data

    def read1(self, amt: Any = None, *args: Any, **kwargs: Any) -> Any:
        assert self.read1_ is not None
        self.reading = True
        try:
            data = self.read1_(amt, *args, **kwargs)
        except BaseException as error:
            self.reading = False
            self.finish(None, error)
            raise
        self.reading = False
        if data:
            self.emit(data)
        else:
            self.finish(None, None)
        return data

    def read_chunked(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        assert self.chunked is not None
        chunks = self.chunked(*args, **kwargs)
        while True:
            self.reading = True
            try:
                chunk = next(chunks)
            except StopIteration:
                self.reading = False
                self.finish(None, None)
                return
            except BaseException as error:
                self.reading = False
                self.finish(None, error)
                raise
            self.reading = False
            self.emit(chunk)
            yield chunk

    def close(self) -> None:
        if not self.reading:
            self.finish(None, None)
        self.close_()

    def emit(self, data: Any) -> None:
        message = (DATA, self.call, data, _perf_ns())
        for sink in self.sinks:
            sink.offer(message)

    def finish(self, data: Any, error: BaseException | None) -> None:
        call = self.call
        if call.done:
            return
        call.done = True
        message = (DONE, call, data or None, _perf_ns(), error)
        for sink in self.sinks:
            sink.put(message)
        attributes = self.response.__dict__
        for name in ("read", "read1", "read_chunked", "close"):
            attributes.pop(name, None)


_method_names: dict[type, tuple[str, ...]] = {}


def _read_methods(response_type: type) -> tuple[str, ...]:
    names = _method_names.get(response_type)
    if names is None:
        names = _method_names[response_type] = tuple(
            name for name in ("read1", "read_chunked") if callable(getattr(response_type, name, None))
        )
    return names


class PoolHook:
    """Replaces `request` on one urllib3 pool manager; records into the sinks that apply to it."""

    __slots__ = ("__weakref__", "original", "own", "pool", "sinks")

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.original: Callable[..., Any] = pool.request
        self.own: tuple[Sink, ...] = ()
        self.sinks: tuple[Sink, ...] = ()

    def __call__(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        sinks = self.sinks
        if not sinks:
            return self.original(method, url, *args, **kwargs)
        ts = _wall()
        start = _perf_ns()
        # Both client layouts pass body and fields by keyword (positions differ in urllib3 1 and 2).
        call = Call(
            method,
            url,
            kwargs.get("fields"),
            kwargs.get("body"),
            ts,
            start,
            _current_thread().name,
            current_reconcile.get(),
        )
        try:
            response = self.original(method, url, *args, **kwargs)
        except BaseException as error:
            call.done = True
            message: Message = (DONE, call, None, _perf_ns(), error)
            for sink in sinks:
                sink.offer(message)
            raise
        call.status = response.status
        call.reason = response.reason
        if kwargs.get("preload_content", True):
            call.done = True
            message = (DONE, call, response.data, _perf_ns(), None)
            for sink in sinks:
                sink.offer(message)
            return response
        message = (OPEN, call, _perf_ns())
        accepted: tuple[Sink, ...]
        if len(sinks) == 1:
            accepted = sinks if sinks[0].offer(message) else ()
        else:
            accepted = tuple(sink for sink in sinks if sink.offer(message))
        if accepted:
            _Tee(call, accepted, response, _read_methods(type(response)))
        return response


class Registry:
    """Which sinks record which pool managers, and the class-level wrapper that finds pool managers.

    One per process (`REGISTRY`); every change happens under its lock, the hot path reads tuples.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._global: tuple[Sink, ...] = ()
        self._hooks: weakref.WeakSet[PoolHook] = weakref.WeakSet()
        self._patched: tuple[type, Callable[..., Any]] | None = None

    def add(self, sink: Sink, pool: Any | None) -> None:
        """Record every kubernetes client (pool None) or the one that owns `pool`."""
        with self._lock:
            if pool is None:
                self._global += (sink,)
                self._patch_class()
            else:
                hook = self._hook(pool)
                hook.own += (sink,)
            self._refresh()

    def remove(self, sink: Sink) -> None:
        with self._lock:
            self._global = tuple(other for other in self._global if other is not sink)
            for hook in list(self._hooks):
                hook.own = tuple(other for other in hook.own if other is not sink)
            self._refresh()
            if not self._global:
                self._unpatch_class()
            for hook in list(self._hooks):
                if not hook.sinks:
                    self._unhook(hook)

    def forget_all(self) -> None:
        """Stop recording everywhere at once, without draining (the writer threads are gone: a fork)."""
        with self._lock:
            for sink in self._global:
                sink.close()
            for hook in list(self._hooks):
                for sink in hook.own:
                    sink.close()
                hook.own = ()
            self._global = ()
            self._refresh()
            self._unpatch_class()
            for hook in list(self._hooks):
                self._unhook(hook)

    def _hook(self, pool: Any) -> PoolHook:
        installed = pool.__dict__.get("request")
        if isinstance(installed, PoolHook):
            return installed
        hook = PoolHook(pool)
        hook.sinks = self._global + hook.own
        pool.__dict__["request"] = hook
        self._hooks.add(hook)
        return hook

    def _unhook(self, hook: PoolHook) -> None:
        if hook.pool.__dict__.get("request") is hook:
            del hook.pool.__dict__["request"]
        self._hooks.discard(hook)

    def _refresh(self) -> None:
        for hook in self._hooks:
            hook.sinks = self._global + hook.own

    def _patch_class(self) -> None:
        if self._patched is not None:
            return
        from kubernetes.client import rest

        cls = rest.RESTClientObject
        original = cls.__dict__["request"]
        registry = self

        def request(rest_client: Any, *args: Any, **kwargs: Any) -> Any:
            pool = rest_client.pool_manager
            if registry._global and not isinstance(pool.__dict__.get("request"), PoolHook):
                with registry._lock:
                    if registry._global:
                        registry._hook(pool)
            return original(rest_client, *args, **kwargs)

        request.__wrapped__ = original  # type: ignore[attr-defined]
        setattr(cls, "request", request)  # noqa: B010  (mypy: a method cannot be assigned)
        self._patched = (cls, original)

    def _unpatch_class(self) -> None:
        if self._patched is None:
            return
        cls, original = self._patched
        if getattr(cls.__dict__.get("request"), "__wrapped__", None) is original:
            setattr(cls, "request", original)  # noqa: B010
        self._patched = None


REGISTRY = Registry()
