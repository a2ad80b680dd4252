"""The generic DAP request dispatcher: handler registry, error kinds, threads, cancellation.

Handlers are methods named after the command, `<command>_request(self, request)` (as in debugpy):
`next_request`, `configurationDone_request`. Subclasses of `Dispatcher` are scanned once, at class
creation, into `handlers` (command -> `HandlerSpec`); mixins contribute handlers the same way. A
handler returns the response body (or None) and signals failure by raising:

- `InvalidRequest`: a protocol error, the request is malformed ("invalid arguments for 'next':
  threadId must be an integer"). Argument types are checked against the official schema before the
  handler runs, so handlers raise it only for what the schema cannot express.
- `CantHandle` (or any `opreplay.OpreplayError`): a well-formed request that cannot be served now
  ("no recording is open"). The message is shown to the user as it is.
- `Cancelled`: the request's cancellation token fired (`request.token.check()` raises it).

Anything else a handler raises is a bug: the client gets a short "internal error" response, the
traceback goes to the log file (never to stderr), and the adapter carries on. The error response's
`body.error.id` tells the kinds apart (`ErrorKind`).

Threads. Scans to the next breakpoint can take seconds, and meanwhile the client must still be
able to `cancel`, `pause` or `disconnect`; yet a step is five quick round trips (`next`, then
`threads`, `stackTrace`, `scopes`, `variables`), and handing each request from a reader thread to
a worker costs a thread wake-up, which on a virtual machine is a good part of the step. So one
worker (the thread that calls `serve`) executes every request, one at a time, in arrival order,
which keeps handler state single-threaded and responses ordered, and it reads the input itself
while it is idle. Handlers marked `quick` (bounded work: a step, a stack, a variables page) run
right after being read, and their response and the events their `then` actions send go out in one
write (`MessageWriter.batched`): a client waiting for a step's `stopped` wakes once. Before
anything else runs, the worker starts a watcher thread that takes over the input for as long as
the request runs: it queues what arrives and answers the `immediate` handlers (`cancel`,
`pause`) at once, which must only touch thread-safe state (tokens). Only one thread reads at a time:
the watcher hands the input back once it has read a message while the worker is idle. Every request
gets a `CancellationToken` on arrival; `cancel` fires it by request id or by the id of a progress
the request reported, and a queued request whose token fired is answered `cancelled` without
running. Handlers marked `scan` (continue, reverseContinue: anything that may run long) are stopped
by `pause` and cancelled, running or queued, when a request marked `preempts` (`disconnect`,
`terminate`) arrives or the input ends: a scan never delays the end of a session, while quick
requests already queued are still answered normally. A scan may also answer first and run in a
`then` action (as `continue` must, so that the client shows the thread running and offers pause):
its token stays live, and `pause`, preempting requests and a `cancel` by the id of its progress
still reach it.

Garbage. Python's cyclic collector runs when allocations cross a threshold, wherever that happens
to be: in the middle of a step, where a full collection of the adapter's heap (decoded objects in
the replay caches) took 6-20 ms, four times the whole step. Steps make no garbage cycles (2,000 F10s
with the collector off left 128 unreachable objects, all from compiling the first validators), so
while a connection is served the automatic threshold is raised far above what a burst of requests
allocates (`collection_between_requests`), and the thread that reads the input collects when the
client has been quiet for `IDLE_AFTER_SECONDS`, the moment its user is reading the screen.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from opreplay.errors import OpreplayError
from opreplay_adapter.dap.protocol import (
    ConnectionClosed,
    MessageLog,
    MessageReader,
    MessageWriter,
    ProtocolError,
    excerpt,
)
from opreplay_adapter.dap.schema import MISSING, ArgumentsChecker, ArgumentsError

_SUFFIX = "_request"
_OPTIONS = "__dap_options__"
_SERVING_COLLECTION_THRESHOLD = 200_000
"""New container objects before an automatic collection while serving (Python's default is 700);
a thousand steps allocate about 30,000 that outlive them."""
_IDLE_COLLECTION_MIN = 2_000
"""New container objects it takes to make an idle moment worth a collection."""


class ErrorKind(IntEnum):
    """`body.error.id` of error responses: what kind of failure it was."""

    INVALID = 1001
    """Protocol error: the request is malformed, unknown, or its arguments do not validate."""
    CANT_HANDLE = 1002
    """A valid request the adapter cannot serve in its current state."""
    INTERNAL = 1003
    """A bug in the adapter; the traceback is in the log file."""
    CANCELLED = 1004
    """The request was cancelled (`message` is `cancelled`, as the protocol defines)."""


class RequestError(Exception):
    """A request failed in a way the client is told about; `str(error)` is the one-line message."""

    kind: ClassVar[ErrorKind]
    show_user: ClassVar[bool]


class InvalidRequest(RequestError):
    kind = ErrorKind.INVALID
    show_user = False


class CantHandle(RequestError):
    kind = ErrorKind.CANT_HANDLE
    show_user = True


class Cancelled(RequestError):
    kind = ErrorKind.CANCELLED
    show_user = False

    def __init__(self) -> None:
        super().__init__("cancelled")


class _InternalError(RequestError):
    kind = ErrorKind.INTERNAL
    show_user = True


class CancellationToken:
    """Fired by `cancel` (reason `cancelled`), `pause` (reason `pause`) or the end of the session.

    Long-running handlers poll `cancelled` (cheap) or call `check()`; the engine's scans take the
    token itself (`is_set()`). A `scan` handler looks at `reason` first: a pause is a normal
    stop (reason `pause` in the stopped event), not a failure. The first `cancel` sets `reason`
    and that is the whole state: nothing waits on a token, so it needs no `threading.Event`
    (one is made per request).
    """

    __slots__ = ("reason",)

    def __init__(self) -> None:
        self.reason: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.reason is not None

    def is_set(self) -> bool:
        """`cancelled`, under the name the engine's `CancelToken` protocol uses."""
        return self.reason is not None

    def cancel(self, reason: str = "cancelled") -> None:
        if self.reason is None:
            self.reason = reason

    def check(self) -> None:
        """Raise `Cancelled` if the token fired."""
        if self.reason is not None:
            raise Cancelled()


@dataclass
class Request:
    """A validated request as a handler sees it: `arguments` match the schema."""

    seq: int
    command: str
    arguments: dict[str, Any]
    token: CancellationToken
    _after: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def then(self, action: Callable[[], None]) -> None:
        """Run `action` right after the successful response is sent (e.g. the `initialized` event)."""
        self._after.append(action)


Handler = Callable[[Any, Request], dict[str, Any] | None]
H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True)
class HandlerSpec:
    command: str
    function: Handler
    immediate: bool = False
    quick: bool = False
    scan: bool = False
    preempts: bool = False


def handler_options(
    *, immediate: bool = False, quick: bool = False, scan: bool = False, preempts: bool = False
) -> Callable[[H], H]:
    """How a `<command>_request` method is run.

    immediate: on the thread that read it, at once, even while another request runs (cancel, pause).
    quick: bounded work (a step, a stack, a page of variables); no input is read while it runs, so
        nothing can cancel it, and no thread hand-off delays it.
    scan: may run long (continue, reverseContinue); `pause` fires its token with reason `pause`.
    preempts: cancel the scans queued or running before it (disconnect, terminate).
    """

    def mark(function: H) -> H:
        options = {"immediate": immediate, "quick": quick, "scan": scan, "preempts": preempts}
        setattr(function, _OPTIONS, options)
        return function

    return mark


@dataclass(frozen=True)
class Ending:
    """Why a connection ended; `failed` when the adapter closed it because of an error."""

    reason: str
    failed: bool = False


@dataclass
class ClientCapabilities:
    """What the client said in `initialize`: what it supports, and how it counts lines and columns."""

    progress_reporting: bool = False
    invalidated_event: bool = False
    variable_type: bool = False
    lines_start_at_1: bool = True
    columns_start_at_1: bool = True


@dataclass
class _Job:
    seq: int
    message: dict[str, Any]
    spec: HandlerSpec | None
    token: CancellationToken


class Dispatcher:
    """Serves one connection: `Dispatcher(writer, log=...).serve(reader)` until it ends."""

    handlers: ClassVar[dict[str, HandlerSpec]] = {}
    input_poll_seconds: ClassVar[float] = 0.002
    """How long the idle worker polls its input before blocking on it (see `protocol`)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.handlers = {}
        for name in dir(cls):
            function = getattr(cls, name)
            if name.endswith(_SUFFIX) and not name.startswith("_") and callable(function):
                command = name[: -len(_SUFFIX)]
                cls.handlers[command] = HandlerSpec(command, function, **getattr(function, _OPTIONS, {}))

    def __init__(
        self,
        writer: MessageWriter,
        *,
        log: MessageLog | None = None,
        checker: ArgumentsChecker | None = None,
    ) -> None:
        self.client = ClientCapabilities()
        self._writer = writer
        self._log = log
        self._checker = checker or ArgumentsChecker.default()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: deque[_Job] = deque()
        self._watching = False  # a watcher thread owns the input
        self._busy = False  # the worker runs a request that is not quick
        self._pending: dict[int, _Job] = {}
        self._progress: dict[str, CancellationToken] = {}
        self._progress_ids = itertools.count(1)
        self._running: _Job | None = None
        self._watchers: list[threading.Thread] = []
        self._session_end: Ending | None = None
        self._input_end: Ending | None = None
        self._finished = threading.Event()

    # -- for handlers ---------------------------------------------------------------------------

    def send_event(self, event: str, body: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"type": "event", "event": event}
        if body is not None:
            message["body"] = body
        self._writer.send(message)

    def end_session(self, reason: str) -> None:
        """End the connection once the current request has been answered."""
        with self._lock:
            self._session_end = self._session_end or Ending(reason)

    def cancel(self, *, request_id: int | None = None, progress_id: str | None = None) -> None:
        """Fire the token of a pending request and/or of the request that reported a progress."""
        with self._lock:
            job = self._pending.get(request_id) if request_id is not None else None
            tokens = [job.token if job else None, self._progress.get(progress_id) if progress_id else None]
        for token in tokens:
            if token is not None:
                token.cancel()

    def pause_running(self) -> bool:
        """Fire the token of the running `scan` request with reason `pause`; False if none runs."""
        with self._lock:
            job = self._running
        if job is None or job.spec is None or not job.spec.scan:
            return False
        job.token.cancel("pause")
        return True

    def progress(self, request: Request, title: str, *, message: str | None = None) -> Progress:
        """Progress events for a long request (a no-op for clients without progress reporting)."""
        return Progress(
            self, request, title, message=message, progress_id=f"opreplay-{next(self._progress_ids)}"
        )

    @handler_options(immediate=True)
    def cancel_request(self, request: Request) -> None:
        """`cancel` runs on the thread that read it, so it takes effect while the worker is busy."""
        self.cancel(
            request_id=request.arguments.get("requestId"), progress_id=request.arguments.get("progressId")
        )

    # -- running --------------------------------------------------------------------------------

    def serve(self, reader: MessageReader, *, unblock: Callable[[], None] | None = None) -> Ending:
        """Read and execute on this thread (with watcher threads while requests run); return when
        the connection ends.

        `unblock` (e.g. shutting a socket down) lets a watcher blocked on the input finish; without
        it (stdin) the watcher is left blocked and dies with the process.
        """
        try:
            with collection_between_requests():
                ending = self._work(reader)
        finally:
            self._finished.set()
            self._writer.close()
            if unblock is not None:
                unblock()
                for watcher in self._watchers:
                    watcher.join(timeout=1.0)
        self._note("info", f"connection ended: {ending.reason}")
        return ending

    def _track_progress(self, progress_id: str, token: CancellationToken | None) -> None:
        with self._lock:
            if token is None:
                self._progress.pop(progress_id, None)
            else:
                self._progress[progress_id] = token

    def _work(self, reader: MessageReader) -> Ending:
        while self._session_end is None:
            with self._changed:
                while not self._queue and self._watching and self._input_end is None:
                    self._changed.wait()
                job = self._queue.popleft() if self._queue else None
                if job is None and self._input_end is not None:
                    break
            if job is None:  # the input is this thread's to read
                job = self._read(reader, poll=self.input_poll_seconds, idle=_collect_garbage)
                if job is None:
                    continue
            self._run(job, reader)
        return self._session_end or self._input_end or Ending("the input ended")

    def _run(self, job: _Job, reader: MessageReader) -> None:
        quick = job.spec is None or job.spec.quick  # an unknown command is answered at once
        with self._lock:
            self._running = job
            if not quick:
                self._busy = True
                if not self._watching and self._input_end is None:
                    self._watching = True
                    watcher = threading.Thread(
                        target=self._watch, args=(reader,), name="dap-watcher", daemon=True
                    )
                    self._watchers = [w for w in self._watchers if w.is_alive()] + [watcher]
                    watcher.start()
        try:
            self._execute(job)
        except ConnectionClosed as error:
            self.end_session(f"the client went away: {error}")
        finally:
            with self._lock:
                self._running = None
                self._busy = False

    def _watch(self, reader: MessageReader) -> None:
        """Own the input while the worker runs a request; hand it back once it is idle."""
        while not self._finished.is_set():
            job = self._read(reader, idle=_collect_garbage)
            with self._changed:
                if job is not None:
                    self._queue.append(job)
                if self._input_end is not None or not self._busy:
                    self._watching = False
                    self._changed.notify_all()
                    return
                self._changed.notify_all()

    def _read(
        self, reader: MessageReader, *, poll: float = 0.0, idle: Callable[[], None] | None = None
    ) -> _Job | None:
        """The next request to run, read from the input; None when there is none (the input ended,
        or the message was answered at once)."""
        try:
            message = reader.read_message(poll=poll, idle=idle)
            if message is None:
                self._input_ended(Ending("the client closed its input"))
                return None
            return self._receive(message)
        except ProtocolError as error:
            self._input_ended(Ending(str(error), failed=True))
        except (ConnectionClosed, OSError) as error:
            self._input_ended(Ending(f"the connection failed: {error}"))
        except BaseException as error:
            self._note("error", traceback.format_exc())
            self._input_ended(Ending(f"internal error in the reader: {type(error).__name__}", failed=True))
        return None

    def _receive(self, message: dict[str, Any]) -> _Job | None:
        seq = message.get("seq")
        if type(seq) is not int or seq < 1:
            raise ProtocolError("invalid message: seq must be a positive integer")
        command = message.get("command")
        spec = (
            self.handlers.get(command)
            if message.get("type") == "request" and isinstance(command, str)
            else None
        )
        if spec is not None and spec.preempts:
            self._cancel_scans()
        job = _Job(seq, message, spec, CancellationToken())
        with self._lock:
            self._pending[seq] = job
        if spec is not None and spec.immediate:
            self._execute(job)
            return None
        return job

    def _input_ended(self, ending: Ending) -> None:
        with self._changed:
            self._input_end = self._input_end or ending
            self._changed.notify_all()
        self._cancel_scans()

    def _cancel_scans(self) -> None:
        with self._lock:
            scans = [job for job in self._pending.values() if job.spec is not None and job.spec.scan]
            running = self._running
            if running is not None and running.spec is not None and running.spec.scan:
                scans.append(running)  # answered already, still running its `then` actions
        for job in scans:
            job.token.cancel()

    def _execute(self, job: _Job) -> None:
        command = job.message.get("command")
        name = command if isinstance(command, str) else ""
        request: Request | None = None
        try:
            request, handler = self._admit(job)
            body = handler(self, request)
            response: dict[str, Any] = {
                "type": "response",
                "request_seq": job.seq,
                "success": True,
                "command": name,
            }
            if body is not None:
                response["body"] = body
        except ConnectionClosed:
            raise
        except RequestError as error:
            response = _error_response(job.seq, name, error)
        except OpreplayError as error:
            response = _error_response(job.seq, name, CantHandle(str(error)))
        except Exception as error:
            response = self._internal_error(job.seq, name, error)
        finally:
            with self._lock:
                if self._pending.get(job.seq) is job:
                    del self._pending[job.seq]
        # a quick request's response and the events after it (a step's `stopped`) go out together
        quick = job.spec is not None and job.spec.quick
        with self._writer.batched() if quick else contextlib.nullcontext():
            try:
                self._writer.send(response)
            except (TypeError, ValueError, RecursionError) as error:  # a body that cannot be sent
                self._writer.send(self._internal_error(job.seq, name, error))
                return
            if request is not None and response["success"]:
                for action in request._after:
                    try:
                        action()
                    except ConnectionClosed:
                        raise
                    except Exception:
                        self._note("error", f"after the response to {name!r}:\n{traceback.format_exc()}")

    def _admit(self, job: _Job) -> tuple[Request, Handler]:
        """The checks every request passes before its handler runs, in order."""
        if job.message.get("type") != "request":
            raise InvalidRequest('invalid message: type must be "request"')
        command = job.message.get("command")
        if not isinstance(command, str):
            raise InvalidRequest("invalid request: command must be a string")
        if job.spec is None:
            raise InvalidRequest(f"unsupported command '{excerpt(command)}'")
        job.token.check()
        try:
            arguments = self._checker.check(command, job.message.get("arguments", MISSING))
        except ArgumentsError as error:
            raise InvalidRequest(f"invalid arguments for '{command}': {error}") from None
        return Request(job.seq, command, arguments, job.token), job.spec.function

    def _internal_error(self, seq: int, command: str, error: BaseException) -> dict[str, Any]:
        self._note("error", f"request {seq} {command!r} failed:\n{traceback.format_exc()}")
        detail = excerpt(str(error), 120)
        message = f"internal error in '{excerpt(command)}': {type(error).__name__}" + (
            f": {detail}" if detail else ""
        )
        return _error_response(seq, command, _InternalError(message))

    def _note(self, level: str, text: str) -> None:
        if self._log is not None:
            self._log.note(level, text)


_SHOWN_INLINE = frozenset({"evaluate", "completions", "dataBreakpointInfo", "gotoTargets", "variables"})
"""Commands whose errors the client shows where they were asked (hover, watch, REPL, a variable
that went stale after a step): no pop-up."""


_serving = 0
_serving_lock = threading.Lock()
_threshold_before: tuple[int, int, int] = gc.get_threshold()


@contextlib.contextmanager
def collection_between_requests() -> Iterator[None]:
    """Raise the automatic collection threshold while any connection is served (the threshold is
    the process's: the first connection raises it, the last one puts it back)."""
    global _serving, _threshold_before
    with _serving_lock:
        if _serving == 0:
            _threshold_before = gc.get_threshold()
            gc.set_threshold(_SERVING_COLLECTION_THRESHOLD, *_threshold_before[1:])
        _serving += 1
    try:
        yield
    finally:
        with _serving_lock:
            _serving -= 1
            if _serving == 0:
                gc.set_threshold(*_threshold_before)


def _collect_garbage() -> None:
    """The client is quiet: collect now rather than in the middle of its next step."""
    if gc.get_count()[0] >= _IDLE_COLLECTION_MIN:
        gc.collect()


def _error_response(seq: int, command: str, error: RequestError) -> dict[str, Any]:
    message = str(error)
    show_user = error.show_user and command not in _SHOWN_INLINE
    return {
        "type": "response",
        "request_seq": seq,
        "success": False,
        "command": command,
        "message": message,
        "body": {"error": {"id": int(error.kind), "format": message, "showUser": show_user}},
    }


class Progress:
    """`progressStart` / `progressUpdate` / `progressEnd` around a long request, as a context manager.

    While it is open, `cancel` with its progress id cancels the request. Updates are throttled
    (one per `interval` seconds) because engine scans report far more often than a UI can show.
    Nothing is sent to clients that did not announce `supportsProgressReporting`.
    """

    def __init__(
        self,
        session: Dispatcher,
        request: Request,
        title: str,
        *,
        message: str | None,
        progress_id: str,
        interval: float = 0.1,
    ) -> None:
        self.progress_id = progress_id
        self._session = session
        self._request = request
        self._title = title
        self._message = message
        self._interval = interval
        self._last_update = 0.0
        self._enabled = session.client.progress_reporting

    def __enter__(self) -> Progress:
        if self._enabled:
            self._session._track_progress(self.progress_id, self._request.token)
            body: dict[str, Any] = {
                "progressId": self.progress_id,
                "title": self._title,
                "requestId": self._request.seq,
                "cancellable": True,
            }
            if self._message is not None:
                body["message"] = self._message
            self._session.send_event("progressStart", body)
        return self

    def update(self, *, percentage: float | None = None, message: str | None = None) -> None:
        now = time.monotonic()
        if not self._enabled or now - self._last_update < self._interval:
            return
        self._last_update = now
        body: dict[str, Any] = {"progressId": self.progress_id}
        if percentage is not None:
            body["percentage"] = min(100.0, max(0.0, float(percentage)))
        if message is not None:
            body["message"] = message
        self._session.send_event("progressUpdate", body)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if not self._enabled:
            return
        self._session._track_progress(self.progress_id, None)
        if kind is not ConnectionClosed:
            self._session.send_event("progressEnd", {"progressId": self.progress_id})
