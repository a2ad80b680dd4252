"""`Recording`: what the adapter holds while a session is open, and the handlers' shared base.

The handler groups (`execution`, `inspection`, `breakpoints`, `evaluation`) and the lifecycle in
`session` all work on one open recording: the engine, its timeline pages, the thread ids handed
out, the variable handles of the current stop and the background analysis. `SessionCore` is their
common base: it holds the recording and turns the engine's `Stop`s into the events a client
expects after a move (logpoint output, `stopped`, `opreplay/position`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opreplay.model import Operation
from opreplay.replay import ConditionBreakpoint, ErrorBreakpoint, ReplayEngine, SelectorBreakpoint, Stop
from opreplay_adapter.dap.analysis import BackgroundAnalysis
from opreplay_adapter.dap.dispatch import CantHandle, Dispatcher, Request
from opreplay_adapter.dap.launch import LaunchOptions
from opreplay_adapter.dap.pages import TimelinePages
from opreplay_adapter.dap.protocol import ConnectionClosed
from opreplay_adapter.dap.text import analysis_summary, iso_time
from opreplay_adapter.dap.variables import Builder, Handles

STOP_REASONS = {
    "entry": "entry",
    "step": "step",
    "goto": "goto",
    "breakpoint": "breakpoint",
    "exception": "exception",
    "data-breakpoint": "data breakpoint",
    "pause": "pause",
    "end": "step",
    "start": "step",
}
"""Engine stop reasons -> DAP `stopped` reasons (running off an end is a step that went no further)."""


class ThreadIds:
    """Recorded thread names <-> DAP thread ids, handed out in the order the names are met.

    Names come from the operations the user stops at and, once it is done, from the background
    analysis (on its own thread), hence the lock.
    """

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()

    def id_of(self, name: str) -> int:
        with self._lock:
            return self._ids.setdefault(name, len(self._ids) + 1)

    def add(self, name: str) -> int | None:
        """The id of a name met for the first time; None when it is known already."""
        with self._lock:
            if name in self._ids:
                return None
            self._ids[name] = len(self._ids) + 1
            return self._ids[name]

    def name_of(self, thread_id: int) -> str | None:
        with self._lock:
            return next((name for name, known in self._ids.items() if known == thread_id), None)

    def threads(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"id": thread_id, "name": name} for name, thread_id in self._ids.items()]


@dataclass
class Recording:
    options: LaunchOptions
    engine: ReplayEngine
    pages: TimelinePages
    analysis: BackgroundAnalysis
    """Started after the first stop (or by `:stats`), not at launch."""
    threads: ThreadIds = field(default_factory=ThreadIds)
    handles: Handles = field(default_factory=Handles)

    def close(self) -> None:
        self.analysis.stop()
        self.engine.close()


class SessionCore(Dispatcher):
    """The state and helpers every handler group shares (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recording: Recording | None = None

    def require_recording(self) -> Recording:
        """The open recording, or the can't-handle error every engine request gives before launch."""
        if self.recording is None:
            raise CantHandle("no recording is open")
        return self.recording

    def builder(self) -> Builder:
        return Builder(self.require_recording().handles, with_types=self.client.variable_type)

    # -- lines and columns as the client counts them ------------------------------------------

    def client_line(self, line: int) -> int:
        """A 0-based line -> the client's numbering."""
        return line + 1 if self.client.lines_start_at_1 else line

    def own_line(self, line: int) -> int:
        """The client's line -> 0-based."""
        return line - 1 if self.client.lines_start_at_1 else line

    def client_column(self, column: int) -> int:
        return column + 1 if self.client.columns_start_at_1 else column

    def own_column(self, column: int) -> int:
        return column - 1 if self.client.columns_start_at_1 else column

    # -- after a move ---------------------------------------------------------------------------

    def thread_id(self, op: Operation) -> int:
        return self.require_recording().threads.id_of(op.thread)

    def announce(self, stop: Stop, *, reason: str | None = None) -> None:
        """The events of a stop: logpoint messages, `stopped`, then `opreplay/position`.

        Variable handles of the previous stop die here. `reason` overrides the DAP reason (a
        breakpoint stop on a function breakpoint says `function breakpoint`).
        """
        recording = self.require_recording()
        engine = recording.engine
        recording.handles.clear()
        for log in stop.logs:
            self.send_event(
                "output",
                {
                    "category": "console",
                    "output": log.text + "\n",
                    "source": recording.pages.source(log.seq),
                    "line": self.client_line(recording.pages.line_of(log.seq)),
                },
            )
        op = engine.operation(stop.seq)
        description = stop.description + (" (backwards)" if stop.backwards else "")
        body: dict[str, Any] = {
            "reason": reason or self.dap_reason(stop),
            "description": description,
            "text": description,
            "threadId": self.thread_id(op),
            "allThreadsStopped": True,
        }
        if stop.breakpoints:
            body["hitBreakpointIds"] = list(stop.breakpoints)
        self.send_event("stopped", body)
        self.send_event("opreplay/position", {"seq": op.seq, "total": engine.total, "time": iso_time(op.ts)})

    def dap_reason(self, stop: Stop) -> str:
        if stop.reason == "breakpoint" and stop.breakpoints:
            engine = self.require_recording().engine
            kinds = [engine.breakpoint(i) for i in stop.breakpoints]
            if all(
                status is not None
                and isinstance(status.breakpoint, (SelectorBreakpoint, ConditionBreakpoint))
                for status in kinds
            ):
                return "function breakpoint"
        return STOP_REASONS[stop.reason]

    def move(self, request: Request, step: Callable[[], Stop]) -> None:
        """Answer a quick move request, then announce where `step()` (an engine call) stopped."""
        stop = step()
        request.then(lambda: self.announce(stop))

    def console(self, text: str) -> None:
        self.send_event("output", {"category": "console", "output": text})

    # -- the background analysis ----------------------------------------------------------------

    def background_analysis(self, options: LaunchOptions, session_id: str) -> BackgroundAnalysis:
        """The session's analysis, not started yet; it reports to the Debug Console when done."""
        return BackgroundAnalysis(
            options.database,
            session_id,
            threshold_ms=options.slow_threshold_ms,
            window=options.loop_window,
            on_done=self._analysed,
        )

    def _analysed(self, result: Mapping[str, Any] | None, error: str | None) -> None:
        """On the analysis's thread: the summary in the Debug Console, `thread` events for new threads."""
        recording = self.recording
        if recording is None:
            return
        try:
            if result is None:
                self.console(f"opreplay: no analysis of this session: {error}\n")
                return
            self.console(analysis_summary(result))
            for name in sorted(result["stats"]["threads"]):
                thread_id = recording.threads.add(name)
                if thread_id is not None:
                    self.send_event("thread", {"reason": "started", "threadId": thread_id})
        except ConnectionClosed:
            pass  # the session ended while the analysis ran

    def exception_filter(self, stop: Stop) -> str | None:
        """The error filter that made an exception stop (its DAP `exceptionId`)."""
        engine = self.require_recording().engine
        for breakpoint_id in stop.breakpoints:
            status = engine.breakpoint(breakpoint_id)
            if status is not None and isinstance(status.breakpoint, ErrorBreakpoint):
                return status.breakpoint.filter_id
        return None
