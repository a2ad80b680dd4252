"""Breakpoints: each DAP breakpoint request becomes one group of engine breakpoint definitions.

| request                 | engine breakpoints (group)                                         |
|-------------------------|--------------------------------------------------------------------|
| setBreakpoints          | `SeqBreakpoint` per timeline line (`source:<path>`)                |
| setFunctionBreakpoints  | `SelectorBreakpoint` or `ConditionBreakpoint` per name (`function`) |
| setExceptionBreakpoints | `ErrorBreakpoint` per filter (`exception`)                         |
| setDataBreakpoints      | `FieldWatch` per data id (`data`)                                  |

The engine replaces a group at once and keeps the id and hit count of a definition set again, so
each request passes its whole list through, as VS Code sends it. Verification is the engine's:
an invalid condition, hit condition, log message, selector or path leaves that breakpoint
unverified with the reason in `message`, and the others work. What only the adapter can judge
is reported the same way: a line that is a header of the timeline or past its last operation, a
source that is not a timeline page of this session, a data id this adapter did not make.

A function breakpoint's name is a selector or a condition, told apart by syntax (see
`function_breakpoint`). A data breakpoint's `dataId` is JSON naming the object and the field
path, so VS Code can keep it across sessions (`canPersist`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from opreplay.conditions import ConditionError, compile_condition
from opreplay.model import ObjectKey
from opreplay.replay import (
    Breakpoint,
    BreakpointStatus,
    ConditionBreakpoint,
    ErrorBreakpoint,
    FieldWatch,
    SelectorBreakpoint,
    SeqBreakpoint,
)
from opreplay.replay.paths import PathError, format_path, parse_path
from opreplay_adapter.dap.dispatch import Request
from opreplay_adapter.dap.pages import NotAPage
from opreplay_adapter.dap.recording import SessionCore
from opreplay_adapter.dap.variables import FieldRef

SELECTOR = re.compile(r"^[\w.*-]+(/[\w.*-]+){0,2}$")
"""`Kind`, `Kind/name`, `Kind/namespace/name`, with `*` globs: a function breakpoint that is a selector."""


def function_breakpoint(name: str, condition: str | None, hit_condition: str | None) -> Breakpoint:
    """A selector when `name` looks like one and is not a valid condition, else a condition.

    `Deployment/default/web`, `Pod/default/*` and `WebApp` are selectors (`Deployment / default /
    web` reads names the condition language does not have); `kind == "Deployment" and status ==
    409` is a condition, and so is a lone context name such as `error`.
    """
    text = name.strip()
    if SELECTOR.match(text):
        try:
            compile_condition(text)
        except ConditionError:
            return SelectorBreakpoint(text, condition=condition, hit_condition=hit_condition)
    return ConditionBreakpoint(text, condition=condition, hit_condition=hit_condition)


def encode_data_id(field: FieldRef) -> str:
    key = field.key
    return json.dumps(
        {"object": [key.api_version, key.resource, key.namespace, key.name], "path": format_path(field.path)},
        separators=(",", ":"),
    )


def decode_data_id(data_id: str) -> tuple[ObjectKey, str] | None:
    try:
        value = json.loads(data_id)
        parts = value["object"]
        path = value["path"]
        if not (isinstance(parts, list) and len(parts) == 4 and all(isinstance(p, str) for p in parts)):
            return None
        parse_path(path)
    except (ValueError, TypeError, KeyError, PathError):
        return None
    return ObjectKey(*parts), path


def describe_field(field: FieldRef) -> str:
    """`spec.replicas of Deployment default/web`."""
    where = f"{field.key.namespace}/{field.key.name}" if field.key.namespace else field.key.name
    return f"{format_path(field.path)} of {field.kind} {where}"


def _unverified(message: str, **extra: Any) -> dict[str, Any]:
    return {"verified": False, "message": message, **extra}


def _shown(status: BreakpointStatus, **extra: Any) -> dict[str, Any]:
    shown: dict[str, Any] = {"id": status.id, "verified": status.verified, **extra}
    if status.message:
        shown["message"] = status.message
    return shown


class BreakpointHandlers(SessionCore):
    def _set(
        self, group: str, planned: Sequence[Breakpoint | dict[str, Any]], extra: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Set the definitions of `planned` as `group`; entries already refused (dicts) stay as they are."""
        definitions = [item for item in planned if isinstance(item, Breakpoint)]
        statuses = iter(self.require_recording().engine.set_breakpoints(definitions, group=group))
        return [
            {**item, **more} if isinstance(item, dict) else _shown(next(statuses), **more)
            for item, more in zip(planned, extra, strict=True)
        ]

    def setBreakpoints_request(self, request: Request) -> dict[str, Any]:
        """Breakpoints on timeline lines: the line's operation, with condition, hit condition, log message."""
        recording = self.require_recording()
        source = request.arguments["source"]
        wanted = request.arguments.get("breakpoints", [])
        try:
            page = recording.pages.locate(source)
        except NotAPage as error:
            return {"breakpoints": [_unverified(str(error), line=b["line"]) for b in wanted]}
        planned: list[Breakpoint | dict[str, Any]] = []
        extra = []
        for wish in wanted:
            seq = recording.pages.seq_at(page, self.own_line(wish["line"]))
            extra.append({"source": source, "line": wish["line"]})
            if seq is None:
                planned.append(
                    _unverified(f"no operation on line {wish['line']}: a header line, or past the last")
                )
                continue
            planned.append(
                SeqBreakpoint(
                    seq,
                    condition=wish.get("condition"),
                    hit_condition=wish.get("hitCondition"),
                    log_message=wish.get("logMessage"),
                )
            )
        return {"breakpoints": self._set(f"source:{source['path']}", planned, extra)}

    def breakpointLocations_request(self, request: Request) -> dict[str, Any]:
        """The lines of `line`..`endLine` that hold an operation (every line below the header)."""
        recording = self.require_recording()
        arguments = request.arguments
        try:
            page = recording.pages.locate(arguments["source"])
        except NotAPage:
            return {"breakpoints": []}
        first = self.own_line(arguments["line"])
        last = self.own_line(arguments.get("endLine", arguments["line"]))
        lines = recording.pages.operation_lines(page, first, last)
        return {"breakpoints": [{"line": self.client_line(line)} for line in lines]}

    def setFunctionBreakpoints_request(self, request: Request) -> dict[str, Any]:
        """Selectors (`Deployment/default/web`, `Pod/default/*`) and conditions (`kind == "Pod"`)."""
        wanted = request.arguments["breakpoints"]
        planned: list[Breakpoint | dict[str, Any]] = [
            function_breakpoint(w["name"], w.get("condition"), w.get("hitCondition")) for w in wanted
        ]
        return {"breakpoints": self._set("function", planned, [{} for _ in wanted])}

    def setExceptionBreakpoints_request(self, request: Request) -> dict[str, Any]:
        """Error filters, each with an optional condition (`filterOptions`)."""
        arguments = request.arguments
        planned: list[Breakpoint | dict[str, Any]] = [ErrorBreakpoint(f) for f in arguments["filters"]]
        planned += [
            ErrorBreakpoint(o["filterId"], condition=o.get("condition"))
            for o in arguments.get("filterOptions", [])
        ]
        return {"breakpoints": self._set("exception", planned, [{} for _ in planned])}

    def dataBreakpointInfo_request(self, request: Request) -> dict[str, Any]:
        """A field of a recorded object (a variable of the Object scope or of a cluster state object)."""
        recording = self.require_recording()
        arguments = request.arguments
        name = arguments["name"]
        reference = arguments.get("variablesReference")
        if reference is not None:
            field = recording.handles.get(reference).field_of(name)
        else:  # an expression, e.g. a watch: `obj.<path>` only
            field = self._object_field(name)
        if field is None or not field.path:
            return {
                "dataId": None,
                "description": f"{name} is not a field of a recorded object: no data breakpoint",
            }
        return {
            "dataId": encode_data_id(field),
            "description": describe_field(field),
            "accessTypes": ["write"],
            "canPersist": True,
        }

    def _object_field(self, expression: str) -> FieldRef | None:
        engine = self.require_recording().engine
        op = engine.current
        key = engine.object_key(op)
        text = expression.strip()
        if key is None or not text.startswith(("obj.", "obj[")):
            return None
        try:
            path = parse_path(text[4:] if text.startswith("obj.") else text[3:].lstrip("."))
        except PathError:
            return None
        return FieldRef(key, op.kind or key.resource, path)

    def setDataBreakpoints_request(self, request: Request) -> dict[str, Any]:
        """Field watches: stop where the field's value changes."""
        planned: list[Breakpoint | dict[str, Any]] = []
        for wish in request.arguments["breakpoints"]:
            decoded = decode_data_id(wish["dataId"])
            if decoded is None:
                planned.append(
                    _unverified("not a data breakpoint of opreplay: set it again from the Variables view")
                )
            elif wish.get("accessType", "write") != "write":
                planned.append(_unverified("a recording can only break where a field is written"))
            else:
                key, path = decoded
                planned.append(
                    FieldWatch(
                        key, path, condition=wish.get("condition"), hit_condition=wish.get("hitCondition")
                    )
                )
        return {"breakpoints": self._set("data", planned, [{} for _ in planned])}
