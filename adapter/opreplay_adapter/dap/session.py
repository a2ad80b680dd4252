"""`DebugSession`: the opreplay debug adapter, its lifecycle and the capabilities it announces.

The handlers live in groups, one module each, all thin translations to `ReplayEngine` calls (a
handler that grows logic means the engine lacks a method): `execution` (stepping, running, goto),
`inspection` (threads, stack, scopes, variables, sources, exception info), `breakpoints` and
`evaluation` (evaluate, completions). This module has the lifecycle: `initialize`, `launch`,
`configurationDone`, `disconnect`, `terminate`.

The order of a session, and why:

1. `initialize` answers the capabilities.
2. `launch` opens the recording (an error says what is wrong and the session can end cleanly),
   then sends a summary to the Debug Console and `initialized`. `initialized` comes only now so that
   the configuration requests (breakpoints) always find the recording open, whatever the order in
   which a client sends `launch` and reacts to `initialized`.
3. `configurationDone` answers, then stops on entry (or, with `stopOnEntry: false`, runs to the
   first breakpoint). The stop cannot come from `launch`: requests run one at a time, in order,
   and the breakpoints set after `initialized` must be in place before the first run.
4. After that first stop the session's analysis (hot loops, threads) starts in the background.
5. Running off either end of the recording stops at the first or last operation; only
   `disconnect` or `terminate` end the session.

The capabilities describe the adapter the extension is built against: step back and reverse
continue (a recording can be walked both ways), every breakpoint kind the engine offers, the
engine's error filters, cancellation of long scans.
"""

from __future__ import annotations

from typing import Any

from opreplay.replay import ERROR_FILTERS
from opreplay_adapter.dap.breakpoints import BreakpointHandlers
from opreplay_adapter.dap.dispatch import CantHandle, ClientCapabilities, Ending, Request, handler_options
from opreplay_adapter.dap.evaluation import EvaluationHandlers
from opreplay_adapter.dap.execution import ExecutionHandlers
from opreplay_adapter.dap.inspection import InspectionHandlers
from opreplay_adapter.dap.launch import LaunchOptions
from opreplay_adapter.dap.pages import TimelinePages
from opreplay_adapter.dap.protocol import MessageReader
from opreplay_adapter.dap.recording import Recording
from opreplay_adapter.dap.text import launch_summary

_CONDITION = 'Only where this condition is true, e.g. kind == "Deployment" and namespace == "prod"'

EXCEPTION_FILTERS: list[dict[str, Any]] = [
    {
        "filter": f.id,
        "label": f.label,
        "description": f.description,
        "default": f.default,
        "supportsCondition": True,
        "conditionDescription": _CONDITION,
    }
    for f in ERROR_FILTERS
]

CAPABILITIES: dict[str, Any] = {
    "supportsConfigurationDoneRequest": True,
    "supportsStepBack": True,
    "supportsConditionalBreakpoints": True,
    "supportsHitConditionalBreakpoints": True,
    "supportsLogPoints": True,
    "supportsFunctionBreakpoints": True,
    "supportsDataBreakpoints": True,
    "supportsExceptionFilterOptions": True,
    "supportsExceptionInfoRequest": True,
    "supportsEvaluateForHovers": True,
    "supportsClipboardContext": True,
    "supportsCompletionsRequest": True,
    "completionTriggerCharacters": [".", ":"],
    "supportsGotoTargetsRequest": True,
    "supportsRestartRequest": True,
    "supportsTerminateRequest": True,
    "supportsBreakpointLocationsRequest": True,
    "supportsCancelRequest": True,
    "supportsLoadedSourcesRequest": True,
    "supportsValueFormattingOptions": True,
    "exceptionBreakpointFilters": EXCEPTION_FILTERS,
}


class DebugSession(ExecutionHandlers, InspectionHandlers, BreakpointHandlers, EvaluationHandlers):
    """One debug session: one client connection, at most one open recording."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._initialized = False
        self._configured = False

    def serve(self, reader: MessageReader, **options: Any) -> Ending:
        try:
            return super().serve(reader, **options)
        finally:
            if self.recording is not None:
                self.recording.close()

    def initialize_request(self, request: Request) -> dict[str, Any]:
        if self._initialized:
            raise CantHandle("the session is already initialized")
        self._initialized = True
        arguments = request.arguments
        self.client = ClientCapabilities(
            progress_reporting=arguments.get("supportsProgressReporting") is True,
            invalidated_event=arguments.get("supportsInvalidatedEvent") is True,
            variable_type=arguments.get("supportsVariableType") is True,
            lines_start_at_1=arguments.get("linesStartAt1", True) is not False,
            columns_start_at_1=arguments.get("columnsStartAt1", True) is not False,
        )
        return CAPABILITIES

    def launch_request(self, request: Request) -> None:
        """Open the recording: `database`, `session`, `stopOnEntry`, `slowThresholdMs`, `loopWindow`,
        `timelineDir`, `cwd` (see `launch.LaunchOptions`)."""
        if self.recording is not None:
            raise CantHandle("a recording is open already: a debug session debugs one recording")
        options = LaunchOptions.parse(request.arguments)
        engine = options.open()
        session = engine.session
        pages = TimelinePages(
            engine.store, session, engine.total, options.timeline_folder(session.id), warn=self.console
        )
        self.recording = Recording(options, engine, pages, self.background_analysis(options, session.id))
        self.thread_id(engine.current)
        summary = launch_summary(
            session, engine.store.label, engine.operation(1), engine.operation(engine.total), engine.total,
            str(pages.folder),
        )  # fmt: skip
        request.then(lambda: self.console(summary))
        request.then(lambda: self.send_event("initialized"))

    @handler_options(scan=True)
    def configurationDone_request(self, request: Request) -> None:
        """The first stop: on entry, or (`stopOnEntry: false`) at the first breakpoint hit."""
        if self.recording is None or self._configured:
            return
        self._configured = True
        engine = self.recording.engine
        if self.recording.options.stop_on_entry:
            request.then(lambda: self.announce(engine.reset()))
        else:
            request.then(lambda: self.run(request, reverse=False))
        request.then(self.recording.analysis.start)

    @handler_options(preempts=True)
    def disconnect_request(self, request: Request) -> None:
        self.end_session("disconnect")

    @handler_options(preempts=True)
    def terminate_request(self, request: Request) -> None:
        request.then(lambda: self.send_event("terminated"))
        self.end_session("terminate")
