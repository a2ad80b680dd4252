"""A damaged recording: every command says so in one line, or shows what it can; never a traceback.

SQLite checks its pages, not the values in them, so some damage gets past it: a text column that
is not UTF-8, a row that refers to a row that is gone, a delta chain that loops, a time no clock
can show. Each has a test here; then a seeded fuzz flips bytes of a real recording and runs every
reading command on the copies.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import subprocess
import sys
import traceback
from contextlib import closing
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from opreplay.cli import main
from opreplay.errors import StoreError
from opreplay.model import NewOperation
from opreplay.replay import ReplayEngine
from opreplay.store import Store, bodies

READING_COMMANDS = (
    ["sessions"],
    ["info", "latest"],
    ["replay", "latest"],
    ["analyze", "latest"],
    ["export", "latest"],
)


def _op(seq: int, response: bytes) -> NewOperation:
    return NewOperation(
        ts=1_700_000_000.0 + seq,
        duration_us=900,
        thread="MainThread",
        verb="update",
        api_version="v1",
        resource="configmaps",
        kind="ConfigMap",
        namespace="default",
        name="cfg",
        status=200,
        response=response,
    )


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    """Three versions of one ConfigMap: the second and third are stored as deltas."""
    path = tmp_path / "rec.db"
    with Store.open(path, create=True) as store:
        session = store.create_session(name="damaged", started_at=1_700_000_000.0, command="pytest")
        versions = [
            orjson.dumps({"kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"n": str(n) * 300}})
            for n in range(3)
        ]
        store.append(session, 1, [_op(seq, versions[seq - 1]) for seq in (1, 2, 3)])
        store.end_session(session, 1_700_000_010.0)
    return path


def _sql(path: Path, *statements: str) -> None:
    with closing(sqlite3.connect(path)) as connection, connection:
        for statement in statements:
            connection.execute(statement)


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _one_line_error(result: Result, *expected: str) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and all(text in lines[0] for text in expected), result.stderr


def test_text_that_is_not_utf8_is_corruption(recording: Path) -> None:
    _sql(recording, "UPDATE sessions SET name = CAST(X'C3FF' AS TEXT)")
    with Store.open(recording) as store, pytest.raises(StoreError) as caught:
        store.sessions()
    assert str(caught.value) == f"{recording}: is corrupted (column 'name' holds bytes that are not UTF-8)"
    _one_line_error(_run("sessions", "-d", str(recording)), str(recording), "not UTF-8")


def test_a_table_name_that_is_not_utf8_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "names.db"
    _sql(
        path,
        "CREATE TABLE t (id INTEGER)",
        "PRAGMA writable_schema = ON",
        "UPDATE sqlite_master SET name = CAST(X'FF' AS TEXT) WHERE name = 't'",
    )
    with pytest.raises(StoreError, match=r"is corrupted \(.*not UTF-8"):
        Store.open(path)


def test_an_operation_whose_object_is_gone_is_corruption(recording: Path) -> None:
    _sql(recording, "DELETE FROM objects")
    with Store.open(recording) as store:
        session = store.find_session("latest")
        with pytest.raises(StoreError, match=r"corrupted \(operation 1 refers to an object that is not"):
            store.operations(session)
        with pytest.raises(StoreError, match=r"corrupted \(operations refer to object 1, which is not"):
            store.operation_rows(session, 1, 4)
    _one_line_error(_run("replay", "latest", "-d", str(recording)), "not in the objects table")


def test_a_delta_chain_that_loops_is_corruption(recording: Path) -> None:
    with Store.open(recording) as store:
        last = store.operations(store.find_session("latest"))[-1].response_digest
    assert last is not None
    _sql(recording, f"UPDATE bodies SET codec = {bodies.DELTA}, base = digest")
    with Store.open(recording) as store, pytest.raises(StoreError, match="delta chain does not end"):
        store.body_bytes(last)


def test_a_delta_whose_base_is_gone_names_the_missing_body(recording: Path) -> None:
    with Store.open(recording) as store:
        first, _, last = (op.response_digest for op in store.operations(store.find_session("latest")))
    assert first is not None and last is not None
    _sql(recording, f"DELETE FROM bodies WHERE hex(digest) = '{first.hex().upper()}'")
    with Store.open(recording) as store, pytest.raises(StoreError, match=f"body {first.hex()} is missing"):
        store.body_bytes(last)  # two deltas above it: the walk reads the rest of the chain in one query


def test_a_value_of_another_type_than_its_column_is_corruption(recording: Path) -> None:
    _sql(recording, "UPDATE operations SET seq = X'0102' WHERE seq = 3")  # SQLite keeps it a blob
    with Store.open(recording) as store, pytest.raises(StoreError, match=r"\(a value that cannot be read"):
        store.last_seq(store.find_session("latest"))
    with Store.open(recording, create=True) as writer, pytest.raises(ValueError):
        writer.last_seq(writer.find_session("latest"))  # a writer's wrong value is its caller's bug
    _one_line_error(_run("replay", "latest", "-d", str(recording)), "a value that cannot be read")
    _sql(recording, "UPDATE sessions SET labels = 'not JSON'")
    _one_line_error(_run("sessions", "-d", str(recording)), "a value that cannot be read")


def test_a_body_that_is_not_json_is_shown_as_its_text(recording: Path) -> None:
    with Store.open(recording) as store:
        first = store.operations(store.find_session("latest"))[0].response_digest
    assert first is not None
    _sql(recording, f'UPDATE bodies SET codec = {bodies.RAW}, data = CAST(\'{{"kind": "Conf\' AS BLOB)')
    with ReplayEngine.open(recording) as engine:
        engine.goto(1)
        assert engine.body(engine.current) == '{"kind": "Conf'
    exported = _run("export", "latest", "-d", str(recording))
    assert exported.exit_code == 0, exported.output


def test_times_no_clock_can_show_are_shown_as_invalid(recording: Path) -> None:
    _sql(  # 9e999 is stored as an infinity
        recording,
        "UPDATE operations SET ts = 9e999 WHERE seq = 1",
        "UPDATE operations SET ts = -9e999, duration_us = -5 WHERE seq = 2",
        "UPDATE sessions SET started_at = -9e999",
    )
    database = ["-d", str(recording)]
    listed = _run("sessions", *database)
    assert listed.exit_code == 0 and "invalid" in listed.stdout, listed.output
    as_json = _run("sessions", *database, "--json")
    assert as_json.exit_code == 0 and orjson.loads(as_json.stdout)[0]["started_at"] is None, as_json.output
    replayed = _run("replay", "latest", *database)
    assert replayed.exit_code == 0, replayed.output
    assert replayed.stdout.count("??:??:??.???") == 2
    for command in READING_COMMANDS:
        result = _run(*command, *database)
        assert result.exit_code == 0 and result.exception is None, (command, result.output)


# -- fuzz ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "demo.db"
    opreplay = Path(sys.executable).parent / "opreplay"
    subprocess.run([str(opreplay), "demo", "-d", str(path)], check=True, capture_output=True, timeout=120)
    _sql(path, "PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def test_flipped_bytes_give_a_one_line_error_or_an_answer(demo_recording: Path, tmp_path: Path) -> None:
    rng = random.Random(7)
    size = demo_recording.stat().st_size
    outcomes = {0: 0, 2: 0}
    for trial in range(40):
        copy = tmp_path / f"copy{trial}.db"
        shutil.copyfile(demo_recording, copy)
        data = bytearray(copy.read_bytes())
        for _ in range(rng.choice((1, 4, 32))):
            data[rng.randrange(100, size)] = rng.randrange(256)  # past the header: SQLite opens it
        copy.write_bytes(bytes(data))
        for command in READING_COMMANDS:
            result = _run(*command, "-d", str(copy))
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                trace = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
                pytest.fail(f"trial {trial}, {' '.join(command)}: {trace}")
            assert result.exit_code in outcomes, (trial, command, result.output)
            if result.exit_code == 2:
                assert len(result.stderr.strip().splitlines()) == 1, (trial, command, result.stderr)
            outcomes[result.exit_code] += 1
    assert min(outcomes.values()) > 10, outcomes  # both outcomes were exercised
