"""`DebugSession`: the opreplay debug adapter's handlers and the capabilities it announces.

This step holds the handlers that need no replay engine: the session's lifecycle (`initialize`,
`configurationDone`, `disconnect`, `terminate`), `threads` and `pause`. The handlers that move
through a recording (launch, stepping, breakpoints, variables, evaluate) translate to
`ReplayEngine` calls and join this class once that API is final; each is a thin translation, as
the design requires (a handler that grows logic means the engine lacks a method).

The capabilities are announced in full now because they describe the adapter the extension is
built against: step back and reverse continue (a recording can be walked both ways), every
breakpoint kind the engine offers, the error filters, cancellation of long scans.
"""

from __future__ import annotations

from typing import Any

from opreplay_adapter.dap.dispatch import (
    CantHandle,
    ClientCapabilities,
    Dispatcher,
    Request,
    handler_options,
)

_CONDITION = "A condition on the operation, e.g. kind == 'Deployment' and namespace == 'prod'"

EXCEPTION_FILTERS: list[dict[str, Any]] = [
    {
        "filter": filter_id,
        "label": label,
        "description": description,
        "supportsCondition": True,
        "conditionDescription": _CONDITION,
    }
    for filter_id, label, description in [
        ("error", "Any API error", "Break on every operation the API server answered with an error status."),
        ("conflict", "Conflict (409)", "Break on 409 Conflict: a write based on a stale resourceVersion."),
        ("not-found", "Not found (404)", "Break on 404 Not Found: the object or collection does not exist."),
        (
            "forbidden",
            "Unauthorized or forbidden (401, 403)",
            "Break when authentication or RBAC refused a call.",
        ),
        ("server-error", "Server error (5xx)", "Break on 5xx answers: the API server or a webhook failed."),
        ("timeout", "Timeout", "Break on operations that timed out."),
        ("slow", "Slow call", "Break on operations slower than the slow-call threshold."),
        (
            "loop",
            "Reconcile loop",
            "Break when the operator repeats the same calls on an object (a hot loop).",
        ),
    ]
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
    "supportsGotoTargetsRequest": True,
    "supportsRestartRequest": True,
    "supportsTerminateRequest": True,
    "supportsBreakpointLocationsRequest": True,
    "supportsCancelRequest": True,
    "supportsLoadedSourcesRequest": True,
    "supportsValueFormattingOptions": True,
    "exceptionBreakpointFilters": EXCEPTION_FILTERS,
}


class DebugSession(Dispatcher):
    """One debug session: one client connection, at most one open recording."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.engine: Any = None
        """The `ReplayEngine` once `launch` has opened a recording."""
        self._initialized = False

    def require_engine(self) -> Any:
        """The open recording's engine, or the can't-handle error every engine request gives before launch."""
        if self.engine is None:
            raise CantHandle("no recording is open")
        return self.engine

    def initialize_request(self, request: Request) -> dict[str, Any]:
        if self._initialized:
            raise CantHandle("the session is already initialized")
        self._initialized = True
        arguments = request.arguments
        self.client = ClientCapabilities(
            progress_reporting=arguments.get("supportsProgressReporting") is True,
            invalidated_event=arguments.get("supportsInvalidatedEvent") is True,
        )
        request.then(lambda: self.send_event("initialized"))
        return CAPABILITIES

    def configurationDone_request(self, request: Request) -> None:
        """Nothing to wait for yet; breakpoints set before it are the engine step's concern."""

    def threads_request(self, request: Request) -> dict[str, Any]:
        """Until a recording is open there are no threads (VS Code asks before `launch` returns)."""
        return {"threads": []}

    @handler_options(immediate=True)
    def pause_request(self, request: Request) -> None:
        """Stops a running continue/reverseContinue scan; when nothing runs, the thread is already stopped."""
        self.require_engine()
        self.pause_running()

    @handler_options(preempts=True)
    def disconnect_request(self, request: Request) -> None:
        self.end_session("disconnect")

    @handler_options(preempts=True)
    def terminate_request(self, request: Request) -> None:
        request.then(lambda: self.send_event("terminated"))
        self.end_session("terminate")
