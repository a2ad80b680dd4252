"""Moving through the recording: one handler per DAP execution request, each one engine call.

| request         | engine                       |
|-----------------|------------------------------|
| next / stepBack | `step()` / `back()`          |
| stepIn          | `next_on_object()`           |
| stepOut         | `step_out()`                 |
| continue        | `run()`                      |
| reverseContinue | `run(reverse=True)`          |
| gotoTargets     | the seq on a timeline line   |
| goto            | `goto(seq)`                  |
| restart         | `reset()` (reason `entry`)   |
| pause           | fires the running scan's token |

Quick moves answer, then announce the stop (`SessionCore.move`). `continue` and
`reverseContinue` answer *first* and run in a `then` action: a client shows the thread running
(and offers Pause) only once `continue` is answered, and a scan over a million operations can take
seconds. Their token stays live meanwhile: `pause` stops the scan where it got to (reason
`pause`), a `cancel` of its progress does the same, and `disconnect` ends it at once.
"""

from __future__ import annotations

from typing import Any

from opreplay.errors import OpreplayError
from opreplay.replay import Stop
from opreplay_adapter.dap.dispatch import CantHandle, Request, handler_options
from opreplay_adapter.dap.pages import NotAPage
from opreplay_adapter.dap.recording import SessionCore


class ExecutionHandlers(SessionCore):
    @handler_options(quick=True)
    def next_request(self, request: Request) -> None:
        self.move(request, self.require_recording().engine.step)

    @handler_options(quick=True)
    def stepBack_request(self, request: Request) -> None:
        self.move(request, self.require_recording().engine.back)

    def stepIn_request(self, request: Request) -> None:
        """The next operation on the same object (`stepIn` targets are not offered)."""
        self.move(request, self.require_recording().engine.next_on_object)

    def stepOut_request(self, request: Request) -> None:
        """The first operation after the current reconcile."""
        self.move(request, self.require_recording().engine.step_out)

    @handler_options(scan=True)
    def continue_request(self, request: Request) -> dict[str, Any]:
        self.require_recording()
        request.then(lambda: self.run(request, reverse=False))
        return {"allThreadsContinued": True}

    @handler_options(scan=True)
    def reverseContinue_request(self, request: Request) -> None:
        self.require_recording()
        request.then(lambda: self.run(request, reverse=True))

    def goto_request(self, request: Request) -> None:
        engine = self.require_recording().engine
        self.move(request, lambda: engine.goto(request.arguments["targetId"]))

    def gotoTargets_request(self, request: Request) -> dict[str, Any]:
        """The operation on a timeline line (Run to Cursor, Jump to Cursor); its seq is the target id."""
        recording = self.require_recording()
        try:
            page = recording.pages.locate(request.arguments["source"])
        except NotAPage as error:
            raise CantHandle(str(error)) from None
        line = request.arguments["line"]
        seq = recording.pages.seq_at(page, self.own_line(line))
        if seq is None:
            return {"targets": []}
        return {
            "targets": [{"id": seq, "label": f"seq {seq}: {recording.engine.describe(seq)}", "line": line}]
        }

    @handler_options(quick=True)
    def restart_request(self, request: Request) -> None:
        """Back to the first operation, hit counts cleared; the launch configuration stays as it was."""
        self.move(request, self.require_recording().engine.reset)

    @handler_options(immediate=True)
    def pause_request(self, request: Request) -> None:
        """Stops a running continue/reverseContinue scan; when nothing runs, the thread is already stopped."""
        self.require_recording()
        self.pause_running()

    def run(self, request: Request, *, reverse: bool) -> None:
        """Run to the next (previous) breakpoint hit and announce the stop; also the start without
        `stopOnEntry`. A store failure on the way stops where the cursor is, with the reason."""
        engine = self.require_recording().engine
        title = "Running back to the previous breakpoint" if reverse else "Running to the next breakpoint"
        try:
            with self.progress(request, title) as progress:
                stop = engine.run(
                    reverse,
                    progress=lambda done: progress.update(percentage=100 * done),
                    cancel=request.token,
                )
        except OpreplayError as error:
            stop = Stop("pause", engine.position, f"the run failed: {error}")
        self.announce(stop)
