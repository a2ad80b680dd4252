"""Condition breakpoints answered from the indexes (`replay.prefilter`) stop exactly where a scan would.

A condition's top-level `and` operands over object fields, `status` or `verb` become index filters;
the whole condition is still evaluated on what the indexes return, with `obj` and `old` from a fold
of only the operations that decide those objects. Every test compares the engine against the same
engine with the analysis switched off (a plain scan of every operation) and, for the stops, against
the condition evaluated on every operation's context: forwards and backwards, with hit conditions,
log messages, other breakpoints set alongside, checkpoint intervals that make reverse runs rebuild
the state, and batch sizes so small that every run crosses many windows.
"""

from __future__ import annotations

import json
import os
import random
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_replay_support import Recording, body, status_body

from opreplay.conditions import FieldEquality, compile_condition, conjuncts, field_equalities
from opreplay.replay import (
    Breakpoint,
    ConditionBreakpoint,
    ErrorBreakpoint,
    ReplayEngine,
    SelectorBreakpoint,
    SeqBreakpoint,
    Stop,
)
from opreplay.replay import engine as engine_module
from opreplay.replay.prefilter import BodyScreen, analyse
from opreplay.replay.screening import ScreenHelper
from opreplay.store import Store, bodies

OBJECTS = [
    ("deployments", "default", "web"),
    ("deployments", "default", "api"),
    ("deployments", "prod", "web"),
    ("pods", "default", "a"),
    ("pods", "prod", "b"),
    ("configmaps", "default", "cfg"),
    ("namespaces", "", "ns1"),
]

# -- sessions --------------------------------------------------------------------------------------


def _replicas(resource: str, rv: int) -> int | None:
    return rv if resource == "deployments" else None


def _apply(r: Recording, action: tuple[Any, ...]) -> None:
    what = action[0]
    if what == "get":
        _, (res, ns, name), rv = action
        r.get(res, ns, name, rv, _replicas(res, rv))
    elif what == "get404":
        _, (res, ns, name) = action
        r.get_missing(res, ns, name)
    elif what in ("create", "update", "patch"):
        _, (res, ns, name), rv = action
        r.write(what, res, ns, name, rv, _replicas(res, rv), duration_us=rv * 700_000)
    elif what == "conflict":
        _, (res, ns, name), verb = action
        r.conflict(res, ns, name, verb)
    elif what == "status":
        _, (res, ns, name), rv = action
        r.write("patch", res, ns, name, rv, None, subresource="status")
    elif what == "generate":  # a create named by the server: the row has no name
        _, (res, ns, name), rv = action
        data = body(res, ns, name, rv, _replicas(res, rv))
        r.add(res, "create", ns, "", status=201, request=data, response=data)
    elif what == "delete":
        _, (res, ns, name), status = action
        r.delete(res, ns, name, status)
    elif what == "list":
        _, res, ns, chosen = action
        items = [
            body(res, o[1], o[2], rv, _replicas(res, rv))
            for o, rv in chosen
            if o[0] == res and (ns == "" or o[1] == ns)
        ]
        r.list(res, ns, items)
    elif what == "event":
        _, event, (res, ns, name), rv, named = action
        r.event(res, event, ns, name, rv, _replicas(res, rv), named=named)
    elif what == "error":
        _, (res, ns, name), status = action
        r.error(
            res,
            ns,
            name,
            status,
            verb="update",
            message="connection timed out" if status == 0 else "boom",
            response=status_body(status, "Err", "boom") if status else None,
        )
    else:  # pragma: no cover
        raise AssertionError(action)


objects = st.sampled_from(OBJECTS)
versions = st.integers(min_value=1, max_value=4)
actions = st.one_of(
    st.tuples(st.just("get"), objects, versions),
    st.tuples(st.just("get404"), objects),
    st.tuples(st.sampled_from(["create", "update", "patch"]), objects, versions),
    st.tuples(st.just("conflict"), objects, st.sampled_from(["update", "patch"])),
    st.tuples(st.just("status"), objects, versions),
    st.tuples(st.just("generate"), objects, versions),
    st.tuples(st.just("delete"), objects, st.sampled_from([200, 404])),
    st.tuples(
        st.just("list"),
        st.sampled_from(["deployments", "pods"]),
        st.sampled_from(["default", "prod", ""]),
        st.lists(st.tuples(objects, versions), max_size=4),
    ),
    st.tuples(
        st.just("event"), st.sampled_from(["ADDED", "MODIFIED", "DELETED"]), objects, versions, st.booleans()
    ),
    st.tuples(st.just("error"), objects, st.sampled_from([500, 403, 0])),
)
sessions = st.lists(actions, min_size=1, max_size=40)


def _random_session(rng: random.Random, n: int) -> list[tuple[Any, ...]]:
    """`sessions`, drawn with the random module (for a session too long for hypothesis to build)."""
    session: list[tuple[Any, ...]] = []
    for _ in range(n):
        what = rng.choice(["get", "get", "update", "patch", "event", "list", "conflict", "get404", "other"])
        obj, rv = rng.choice(OBJECTS), rng.randint(1, 4)
        if what in ("get", "update", "patch"):
            session.append((what, obj, rv))
        elif what == "event":
            session.append(
                ("event", rng.choice(["ADDED", "MODIFIED", "DELETED"]), obj, rv, rng.random() < 0.8)
            )
        elif what == "list":
            chosen = [(rng.choice(OBJECTS), rng.randint(1, 4)) for _ in range(3)]
            session.append(("list", rng.choice(["deployments", "pods"]), rng.choice(["default", ""]), chosen))
        elif what == "conflict":
            session.append(("conflict", obj, "update"))
        elif what == "get404":
            session.append(("get404", obj))
        else:
            session.append(rng.choice([("generate", obj, rv), ("delete", obj, 200), ("error", obj, 500)]))
    return session


@contextmanager
def _saved(session: list[tuple[Any, ...]]) -> Iterator[Path]:
    r = Recording()
    for action in session:
        _apply(r, action)
    with tempfile.TemporaryDirectory() as folder:
        path, _ = r.save(Path(folder) / "rec.db")
        yield path


# -- conditions ------------------------------------------------------------------------------------

OBJECT_OPERANDS = [
    'kind == "Deployment"',
    'kind in ("Pod", "Namespace")',
    'kind != "Pod"',
    'namespace == "default"',
    'namespace in ("prod", "")',
    'name == "web"',
    'name.startswith("a")',
    'resource == "pods"',
    'group == "apps"',
    'version == "v1"',
    'matches(name, "^w")',
    'kind == "Secret"',
    'name == ""',
]
STATUS_OPERANDS = ["status == 409", "status >= 400", "status in (200, 201)", "status != 200", "status == 0"]
VERB_OPERANDS = [
    'verb == "update"',
    'verb in ("get", "list")',
    'verb != "watch-event"',
    'verb.startswith("p")',
]
CONSTANT_OPERANDS = ["True", "1 < 2", "False"]
OTHER_OPERANDS = [
    "obj.spec.replicas == 3",
    "obj.spec.replicas >= 2",  # None >= 2 fails: false
    "old.spec.replicas != obj.spec.replicas",
    'changed("spec.replicas")',
    "obj is None",
    "old is not None",
    "seq % 3 != 0",
    "req is not None",
    "error is not None",
    'event == "MODIFIED"',
    'subresource == "status"',
    '(kind == "Pod" or status == 404)',
    "obj.metadata.name == name",
    'obj.metadata.name == "web"',
    "old.spec.replicas == 2",
    "obj.spec.replicas == 3.0",
    'obj["spec"]["replicas"] == True',
    "4 == obj.spec.replicas",
    'has("spec")',
    "duration_ms > 1000",
    "len(state) > 2",
]
operands = st.one_of(
    st.sampled_from(OBJECT_OPERANDS),
    st.sampled_from(STATUS_OPERANDS),
    st.sampled_from(VERB_OPERANDS),
    st.sampled_from(CONSTANT_OPERANDS),
    st.sampled_from(OTHER_OPERANDS),
)


@st.composite
def conditions(draw: st.DrawFn) -> str:
    parts = draw(st.lists(operands, min_size=1, max_size=4))
    if len(parts) >= 3 and draw(st.booleans()):
        return f"({parts[0]} and {parts[1]}) and " + " and ".join(parts[2:])  # nested `and`s
    return " and ".join(parts)


# -- running ---------------------------------------------------------------------------------------


def _outcome(stop: Stop) -> tuple[Any, ...]:
    return (
        stop.reason,
        stop.seq,
        stop.description,
        stop.backwards,
        stop.breakpoints,
        tuple((m.seq, m.breakpoint, m.text) for m in stop.logs),
    )


def run_both_ways(engine: ReplayEngine, breakpoints: list[Breakpoint]) -> list[tuple[Any, ...]]:
    """Every stop forwards from the start, then backwards from the end, with hit counts as they go."""
    engine.reset()
    statuses = engine.set_breakpoints(breakpoints)
    assert statuses[0].verified, statuses[0].message  # the others may match nothing: then unverified
    outcomes = []
    for reverse in (False, True):
        while True:
            stop = engine.run(reverse=reverse)
            outcomes.append(_outcome(stop))
            if stop.reason in ("end", "start"):
                break
    outcomes.append(tuple(engine.hit_count(s.id) for s in statuses))
    return outcomes


@contextmanager
def plain_scan() -> Iterator[None]:
    """The engine without the analysis: condition breakpoints evaluate every operation, bodies unscreened."""
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(engine_module, "analyse", lambda *args, **kwargs: None))
        stack.enter_context(mock.patch.object(BodyScreen, "for_conditions", lambda conditions: ()))
        yield


@contextmanager
def small_batches(size: int) -> Iterator[None]:
    """Index queries and scan batches of a few rows: every run crosses many windows (and a run
    keeps only the last few LIST operations of each collection)."""
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(engine_module, "_CANDIDATES", size))
        stack.enter_context(mock.patch.object(engine_module, "_SCAN_BATCH", size))
        stack.enter_context(mock.patch.object(engine_module, "_BULK_KEPT", max(2, size)))
        yield


def compare(path: Path, breakpoints: list[Breakpoint], interval: int) -> list[tuple[Any, ...]]:
    with ReplayEngine.open(path, checkpoint_interval=interval) as engine:
        found = run_both_ways(engine, breakpoints)
    with plain_scan(), ReplayEngine.open(path, checkpoint_interval=interval) as engine:
        expected = run_both_ways(engine, breakpoints)
    assert found == expected
    return found


def reference_hits(path: Path, expression: str) -> tuple[list[int], list[int]]:
    """Where a run forwards from the start, and backwards from the end, must stop: the operations
    where the condition holds, evaluated on each one's context (no run involved), except the one
    the run starts from."""
    condition = compile_condition(expression)
    with ReplayEngine.open(path) as engine:
        hits = [seq for seq in range(1, engine.total + 1) if condition.test(engine.context(seq))]
        return [s for s in hits if s > 1], [s for s in reversed(hits) if s < engine.total]


def stops(found: list[tuple[Any, ...]]) -> tuple[list[int], list[int]]:
    """The seqs of the breakpoint stops of `run_both_ways`, forwards and backwards."""
    return (
        [o[1] for o in found if o[0] == "breakpoint" and not o[3]],
        [o[1] for o in found if o[0] == "breakpoint" and o[3]],
    )


SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(session=sessions, expression=conditions(), data=st.data())
def test_prefiltered_runs_stop_where_a_scan_of_every_operation_stops(
    session: list[tuple[Any, ...]], expression: str, data: st.DataObject
) -> None:
    interval = data.draw(st.sampled_from([1, 3, 1000]), label="checkpoint interval")
    batch = data.draw(st.sampled_from([1, 2, 5, 4096]), label="batch")
    with _saved(session) as path, small_batches(batch):
        found = compare(path, [ConditionBreakpoint(expression)], interval)
        assert stops(found) == reference_hits(path, expression)


@SETTINGS
@given(session=sessions, expression=conditions(), data=st.data())
def test_hit_conditions_log_messages_and_other_breakpoints_alongside(
    session: list[tuple[Any, ...]], expression: str, data: st.DataObject
) -> None:
    hit = data.draw(st.sampled_from([None, "% 2", ">= 2", "== 1"]), label="hit condition")
    log = data.draw(st.sampled_from([None, "{seq}:{obj.spec.replicas}:{old.spec.replicas}", "{verb}"]))
    breakpoints: list[Breakpoint] = [ConditionBreakpoint(expression, hit_condition=hit, log_message=log)]
    others = data.draw(
        st.lists(
            st.sampled_from(
                [
                    SelectorBreakpoint("Pod/default/a"),
                    SeqBreakpoint(1),
                    ErrorBreakpoint("conflict"),
                    ConditionBreakpoint(
                        'kind == "Deployment" and obj.spec.replicas == 2', log_message="{seq}"
                    ),
                    ConditionBreakpoint("status == 404 and old is not None"),
                ]
            ),
            max_size=2,
            unique=True,
        ),
        label="other breakpoints",
    )
    interval = data.draw(st.sampled_from([1, 4, 1000]), label="checkpoint interval")
    batch = data.draw(st.sampled_from([1, 3, 4096]), label="batch")
    with _saved(session) as path, small_batches(batch):
        compare(path, breakpoints + others, interval)


def test_a_long_session_across_many_windows_and_checkpoints() -> None:
    session = _random_session(random.Random(7), 6000)
    expressions = [
        'kind == "Deployment" and obj.spec.replicas == 3',
        'kind == "Deployment" and obj.spec.replicas == 99',
        'name == "web" and namespace == "prod" and old.spec.replicas != obj.spec.replicas',
        'kind in ("Pod", "ConfigMap") and status == 404',
        'status == 409 and verb == "update" and old.spec.replicas == 2',
        'verb == "watch-event" and name == "" and obj.metadata.name == "api"',
        "obj.spec.replicas == 2 and old.spec.replicas == 1",
    ]
    with _saved(session) as path:
        for expression in expressions:
            found = compare(path, [ConditionBreakpoint(expression)], 500)
            assert stops(found) == reference_hits(path, expression)
        compare(path, [ConditionBreakpoint(expressions[0], hit_condition="% 7", log_message="{seq}")], 500)


def test_obj_of_a_conflict_after_more_lists_than_a_run_keeps() -> None:
    web = ("deployments", "default", "web")
    session = [
        ("get", ("pods", "default", "a"), 1),  # where a run from the start begins: not read
        ("get", web, 1),
        ("list", "deployments", "default", [(web, 2)]),  # web is now version 2
        *[("list", "deployments", "default", [])] * 5,
        ("conflict", web, "update"),  # seq 9: `obj` is version 2, from the first LIST
    ]
    expression = 'kind == "Deployment" and obj.spec.replicas == 2'
    with _saved(session) as path, mock.patch.object(engine_module, "_BULK_KEPT", 2):
        assert stops(compare(path, [ConditionBreakpoint(expression)], 500)) == ([9], [])


def test_obj_of_a_conflict_when_the_filters_skip_the_writes_between() -> None:
    web = ("deployments", "default", "web")
    session = [
        ("get", ("pods", "default", "a"), 1),
        ("get", web, 1),
        ("conflict", web, "update"),  # seq 3: version 1
        ("update", web, 2),  # not a 409: the run over 409s does not read it
        ("conflict", web, "update"),  # seq 5: version 2
    ]
    expression = 'kind == "Deployment" and status == 409 and obj.spec.replicas == 2'
    with _saved(session) as path:
        assert stops(compare(path, [ConditionBreakpoint(expression)], 500)) == ([5], [])


def test_a_condition_that_cannot_be_prefiltered_still_stops_everywhere_it_holds() -> None:
    session = _random_session(random.Random(3), 300)
    expression = 'kind == "Deployment" or obj.x'
    with _saved(session) as path:
        with ReplayEngine.open(path) as engine:
            (status,) = engine.set_breakpoints([ConditionBreakpoint(expression)])
            active = next(iter(engine._actives.values()))
            assert status.verified and active.prefilter is None and active.filters is None
        found = compare(path, [ConditionBreakpoint(expression)], 1000)
        hits = reference_hits(path, expression)
        assert hits[0] and stops(found) == hits


def test_what_the_analysis_makes_of_a_condition() -> None:
    session = _random_session(random.Random(5), 200)
    with _saved(session) as path, ReplayEngine.open(path) as engine:
        objects = {(key.resource, key.namespace, key.name): i for i, key, _ in engine.store.find_objects()}

        def analysed(expression: str) -> Any:
            return analyse([compile_condition(expression)], engine.store, engine.session, lambda: [200, 404])

        found = analysed('kind == "Deployment" and status == 404 and verb in ("get", "update")')
        deployments = {i for (res, _, _), i in objects.items() if res == "deployments"}
        assert found.object_ids == deployments
        assert found.statuses == {404}
        assert found.verbs == {"get", "update"}
        # the fold covers the collections of the resource, nothing of other resources
        assert found.fold_ids >= deployments and not found.fold_ids & {objects[("pods", "default", "a")]}
        found = analysed('name == "web" and namespace == "prod"')
        assert found.object_ids == {objects[("deployments", "prod", "web")]}
        assert found.statuses is None and found.verbs is None
        assert analysed("obj.spec.replicas == 3") is None
        assert analysed('kind == "Deployment" or status == 404') is None
        assert analysed("False and obj.x").object_ids == frozenset()


@pytest.mark.parametrize(
    ("expression", "parts"),
    [
        ("a", ["a"]),
        ("a and b", ["a", "b"]),
        ("(a and b) and (c and d)", ["a", "b", "c", "d"]),
        ("a and (b or c)", ["a", "b or c"]),
        ("not (a and b)", ["not (a and b)"]),
        (
            '(kind == "Deployment" and\n  obj.spec.replicas == 3)',
            ['kind == "Deployment"', "obj.spec.replicas == 3"],
        ),
    ],
)
def test_conjuncts_are_the_top_level_and_operands(expression: str, parts: list[str]) -> None:
    names = frozenset({"a", "b", "c", "d", "kind", "obj"})
    condition = compile_condition(expression, names=names)
    found = conjuncts(condition)
    assert [part.source for part in found] == parts
    context = {"a": 1, "b": 0, "c": 1, "d": 1, "kind": "Deployment", "obj": {"spec": {"replicas": 3}}}
    if len(found) > 1:
        assert condition.test(context) == all(part.test(context) for part in found)
    for part in found:
        assert part.names <= condition.names


def test_conjunct_names_are_what_each_operand_reads() -> None:
    condition = compile_condition('kind == "Pod" and changed("spec") and [x for x in obj.items if x]')
    assert [sorted(part.names) for part in conjuncts(condition)] == [["kind"], ["obj", "old"], ["obj"]]


def test_reverse_runs_from_the_middle_match_the_plain_scan() -> None:
    session = _random_session(random.Random(11), 2500)
    expression = 'kind == "Deployment" and old.spec.replicas == 1 and obj.spec.replicas == 4'
    with _saved(session) as path:
        results = []
        for context in (plain_scan, nullcontext):
            with context(), ReplayEngine.open(path, checkpoint_interval=100) as engine:
                engine.set_breakpoints([ConditionBreakpoint(expression)])
                stops = []
                for start in (1250, 2500, 77):
                    engine.goto(start)
                    stops.append(_outcome(engine.run(reverse=True)))
                    engine.goto(start)
                    stops.append(_outcome(engine.run()))
                results.append(stops)
        assert results[0] == results[1]


def test_stops_from_the_prefilter_keep_the_state_right() -> None:
    session = _random_session(random.Random(13), 800)
    breakpoint = ConditionBreakpoint('kind == "Pod" and obj is not None')
    with _saved(session) as path, ReplayEngine.open(path) as engine, ReplayEngine.open(path) as plain:
        engine.set_breakpoints([breakpoint])
        with plain_scan():
            plain.set_breakpoints([breakpoint])
        while True:
            stop, expected = engine.run(), plain.run()
            assert _outcome(stop) == _outcome(expected)
            assert dict(engine.state()) == dict(plain.state())
            assert engine.context().get("obj") == plain.context().get("obj")
            if stop.reason == "end":
                break


def test_the_body_of_a_list_item_is_read_through_its_delta_chain() -> None:
    # items and objects share digests: a version only ever seen in a LIST is the next one's delta base
    r = Recording()
    for rv in range(1, 30):
        r.write("update", "deployments", "default", "web", rv, rv % 5)
        r.list("deployments", "default", [body("deployments", "default", "web", rv * 100, 1)])
    with tempfile.TemporaryDirectory() as folder:
        path, _ = r.save(Path(folder) / "rec.db")
        found = compare(path, [ConditionBreakpoint('name == "web" and obj.spec.replicas == 4')], 1000)
        hits = reference_hits(path, 'name == "web" and obj.spec.replicas == 4')
        assert hits[0] and stops(found) == hits


def test_delta_bodies_decode_the_same_through_the_scans_reader() -> None:
    # bodies of 256 bytes or more are stored as zstd deltas against the object's previous version
    r = Recording()
    for rv in range(1, 40):
        data = body("deployments", "default", "web", rv, rv % 6, note="x" * (300 + rv % 3))
        r.add("deployments", "update", "default", "web", request=data, response=data)
    with tempfile.TemporaryDirectory() as folder:
        path, _ = r.save(Path(folder) / "rec.db")
        with Store.open(path) as store:
            digests = [bytes(d) for (d,) in store.db.execute_sql("SELECT digest FROM bodies").fetchall()]
            blobs = store.body_blobs(digests)
            assert sum(1 for blob in blobs.values() if blob[1] == bodies.DELTA) > 30
            for digest in reversed(digests):  # bases after their deltas: read down the chains
                assert store.decode_body_blob(digest, blobs[digest]) == store.body_bytes(digest)
        found = compare(path, [ConditionBreakpoint('name == "web" and obj.spec.replicas == 4')], 5)
        hits = reference_hits(path, 'name == "web" and obj.spec.replicas == 4')
        assert hits[0] and stops(found) == hits


# -- body screens ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "found"),
    [
        ("obj.spec.replicas == 3", [("obj", "replicas", 3)]),
        ('"Failed" == obj.status.phase', [("obj", "phase", "Failed")]),
        ('kind == "Pod" and old["status"]["phase"] == "Running"', [("old", "phase", "Running")]),
        (
            "obj.spec.containers[0].image == 'nginx' and obj.spec.paused == False",
            [("obj", "image", "nginx"), ("obj", "paused", False)],
        ),
        ("obj.spec.replicas == -2", [("obj", "replicas", -2)]),
        ("obj.spec.replicas == None", []),  # a missing key equals None: nothing to search for
        ("obj.spec.replicas != 3", []),
        ("obj.spec.replicas == 3 or kind == 'Pod'", []),  # not a conjunct
        ("obj.spec.containers[0] == 'x'", []),  # the last step is an index, not a key
        ("obj.spec.replicas == old.spec.replicas", []),
        ("not (obj.spec.replicas == 3)", []),
    ],
)
def test_field_equalities_are_the_conjuncts_comparing_a_field_with_a_literal(
    expression: str, found: list[tuple[str, str, Any]]
) -> None:
    equalities = field_equalities(compile_condition(expression))
    assert [(e.root, e.key, e.value) for e in equalities] == found


KEYS = ["replicas", "phase", "spec", "status", "a"]
scalars = st.one_of(
    st.integers(-5, 5),
    st.sampled_from([0.0, 3.0, 2.5, -1.0]),
    st.booleans(),
    st.none(),
    st.sampled_from(["Failed", "Running", "", 'a"b', "caf\u00e9", "x\\y", "replicas"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)
literals = st.one_of(
    st.integers(-5, 5), st.sampled_from([3.0, 2.5, True, False, "Failed", 'a"b', "caf\u00e9"])
)


def _holds(document: Any, key: str, value: Any) -> bool:
    """Whether some dict in the document maps key to a value equal to the literal."""
    if isinstance(document, dict):
        return any((k == key and v == value) or _holds(v, key, value) for k, v in document.items())
    if isinstance(document, list):
        return any(_holds(item, key, value) for item in document)
    return False


def _spellings(document: Any) -> list[bytes]:
    """The document's JSON as different writers spell it: compact, indented, ASCII-escaped, keys escaped."""
    compact = orjson.dumps(document)
    escaped_keys = compact.replace(b'"phase"', b'"ph\\u0061se"')
    return [
        compact,
        json.dumps(document, indent=2).encode(),
        json.dumps(document, ensure_ascii=True, separators=(" ,", " : ")).encode(),
        escaped_keys,
    ]


@settings(max_examples=400, deadline=None)
@given(document=documents, key=st.sampled_from(["replicas", "phase"]), value=literals)
def test_a_body_screen_admits_every_body_where_the_field_has_the_value(
    document: Any, key: str, value: Any
) -> None:
    screen = BodyScreen(FieldEquality("obj", key, value))
    if _holds(document, key, value):
        for text in _spellings(document):
            assert screen.admits_text(text), text


def test_a_body_screen_rules_out_bodies_without_the_value() -> None:
    screen = BodyScreen(FieldEquality("obj", "replicas", 99))
    assert not screen.admits_text(b'{"spec":{"replicas":9},"status":{"replicas":990,"x":"99"}}')
    assert not screen.admits_text(b'{"metadata":{"uid":"99-99"},"data":{"replicas":"99"}}')
    assert screen.admits_text(b'{"spec":{"replicas": 99.0}}')
    assert screen.admits_text(b'{"spec":{"r\\u0065plicas":98}}')  # the key may be spelled escaped
    phase = BodyScreen(FieldEquality("obj", "phase", "Failed"))
    assert not phase.admits_text(b'{"status":{"phase":"Running","message":"Failed"}}')
    assert phase.admits_text(b'{"status":{"phase":"F\\u0061iled"}}')


# -- the screening helper process ------------------------------------------------------------------


def _ready_helper(engine: ReplayEngine) -> ScreenHelper:
    """The engine's helper, started by a run and then waited for (it is used once it is ready)."""
    _first_run(engine)
    helper = engine.screen_helper
    assert helper is not None
    deadline = time.monotonic() + 60
    while not helper.ready:
        assert not helper.failed and time.monotonic() < deadline
        time.sleep(0.05)
    return helper


def _first_run(engine: ReplayEngine) -> None:
    engine.set_breakpoints([ConditionBreakpoint('kind == "Deployment" and obj.spec.replicas == 99')])
    engine.run()


@pytest.mark.parametrize("interval", [500, 40])
def test_runs_with_a_screening_helper_stop_where_the_engine_alone_stops(interval: int) -> None:
    session = _random_session(random.Random(11), 4000)
    expressions = [
        'kind == "Deployment" and obj.spec.replicas == 3',
        'name == "web" and old.spec.replicas == 2',
        'verb == "watch-event" and name == "" and obj.metadata.name == "api"',
    ]

    def runs(engine: ReplayEngine, expression: str) -> list[tuple[Any, ...]]:
        return run_both_ways(
            engine, [ConditionBreakpoint(expression, hit_condition="% 3", log_message="{seq}")]
        )

    with (
        _saved(session) as path,
        small_batches(64),
        mock.patch.object(ReplayEngine, "SCREEN_HELPER_MIN_SPAN", 0),
        ReplayEngine.open(path, checkpoint_interval=interval) as engine,
    ):
        helper = _ready_helper(engine)
        found = []
        for expression in expressions:
            answered = helper.answered
            found.append(runs(engine, expression))
            assert helper.answered > answered  # the helper screened this run's bodies
            assert stops(run_both_ways(engine, [ConditionBreakpoint(expression)])) == reference_hits(
                path, expression
            )
        with plain_scan(), ReplayEngine.open(path, checkpoint_interval=interval) as alone:
            _first_run(alone)
            expected = []
            for expression in expressions:
                expected.append(runs(alone, expression))
                run_both_ways(alone, [ConditionBreakpoint(expression)])
        assert alone.screen_helper is None
        assert found == expected


def test_a_run_carries_on_alone_when_its_helper_dies() -> None:
    session = _random_session(random.Random(12), 3000)
    expression = 'kind == "Deployment" and obj.spec.replicas == 3'
    with (
        _saved(session) as path,
        small_batches(64),
        mock.patch.object(ReplayEngine, "SCREEN_HELPER_MIN_SPAN", 0),
        ReplayEngine.open(path) as engine,
    ):
        helper = _ready_helper(engine)
        os.kill(helper.pid, signal.SIGKILL)
        found = run_both_ways(engine, [ConditionBreakpoint(expression)])
        assert helper.failed
        assert stops(found) == reference_hits(path, expression)


def test_the_helper_answers_as_the_screens_do_and_admits_what_it_cannot_read() -> None:
    session = _random_session(random.Random(13), 300)
    with _saved(session) as path, Store.open(path) as store:
        digests = [
            bytes(row[0])
            for row in store.db.execute_sql("SELECT digest FROM bodies WHERE format = 0").fetchall()
        ]
        screens = [
            BodyScreen(FieldEquality("obj", "replicas", 3)),
            BodyScreen(FieldEquality("obj", "name", "web")),
        ]
        expected = {d: [s.admits_text(store.body_bytes(d)) for s in screens] for d in digests}
        missing = b"\x00" * 16
        helper = ScreenHelper.start(str(path))
        assert helper is not None
        try:
            deadline = time.monotonic() + 60
            while not helper.ready:
                assert not helper.failed and time.monotonic() < deadline
                time.sleep(0.05)
            assert helper.submit(screens, [*digests, missing])
            helper.collect()
        finally:
            helper.close()
        assert helper.answered == len(digests) + 1
        text = store.body_bytes
        assert {d: [s.admits(d, text) for s in screens] for d in digests} == expected
        assert any(any(v) for v in expected.values()) and not all(all(v) for v in expected.values())
        assert all(s.admits(missing, lambda d: pytest.fail("read in the engine")) for s in screens)


def test_a_helper_that_cannot_open_the_store_is_not_used(tmp_path: Path) -> None:
    helper = ScreenHelper.start(str(tmp_path / "missing.db"))
    assert helper is not None
    deadline = time.monotonic() + 60
    while not helper.failed:
        assert not helper.ready and time.monotonic() < deadline
        time.sleep(0.05)
    assert not helper.submit([BodyScreen(FieldEquality("obj", "replicas", 3))], [b"\x00" * 16])
    helper.close()


# -- runs that count hits from the indexes' seqs -------------------------------------------------


@pytest.mark.parametrize(
    "breakpoints",
    [
        [ErrorBreakpoint("conflict", hit_condition="% 25")],  # runs pass many hits: windows fill up
        [ErrorBreakpoint("not-found", hit_condition="% 3"), SelectorBreakpoint("Deployment/default/*")],
        [SelectorBreakpoint("Pod/*/*", hit_condition=">= 4"), ErrorBreakpoint("server-error")],
        [
            ErrorBreakpoint("conflict", hit_condition="== 7"),
            SelectorBreakpoint("Deployment/*/web", hit_condition="% 30"),
        ],
    ],
    ids=[
        "every-25th-conflict",
        "not-found-and-selector",
        "selector-and-server-error",
        "7th-conflict-and-selector",
    ],
)
def test_runs_that_count_hits_from_the_indexes_stop_where_evaluated_runs_stop(
    breakpoints: list[Breakpoint],
) -> None:
    session = _random_session(random.Random(21), 3000)
    with _saved(session) as path, small_batches(16):
        with ReplayEngine.open(path) as engine:
            counted = run_both_ways(engine, breakpoints)
            assert engine._actives and all(active.counted for active in engine._actives.values())
        with (
            mock.patch.object(engine_module._Active, "counted", property(lambda self: False)),
            ReplayEngine.open(path) as engine,
        ):
            evaluated = run_both_ways(engine, breakpoints)
    assert counted == evaluated
    assert len(counted) > 10
