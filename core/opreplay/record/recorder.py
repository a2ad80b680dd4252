"""The Recorder: one recording session, from `start()` to `stop()`.

A recorder owns a bounded queue (`capture.Sink`), a writer thread (`writer.Writer`) and its place
in the process-wide hook registry. Starting it opens the store and creates the session in the
writer thread (so that the SQLite connection belongs to the thread that writes), and fails loudly
if that fails; after that, nothing it does can raise into the operator's code.

Losing as little as possible when the process ends:
- `stop()`, the context manager's exit and an `atexit` handler drain the queue and close the session;
- SIGTERM (the way Kubernetes stops a pod) gets a handler, installed only from the main thread,
  that flushes and then does what would have happened without it: calls the previous handler,
  or stops the recorder and dies by the signal as the default action would;
- a `kill -9` loses what was queued since the last flush: at most `flush_interval`.

A process forked without exec (multiprocessing's default on Linux) inherits the hooks but not the
writer thread; the child stops recording at once instead of queueing into a queue nobody drains.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import itertools
import logging
import os
import shlex
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal, ParamSpec, TypeVar

from opreplay.model import SessionInfo
from opreplay.record.capture import FLUSH, RECONCILE, REGISTRY, Sink, current_reconcile
from opreplay.record.writer import Assembler, Writer
from opreplay.store import Store

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger("opreplay.record")

Overflow = Literal["drop", "block"]
_STOP_TIMEOUT = 60.0  # the writer may wait up to the store's 30 s busy timeout per batch


class Reconcile:
    """Marks a reconcile: operations made inside it (same thread or task) share its `id`.

    A context manager (`with rec.reconcile("Deployment", "default", "web") as r:`) and a decorator
    (`@rec.reconcile("Deployment")`: each call of the function is a reconcile of its own). The id is
    an integer unique in the session; a contextvar carries it, so asyncio code works too.
    """

    def __init__(self, recorder: Recorder, kind: str, namespace: str, name: str) -> None:
        self.recorder = recorder
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.id: int | None = None
        self._token: Any = None

    def __enter__(self) -> Reconcile:
        if self._token is not None:
            raise RuntimeError("this reconcile is already in progress; make a new one with rec.reconcile()")
        self.id = next(self.recorder._reconcile_ids)
        self._token = current_reconcile.set((self.recorder, self.id))
        sink = self.recorder._sink
        if sink is not None:  # what it reconciles, for the debugger's reconcile frame
            sink.put((RECONCILE, self.id, self.kind, self.namespace, self.name, time.time()))
        return self

    def __exit__(self, *exc: object) -> None:
        current_reconcile.reset(self._token)
        self._token = None

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        recorder, kind, namespace, name = self.recorder, self.kind, self.namespace, self.name
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with Reconcile(recorder, kind, namespace, name):
                    return await func(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with Reconcile(recorder, kind, namespace, name):
                return func(*args, **kwargs)

        return run


class Recorder:
    """Records the kubernetes client's API calls into a session of a store; see `opreplay.record`."""

    def __init__(
        self,
        database: str | os.PathLike[str] | Store = "recordings.db",
        session: str | None = None,
        *,
        api_client: Any = None,
        redact: bool = True,
        labels: dict[str, str] | None = None,
        flush_interval: float = 0.2,
        queue_size: int = 100_000,
        batch_size: int = 1000,
        max_body_bytes: int = 1 << 20,
        overflow: Overflow = "drop",
    ) -> None:
        if overflow not in ("drop", "block"):
            raise ValueError(f"overflow must be 'drop' or 'block', not {overflow!r}")
        for label, value in (
            ("queue_size", queue_size),
            ("batch_size", batch_size),
            ("max_body_bytes", max_body_bytes),
        ):
            if value < 1:
                raise ValueError(f"{label} must be at least 1, not {value}")
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be positive, not {flush_interval}")
        self.database = database
        self.name = session
        self.api_client = api_client
        self.redact = redact
        self.labels = dict(labels or {})
        self.flush_interval = flush_interval
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.max_body_bytes = max_body_bytes
        self.overflow = overflow
        self._reconcile_ids = itertools.count(1)
        self._sink: Sink | None = None
        self._writer: Writer | None = None
        self._active = False
        self._previous_sigterm: Any = None
        self._lock = threading.RLock()  # RLock: the SIGTERM handler may stop() inside start()/stop()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Recorder:
        """Open the store, create the session, and start recording. Raises StoreError on a bad store."""
        with self._lock:
            if self._active:
                raise RuntimeError("this recorder is already recording")
            sink = Sink(self.queue_size, block=self.overflow == "block", wake_at=self.batch_size)
            assembler = Assembler(token=self, redact=self.redact, max_body_bytes=self.max_body_bytes)
            writer = Writer(
                sink,
                assembler,
                self._open_store,
                batch_size=self.batch_size,
                flush_interval=self.flush_interval,
            )
            writer.start()
            writer.started_up.wait()
            if writer.error is not None:
                raise writer.error
            try:
                pool = self.api_client.rest_client.pool_manager if self.api_client is not None else None
                REGISTRY.add(sink, pool)
            except BaseException:
                writer.stop()
                writer.join(_STOP_TIMEOUT)
                raise
            self._sink, self._writer, self._active = sink, writer, True
            _active.add(self)
            atexit.register(self.stop)
            self._install_sigterm()
        return self

    def stop(self) -> None:
        """Stop recording: drain the queue, close the session. Safe to call more than once."""
        with self._lock:
            sink, writer = self._sink, self._writer
            if not self._active or sink is None or writer is None:
                return
            self._active = False
            _active.discard(self)
            REGISTRY.remove(sink)
            atexit.unregister(self.stop)
            self._restore_sigterm()
            writer.stop()
            writer.join(_STOP_TIMEOUT)
            if writer.is_alive():
                log.error("opreplay: the recording writer did not finish within %.0f s", _STOP_TIMEOUT)
            elif writer.error is not None:
                log.error("opreplay: recording failed: %s", writer.error)

    def flush(self, timeout: float = 5.0) -> bool:
        """Write everything recorded so far; False if the writer did not get there within `timeout`."""
        sink, writer = self._sink, self._writer
        if not self._active or sink is None or writer is None or not writer.is_alive():
            return True
        done = threading.Event()
        sink.put((FLUSH, done))
        sink.wake.set()
        return done.wait(timeout)

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what it records -----------------------------------------------------------------------

    @property
    def session(self) -> SessionInfo:
        """The session being (or last) recorded."""
        writer = self._writer
        if writer is None or writer.session is None:
            raise RuntimeError("the recorder has not been started")
        return writer.session

    @property
    def recording(self) -> bool:
        return self._active

    @property
    def dropped(self) -> int:
        """Operations lost to a full queue (recorded as gaps) since start."""
        return self._sink.dropped if self._sink is not None else 0

    def reconcile(self, kind: str, namespace: str = "", name: str = "") -> Reconcile:
        """A reconcile marker: `with rec.reconcile(kind, ns, name):` or `@rec.reconcile(kind)`."""
        return Reconcile(self, kind, namespace, name)

    # -- internals -----------------------------------------------------------------------------

    def _open_store(self) -> tuple[Store, SessionInfo, bool]:
        """Runs in the writer thread."""
        if isinstance(self.database, Store):
            store, owned = self.database, False
        else:
            store, owned = Store.open(self.database, create=True), True
        try:
            session = store.create_session(
                name=self.name,
                started_at=time.time(),
                command=shlex.join(getattr(sys, "argv", None) or []),
                kube_context=_kube_context(),
                labels=self.labels,
            )
        except BaseException:
            if owned:
                store.close()
            raise
        return store, session, owned

    def _install_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        if previous is None:  # a handler installed outside Python: leave it alone
            return
        self._previous_sigterm = previous
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _restore_sigterm(self) -> None:
        if self._previous_sigterm is None or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) == self._on_sigterm:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        self._previous_sigterm = None

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous_sigterm
        if previous is None:  # stopped since: this handler was not the last one, so it only passes on
            previous = signal.SIG_DFL
        if previous == signal.SIG_DFL:
            self.stop()
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.flush()
        if callable(previous):
            previous(signum, frame)


_active: weakref.WeakSet[Recorder] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for recorder in list(_active):
        recorder._active = False
        atexit.unregister(recorder.stop)
    _active.clear()
    REGISTRY.forget_all()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _kube_context() -> str | None:
    """The active kubeconfig context, when there is a kubeconfig; None otherwise (or on any error)."""
    paths = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if not any(Path(path).is_file() for path in paths.split(os.pathsep) if path):
        return None
    try:
        from kubernetes import config

        list_contexts: Callable[[], tuple[Any, Any]] = config.list_kube_config_contexts
        _, active = list_contexts()
        name = active.get("name") if isinstance(active, dict) else None
        return name if isinstance(name, str) else None
    except Exception:
        return None
