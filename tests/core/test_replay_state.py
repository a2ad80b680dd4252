"""Replay state against a reference fold, on generated sessions, with and without checkpoints.

Sessions mix gets (200 and 404), creates (named, generateName, 409), updates and patches (200,
409, the status subresource, the scale subresource that must not count), deletes (200, 404),
lists and deletecollections (items split from the envelope as the recorder stores them), watch
events (ADDED/MODIFIED/DELETED/BOOKMARK, with and without a name on the row) and errors (500,
403, status 0) over a handful of objects whose versions recur, so that digests repeat.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_replay_support import (
    Key,
    Recording,
    as_dict,
    body,
    digest,
    reference_effects,
    reference_primary_key,
    reference_states,
    status_body,
)

from opreplay.conditions import compile_condition
from opreplay.model import NewOperation, ObjectKey
from opreplay.replay import (
    ErrorBreakpoint,
    FieldWatch,
    ReplayEngine,
    build_checkpoints,
)
from opreplay.replay.paths import get_path
from opreplay.replay.state import TwoGenerationCache
from opreplay.store import Store

OBJECTS = [
    ("deployments", "default", "web"),
    ("deployments", "default", "api"),
    ("deployments", "prod", "web"),
    ("pods", "default", "a"),
    ("pods", "prod", "b"),
    ("namespaces", "", "ns1"),
]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

objects = st.sampled_from(OBJECTS)
versions = st.integers(min_value=1, max_value=4)


def _apply(r: Recording, action: tuple[Any, ...]) -> None:
    kind = action[0]
    if kind == "get":
        _, (res, ns, name), rv = action
        r.get(res, ns, name, rv, rv if res == "deployments" else None)
    elif kind == "get404":
        _, (res, ns, name) = action
        r.get_missing(res, ns, name)
    elif kind in ("create", "update", "patch"):
        _, (res, ns, name), rv = action
        r.write(kind, res, ns, name, rv, rv if res == "deployments" else None)
    elif kind == "conflict":
        _, (res, ns, name), verb = action
        r.conflict(res, ns, name, verb)
    elif kind == "status":
        _, (res, ns, name), rv = action
        r.write("patch", res, ns, name, rv, None, subresource="status")
    elif kind == "scale":
        _, (res, ns, name), rv = action
        scale = orjson.dumps(
            {"kind": "Scale", "metadata": {"name": name, "namespace": ns}, "spec": {"replicas": rv}}
        )
        r.add(res, "update", ns, name, subresource="scale", request=scale, response=scale)
    elif kind == "generate":
        _, (res, ns, name), rv = action
        data = body(res, ns, name, rv)
        r.add(res, "create", ns, "", status=201, request=data, response=data)
    elif kind == "delete":
        _, (res, ns, name), status = action
        r.delete(res, ns, name, status)
    elif kind in ("list", "deletecollection"):
        _, res, ns, chosen = action
        items = [
            body(res, o[1], o[2], rv, rv if res == "deployments" else None)
            for o, rv in chosen
            if o[0] == res and (ns == "" or o[1] == ns)
        ]
        if kind == "list":
            r.list(res, ns, items)
        else:
            envelope = orjson.dumps({"kind": "List", "metadata": {}})
            r.add(res, "deletecollection", ns, "", response=envelope, response_items=tuple(items))
    elif kind == "event":
        _, event, (res, ns, name), rv, named = action
        r.event(res, event, ns, name, rv, rv if res == "deployments" else None, named=named)
    elif kind == "error":
        _, (res, ns, name), status = action
        r.error(
            res,
            ns,
            name,
            status,
            verb="update",
            response=status_body(status, "Err", "boom") if status else None,
        )
    else:  # pragma: no cover
        raise AssertionError(action)


actions = st.one_of(
    st.tuples(st.just("get"), objects, versions),
    st.tuples(st.just("get404"), objects),
    st.tuples(st.sampled_from(["create", "update", "patch"]), objects, versions),
    st.tuples(st.just("conflict"), objects, st.sampled_from(["update", "create", "patch"])),
    st.tuples(st.just("status"), objects, versions),
    st.tuples(st.just("scale"), objects, versions),
    st.tuples(st.just("generate"), objects, versions),
    st.tuples(st.just("delete"), objects, st.sampled_from([200, 404])),
    st.tuples(
        st.sampled_from(["list", "list", "deletecollection"]),
        st.sampled_from(["deployments", "pods"]),
        st.sampled_from(["default", "prod", ""]),
        st.lists(st.tuples(objects, versions), max_size=4),
    ),
    st.tuples(
        st.just("event"),
        st.sampled_from(["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]),
        objects,
        versions,
        st.booleans(),
    ),
    st.tuples(st.just("error"), objects, st.sampled_from([500, 403, 0])),
)
sessions = st.lists(actions, min_size=1, max_size=50)


def _record(session: list[tuple[Any, ...]]) -> Recording:
    r = Recording()
    for action in session:
        _apply(r, action)
    return r


@contextmanager
def _saved(r: Recording) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        path, _ = r.save(Path(folder) / "rec.db")
        yield path


def _key(key: Key) -> ObjectKey:
    return ObjectKey(*key)


@SETTINGS
@given(session=sessions, data=st.data())
def test_state_at_any_seq_equals_the_reference_fold(
    session: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    r = _record(session)
    expected = reference_states(r.ops)
    total = len(r.ops)
    seqs = data.draw(st.lists(st.integers(min_value=1, max_value=total), min_size=1, max_size=12))
    with _saved(r) as path:
        for interval in (1, 7, 1000):
            with ReplayEngine.open(path, checkpoint_interval=interval) as engine:
                for seq in seqs:
                    assert as_dict(engine.state(seq)) == expected[seq], (interval, seq)
                    engine.goto(seq)
                    assert as_dict(engine.state()) == expected[seq], (interval, seq)
        with Store.open(path, create=True) as store:
            build_checkpoints(store, store.find_session("latest"), interval=3, full_every=3)
        with ReplayEngine.open(path, checkpoint_interval=1000) as engine:
            for seq in seqs:
                assert as_dict(engine.state(seq)) == expected[seq], ("stored", seq)
            assert engine.checkpoints.built == 0


@SETTINGS
@given(session=sessions, data=st.data())
def test_step_then_back_returns_to_the_same_position_and_state(
    session: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    r = _record(session)
    expected = reference_states(r.ops)
    total = len(r.ops)
    interval = data.draw(st.sampled_from([1, 7, 1000]))
    with _saved(r) as path, ReplayEngine.open(path, checkpoint_interval=interval) as engine:
        for _ in range(5):
            start = data.draw(st.integers(min_value=1, max_value=total))
            k = data.draw(st.integers(min_value=0, max_value=total - start))
            engine.goto(start)
            before = as_dict(engine.state())
            stop = engine.step(k)
            assert stop.seq == start + k and engine.position == start + k
            assert as_dict(engine.state()) == expected[start + k]
            stop = engine.back(k)
            assert stop.seq == start and engine.position == start and stop.backwards
            assert as_dict(engine.state()) == before == expected[start]


@SETTINGS
@given(session=sessions, data=st.data())
def test_a_random_walk_always_sees_the_reference_state(
    session: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    r = _record(session)
    expected = reference_states(r.ops)
    total = len(r.ops)
    moves = st.one_of(
        st.tuples(st.just("step"), st.integers(min_value=0, max_value=9)),
        st.tuples(st.just("back"), st.integers(min_value=0, max_value=9)),
        st.tuples(st.just("goto"), st.integers(min_value=1, max_value=total)),
    )
    with (
        _saved(r) as path,
        ReplayEngine.open(path, checkpoint_interval=data.draw(st.sampled_from([1, 4]))) as engine,
    ):
        position = 1
        for move, n in data.draw(st.lists(moves, min_size=1, max_size=15)):
            if move == "step":
                stop = engine.step(n)
                clamped = position + n > total or (n == 0 and position == total)
                position = min(total, position + n)
                assert stop.reason == ("end" if clamped else "step")
            elif move == "back":
                stop = engine.back(n)
                clamped = position - n < 1 or (n == 0 and position == 1)
                position = max(1, position - n)
                assert stop.reason == ("start" if clamped else "step")
            else:
                stop = engine.goto(n)
                position = n
            assert stop.seq == engine.position == position
            assert as_dict(engine.state()) == expected[position]
            held = engine.state()
            engine.step()
            assert as_dict(held) == expected[position], "a returned state is a snapshot"
            engine.goto(position)


@SETTINGS
@given(session=sessions, data=st.data())
def test_object_history_and_object_before_after_match_the_reference(
    session: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    r = _record(session)
    expected = reference_states(r.ops)
    res, ns, name = data.draw(objects)
    api_version = "apps/v1" if res == "deployments" else "v1"
    key: Key = (api_version, res, ns, name)
    history = []
    for seq, op in enumerate(r.ops, start=1):
        touched = [value for k, value in reference_effects(op) if k == key]
        if touched:  # one entry per operation, with the last value it left (a list may repeat an item)
            history.append((seq, op.verb, touched[-1]))
    with (
        _saved(r) as path,
        ReplayEngine.open(path, checkpoint_interval=data.draw(st.sampled_from([1, 5, 1000]))) as engine,
    ):
        got = [tuple(entry) for entry in engine.object_history(_key(key))]
        assert got == history
        for seq in range(1, len(r.ops) + 1):
            assert engine.digest_at(_key(key), seq) == expected[seq].get(key)
        seq = data.draw(st.integers(min_value=1, max_value=len(r.ops)))
        op = engine.operation(seq)
        primary = engine.object_key(op)
        if primary is not None:
            pk: Key = (primary.api_version, primary.resource, primary.namespace, primary.name)
            after, before = expected[seq].get(pk), expected[seq - 1].get(pk)
            assert engine.object_after(op) == (orjson.loads(_body_of(r.ops, after)) if after else None)
            assert engine.object_before(op) == (orjson.loads(_body_of(r.ops, before)) if before else None)


def _body_of(ops: list[NewOperation], wanted: bytes) -> bytes:
    for op in ops:
        for data in (op.response, *(op.response_items or ())):
            if data is not None and digest(data) == wanted:
                return data
    raise AssertionError("digest not in the recording")


def _field_changes(r: Recording, key: Key, path: tuple[str, ...]) -> list[int]:
    states = reference_states(r.ops)
    changes = []
    for seq in range(1, len(r.ops) + 1):
        a, b = states[seq - 1].get(key), states[seq].get(key)
        if a == b:
            continue
        old = get_path(orjson.loads(_body_of(r.ops, a)), path) if a else None
        new = get_path(orjson.loads(_body_of(r.ops, b)), path) if b else None
        if old != new or type(old) is not type(new):
            changes.append(seq)
    return changes


@SETTINGS
@given(session=sessions, data=st.data())
def test_field_watch_stops_exactly_where_the_field_changes_both_ways(
    session: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    r = _record(session)
    res, ns, name = data.draw(objects)
    api_version = "apps/v1" if res == "deployments" else "v1"
    key: Key = (api_version, res, ns, name)
    field = data.draw(st.sampled_from(["spec.replicas", "metadata.resourceVersion"]))
    changes = _field_changes(r, key, tuple(field.split(".")))
    total = len(r.ops)
    with (
        _saved(r) as path,
        ReplayEngine.open(path, checkpoint_interval=data.draw(st.sampled_from([1, 6, 1000]))) as engine,
    ):
        (status,) = engine.set_breakpoints([FieldWatch(_key(key), field)])
        if not status.verified:
            assert not changes
            return
        forward = []
        while (stop := engine.run()).reason == "data-breakpoint":
            forward.append(stop.seq)
        assert stop.reason == "end" and engine.position == total
        assert forward == [s for s in changes if s > 1]
        backward = []
        while (stop := engine.run(reverse=True)).reason == "data-breakpoint":
            backward.append(stop.seq)
            assert stop.backwards
        assert stop.reason == "start"
        assert backward == [s for s in reversed(changes) if s < total]


@SETTINGS
@given(session=sessions, data=st.data())
def test_error_and_condition_breakpoints_agree_with_a_plain_scan(
    session: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    from opreplay.replay import ConditionBreakpoint

    r = _record(session)
    states = reference_states(r.ops)
    errors = [
        seq
        for seq, op in enumerate(r.ops, 1)
        if op.status >= 400 or (op.status == 0 and op.verb not in ("watch-event", "gap"))
    ]
    replicas_two = []
    for seq, op in enumerate(r.ops, 1):
        key = reference_primary_key(op)  # `obj` is that object in the state after the operation
        if key is None:
            continue
        after = states[seq].get(key)
        if after and orjson.loads(_body_of(r.ops, after)).get("spec", {}).get("replicas") == 2:
            replicas_two.append(seq)
    interval = data.draw(st.sampled_from([1, 1000]))
    with _saved(r) as path, ReplayEngine.open(path, checkpoint_interval=interval) as engine:
        for breakpoint, expected in (
            (ErrorBreakpoint("error"), errors),
            (ConditionBreakpoint("obj.spec.replicas == 2"), replicas_two),
        ):
            engine.reset()
            engine.set_breakpoints([breakpoint])
            hits = []
            while (stop := engine.run()).reason not in ("end", "start"):
                hits.append(stop.seq)
            assert hits == [s for s in expected if s > 1]
            back = []
            while (stop := engine.run(reverse=True)).reason not in ("end", "start"):
                back.append(stop.seq)
            assert back == [s for s in reversed(expected) if s < len(r.ops)]


def test_checkpoints_are_deltas_with_periodic_full_snapshots(tmp_path: Path) -> None:
    from opreplay.replay.checkpoints import decode_checkpoint

    r = Recording()
    for i in range(20):
        r.write("create", "deployments", "default", f"d{i}", i, i)
    for i in range(20):
        r.write("update", "deployments", "default", f"d{i % 5}", i, i)
    path, _ = r.save(tmp_path / "c.db")
    with Store.open(path, create=True) as store:
        assert build_checkpoints(store, store.find_session("latest"), interval=2, full_every=4) == 20
        assert build_checkpoints(store, store.find_session("latest"), interval=2, full_every=4) == 0
        records = store.read_checkpoints(store.find_session("latest"), 1, 40)
    decoded = [decode_checkpoint(data) for _, data in records]
    assert [c.seq for c in decoded] == list(range(2, 41, 2))
    assert decoded[0].full and not all(c.full for c in decoded)
    assert all(c.depth < 4 for c in decoded)  # a full snapshot at least every 4
    assert all(c.base == c.seq - 2 and len(c.sets) <= 2 for c in decoded if not c.full)
    assert all(2 * c.chain <= 20 for c in decoded)  # deltas since the last full stay under half the state
    expected = reference_states(r.ops)
    with ReplayEngine.open(path) as engine:
        for seq in (1, 2, 3, 17, 39, 40):
            assert as_dict(engine.state(seq)) == expected[seq]


def test_unreadable_stored_checkpoints_are_ignored_and_rebuilt_in_memory(tmp_path: Path) -> None:
    r = Recording()
    for i in range(30):
        r.write("update", "deployments", "default", f"d{i % 4}", i, i)
    path, _ = r.save(tmp_path / "bad.db")
    with closing(sqlite3.connect(path)) as db, db:
        pk = db.execute("SELECT pk FROM sessions").fetchone()[0]
        db.executemany(
            "INSERT INTO checkpoints (session, seq, data) VALUES (?, ?, ?)",
            [(pk, 10, b"garbage"), (pk, 20, b"\x28\xb5\x2f\xfd")],
        )
    expected = reference_states(r.ops)
    with ReplayEngine.open(path, checkpoint_interval=5) as engine:
        for seq in (25, 12, 30, 3):
            assert as_dict(engine.state(seq)) == expected[seq]


def test_a_read_only_engine_writes_nothing_unless_asked(tmp_path: Path) -> None:
    r = Recording()
    for i in range(50):
        r.write("update", "deployments", "default", f"d{i % 3}", i, i)
    path, _ = r.save(tmp_path / "ro.db")

    def stored() -> int:
        with closing(sqlite3.connect(path)) as db:
            return int(db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0])

    with ReplayEngine.open(path, checkpoint_interval=10) as engine:
        engine.goto(50)
        engine.state()
        assert engine.checkpoints.built == 5
    assert stored() == 0
    with ReplayEngine.open(path, checkpoint_interval=10, save_checkpoints=True) as engine:
        engine.state(50)
    assert stored() == 5
    with ReplayEngine.open(path, checkpoint_interval=10) as engine:
        assert as_dict(engine.state(47)) == reference_states(r.ops)[47]
        assert engine.checkpoints.built == 0


def test_the_names_index_spares_decoding_list_items_after_a_checkpoint(tmp_path: Path) -> None:
    r = Recording()
    for i in range(60):
        items = [body("pods", "default", f"p{k}", i * 10 + k) for k in range(5)]
        r.list("pods", "default", items)
        r.event("pods", "MODIFIED", "default", f"p{i % 5}", 1000 + i, named=False)
    path, _ = r.save(tmp_path / "lists.db")
    with Store.open(path, create=True) as store:
        build_checkpoints(store, store.find_session("latest"), interval=10)
    expected = reference_states(r.ops)
    with ReplayEngine.open(path) as engine:

        def refuse(*args: object) -> object:
            raise AssertionError("decoded a body that the names index knows")

        engine.store.body_documents = refuse  # type: ignore[method-assign]
        engine.store.body_bytes = refuse  # type: ignore[method-assign]
        for seq in (117, 55, 9, 119, 31):
            assert as_dict(engine.state(seq)) == expected[seq]


def test_state_in_expressions_is_keyed_by_resource_or_kind_namespace_and_name(tmp_path: Path) -> None:
    r = Recording()
    r.write("create", "deployments", "default", "web", 1, 3)
    r.list("pods", "default", [body("pods", "default", "a", 1), body("pods", "default", "b", 1)])
    r.get("namespaces", "", "ns1", 1)
    r.write("update", "deployments", "default", "web", 2, 5)
    path, _ = r.save(tmp_path / "rec.db")
    with ReplayEngine.open(path) as engine:

        def value(expression: str, seq: int) -> Any:
            return compile_condition(expression).evaluate(engine.context(seq))

        assert value('state["deployments/default/web"].spec.replicas', 1) == 3
        assert value('state["deployments/default/web"].spec.replicas', 4) == 5
        assert value('state["Deployment/default/web"].spec.replicas', 4) == 5  # the kind, any case
        assert value('state["deployment/default/web"].metadata.name', 4) == "web"
        assert value('state["namespaces/ns1"].metadata.name', 4) == "ns1"  # cluster-scoped
        assert value('"pods/default/b" in state and "pods/default/c" not in state', 2) is True
        assert value('state["pods/default/a"].metadata.name', 1) is None  # not listed yet
        assert value("len(state)", 4) == 4
        assert value("[k for k in state]", 4) == [
            "deployments/default/web",
            "namespaces/ns1",
            "pods/default/a",
            "pods/default/b",
        ]
        assert value('len([o for o in state.values() if o.kind == "Pod"])', 4) == 2
        assert value('state["Deployment/default/*"]', 4) is None  # names, not globs


class _Tracked:
    """A cached value that counts its own freeing."""

    freed = 0

    def __del__(self) -> None:
        _Tracked.freed += 1


def test_the_replay_caches_never_free_a_whole_generation_in_one_call() -> None:
    """A debugger step that evicts a cache generation must not pay for freeing all of it (192
    decoded bodies at once took milliseconds, the tail of F10); memory stays within twice the limit,
    and entries only return while they are held."""
    limit = 100
    cache = TwoGenerationCache(limit)
    _Tracked.freed = 0
    most_freed_by_one_put = 0
    for key in range(10 * limit):
        before = _Tracked.freed
        cache.put(key, _Tracked())
        most_freed_by_one_put = max(most_freed_by_one_put, _Tracked.freed - before)
        assert key + 1 - _Tracked.freed <= 2 * limit  # values alive: held or retiring
    assert most_freed_by_one_put <= 2
    assert _Tracked.freed >= 10 * limit - 2 * limit
    assert cache.get(10 * limit - 1) is not None
    assert cache.get(0) is None  # long evicted
    cache.put_many({f"bulk-{n}": _Tracked() for n in range(limit)})  # a turn-over by `put_many`
    cache.clear()
    assert _Tracked.freed == 11 * limit
