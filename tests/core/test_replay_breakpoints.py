"""Breakpoints on a small, readable recording: each kind forwards and backwards, options, errors.

The recording (seq: what happens):
  1 list Deployments in default (web replicas 1, api replicas 2)
  2 get web              3 update web -> 409       4 get web (rv 2)
  5 update web replicas 3                          6 watch MODIFIED web (same body as 5)
  7 get missing -> 404   8 create Pod web-abc      9 get ConfigMap kube-system/cfg -> 500
 10 get Secret s -> status 0 "connection timed out"
 11 patch web replicas 5, 2.5 s (slow)            12 delete Pod web-abc
 13 get Secret kube-system/token -> 403            14 watch DELETED web
 15..22 update Deployment default/hot eight times (a hot loop with window 10, 5 writes)
 23 get ConfigMap default/cfg
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from test_replay_support import Recording, body

from opreplay.model import ObjectKey
from opreplay.replay import (
    ERROR_FILTERS,
    Breakpoint,
    ConditionBreakpoint,
    ErrorBreakpoint,
    FieldWatch,
    HitCondition,
    ReplayEngine,
    ReplayError,
    SelectorBreakpoint,
    SeqBreakpoint,
    Stop,
    detect_hot_loops,
)
from opreplay.replay.loops import LoopDetector
from opreplay.store import Store

WEB = ObjectKey("apps/v1", "deployments", "default", "web")
API = ObjectKey("apps/v1", "deployments", "default", "api")


def scenario() -> Recording:
    r = Recording()
    r.list(
        "deployments",
        "default",
        [body("deployments", "default", "web", 1, 1), body("deployments", "default", "api", 1, 2)],
    )
    r.get("deployments", "default", "web", 1, 1)
    r.conflict("deployments", "default", "web")
    r.get("deployments", "default", "web", 2, 1)
    r.write("update", "deployments", "default", "web", 3, 3)
    r.event("deployments", "MODIFIED", "default", "web", 3, 3)
    r.get_missing("deployments", "default", "missing")
    r.write("create", "pods", "default", "web-abc", 10)
    r.error("configmaps", "kube-system", "cfg", 500, reason="InternalError")
    r.error("secrets", "default", "s", 0, message="connection timed out")
    r.write("patch", "deployments", "default", "web", 4, 5, duration_us=2_500_000)
    r.delete("pods", "default", "web-abc")
    r.error("secrets", "kube-system", "token", 403, reason="Forbidden")
    r.event("deployments", "DELETED", "default", "web", 5, 5)
    for i in range(8):
        r.write("update", "deployments", "default", "hot", 100 + i)
    r.get("configmaps", "default", "cfg", 1)
    assert len(r.ops) == 23
    return r


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path, _ = scenario().save(tmp_path / "scenario.db")
    return path


@pytest.fixture
def engine(recording: Path) -> ReplayEngine:
    engine = ReplayEngine.open(recording, loop_window=10, loop_min_writes=5, slow_threshold_ms=1000)
    yield engine  # type: ignore[misc]
    engine.close()


def run_all(engine: ReplayEngine, reverse: bool = False) -> tuple[list[int], Stop]:
    seqs = []
    while True:
        stop = engine.run(reverse=reverse)
        if stop.reason in ("end", "start", "pause"):
            return seqs, stop
        seqs.append(stop.seq)


def stops_both_ways(engine: ReplayEngine, breakpoint: Breakpoint) -> tuple[list[int], list[int]]:
    engine.reset()
    (status,) = engine.set_breakpoints([breakpoint])
    assert status.verified, status.message
    forward, end = run_all(engine)
    assert end.reason == "end" and end.seq == engine.total and end.description == "end of recording"
    backward, start = run_all(engine, reverse=True)
    assert start.reason == "start" and start.seq == 1 and start.description == "start of recording"
    return forward, backward


# -- moving and describing -------------------------------------------------------------------------


def test_open_positions_on_the_first_operation(engine: ReplayEngine) -> None:
    assert (engine.position, engine.total) == (1, 23)
    assert engine.last_stop.reason == "entry"
    assert engine.current.verb == "list"


def test_steps_describe_operations_and_stop_at_the_ends(engine: ReplayEngine) -> None:
    stop = engine.step(2)
    assert (stop.reason, stop.seq, stop.description) == ("step", 3, "409 Conflict on Deployment default/web")
    assert engine.step().description == "get Deployment default/web"
    assert engine.goto(14).description == "watch DELETED Deployment default/web"
    assert engine.goto(10).description == "transport error on Secret default/s"
    assert engine.goto(10).backwards is False and engine.goto(2).backwards is True
    assert engine.step(100).reason == "end" and engine.position == 23
    assert engine.step().reason == "end"
    assert engine.back(100).reason == "start" and engine.position == 1
    assert engine.back().reason == "start"
    assert engine.reset().reason == "entry"
    with pytest.raises(ReplayError, match="outside the recording"):
        engine.goto(24)


def test_state_diff_and_objects_at_the_cursor(engine: ReplayEngine) -> None:
    engine.goto(5)
    state = engine.state()
    assert set(state) == {WEB, API}
    assert state.object(WEB)["spec"]["replicas"] == 3
    changes = {c.path: (c.old, c.new) for c in engine.diff()}
    assert changes == {"metadata.resourceVersion": ("2", "3"), "spec.replicas": (1, 3)}
    op = engine.current
    assert engine.object_before(op)["spec"]["replicas"] == 1
    assert engine.object_after(op)["spec"]["replicas"] == 3
    assert engine.body(op, "request")["spec"]["replicas"] == 3
    assert engine.diff(3) == []  # a conflict changes nothing
    assert engine.diff(6) == []  # the watch event echoes what the update returned
    list_changes = engine.diff(1)
    assert any(c.path == "deployments/default/web:spec.replicas" and c.new == 1 for c in list_changes)
    engine.goto(14)
    assert WEB not in engine.state() and engine.object_after(engine.current) is None
    assert [h.seq for h in engine.object_history(WEB)] == [1, 2, 4, 5, 6, 11, 14]


# -- each kind, forwards and backwards -------------------------------------------------------------


def test_seq_breakpoint(engine: ReplayEngine) -> None:
    assert stops_both_ways(engine, SeqBreakpoint(5)) == ([5], [5])
    engine.reset()
    engine.set_breakpoints([SeqBreakpoint(5)])
    stop = engine.run()
    assert (stop.reason, stop.seq, stop.description) == ("breakpoint", 5, "update Deployment default/web")
    assert stop.breakpoints == (engine.breakpoints()[0].id,)


@pytest.mark.parametrize(
    ("selector", "seqs"),
    [
        ("Deployment/default/web", [2, 3, 4, 5, 6, 11, 14]),
        ("deployments/web", [2, 3, 4, 5, 6, 11, 14]),
        ("deploy*/*/w?b", [2, 3, 4, 5, 6, 11, 14]),
        ("Pod/default/*", [8, 12]),
        ("*/kube-system/*", [9, 13]),
        ("Deployment/default/*", [2, 3, 4, 5, 6, 7, 11, 14, *range(15, 23)]),  # the list at 1 is the start
        ("ConfigMap", [9, 23]),
    ],
)
def test_selector_breakpoint(engine: ReplayEngine, selector: str, seqs: list[int]) -> None:
    forward, backward = stops_both_ways(engine, SelectorBreakpoint(selector))
    assert forward == [s for s in seqs if s > 1]
    assert backward == [s for s in reversed(seqs) if s < 23] + (
        [1] if selector == "Deployment/default/*" else []
    )


@pytest.mark.parametrize(
    ("filter_id", "seqs"),
    [
        ("error", [3, 7, 9, 10, 13]),
        ("conflict", [3]),
        ("not-found", [7]),
        ("forbidden", [13]),
        ("server-error", [9]),
        ("timeout", [10]),
        ("slow", [11]),
        ("loop", [19, 20, 21, 22]),
    ],
)
def test_error_breakpoint(engine: ReplayEngine, filter_id: str, seqs: list[int]) -> None:
    forward, backward = stops_both_ways(engine, ErrorBreakpoint(filter_id))
    assert forward == seqs
    assert backward == list(reversed(seqs))
    engine.reset()
    engine.set_breakpoints([ErrorBreakpoint(filter_id)])
    stop = engine.run()
    assert stop.reason == "exception"
    if filter_id == "conflict":
        assert stop.description == "409 Conflict on Deployment default/web"
    if filter_id == "slow":
        assert stop.description == "slow: patch Deployment default/web took 2500 ms"
    if filter_id == "loop":
        assert stop.description.startswith("hot loop: update Deployment default/hot")


def test_error_filters_are_listed_with_stable_ids() -> None:
    assert [f.id for f in ERROR_FILTERS] == [
        "error",
        "conflict",
        "not-found",
        "forbidden",
        "server-error",
        "timeout",
        "slow",
        "loop",
    ]


@pytest.mark.parametrize(
    ("expression", "seqs"),
    [
        ("status == 404", [7]),
        ("obj.spec.replicas == 3", [5, 6]),
        ("old.spec.replicas == 1 and obj.spec.replicas == 3", [5]),
        ("old.spec.replicas == 3 and obj.spec.replicas == 5", [11]),
        ("kind == 'Pod' and obj is None and old is not None", [12]),
        ("len(state) == 3 and seq < 20", [8, 9, 10, 11]),
        ("verb == 'watch-event' and event == 'DELETED'", [14]),
        ("error is not None and 'timed out' in error", [10]),
        ("duration_ms > 2000", [11]),
        ("req.spec.replicas == 5", [11]),
    ],
)
def test_condition_breakpoint(engine: ReplayEngine, expression: str, seqs: list[int]) -> None:
    assert stops_both_ways(engine, ConditionBreakpoint(expression)) == (seqs, list(reversed(seqs)))


def test_conditions_on_index_answered_breakpoints_read_old_and_obj(engine: ReplayEngine) -> None:
    bp = SelectorBreakpoint(
        "Deployment/default/web", condition="old.spec.replicas == 3 and obj.spec.replicas == 5"
    )
    assert stops_both_ways(engine, bp) == ([11], [11])


def test_field_watch(engine: ReplayEngine) -> None:
    assert stops_both_ways(engine, FieldWatch(WEB, "spec.replicas")) == ([5, 11, 14], [14, 11, 5, 1])
    engine.reset()
    engine.set_breakpoints([FieldWatch(WEB, "spec.replicas")])
    stop = engine.run()
    assert stop.reason == "data-breakpoint"
    assert stop.description == "spec.replicas of Deployment default/web: 1 → 3"
    # an object seen only as a list item
    assert stops_both_ways(engine, FieldWatch(API, "spec.replicas")) == ([], [1])
    assert stops_both_ways(engine, FieldWatch(WEB, "metadata.resourceVersion")) == (
        [4, 5, 11, 14],
        [14, 11, 5, 4, 1],
    )
    with_condition = FieldWatch(WEB, "spec.replicas", condition="obj.spec.replicas == 5")
    assert stops_both_ways(engine, with_condition) == ([11], [11])


def test_several_kinds_together_stop_at_the_first_and_name_every_hit(engine: ReplayEngine) -> None:
    statuses = engine.set_breakpoints(
        [
            ErrorBreakpoint("conflict"),
            SeqBreakpoint(3),
            ConditionBreakpoint("status == 404"),
            FieldWatch(WEB, "spec.replicas"),
        ]
    )
    stop = engine.run()
    assert stop.seq == 3 and stop.reason == "breakpoint"
    assert set(stop.breakpoints) == {statuses[0].id, statuses[1].id}
    assert [engine.run().seq for _ in range(3)] == [5, 7, 11]
    assert engine.goto(7).seq == 7
    stop = engine.run(reverse=True)
    assert stop.seq == 5 and stop.reason == "data-breakpoint"
    assert engine.run(reverse=True).reason == "breakpoint"  # 3: the seq breakpoint outranks the filter


# -- options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hit_condition", "seqs"),
    [
        ("3", [4]),  # a bare count is the N-th hit (debugpy's reading)
        ("== 3", [4]),
        (">= 5", [6, 11, 14]),
        ("> 5", [11, 14]),
        ("< 3", [2, 3]),
        ("<= 1", [2]),
        ("% 3", [4, 11]),
    ],
)
def test_hit_conditions(engine: ReplayEngine, hit_condition: str, seqs: list[int]) -> None:
    engine.set_breakpoints([SelectorBreakpoint("Deployment/default/web", hit_condition=hit_condition)])
    forward, _ = run_all(engine)
    assert forward == seqs


def test_hit_counts_survive_resending_and_reset_clears_them(engine: ReplayEngine) -> None:
    bp = SelectorBreakpoint("Deployment/default/web", hit_condition="% 2")
    (first,) = engine.set_breakpoints([bp])
    assert engine.run().seq == 3
    (again,) = engine.set_breakpoints([bp, SeqBreakpoint(20)])[:1]
    assert again.id == first.id and engine.hit_count(first.id) == 2
    assert engine.run().seq == 5
    engine.reset()
    assert engine.hit_count(first.id) == 0
    assert engine.run().seq == 3


def test_log_messages_log_instead_of_stopping(engine: ReplayEngine) -> None:
    (logpoint, stopper) = engine.set_breakpoints(
        [
            SelectorBreakpoint("Deployment/default/web", log_message="{seq}:{verb}:{obj.spec.replicas}"),
            SeqBreakpoint(11),
        ]
    )
    stop = engine.run()
    assert stop.seq == 11 and stop.breakpoints == (stopper.id,)
    assert [(m.seq, m.breakpoint, m.text) for m in stop.logs] == [
        (2, logpoint.id, "2:get:1"),
        (3, logpoint.id, "3:update:1"),
        (4, logpoint.id, "4:get:1"),
        (5, logpoint.id, "5:update:3"),
        (6, logpoint.id, "6:watch-event:3"),
        (11, logpoint.id, "11:patch:5"),
    ]
    stop = engine.run()
    assert stop.reason == "end" and [m.text for m in stop.logs] == ["14:watch-event:None"]
    engine.set_breakpoints([ConditionBreakpoint("error is not None", log_message="{error}")])
    stop = engine.run(reverse=True)
    assert stop.reason == "start"
    assert [m.seq for m in stop.logs] == [13, 10, 9, 7, 3]
    assert stop.logs[-1].text.startswith("409 Conflict: Operation cannot be fulfilled")


@pytest.mark.parametrize(
    ("breakpoint", "message"),
    [
        (ConditionBreakpoint("obj.spec.replicas >"), "invalid condition"),
        (ConditionBreakpoint("__import__('os')"), "invalid condition"),
        (SeqBreakpoint(5, condition="open('x')"), "invalid condition"),
        (SeqBreakpoint(5, hit_condition="often"), "invalid hit condition"),
        (SeqBreakpoint(5, hit_condition="% 0"), "invalid hit condition"),
        (SeqBreakpoint(5, log_message="{obj.spec"), "invalid template"),
        (SeqBreakpoint(99), "outside the recording"),
        (ErrorBreakpoint("bogus"), "unknown error filter 'bogus'"),
        (SelectorBreakpoint("a/b/c/d"), "invalid selector"),
        (
            SelectorBreakpoint("Deployment/default/nothing-like-this"),
            "no operation in this recording matches",
        ),
        (FieldWatch(WEB, "spec..replicas"), "unexpected '.'"),
        (
            FieldWatch(ObjectKey("v1", "pods", "default", "ghost"), "spec"),
            "no operation in this recording touches",
        ),
    ],
)
def test_invalid_breakpoints_are_unverified_with_a_message(
    engine: ReplayEngine, breakpoint: Breakpoint, message: str
) -> None:
    statuses = engine.set_breakpoints([breakpoint, SeqBreakpoint(8)])
    assert not statuses[0].verified and message in (statuses[0].message or "")
    assert statuses[1].verified and statuses[1].message is None
    assert engine.run().seq == 8  # the invalid one is ignored, the valid one works


def test_ids_are_stable_and_groups_are_replaced_independently(engine: ReplayEngine) -> None:
    a = engine.set_breakpoints([SeqBreakpoint(3), SeqBreakpoint(5)], group="source")
    b = engine.set_breakpoints([ErrorBreakpoint("conflict")], group="exception")
    again = engine.set_breakpoints([SeqBreakpoint(5), SeqBreakpoint(7)], group="source")
    assert again[0].id == a[1].id and again[1].id not in {s.id for s in a + b}
    assert {s.id for s in engine.breakpoints()} == {again[0].id, again[1].id, b[0].id}
    assert engine.breakpoint(b[0].id) == b[0]
    engine.set_breakpoints([], group="source")
    assert [s.id for s in engine.breakpoints()] == [b[0].id]


def test_hit_condition_parsing() -> None:
    assert HitCondition.parse(" 4 ") == HitCondition("==", 4)
    assert HitCondition.parse(">=10") == HitCondition(">=", 10)
    assert [n for n in range(1, 10) if HitCondition.parse("%3")(n)] == [3, 6, 9]
    with pytest.raises(ValueError):
        HitCondition.parse(">= x")


# -- running ---------------------------------------------------------------------------------------


def test_run_without_breakpoints_goes_to_the_ends(engine: ReplayEngine) -> None:
    stop = engine.run()
    assert (stop.reason, stop.seq, stop.description) == ("end", 23, "end of recording")
    stop = engine.run(reverse=True)
    assert (stop.reason, stop.seq, stop.backwards) == ("start", 1, True)


def test_next_on_object_steps_to_the_same_object(engine: ReplayEngine) -> None:
    engine.goto(5)
    assert engine.next_on_object().seq == 6
    assert engine.next_on_object().seq == 11
    assert engine.next_on_object(reverse=True).seq == 6


def _long_recording(tmp_path: Path, n: int) -> Path:
    r = Recording()
    for i in range(n):
        r.write("update", "deployments", "default", f"d{i % 50}", i, i % 7)
    r.error("deployments", "default", "d1", 409, reason="Conflict")
    path, _ = r.save(tmp_path / "long.db")
    return path


def test_cancel_pauses_a_long_scan_where_it_got_to(tmp_path: Path) -> None:
    path = _long_recording(tmp_path, 20_000)
    cancel = threading.Event()
    fractions: list[float] = []

    def progress(fraction: float) -> None:
        fractions.append(fraction)
        if len(fractions) == 2:
            cancel.set()

    with ReplayEngine.open(path) as engine:
        engine.set_breakpoints([ConditionBreakpoint("obj.spec.replicas == 99")])
        stop = engine.run(progress=progress, cancel=cancel)
        assert stop.reason == "pause" and 1 < stop.seq < engine.total and engine.position == stop.seq
        assert stop.description.startswith("paused at ")
        assert fractions == sorted(fractions) and 0 < fractions[-1] < 1
        cancel.clear()
        fractions.clear()
        stop = engine.run(progress=progress)
        assert stop.reason == "end" and fractions[-1] == 1.0
        # the state picked up from the scan is the real one
        assert engine.state().object(ObjectKey("apps/v1", "deployments", "default", "d49"))["spec"][
            "replicas"
        ] == (19_999 % 7)


def test_index_answered_runs_report_progress_and_cancel(tmp_path: Path) -> None:
    path = _long_recording(tmp_path, 5_000)
    with ReplayEngine.open(path) as engine:
        engine.set_breakpoints([ErrorBreakpoint("conflict")])
        fractions: list[float] = []
        stop = engine.run(progress=fractions.append)
        assert stop.seq == 5_001 and stop.reason == "exception"
        assert fractions and fractions == sorted(fractions) and all(0 < f < 1 for f in fractions)
        cancelled = threading.Event()
        cancelled.set()
        stop = engine.run(reverse=True, cancel=cancelled)
        assert stop.reason == "pause" and stop.seq == 5_001


def test_loop_detector_and_hot_loops(recording: Path) -> None:
    detector = LoopDetector(window=4, min_writes=3)
    flags = [detector.feed(seq, "x" if seq % 2 else "y", "update") for seq in range(1, 9)]
    assert flags == [False] * 8  # three writes never fit in four operations
    detector = LoopDetector(window=4, min_writes=2)
    verbs = ["update", "get", "patch", "get", "get", "get", "update"]
    assert [detector.feed(seq, "x", verb) for seq, verb in enumerate(verbs, 1)] == [
        False, False, True, False, False, False, False
    ]  # fmt: skip
    with Store.open(recording) as store:
        operations = store.iter_operations(store.find_session("latest"))
        loops = detect_hot_loops(operations, window=10, min_writes=5)
    assert [(str(loop.key), loop.first_seq, loop.last_seq, loop.writes) for loop in loops] == [
        ("deployments.apps/v1 default/hot", 19, 22, 8)
    ]
