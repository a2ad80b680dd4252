"""Looking at the current stop: threads, stack, scopes, variables, sources, the error.

The stack of the thread that made the current operation has up to three frames, all about the
current stop: the operation itself (named as the timeline shows it, its source the timeline page
and its line the operation's line), the reconcile it belongs to (its line: where the reconcile
began), and the session (its line: the first operation). Other recorded threads are stopped too
but have no frame: the recording knows what they did, not where they were.

Every frame shows the same scopes, those of the current operation:

| scope         | what                                       | evaluateName of its variables |
|---------------|--------------------------------------------|-------------------------------|
| Operation     | the operation's fields                     | `seq`, `verb`, `status` ...   |
| Request       | the request body (when there is one)       | `req.spec.replicas` ...       |
| Object        | the object after the operation             | `obj.spec.replicas` ...       |
| Changes       | each changed field, `old -> new`           | `obj.spec.replicas` ...       |
| Error         | status, reason, message (errors only)      | `status`, `reason`, `message` |
| Cluster state | every object the operator had seen, by resource (expensive: expanded on demand) | - |

A scope's contents are computed when it is expanded, not when the scopes are listed: the F10
round trip (next, stopped, threads, stackTrace, scopes, the Object scope's variables) decodes one
body and folds no state.
"""

from __future__ import annotations

from typing import Any

from opreplay.model import Operation
from opreplay.replay import parse_path
from opreplay.replay.paths import PathError
from opreplay_adapter.dap.dispatch import CantHandle, Request, handler_options
from opreplay_adapter.dap.pages import NotAPage
from opreplay_adapter.dap.recording import Recording, SessionCore
from opreplay_adapter.dap.text import (
    change_text,
    iso_time,
    operation_title,
    outcome,
    reconcile_title,
    session_title,
)
from opreplay_adapter.dap.variables import (
    Builder,
    Container,
    Deferred,
    FieldRef,
    Listing,
    Page,
    StateScope,
    Variable,
    field_expression,
)

OPERATION_FRAME, RECONCILE_FRAME, SESSION_FRAME = 1, 2, 3


class InspectionHandlers(SessionCore):
    @handler_options(quick=True)
    def threads_request(self, request: Request) -> dict[str, Any]:
        """The recorded threads met so far; none until a recording is open (VS Code asks early)."""
        if self.recording is None:
            return {"threads": []}
        self.thread_id(self.recording.engine.current)
        return {"threads": self.recording.threads.threads()}

    @handler_options(quick=True)
    def stackTrace_request(self, request: Request) -> dict[str, Any]:
        recording = self.require_recording()
        engine = recording.engine
        op = engine.current
        thread = recording.threads.name_of(request.arguments["threadId"])
        if thread is None:
            raise CantHandle(f"no thread {request.arguments['threadId']} in this recording")
        frames: list[dict[str, Any]] = []
        if thread == op.thread:
            frames.append(self._frame(recording, OPERATION_FRAME, operation_title(op), op.seq))
            span = engine.reconcile_span()
            if span is not None:
                title = reconcile_title(op.reconcile, engine.reconcile_info())
                frames.append(self._frame(recording, RECONCILE_FRAME, title, span[0]))
            frames.append(
                self._frame(recording, SESSION_FRAME, session_title(engine.session), 1, hint="subtle")
            )
        start = request.arguments.get("startFrame", 0)
        levels = request.arguments.get("levels", 0)
        shown = frames[start : start + levels] if levels > 0 else frames[start:]
        return {"stackFrames": shown, "totalFrames": len(frames)}

    def _frame(
        self, recording: Recording, frame_id: int, name: str, seq: int, *, hint: str = "normal"
    ) -> dict[str, Any]:
        return {
            "id": frame_id,
            "name": name,
            "source": recording.pages.source(seq),
            "line": self.client_line(recording.pages.line_of(seq)),
            "column": self.client_column(0),
            "presentationHint": hint,
        }

    @handler_options(quick=True)
    def scopes_request(self, request: Request) -> dict[str, Any]:
        recording = self.require_recording()
        if request.arguments["frameId"] not in (OPERATION_FRAME, RECONCILE_FRAME, SESSION_FRAME):
            raise CantHandle(f"no frame {request.arguments['frameId']} at this stop")
        engine = recording.engine
        op = engine.current
        builder = self.builder()

        def scope(
            name: str, container: Container, *, expensive: bool = False, **extra: Any
        ) -> dict[str, Any]:
            return {
                "name": name,
                "variablesReference": builder.container(container),
                "expensive": expensive,
                **extra,
            }

        scopes = [
            scope(
                "Operation",
                Listing(lambda page: self._operation(builder, op, page)),
                presentationHint="arguments",
            )
        ]
        if op.request_digest is not None:
            scopes.append(
                scope("Request", Deferred(lambda: builder.document(engine.body(op, "request"), "req", None)))
            )
        scopes.append(
            scope("Object", Deferred(lambda: self._object(builder, recording, op)), presentationHint="locals")
        )
        scopes.append(scope("Changes", Listing(lambda page: self._changes(builder, recording, page))))
        if op.is_error:
            scopes.append(scope("Error", Listing(lambda page: self._error(builder, op, page))))
        scopes.append(
            scope("Cluster state", Deferred(lambda: StateScope(builder, engine.state())), expensive=True)
        )
        return {"scopes": scopes}

    @staticmethod
    def _operation(builder: Builder, op: Operation, page: Page) -> list[Variable]:
        def var(name: str, value: Any, evaluate_name: str | None = None) -> Variable:
            return builder.variable(name, value, hex=page.hex, evaluate_name=evaluate_name)

        found = [
            var("seq", op.seq, "seq"),
            var("time", iso_time(op.ts)),
            var("verb", op.verb, "verb"),
            var("group", op.group, "group"),
            var("version", op.version, "version"),
            var("resource", op.resource, "resource"),
            var("kind", op.kind, "kind"),
            var("subresource", op.subresource, "subresource"),
            var("namespace", op.namespace, "namespace"),
            var("name", op.name, "name"),
            var("status", op.status, "status"),
            var("reason", op.reason, "reason"),
            var("message", op.message, "message"),
            var("duration_ms", op.duration_ms, "duration_ms"),
            var("thread", op.thread, "thread"),
            var("reconcile", op.reconcile, "reconcile"),
            var("resourceVersion", op.resource_version),
        ]
        if op.verb == "watch-event":
            found.append(var("event", op.event, "event"))
        return found

    @staticmethod
    def _object(builder: Builder, recording: Recording, op: Operation) -> Container:
        engine = recording.engine
        document = engine.object_after(op)
        key = engine.object_key(op)
        field = FieldRef(key, op.kind or key.resource) if key is not None else None
        return builder.document(document, "obj", field)

    @staticmethod
    def _changes(builder: Builder, recording: Recording, page: Page) -> list[Variable]:
        return [
            builder.variable(
                change.path,
                change.new,
                text=change_text(change, hex=page.hex),
                evaluate_name=_obj_path(change.path),
            )
            for change in recording.engine.diff()
        ]

    @staticmethod
    def _error(builder: Builder, op: Operation, page: Page) -> list[Variable]:
        return [
            builder.variable("status", op.status, hex=page.hex, evaluate_name="status"),
            builder.variable("reason", op.reason, evaluate_name="reason"),
            builder.variable("message", op.message, evaluate_name="message"),
        ]

    @handler_options(quick=True)
    def variables_request(self, request: Request) -> dict[str, Any]:
        recording = self.require_recording()
        arguments = request.arguments
        page = Page(
            filter=arguments.get("filter"),
            start=arguments.get("start", 0),
            count=arguments.get("count", 0),
            hex=arguments.get("format", {}).get("hex") is True,
        )
        return {"variables": recording.handles.get(arguments["variablesReference"]).children(page)}

    @handler_options(quick=True)
    def source_request(self, request: Request) -> dict[str, Any]:
        """The text of a timeline page, for a client that asks rather than reading the file."""
        recording = self.require_recording()
        source = request.arguments.get("source") or {}
        try:
            page = recording.pages.locate(source)
        except NotAPage as error:
            raise CantHandle(str(error)) from None
        return {"content": recording.pages.text(page)}

    @handler_options(quick=True)
    def loadedSources_request(self, request: Request) -> dict[str, Any]:
        """The timeline pages written so far (pages are written when a stop first shows them)."""
        if self.recording is None:
            return {"sources": []}
        return {"sources": self.recording.pages.written()}

    @handler_options(quick=True)
    def exceptionInfo_request(self, request: Request) -> dict[str, Any]:
        """The error at the cursor: the filter that stopped there (`exceptionId`), the Status message."""
        recording = self.require_recording()
        engine = recording.engine
        op = engine.current
        stop = engine.last_stop
        filter_id = self.exception_filter(stop) if stop.seq == op.seq and stop.reason == "exception" else None
        if filter_id is None and not op.is_error:
            raise CantHandle(f"operation {op.seq} is not an error: {engine.describe()}")
        if op.is_error and op.message:
            description = op.message
        else:
            description = stop.description if filter_id is not None else engine.describe()
        details: dict[str, Any] = {
            "message": description,
            "typeName": op.reason or outcome(op),
            "fullTypeName": outcome(op),
        }
        if op.is_error:
            details["evaluateName"] = "error"
        return {
            "exceptionId": filter_id or "error",
            "description": description,
            "breakMode": "always",
            "details": details,
        }


def _obj_path(path: str) -> str | None:
    """`obj.spec.replicas` for a changed field; None for the changes of a LIST (`pods/ns/name:...`)."""
    if ":" in path.split("[", 1)[0]:
        return None
    try:
        return field_expression("obj", parse_path(path))
    except PathError:
        return None
