"""The store queries replay relies on: rows, indexed searches, list items, checkpoints."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from test_replay_support import Recording, body, digest

from opreplay.errors import StoreError
from opreplay.model import ObjectKey
from opreplay.store import Store
from opreplay.store.replay_queries import ROW_OBJECT, ROW_SEQ, operation_from_row


@pytest.fixture
def mixed(tmp_path: Path) -> tuple[Path, Recording]:
    rng = random.Random(7)
    r = Recording()
    names = [f"o{i}" for i in range(100)]
    for i in range(3000):
        name = rng.choice(names)
        choice = rng.random()
        if choice < 0.1:
            r.conflict("deployments", "default", name)
        elif choice < 0.15:
            r.error(
                "pods", "prod", name, rng.choice([500, 503, 0, 404]), duration_us=rng.choice([10, 5_000_000])
            )
        elif choice < 0.2:
            r.list("pods", "default", [body("pods", "default", n, i) for n in rng.sample(names, 3)])
        else:
            r.write(rng.choice(["update", "patch", "create"]), "deployments", "default", name, i, i % 5)
    path, _ = r.save(tmp_path / "mixed.db")
    return path, r


def _expected(r: Recording, predicate: object) -> list[int]:
    return [seq for seq, op in enumerate(r.ops, 1) if predicate(op)]  # type: ignore[operator]


def test_operation_rows_carry_every_operation_field_and_the_object_id(mixed: tuple[Path, Recording]) -> None:
    path, _ = mixed
    with Store.open(path) as store:
        session = store.find_session("latest")
        assert store.last_seq(session) == 3000
        rows = store.operation_rows(session, 100, 200)
        assert [row[ROW_SEQ] for row in rows] == list(range(100, 200))
        assert [operation_from_row(row) for row in rows] == store.operations(session, 100, 200)
        same = {}
        for row in store.operation_rows(session, 1, 3001):
            same.setdefault((row[5], row[6], row[8], row[9]), set()).add(row[ROW_OBJECT])
        assert all(len(ids) == 1 for ids in same.values())


@pytest.mark.parametrize("reverse", [False, True])
def test_find_operation_rows_matches_a_plain_filter(mixed: tuple[Path, Recording], reverse: bool) -> None:
    path, r = mixed
    with Store.open(path) as store:
        session = store.find_session("latest")
        ids = {key: object_id for object_id, key, _ in store.find_objects("deployments", "default", "o1?")}
        assert ids and all(k.name.startswith("o1") and len(k.name) == 3 for k in ids)
        cases = [
            (
                dict(object_ids=frozenset(ids.values())),
                lambda op: op.resource == "deployments" and op.name in {k.name for k in ids},
            ),
            (dict(statuses=frozenset({409, 500})), lambda op: op.status in (409, 500)),
            (
                dict(statuses=frozenset({0}), exclude_verbs=frozenset({"watch-event"})),
                lambda op: op.status == 0,
            ),
            (dict(verbs=frozenset({"patch", "list"})), lambda op: op.verb in ("patch", "list")),
            (dict(min_duration_us=1_000_000), lambda op: op.duration_us >= 1_000_000),
            (
                dict(object_ids=frozenset(range(1, 200)), statuses=frozenset({409})),
                lambda op: op.status == 409,
            ),
            (
                dict(verbs=frozenset({"update"}), statuses=frozenset(range(200, 300))),
                lambda op: op.verb == "update" and 200 <= op.status < 300,
            ),
            (dict(statuses=frozenset()), lambda op: False),
        ]
        for filters, predicate in cases:
            expected = _expected(r, predicate)
            expected = [s for s in expected if 500 <= s < 2500]
            if reverse:
                expected.reverse()
            got: list[int] = []
            start, stop = 500, 2500
            while True:  # page through with a small limit: the merge must stay exact
                rows = store.find_operation_rows(session, start, stop, reverse=reverse, limit=37, **filters)
                got.extend(row[ROW_SEQ] for row in rows)
                if len(rows) < 37:
                    break
                if reverse:
                    stop = rows[-1][ROW_SEQ]
                else:
                    start = rows[-1][ROW_SEQ] + 1
            assert got == expected, filters


def test_distinct_statuses_and_operation_objects(mixed: tuple[Path, Recording]) -> None:
    path, r = mixed
    with Store.open(path) as store:
        session = store.find_session("latest")
        assert store.distinct_statuses(session) == sorted({op.status for op in r.ops})
        pairs = store.operation_objects(session, 10, 300, verbs={"update", "patch"})
        assert [seq for seq, _ in pairs] == [
            s for s in _expected(r, lambda op: op.verb in ("update", "patch")) if 10 <= s < 300
        ]
        assert len(store.operation_objects(session, 1, 3001)) == 3000


def test_list_item_digests_without_decoding(mixed: tuple[Path, Recording]) -> None:
    path, r = mixed
    with Store.open(path) as store:
        session = store.find_session("latest")
        seq, op = next((s, op) for s, op in enumerate(r.ops, 1) if op.verb == "list")
        (stored,) = store.operations(session, seq, seq + 1)
        assert store.list_item_digests(stored.response_digest or b"") == [
            digest(i) for i in op.response_items or ()
        ]
        seq = next(s for s, op in enumerate(r.ops, 1) if op.verb == "update" and op.status == 200)
        (stored,) = store.operations(session, seq, seq + 1)
        assert store.list_item_digests(stored.response_digest or b"") is None
        with pytest.raises(StoreError, match="missing"):
            store.list_item_digests(b"\0" * 16)


def test_find_objects_globs_kinds_and_resources(mixed: tuple[Path, Recording]) -> None:
    path, _ = mixed
    with Store.open(path) as store:
        pods = store.find_objects("Pod", "*", "*")
        assert pods and all(key.resource == "pods" for _, key, _ in pods)
        assert {k for _, k, _ in store.find_objects("pod", "prod", "*")} == {
            k for _, k, _ in pods if k.namespace == "prod"
        }
        assert store.find_objects("deploy*", "default", "o5") == store.find_objects(
            "deployments", "default", "o5"
        )
        assert store.find_objects("Service") == []
        found = store.object_ids(
            [ObjectKey("apps/v1", "deployments", "default", "o5"), ObjectKey("v1", "pods", "nowhere", "x")]
        )
        assert list(found) == [ObjectKey("apps/v1", "deployments", "default", "o5")]


def test_checkpoints_are_written_through_a_separate_connection_on_a_read_only_store(tmp_path: Path) -> None:
    r = Recording()
    r.get("deployments", "default", "web", 1, 1)
    path, _ = r.save(tmp_path / "c.db")
    with Store.open(path) as store:
        session = store.find_session("latest")
        assert store.checkpoint_seqs(session) == []
        store.write_checkpoints(session, [(1, b"one"), (3, b"three")])
        store.write_checkpoints(session, [(3, b"THREE")])
        assert store.checkpoint_seqs(session) == [1, 3]
        assert store.read_checkpoints(session, 2, 10) == [(3, b"THREE")]
        with pytest.raises(StoreError, match="read-only"):
            store.delete_checkpoints(session)
    with Store.open(path, create=True) as store:
        session = store.find_session("latest")
        store.write_checkpoints(session, [(2, b"two")])
        assert store.checkpoint_seqs(session) == [1, 2, 3]
        store.delete_checkpoints(session)
        assert store.checkpoint_seqs(session) == []
    path.chmod(0o444)
    try:
        with Store.open(path) as store:
            session = store.find_session("latest")
            try:
                store.write_checkpoints(session, [(1, b"x")])
            except StoreError as error:
                assert "checkpoints" in str(error)
    finally:
        path.chmod(0o644)
