"""`opreplay sessions` and `opreplay info`: tables for people, stable JSON for tools."""

from __future__ import annotations

import json
import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from opreplay.cli import main
from opreplay.model import NewOperation
from opreplay.store import Store


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "cli.db"
    with Store.open(path, create=True) as store:
        old = store.create_session(name="old", started_at=100.0, command="op --once")
        new = store.create_session(name="new", started_at=200.0, command="op")
        body = orjson.dumps({"kind": "ConfigMap", "metadata": {"name": "cfg"}})
        ops = [
            NewOperation(
                ts=time.time(),
                duration_us=900,
                thread="MainThread",
                verb=verb,
                api_version="v1",
                resource="configmaps",
                kind="ConfigMap",
                namespace="default",
                name="cfg",
                status=status,
                response=body,
            )
            for verb, status in [("get", 404), ("create", 201), ("get", 200), ("patch", 409)]
        ]
        store.append(new, 1, ops)
        store.append(old, 1, ops[:1])
    return path


def test_sessions_json_lists_newest_first(database: Path) -> None:
    result = CliRunner().invoke(main, ["sessions", "-d", str(database), "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [s["name"] for s in listed] == ["new", "old"]
    assert {"id", "name", "started_at", "ended_at", "operations", "errors"} <= set(listed[0])
    assert (listed[0]["operations"], listed[0]["errors"]) == (4, 2)


def test_info_json_counts_by_verb_kind_and_status(database: Path) -> None:
    result = CliRunner().invoke(main, ["info", "latest", "-d", str(database), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["name"] == "new" and info["operations"] == 4
    assert info["verbs"] == {"get": 2, "create": 1, "patch": 1}
    assert info["kinds"] == {"ConfigMap": 4}
    assert info["statuses"] == {"404": 1, "201": 1, "200": 1, "409": 1}
    assert info["size_bytes"] > 0


def test_database_defaults_to_the_environment(database: Path) -> None:
    result = CliRunner().invoke(main, ["info", "old"], env={"OPREPLAY_DATABASE": str(database)})
    assert result.exit_code == 0, result.output
    assert "1 operations" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sessions", "-d", "{missing}"], "no such file"),
        (["info", "nope", "-d", "{db}"], "no session 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    database: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    filled = [a.format(missing=tmp_path / "missing.db", db=database) for a in args]
    result = CliRunner().invoke(main, filled)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert result.output.count("\n") == 1
