"""The replay handlers, in process, against the demo recording: one test (or a few) per handler.

Expectations are read from the recording through a `ReplayEngine` of the test's own rather than
written down as seq numbers, so the tests follow the demo if its scenario changes. Every message
the adapter sends is validated against the official schema by the client (see dapclient).
"""

from __future__ import annotations

import gc
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest
from dapclient import Debugger, InProcess

from opreplay.model import NewOperation, ObjectKey
from opreplay.replay import ConditionBreakpoint, ReplayEngine, SelectorBreakpoint
from opreplay.store import Store
from opreplay.timeline import HEADER_LINES
from opreplay_adapter.dap import dispatch
from opreplay_adapter.dap.breakpoints import function_breakpoint
from opreplay_adapter.dap.dispatch import ErrorKind

Start = Callable[..., Debugger]
CHECKOUT = ObjectKey("apps/v1", "deployments", "default", "checkout")
IMAGE = "spec.template.spec.containers[0].image"
CONFLICT = 'kind == "Deployment" and status == 409'


@pytest.fixture(scope="module")
def engine(demo_db: Path) -> Iterator[ReplayEngine]:
    with ReplayEngine.open(demo_db) as opened:
        yield opened


def seq_where(engine: ReplayEngine, expression: str, *, after: int = 1, reverse: bool = False) -> int:
    """The first seq after `after` (before, with reverse) where the expression holds."""
    engine.goto(after)
    stop = engine.find(expression, reverse=reverse)
    assert stop is not None, expression
    return stop.seq


def line_of(seq: int) -> int:
    """The 1-based timeline line of a seq on page 1."""
    return HEADER_LINES + seq


def error_of(response: dict[str, Any]) -> tuple[int, str]:
    assert response["success"] is False
    return response["body"]["error"]["id"], response["message"]


def page_source(debugger: Debugger) -> dict[str, Any]:
    return dict(debugger.frames()[0]["source"])


# -- launch ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "launch: `database` is required: the path or URL of an opreplay recording"),
        ({"database": 3}, "launch: `database` must be a string"),
        ({"database": "{db}", "stopOnEntry": "yes"}, "launch: `stopOnEntry` must be true or false"),
        ({"database": "{db}", "slowThresholdMs": -1}, "launch: `slowThresholdMs` must be a number"),
        ({"database": "{db}", "loopWindow": 1.5}, "launch: `loopWindow` must be a number of operations"),
        ({"database": "{tmp}/missing.db"}, "cannot open session 'latest': {tmp}/missing.db: no such file"),
        (
            {"database": "{tmp}"},
            "cannot open session 'latest': {tmp}: is a directory, not a recording database",
        ),
        (
            {"database": "{tmp}/text.db"},
            "cannot open session 'latest': {tmp}/text.db: is not a SQLite database",
        ),
        ({"database": "{db}", "session": "nope"}, "cannot open session 'nope': {db}: no session 'nope'"),
    ],
)
def test_launch_errors_say_what_and_why_then_end_cleanly(
    in_process: Callable[..., InProcess],
    demo_db: Path,
    tmp_path: Path,
    arguments: dict[str, Any],
    message: str,
) -> None:
    (tmp_path / "text.db").write_text("not a database\n" * 10)
    arguments = {
        k: v.format(db=demo_db, tmp=tmp_path) if isinstance(v, str) else v for k, v in arguments.items()
    }
    item = in_process()
    client = item.client
    client.request("initialize", Debugger.INITIALIZE)
    kind, text = error_of(client.request("launch", arguments))
    assert kind == ErrorKind.CANT_HANDLE
    assert text.startswith(message.format(db=demo_db, tmp=tmp_path)), text
    assert not [e for e in client.events if e["event"] == "initialized"]
    assert error_of(client.request("stackTrace", {"threadId": 1}))[1] == "no recording is open"
    assert client.request("disconnect")["success"]
    assert item.wait_ended().reason == "disconnect"


def test_launch_summarises_then_sends_initialized(debugger: Start, demo_db: Path) -> None:
    debugger_ = debugger()
    events = [e["event"] for e in debugger_.client.events]
    assert events.index("output") < events.index("initialized") < events.index("stopped")
    summary = debugger_.outputs()[0]
    assert summary.startswith("opreplay: session ")
    assert "webapp-demo" in summary and str(demo_db) in summary
    assert " operations over " in summary and " errors" in summary


def test_relative_database_against_cwd_and_default_timeline_folder(
    in_process: Callable[..., InProcess], demo_db: Path, engine: ReplayEngine
) -> None:
    debugger = Debugger.launched(in_process(), {"database": demo_db.name, "cwd": str(demo_db.parent)})
    path = Path(page_source(debugger)["path"])
    assert path.parent == demo_db.parent / ".opreplay" / "timeline" / engine.session.id
    assert path.name == f"{engine.session.id}.p0001.optrace"


def test_a_second_launch_cannot_be_handled(debugger: Start, demo_db: Path) -> None:
    response = debugger().request("launch", {"database": str(demo_db)})
    assert error_of(response)[1] == "a recording is open already: a debug session debugs one recording"


def test_session_by_id(in_process: Callable[..., InProcess], demo_db: Path, tmp_path: Path) -> None:
    with ReplayEngine.open(demo_db, "clean") as clean:
        session_id = clean.session.id
    debugger = Debugger.launched(in_process(), {"database": str(demo_db), "session": session_id})
    assert debugger.frames()[-1]["name"] == f"session {session_id} clean"


def test_times_a_damaged_recording_cannot_show_leave_it_debuggable(
    in_process: Callable[..., InProcess], tmp_path: Path
) -> None:
    path = tmp_path / "damaged.db"
    body = orjson.dumps({"kind": "ConfigMap", "metadata": {"name": "cfg"}})
    with Store.open(path, create=True) as store:
        session = store.create_session(name="damaged", started_at=1_700_000_000.0, command="pytest")
        ops = [
            NewOperation(ts=1_700_000_000.0 + seq, duration_us=900, thread="MainThread", verb="get",
                         api_version="v1", resource="configmaps", kind="ConfigMap", namespace="default",
                         name="cfg", status=200, response=body)
            for seq in (1, 2)
        ]  # fmt: skip
        store.append(session, 1, ops)
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("UPDATE operations SET ts = 9e999, duration_us = -5 WHERE seq = 1")  # +inf
    launch = {"database": str(path), "timelineDir": str(tmp_path / "pages")}
    debugger = Debugger.launched(in_process(), launch)
    assert debugger.scope_variables("Operation")["time"]["value"] == '"invalid time (inf)"'
    assert debugger.move("next")["reason"] == "step"
    assert debugger.scope_variables("Operation")["time"]["value"].startswith('"2023-11-14T22:13:22.000')


# -- stopping and the stack --------------------------------------------------------------------


def test_stop_on_entry_position_and_stack(debugger: Start, engine: ReplayEngine, tmp_path: Path) -> None:
    debugger_ = debugger()
    stop = debugger_.last_stop["body"]
    assert stop["reason"] == "entry" and stop["allThreadsStopped"] is True
    assert stop["description"] == engine.describe(1)
    position = debugger_.client.wait_event("opreplay/position")["body"]
    assert position["seq"] == 1 and position["total"] == engine.total
    assert position["time"].startswith("20") and position["time"].endswith("+00:00")
    threads = debugger_.body("threads")["threads"]
    assert threads == [{"id": 1, "name": engine.operation(1).thread}]
    frames = debugger_.frames()
    assert [f["id"] for f in frames] == [1, 3]  # the first operation is outside any reconcile
    top = frames[0]
    assert top["name"].startswith("WATCH demo.opreplay.dev/v1 WebApp default/* -> 200 OK (")
    assert top["line"] == line_of(1) and top["column"] == 1
    assert top["source"]["path"] == str(tmp_path / "pages" / f"{engine.session.id}.p0001.optrace")
    text = Path(top["source"]["path"]).read_text().splitlines()
    assert text[top["line"] - 1].split()[0] == "1"
    assert frames[1]["name"] == f"session {engine.session.id} webapp-demo"


def test_reconcile_frame_points_at_the_reconcile_start(debugger: Start, engine: ReplayEngine) -> None:
    debugger_ = debugger()
    seq = seq_where(engine, "reconcile == 2 and verb == 'create'")
    first, _ = engine.reconcile_span(seq) or (0, 0)
    debugger_.move("goto", {"targetId": seq})
    frames = debugger_.frames()
    info = engine.reconcile_info(seq)
    assert info is not None and info.kind == "WebApp"  # the demo marks its reconciles with their WebApp
    assert [f["name"] for f in frames][1:] == [
        f"reconcile WebApp {info.namespace}/{info.name} (#2)",
        f"session {engine.session.id} webapp-demo",
    ]
    assert frames[1]["line"] == line_of(first)
    assert debugger_.body("stackTrace", {"threadId": 1, "startFrame": 1, "levels": 1}) == {
        "stackFrames": [frames[1]],
        "totalFrames": 3,
    }
    assert error_of(debugger_.request("stackTrace", {"threadId": 99}))[1] == "no thread 99 in this recording"


def test_next_three_then_step_back_three_gives_the_same_variables(debugger: Start) -> None:
    debugger_ = debugger()
    debugger_.move("goto", {"targetId": 8})

    def snapshot() -> tuple[Any, ...]:
        scopes = debugger_.scopes()
        operation = debugger_.variables(scopes["Operation"]["variablesReference"])
        obj = debugger_.variables(scopes["Object"]["variablesReference"])
        strip = [{k: v for k, v in var.items() if k != "variablesReference"} for var in operation + obj]
        return debugger_.frames()[0]["name"], strip

    before = snapshot()
    for _ in range(3):
        assert debugger_.move("next")["reason"] == "step"
    assert snapshot() != before
    for _ in range(3):
        stop = debugger_.move("stepBack")
        assert stop["reason"] == "step" and stop["description"].endswith("(backwards)")
    assert snapshot() == before


def test_step_in_goes_to_the_next_operation_on_the_object(debugger: Start, engine: ReplayEngine) -> None:
    debugger_ = debugger()
    debugger_.move("goto", {"targetId": 8})
    expected = seq_where(engine, f"name == {CHECKOUT.name!r} and kind == 'Deployment'", after=8)
    debugger_.move("stepIn")
    assert debugger_.position() == expected


def test_step_out_goes_past_the_reconcile(debugger: Start, engine: ReplayEngine) -> None:
    debugger_ = debugger()
    debugger_.move("goto", {"targetId": 10})
    span = engine.reconcile_span(10)
    assert span is not None
    debugger_.move("stepOut")
    assert debugger_.position() == span[1] + 1


def test_running_off_either_end_stays_debuggable(debugger: Start, engine: ReplayEngine) -> None:
    debugger_ = debugger()
    stop = debugger_.move("stepBack")
    assert stop["description"] == "start of recording (backwards)" and debugger_.position() == 1
    debugger_.move("goto", {"targetId": engine.total})
    stop = debugger_.move("next")
    assert (stop["reason"], stop["description"]) == ("step", "end of recording")
    assert debugger_.position() == engine.total
    stop = debugger_.move("continue")
    assert stop["description"] == "end of recording"
    assert debugger_.frames()[0]["line"] == line_of(engine.total)
    assert debugger_.move("stepBack")["reason"] == "step"


def test_goto_targets_goto_and_restart(debugger: Start, engine: ReplayEngine) -> None:
    debugger_ = debugger()
    source = page_source(debugger_)
    targets = debugger_.body("gotoTargets", {"source": source, "line": line_of(42)})["targets"]
    assert targets == [{"id": 42, "label": f"seq 42: {engine.describe(42)}", "line": line_of(42)}]
    assert debugger_.body("gotoTargets", {"source": source, "line": 2})["targets"] == []
    stop = debugger_.move("goto", {"targetId": 42})
    assert stop["reason"] == "goto" and debugger_.position() == 42
    assert debugger_.move("goto", {"targetId": 7})["description"].endswith("(backwards)")
    response = debugger_.request("goto", {"threadId": 1, "targetId": engine.total + 1})
    assert error_of(response)[1] == f"seq {engine.total + 1} is outside the recording (1..{engine.total})"
    stop = debugger_.move("restart")
    assert stop["reason"] == "entry" and debugger_.position() == 1


# -- breakpoints -------------------------------------------------------------------------------


def test_line_breakpoints_verify_and_stop(debugger: Start, engine: ReplayEngine) -> None:
    debugger_ = debugger()
    source = page_source(debugger_)
    conflict = seq_where(engine, "status == 409")
    body = debugger_.body(
        "setBreakpoints",
        {
            "source": source,
            "breakpoints": [
                {"line": 3},
                {"line": line_of(conflict)},
                {"line": line_of(engine.total + 1)},
                {"line": line_of(conflict + 1), "condition": "status =="},
                {"line": line_of(conflict + 2), "hitCondition": "zero"},
            ],
        },
    )
    shown = body["breakpoints"]
    assert [b["verified"] for b in shown] == [False, True, False, False, False]
    assert shown[0]["message"] == "no operation on line 3: a header line, or past the last"
    assert shown[3]["message"] == "invalid condition at column 10: invalid syntax"
    assert shown[4]["message"].startswith("invalid hit condition 'zero'")
    lines = [3, line_of(conflict), line_of(engine.total + 1), line_of(conflict + 1), line_of(conflict + 2)]
    assert [(b["line"], b["source"]) for b in shown] == [(line, source) for line in lines]
    stop = debugger_.move("continue")
    assert stop["reason"] == "breakpoint" and stop["hitBreakpointIds"] == [shown[1]["id"]]
    assert debugger_.position() == conflict
    assert stop["description"] == engine.describe(conflict)


def test_line_breakpoints_on_other_sources_are_unverified(debugger: Start, tmp_path: Path) -> None:
    debugger_ = debugger()
    other = {"path": str(tmp_path / "operator.py")}
    foreign = {"path": str(tmp_path / "zzzzzz.p0001.optrace")}
    page_9 = dict(page_source(debugger_), path=page_source(debugger_)["path"].replace("p0001", "p0009"))
    for source, reason in [
        (other, "operator.py is not a timeline page"),
        (foreign, "zzzzzz.p0001.optrace shows session zzzzzz"),
        (page_9, "has no page 9"),
    ]:
        shown = debugger_.body("setBreakpoints", {"source": source, "breakpoints": [{"line": 7}]})[
            "breakpoints"
        ]
        assert shown[0]["verified"] is False and reason in shown[0]["message"]


def test_logpoints_and_hit_conditions(debugger: Start, engine: ReplayEngine) -> None:
    debugger_ = debugger()
    source = page_source(debugger_)
    conflicts = [seq for seq in range(1, engine.total + 1) if engine.operation(seq).status == 409]
    debugger_.body(
        "setBreakpoints",
        {
            "source": source,
            "breakpoints": [{"line": line_of(conflicts[0]), "logMessage": "{verb} {name} -> {status}"}]
            + [{"line": line_of(seq), "hitCondition": "1"} for seq in conflicts[1:3]],
        },
    )
    debugger_.move("continue")
    assert debugger_.position() == conflicts[1]
    logs = [e for e in debugger_.client.events if e["event"] == "output" and "-> 409" in e["body"]["output"]]
    assert [log["body"]["output"] for log in logs] == ["update checkout -> 409\n"]
    assert logs[0]["body"]["line"] == line_of(conflicts[0]) and logs[0]["body"]["category"] == "console"
    assert logs[0]["seq"] < debugger_.last_stop["seq"]


def test_breakpoint_locations(debugger: Start, engine: ReplayEngine) -> None:
    debugger_ = debugger()
    source = page_source(debugger_)
    found = debugger_.body("breakpointLocations", {"source": source, "line": 1, "endLine": 8})["breakpoints"]
    assert found == [{"line": 6}, {"line": 7}, {"line": 8}]
    last = line_of(engine.total)
    found = debugger_.body("breakpointLocations", {"source": source, "line": last, "endLine": last + 50})
    assert found["breakpoints"] == [{"line": last}]
    assert debugger_.body("breakpointLocations", {"source": {"path": "/x.py"}, "line": 1}) == {
        "breakpoints": []
    }


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("Deployment/default/web", SelectorBreakpoint),
        ("Pod/default/*", SelectorBreakpoint),
        ("WebApp", SelectorBreakpoint),
        ("deployments/web", SelectorBreakpoint),
        ("apps.v1-x/*", SelectorBreakpoint),
        (CONFLICT, ConditionBreakpoint),
        ("error", ConditionBreakpoint),
        ("name/2", ConditionBreakpoint),
        ("Pod/a/b/c", ConditionBreakpoint),  # not a selector: verified by the condition compiler
    ],
)
def test_function_breakpoint_names_are_selectors_or_conditions(name: str, kind: type) -> None:
    assert type(function_breakpoint(name, None, None)) is kind


def test_function_breakpoints(debugger: Start, engine: ReplayEngine) -> None:
    debugger_ = debugger()
    body = debugger_.body(
        "setFunctionBreakpoints",
        {"breakpoints": [{"name": CONFLICT}, {"name": "Nothing/here"}, {"name": "kind =="}]},
    )
    shown = body["breakpoints"]
    assert [b["verified"] for b in shown] == [True, False, False]
    assert shown[1]["message"] == "no operation in this recording matches Nothing/here"
    stop = debugger_.move("continue")
    assert stop["reason"] == "function breakpoint" and stop["hitBreakpointIds"] == [shown[0]["id"]]
    assert debugger_.position() == seq_where(engine, CONFLICT)
    expected = seq_where(engine, "kind == 'ConfigMap' and status == 201", after=debugger_.position())
    selector = {"name": "ConfigMap/default/*", "condition": "status == 201"}
    debugger_.body("setFunctionBreakpoints", {"breakpoints": [selector]})
    debugger_.move("continue")
    assert debugger_.position() == expected


def test_exception_filter_stops_at_the_first_409_and_reverse_continue_returns(
    debugger: Start, engine: ReplayEngine
) -> None:
    def configure(d: Debugger) -> None:
        shown = d.body("setExceptionBreakpoints", {"filters": ["conflict"]})["breakpoints"]
        assert shown == [{"id": shown[0]["id"], "verified": True}]

    debugger_ = debugger(configure=configure, stopOnEntry=False)
    first = seq_where(engine, "status == 409")
    stop = debugger_.last_stop["body"]
    assert (stop["reason"], debugger_.position()) == ("exception", first)
    assert stop["description"] == "409 Conflict on Deployment default/checkout"
    info = debugger_.body("exceptionInfo", {"threadId": 1})
    op = engine.operation(first)
    assert info == {
        "exceptionId": "conflict",
        "description": op.message,
        "breakMode": "always",
        "details": {
            "message": op.message,
            "typeName": "Conflict",
            "fullTypeName": "409 Conflict",
            "evaluateName": "error",
        },
    }
    debugger_.move("continue")
    second = seq_where(engine, "status == 409", after=first)
    assert debugger_.position() == second
    stop = debugger_.move("reverseContinue")
    assert stop["reason"] == "exception" and stop["description"].endswith("(backwards)")
    assert debugger_.position() == first


def test_exception_filter_options_and_unknown_filters(debugger: Start, engine: ReplayEngine) -> None:
    debugger_ = debugger()
    shown = debugger_.body(
        "setExceptionBreakpoints",
        {
            "filters": ["bogus"],
            "filterOptions": [
                {"filterId": "not-found", "condition": "kind == 'Service'"},
                {"filterId": "slow", "condition": "(("},
            ],
        },
    )["breakpoints"]
    assert [b["verified"] for b in shown] == [False, True, False]
    assert shown[0]["message"].startswith("unknown error filter 'bogus'")
    debugger_.move("continue")
    assert debugger_.position() == seq_where(engine, "status == 404 and kind == 'Service'")
    assert debugger_.body("exceptionInfo", {"threadId": 1})["exceptionId"] == "not-found"


def test_exception_info_on_a_success_cannot_be_handled(debugger: Start) -> None:
    response = debugger().request("exceptionInfo", {"threadId": 1})
    assert error_of(response)[1].startswith("operation 1 is not an error")


def test_slow_filter_uses_the_launch_threshold(debugger: Start, engine: ReplayEngine) -> None:
    def configure(d: Debugger) -> None:
        d.body("setExceptionBreakpoints", {"filters": ["slow"]})

    debugger_ = debugger(configure=configure, stopOnEntry=False, slowThresholdMs=250)
    assert debugger_.position() == seq_where(engine, "duration_ms >= 250")
    assert debugger_.body("exceptionInfo", {"threadId": 1})["exceptionId"] == "slow"


def test_data_breakpoint_stops_where_the_field_changed(debugger: Start, engine: ReplayEngine) -> None:
    debugger_ = debugger()
    debugger_.move("goto", {"targetId": 8})
    obj = debugger_.scope_variables("Object")
    spec = {v["name"]: v for v in debugger_.variables(obj["spec"]["variablesReference"])}
    template = {v["name"]: v for v in debugger_.variables(spec["template"]["variablesReference"])}
    pod = {v["name"]: v for v in debugger_.variables(template["spec"]["variablesReference"])}
    containers = debugger_.variables(pod["containers"]["variablesReference"])
    info = debugger_.body(
        "dataBreakpointInfo", {"variablesReference": containers[0]["variablesReference"], "name": "image"}
    )
    assert info["description"] == f"{IMAGE} of Deployment default/checkout"
    assert info["accessTypes"] == ["write"] and info["canPersist"] is True
    assert json.loads(info["dataId"]) == {
        "object": ["apps/v1", "deployments", "default", "checkout"],
        "path": IMAGE,
    }
    shown = debugger_.body(
        "setDataBreakpoints", {"breakpoints": [{"dataId": info["dataId"]}, {"dataId": "nonsense"}]}
    )["breakpoints"]
    assert [b["verified"] for b in shown] == [True, False]
    stop = debugger_.move("continue")
    assert stop["reason"] == "data breakpoint"
    assert stop["description"].startswith(f"{IMAGE} of Deployment default/checkout: ")
    changed = next(
        h.seq for h in engine.object_history(CHECKOUT) if any(c.path == IMAGE for c in engine.diff(h.seq))
    )
    assert debugger_.position() == changed
    by_expression = debugger_.body("dataBreakpointInfo", {"name": f"obj.{IMAGE}"})
    assert by_expression["dataId"] == info["dataId"]
    operation = debugger_.scopes()["Operation"]["variablesReference"]
    refused = debugger_.body("dataBreakpointInfo", {"variablesReference": operation, "name": "seq"})
    assert refused["dataId"] is None


# -- scopes, variables, evaluate ---------------------------------------------------------------


def test_scopes_of_an_error(debugger: Start, engine: ReplayEngine) -> None:
    debugger_ = debugger()
    conflict = seq_where(engine, "status == 409")
    debugger_.move("goto", {"targetId": conflict})
    scopes = debugger_.scopes()
    assert list(scopes) == ["Operation", "Request", "Object", "Changes", "Error", "Cluster state"]
    assert scopes["Cluster state"]["expensive"] is True
    error = debugger_.scope_variables("Error")
    assert (error["status"]["value"], error["reason"]["value"]) == ("409", '"Conflict"')
    operation = debugger_.scope_variables("Operation")
    assert operation["kind"]["value"] == '"Deployment"' and operation["thread"]["evaluateName"] == "thread"
    request = debugger_.scope_variables("Request")
    assert request["kind"]["evaluateName"] == "req.kind"
    hexed = debugger_.variables(scopes["Operation"]["variablesReference"], format={"hex": True})
    assert next(v for v in hexed if v["name"] == "status")["value"] == "0x199"


def test_every_evaluate_name_evaluates_to_the_shown_value(debugger: Start) -> None:
    debugger_ = debugger()
    debugger_.move("goto", {"targetId": 21})  # the update that changed the Deployment's image
    scopes = debugger_.scopes()
    checked = 0
    pending = [scopes[name]["variablesReference"] for name in ("Operation", "Object", "Request", "Changes")]
    while pending:
        for variable in debugger_.variables(pending.pop()):
            if variable["variablesReference"]:
                pending.append(variable["variablesReference"])
            if "evaluateName" not in variable or " -> " in variable["value"]:
                continue
            result = debugger_.evaluate(variable["evaluateName"], "watch")
            assert result["success"], (variable, result.get("message"))
            assert result["body"]["result"] == variable["value"], variable
            checked += 1
    assert checked > 40


def test_changes_scope(debugger: Start, engine: ReplayEngine) -> None:
    debugger_ = debugger()
    debugger_.move("goto", {"targetId": 21})
    changes = debugger_.scope_variables("Changes")
    image = changes[IMAGE]
    old = next(c for c in engine.diff(21) if c.path == IMAGE)
    assert image["value"] == f'"{old.old}" -> "{old.new}"'
    assert image["evaluateName"] == f"obj.{IMAGE}"
    assert debugger_.evaluate(f"obj.{IMAGE}")["body"]["result"] == f'"{old.new}"'


def test_cluster_state_is_paged(debugger: Start, engine: ReplayEngine) -> None:
    debugger_ = debugger()
    debugger_.move("goto", {"targetId": engine.total})
    groups = debugger_.scope_variables("Cluster state")
    pods = next(v for name, v in groups.items() if name.startswith("pods "))
    count = pods["indexedVariables"]
    assert count == len(engine.state(engine.total).of("pods"))
    page = debugger_.variables(pods["variablesReference"], filter="indexed", start=1, count=2)
    keys = engine.state(engine.total).of("pods")
    assert [v["name"] for v in page] == [f"{k.namespace}/{k.name}" for k in keys[1:3]]
    assert page[0]["value"].startswith("Pod default/")
    assert debugger_.variables(pods["variablesReference"], filter="named") == []


def test_cluster_state_objects_have_evaluate_names(debugger: Start, engine: ReplayEngine) -> None:
    """Add to Watch on an object of the Cluster state (or one of its fields) watches that object."""
    debugger_ = debugger()
    debugger_.move("goto", {"targetId": engine.total})
    checked = 0
    for group in debugger_.scope_variables("Cluster state").values():
        for variable in debugger_.variables(group["variablesReference"]):
            if variable["name"].startswith("/"):  # a discovery document (GET /apis), not an object
                assert "evaluateName" not in variable
                continue
            assert variable["evaluateName"].startswith("state[")
            fields = debugger_.variables(variable["variablesReference"])
            for shown in [variable, *fields]:
                result = debugger_.evaluate(shown["evaluateName"], "watch")
                assert result["success"], (shown, result.get("message"))
                assert result["body"]["result"] == shown["value"], shown
                checked += 1
    assert checked > 50
    web = engine.state(engine.total).of("deployments")[0]
    replicas = debugger_.evaluate(f'state["Deployment/{web.namespace}/{web.name}"].spec.replicas', "watch")
    expected = engine.state(engine.total).object(web)["spec"]["replicas"]  # type: ignore[index, call-overload]
    assert replicas["body"]["result"] == str(expected)


def test_checkpoints_built_by_a_jump_are_kept_in_the_recording(debugger: Start, tmp_path: Path) -> None:
    database = tmp_path / "long.db"
    with Store.open(database, create=True) as store:
        session = store.create_session(name="long", started_at=1_700_000_000.0, command="pytest")
        ops = [
            NewOperation(
                ts=1_700_000_000.0 + seq,
                duration_us=1000,
                thread="worker-1",
                verb="get",
                api_version="v1",
                resource="configmaps",
                kind="ConfigMap",
                namespace="default",
                name=f"config-{seq % 7}",
                status=200,
                response=orjson.dumps(
                    {"kind": "ConfigMap", "metadata": {"name": f"config-{seq % 7}", "namespace": "default"},
                     "data": {"seq": str(seq)}}
                ),
            )
            for seq in range(1, 1301)
        ]  # fmt: skip
        store.append(session, 1, ops)
        store.end_session(session, 1_700_001_400.0)
    debugger_ = debugger(database=str(database))
    debugger_.move("goto", {"targetId": 1300})
    assert len(debugger_.scope_variables("Cluster state")) == 1  # the state there: folded, checkpointed
    with Store.open(database) as store:
        assert store.checkpoint_seqs(store.find_session("latest")) == [500, 1000]


def test_handles_die_when_the_cursor_moves(debugger: Start) -> None:
    debugger_ = debugger()
    reference = debugger_.scopes()["Operation"]["variablesReference"]
    debugger_.move("next")
    kind, message = error_of(debugger_.request("variables", {"variablesReference": reference}))
    assert kind == ErrorKind.CANT_HANDLE and "not valid (any more)" in message


def test_evaluate_contexts(debugger: Start, engine: ReplayEngine) -> None:
    debugger_ = debugger()
    debugger_.move("goto", {"targetId": 21})
    watch = debugger_.evaluate("obj.spec.replicas")["body"]
    assert watch == {
        "result": str(engine.context(21)["obj"]["spec"]["replicas"]),
        "variablesReference": 0,
        "type": "number",
    }
    assert debugger_.evaluate("status", "hover")["body"]["result"] == "200"
    assert debugger_.evaluate("status", "hover", format={"hex": True})["body"]["result"] == "0xc8"
    assert debugger_.evaluate("UPDATE", "hover")["success"] is False
    spec = debugger_.evaluate("obj.spec", "repl")["body"]
    children = {v["name"]: v for v in debugger_.variables(spec["variablesReference"])}
    assert children["replicas"]["evaluateName"] == "obj.spec.replicas"
    built = debugger_.evaluate("[c.image for c in obj.spec.template.spec.containers]")["body"]
    assert built["indexedVariables"] == 1
    item = debugger_.variables(built["variablesReference"])[0]
    assert item["evaluateName"] == "([c.image for c in obj.spec.template.spec.containers])[0]"
    clipboard = debugger_.evaluate("obj.metadata.labels", "clipboard")["body"]["result"]
    assert json.loads(clipboard) == engine.context(21)["obj"]["metadata"]["labels"]
    kind, message = error_of(debugger_.evaluate("obj.spec.(", "watch"))
    assert kind == ErrorKind.CANT_HANDLE and message.startswith("invalid condition at column")
    assert debugger_.evaluate("state", "watch")["body"]["result"].startswith("cluster state: ")


def test_repl_commands(debugger: Start, engine: ReplayEngine) -> None:
    debugger_ = debugger()
    result = debugger_.evaluate(":goto 42", "repl")["body"]["result"]
    assert result == f"seq 42: {engine.describe(42)}"
    stop = debugger_.wait_stopped()
    assert stop["reason"] == "goto" and debugger_.position() == 42
    found = seq_where(engine, "status == 404", after=42)
    assert (
        debugger_.evaluate(":find status == 404", "repl")["body"]["result"]
        == f"seq {found}: {engine.describe(found)}"
    )
    assert debugger_.wait_stopped()["reason"] == "goto" and debugger_.position() == found
    assert debugger_.evaluate(":find status == 999", "repl")["body"]["result"] == (
        f"no operation after seq {found} matches status == 999"
    )
    assert error_of(debugger_.evaluate(":find ((", "repl"))[1].startswith("invalid condition")
    debugger_.move("goto", {"targetId": 21})
    assert f"{IMAGE}: " in debugger_.evaluate(":diff", "repl")["body"]["result"]
    stats = debugger_.evaluate(":stats", "repl")["body"]["result"]
    assert f"operations: {engine.total:,}" in stats and "hot loop" in stats
    assert ":goto SEQ" in debugger_.evaluate(":help", "repl")["body"]["result"]
    assert error_of(debugger_.evaluate(":nope", "repl"))[1].startswith("unknown command :nope")
    assert error_of(debugger_.evaluate(":goto x", "repl"))[1].startswith(":goto takes a seq")
    assert error_of(debugger_.evaluate(":goto 42", "watch"))[1].startswith("invalid condition")


def test_completions(debugger: Start) -> None:
    debugger_ = debugger()
    debugger_.move("goto", {"targetId": 21})

    def labels(text: str, column: int | None = None) -> dict[str, dict[str, Any]]:
        body = debugger_.body(
            "completions", {"text": text, "column": (len(text) + 1) if column is None else column}
        )
        return {item["label"]: item for item in body["targets"]}

    spec = labels("obj.spec.")
    assert {"replicas", "selector", "template", "keys"} <= set(spec)
    assert spec["replicas"] == {
        "label": "replicas",
        "text": "replicas",
        "type": "property",
        "detail": "2",
        "start": 10,
        "length": 0,
    }
    names = labels("x and sta")
    assert {"status", "state", "startswith"} <= set(names) and "kind" not in names
    assert names["startswith"]["text"] == "startswith(" and names["status"]["start"] == 7
    assert set(labels(":")) == {":goto", ":find", ":stats", ":diff", ":help"}
    label = labels("obj.metadata.labels.")
    assert label["app"]["text"] == "app"
    annotations = labels("obj.spec.template.spec.containers[0].image.")
    assert "startswith" in annotations
    assert labels("nothing.at.") == {}


def test_loaded_sources_and_source(debugger: Start, engine: ReplayEngine) -> None:
    debugger_ = debugger()
    source = page_source(debugger_)
    assert debugger_.body("loadedSources") == {"sources": [source]}
    content = debugger_.body("source", {"source": source, "sourceReference": 0})["content"]
    assert content == Path(source["path"]).read_text()
    assert error_of(debugger_.request("source", {"sourceReference": 5}))[1].startswith(
        "the source has no path"
    )


def test_analysis_arrives_in_the_debug_console(debugger: Start) -> None:
    debugger_ = debugger()

    def analysed() -> dict[str, Any] | None:
        outputs = (e for e in debugger_.client.events if e["event"] == "output")
        return next((e for e in outputs if re.match(r"opreplay: \d+ hot loops?:", e["body"]["output"])), None)

    event = debugger_.client._wait(analysed, "the analysis", 30)
    assert "WebApp default/checkout" in event["body"]["output"]
    assert "threads: MainThread" in event["body"]["output"]


def test_terminate_ends_the_session(debugger: Start) -> None:
    debugger_ = debugger()
    assert debugger_.request("terminate")["success"]
    debugger_.client.wait_event("terminated")
    assert debugger_.item.wait_ended().reason == "terminate"


class _Collections:
    """The cyclic collections the process runs while installed: (generation, on the idle hook)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.runs: list[tuple[int, bool]] = []
        self._idle = False
        collect = dispatch._collect_garbage

        def collect_when_idle() -> None:
            self._idle = True
            try:
                collect()
            finally:
                self._idle = False

        monkeypatch.setattr(dispatch, "_collect_garbage", collect_when_idle)

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.runs.append((info["generation"], self._idle))


@pytest.fixture
def collections(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Collections]:
    watch = _Collections(monkeypatch)
    gc.callbacks.append(watch)
    yield watch
    gc.callbacks.remove(watch)


def test_steps_never_wait_for_a_garbage_collection(debugger: Start, collections: _Collections) -> None:
    """A collection of the adapter's heap took several times a step: it runs when the client is
    quiet, never in the middle of what VS Code asks on F10."""
    session = debugger()
    collections.runs.clear()  # launching collects once, to freeze what lives as long as the session
    for command in ["next"] * 40 + ["stepBack"] * 40:
        session.move(command)
        session.scope_variables("Object")
    assert [run for run in collections.runs if not run[1]] == []


def test_garbage_is_collected_once_the_client_is_quiet(debugger: Start, collections: _Collections) -> None:
    session = debugger()
    for _ in range(5000):  # cycles only the collector can free
        cycle: list[Any] = []
        cycle.append(cycle)
    session.move("next")
    deadline = time.monotonic() + 5
    while (2, True) not in collections.runs and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (2, True) in collections.runs
