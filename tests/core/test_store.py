"""The store: what it keeps, and how it refuses files that are not recordings it can read."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import orjson
import peewee
import pytest

from opreplay.errors import SessionNotFound, StoreError
from opreplay.model import NewOperation, ReconcileInfo
from opreplay.store import SCHEMA_VERSION, Store, bodies
from opreplay.store.guard import describe


def _op(**fields: object) -> NewOperation:
    base: dict[str, object] = dict(
        ts=time.time(),
        duration_us=1200,
        thread="MainThread",
        verb="get",
        api_version="apps/v1",
        resource="deployments",
        kind="Deployment",
        namespace="default",
        name="web",
        status=200,
    )
    base.update(fields)
    return NewOperation(**base)  # type: ignore[arg-type]


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "rec.db"
    with Store.open(path, create=True) as store:
        session = store.create_session(name="demo", started_at=time.time(), command="pytest")
        web = orjson.dumps({"kind": "Deployment", "metadata": {"name": "web", "resourceVersion": "7"}})
        store.append(session, 1, [_op(response=web), _op(response=web), _op(status=409, reason="Conflict")])
        store.end_session(session, time.time())
    return path


def _fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_round_trip_keeps_every_field(recording: Path) -> None:
    with Store.open(recording) as store:
        session = store.find_session("latest")
        ops = store.operations(session)
    assert [op.seq for op in ops] == [1, 2, 3]
    assert (ops[0].verb, ops[0].kind, ops[0].namespace, ops[0].name, ops[0].status) == (
        "get",
        "Deployment",
        "default",
        "web",
        200,
    )
    assert ops[2].reason == "Conflict" and ops[2].is_error
    assert session.operations == 3 and session.errors == 1 and session.ended_at is not None


def test_identical_bodies_are_stored_once(recording: Path) -> None:
    with Store.open(recording) as store:
        ops = store.operations(store.find_session("demo"))
        assert ops[0].response_digest == ops[1].response_digest
        assert store.body(ops[0].response_digest or b"")["metadata"]["resourceVersion"] == "7"
    rows = sqlite3.connect(recording).execute("SELECT COUNT(*) FROM bodies").fetchone()[0]
    assert rows == 1


def test_nulls_and_empty_strings_stay_apart(tmp_path: Path) -> None:
    # the writer binds NULL as an empty blob that SQL turns back into NULL: "" must stay ""
    with Store.open(tmp_path / "n.db", create=True) as store:
        session = store.create_session(name=None, started_at=time.time(), command="pytest")
        store.append(session, 1, [_op(reason="", message="", resource_version="", event=""), _op()])
        blank, unset = store.operations(session)
    assert (blank.reason, blank.message, blank.resource_version, blank.event) == ("", "", "", "")
    assert (unset.reason, unset.message, unset.resource_version, unset.event) == (None, None, None, None)
    assert (unset.subresource, unset.reconcile, unset.watch, unset.request_digest) == (None, None, None, None)


@pytest.mark.parametrize("libzstd", [True, False], ids=["libzstd", "python-zstandard"])
def test_deltas_decode_to_the_new_version(libzstd: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not libzstd:
        monkeypatch.setattr(bodies, "_prefix_compressor", lambda: None)
    elif bodies._prefix_compressor() is None:
        pytest.skip("no libzstd on this machine")
    base = orjson.dumps({"kind": "Pod", "metadata": {"name": "a", "resourceVersion": "1"}, "spec": "x" * 500})
    new = base.replace(b'"1"', b'"2"')
    delta = bodies.compress_delta(new, base)
    assert len(delta) < 64
    assert bodies.decompress(bodies.DELTA, delta, base) == new


def test_list_response_is_stored_as_items_and_reassembled(tmp_path: Path) -> None:
    pod = orjson.dumps({"kind": "Pod", "metadata": {"name": "a"}})
    envelope = orjson.dumps({"kind": "PodList", "metadata": {"resourceVersion": "9"}})
    with Store.open(tmp_path / "l.db", create=True) as store:
        session = store.create_session(name=None, started_at=time.time(), command="pytest")
        store.append(session, 1, [_op(verb="list", name="", response=envelope, response_items=(pod, pod))])
        (op,) = store.operations(session)
        listed = store.body(op.response_digest or b"")
    assert listed == {
        "kind": "PodList",
        "metadata": {"resourceVersion": "9"},
        "items": [{"kind": "Pod", "metadata": {"name": "a"}}] * 2,
    }


def test_sessions_are_newest_first_and_found_by_id_name_and_latest(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db", create=True) as store:
        first = store.create_session(name="one", started_at=100.0, command="a")
        second = store.create_session(name="two", started_at=200.0, command="b")
        assert [s.id for s in store.sessions()] == [second.id, first.id]
        assert store.find_session("latest").id == second.id
        assert store.find_session("one").id == first.id
        assert store.find_session(first.id).name == "one"
        assert len(first.id) == 6 and first.id != second.id
        with pytest.raises(SessionNotFound, match="no session 'three'"):
            store.find_session("three")


def test_a_reader_never_writes(recording: Path) -> None:
    with Store.open(recording) as store, pytest.raises(StoreError, match="read-only"):
        store.create_session(name="x", started_at=1.0, command="x")


def test_a_recording_from_before_reconciles_were_kept_still_opens(recording: Path) -> None:
    """Files written before the reconciles table existed: read as they are, given it when appended to."""
    with closing(sqlite3.connect(recording)) as connection:
        connection.execute("DROP TABLE reconciles")
        connection.commit()
    before = recording.read_bytes()
    with Store.open(recording) as store:
        session = store.find_session("latest")
        assert store.reconcile_info(session, 1) is None
    assert recording.read_bytes() == before
    with Store.open(recording, create=True) as store:
        session = store.find_session("latest")
        reconcile = ReconcileInfo(1, "WebApp", "default", "web", 1.0)
        store.append(session, session.operations + 1, [], reconciles=[reconcile])
        assert store.reconcile_info(session, 1) == reconcile


def _corrupt_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for i in range(page, len(data)):
        data[i] = 0xA5
    path.write_bytes(bytes(data))


def _newer_schema(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "UPDATE opreplay_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 5),)
        )


def _foreign_sqlite(path: Path) -> None:
    path.unlink()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")


def _checkpoint(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


CASES = {
    "not sqlite": (lambda p: p.write_bytes(b"hello, this is a text file\n" * 20), "is not a SQLite database"),
    "truncated": (lambda p: (_checkpoint(p), p.write_bytes(p.read_bytes()[:5000])), "is truncated"),
    "corrupted pages": (lambda p: (_checkpoint(p), _corrupt_middle(p)), "corrupted"),
    "newer schema": (_newer_schema, "newer opreplay"),
    "not an opreplay store": (_foreign_sqlite, "not an opreplay recording"),
    "empty file": (lambda p: p.write_bytes(b""), "is empty"),
}


@pytest.mark.parametrize(
    ("case", "create"),
    [
        (case, create)
        for case in sorted(CASES)
        for create in (False, True)
        if not (case == "empty file" and create)
    ],
)
def test_bad_files_get_one_line_and_are_left_untouched(recording: Path, case: str, create: bool) -> None:
    damage, expected = CASES[case]
    damage(recording)
    before = _fingerprint(recording)
    with pytest.raises(StoreError) as caught:
        store = Store.open(recording, create=create)
        # corruption inside the data pages may only show when they are read
        store.operations(store.find_session("latest"))
    message = str(caught.value)
    assert expected in message and str(recording) in message and "\n" not in message
    assert _fingerprint(recording) == before


def test_missing_file_is_refused_for_reading_and_created_for_writing(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such file"):
        Store.open(tmp_path / "absent.db")
    assert not (tmp_path / "absent.db").exists()
    with pytest.raises(StoreError, match="is a directory"):
        Store.open(tmp_path)
    Store.open(tmp_path / "new.db", create=True).close()
    assert (tmp_path / "new.db").exists()


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """What another recorder does while it switches a new file to WAL: it holds the write lock."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_a_new_file_opens_once_another_opener_lets_go_of_it(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with closing(_hold_write_lock(path)) as holder:
        released = threading.Timer(0.3, holder.rollback)
        released.start()
        started = time.monotonic()
        with Store.open(path, create=True) as store:
            store.create_session(name="second", started_at=time.time(), command="test")
        released.join()
    assert time.monotonic() - started >= 0.3
    with Store.open(path) as store:
        assert [s.name for s in store.sessions()] == ["second"]


def test_a_file_locked_for_longer_than_the_busy_timeout_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("opreplay.store.store.SQLITE_BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "held.db"
    with closing(_hold_write_lock(path)), pytest.raises(StoreError) as caught:
        Store.open(path, create=True)
    assert str(caught.value) == f"{path}: cannot connect (database is locked)"


def test_a_driver_error_of_several_lines_is_one_line() -> None:
    error = peewee.OperationalError("duplicate key value\nDETAIL:  Key (typname)=(bodies) already exists.\n")
    assert describe(error) == "duplicate key value DETAIL: Key (typname)=(bodies) already exists."
    assert describe(sqlite3.DatabaseError("database disk image is malformed")).startswith("is corrupted")
