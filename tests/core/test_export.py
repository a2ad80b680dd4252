"""Exports: JSON Lines with every field and the bodies, and Chrome trace events that Perfetto opens."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

import opreplay.cli.export  # noqa: F401  (registers `opreplay export`)
from opreplay.cli import main
from opreplay.export import export_chrome_trace, export_jsonl, slice_name
from opreplay.model import NewOperation
from opreplay.store import Store

T0 = 1_714_543_200.0


def _deployment(replicas: int, rv: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "resourceVersion": str(rv)},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}},
        },
    }


def _pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}}


def _op(seq_ts: float, **fields: Any) -> NewOperation:
    base: dict[str, Any] = dict(
        ts=T0 + seq_ts,
        duration_us=3000,
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
    return NewOperation(**base)


OPS = [
    _op(0.0, response=orjson.dumps(_deployment(2, 10)), reconcile=1),
    _op(
        0.01,
        verb="patch",
        request=b'{"spec":{"replicas":3}}',
        response=orjson.dumps(_deployment(3, 11)),
        reconcile=1,
        resource_version="11",
    ),
    _op(
        0.02,
        verb="patch",
        status=409,
        reason="Conflict",
        message="the object has been modified",
        request=b'{"spec":{"replicas":4}}',
        reconcile=1,
        response=orjson.dumps({"kind": "Status", "reason": "Conflict", "code": 409}),
    ),
    # a LIST (its items stored apart) on another thread, overlapping the next call of that thread
    _op(
        0.03,
        verb="list",
        api_version="v1",
        resource="pods",
        kind="Pod",
        name="",
        thread="worker-1",
        duration_us=50_000,
        response=orjson.dumps({"kind": "PodList", "metadata": {}}),
        response_items=(orjson.dumps(_pod("a")), orjson.dumps(_pod("b"))),
    ),
    _op(
        0.04,
        verb="get",
        api_version="v1",
        resource="pods",
        kind="Pod",
        name="a",
        thread="worker-1",
        duration_us=1000,
        status=404,
        reason="NotFound",
    ),
    _op(
        0.05,
        verb="watch-event",
        event="MODIFIED",
        thread="watch",
        watch=3,
        duration_us=0,
        response=orjson.dumps(_deployment(3, 11)),
    ),
    _op(
        0.06,
        verb="get",
        api_version="v1",
        resource="pods",
        kind="Pod",
        name="logs",
        subresource="log",
        response=b"line one\nline two\n",
    ),
]


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "export.db"
    with Store.open(path, create=True) as store:
        session = store.create_session(name="export", started_at=T0, command="op")
        store.append(session, 1, OPS)
    return path


def _jsonl(database: Path, expected: int = len(OPS)) -> list[dict[str, Any]]:
    out = io.BytesIO()
    with Store.open(database) as store:
        assert export_jsonl(store, store.find_session("latest"), out) == expected
    return [json.loads(line) for line in out.getvalue().decode().splitlines()]


def test_jsonl_has_every_field_and_the_decoded_bodies(database: Path) -> None:
    records = _jsonl(database)
    assert len(records) == len(OPS)
    for seq, (record, op) in enumerate(zip(records, OPS, strict=True), start=1):
        assert record["seq"] == seq
        for field in (
            "ts",
            "duration_us",
            "thread",
            "verb",
            "api_version",
            "resource",
            "kind",
            "namespace",
            "name",
            "subresource",
            "status",
            "reason",
            "message",
            "resource_version",
            "reconcile",
            "watch",
            "event",
        ):
            assert record[field] == getattr(op, field), field
        if op.request is not None:
            assert record["request"] == orjson.loads(op.request)
            assert len(record["request_digest"]) == 32
        else:
            assert record["request"] is None and record["request_digest"] is None
    assert records[0]["response"] == _deployment(2, 10)
    assert records[2]["error"] is True and records[0]["error"] is False and records[5]["error"] is False
    assert records[3]["response"]["items"] == [_pod("a"), _pod("b")]  # the LIST reassembled
    assert records[6]["response"] == "line one\nline two\n"  # not JSON: kept as text


def test_jsonl_to_a_text_stream_and_without_bodies(database: Path) -> None:
    out = io.StringIO()
    with Store.open(database) as store:
        export_jsonl(store, store.find_session("latest"), out, bodies=False)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(records) == len(OPS) and all(r["response"] is None for r in records)
    assert records[0]["response_digest"] is not None


def _trace(database: Path) -> dict[str, Any]:
    out = io.BytesIO()
    with Store.open(database) as store:
        export_chrome_trace(store, store.find_session("latest"), out)
    trace: dict[str, Any] = json.loads(out.getvalue())
    return trace


def test_chrome_trace_is_valid_with_one_slice_per_operation(database: Path) -> None:
    trace = _trace(database)
    events = trace["traceEvents"]
    slices = [e for e in events if e["ph"] == "X"]
    assert len(slices) == len(OPS)
    assert [e["args"]["seq"] for e in slices] == list(range(1, len(OPS) + 1))
    assert slices[1]["name"] == "PATCH Deployment default/web"
    assert slices[5]["name"] == "MODIFIED Deployment default/web" and slices[5]["cat"] == "watch"
    assert slices[3]["name"] == "LIST Pod default/*"
    assert slices[6]["name"] == "GET Pod/log default/logs"
    assert slices[0]["ts"] == 0 and slices[1]["ts"] == pytest.approx(10_000, abs=1)
    assert slices[3]["dur"] == 50_000 and slices[5]["dur"] >= 1
    assert slices[2]["args"]["status"] == 409 and slices[2]["args"]["reason"] == "Conflict"
    assert all(isinstance(e["ts"], (int, float)) and e["ts"] >= 0 for e in slices)
    assert trace["otherData"]["operations"] == len(OPS)


def test_chrome_trace_names_threads_and_marks_errors(database: Path) -> None:
    events = _trace(database)["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    process = [e for e in events if e["ph"] == "M" and e["name"] == "process_name"]
    assert process and process[0]["args"]["name"].startswith("opreplay ")
    # worker-1's GET starts while its LIST still runs: a second lane of that thread
    assert sorted(names.values()) == ["MainThread", "watch", "worker-1", "worker-1 #2"]
    slices = [e for e in events if e["ph"] == "X"]
    assert all(e["tid"] in names for e in slices)
    errors = [e for e in slices if e["cat"] == "error"]
    assert [e["args"]["seq"] for e in errors] == [3, 5]
    assert all(e["cname"] == "terrible" for e in errors)
    instants = [e for e in events if e["ph"] == "i"]
    assert [(e["args"]["seq"], e["name"]) for e in instants] == [(3, "409 Conflict"), (5, "404 NotFound")]
    # slices on one track never overlap partially
    by_track: dict[int, list[tuple[float, float]]] = {}
    for e in slices:
        by_track.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"]))
    for spans in by_track.values():
        spans.sort()
        assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))


def test_empty_session_exports(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    with Store.open(path, create=True) as store:
        store.create_session(name=None, started_at=T0, command="op")
    trace = _trace(path)
    assert [e for e in trace["traceEvents"] if e["ph"] == "X"] == []
    assert _jsonl(path, expected=0) == []


def test_slice_names() -> None:
    from opreplay.model import Operation

    op = Operation(
        1,
        T0,
        1,
        "t",
        "list",
        "v1",
        "nodes",
        "Node",
        "",
        "",
        None,
        200,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    )
    assert slice_name(op) == "LIST Node *"


def test_cli_export_jsonl_to_stdout(database: Path) -> None:
    result = CliRunner().invoke(main, ["export", "latest", "-d", str(database), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == len(OPS) and json.loads(lines[1])["verb"] == "patch"


def test_cli_export_chrome_trace_to_a_file(database: Path, tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    result = CliRunner().invoke(
        main, ["export", "-d", str(database), "--format", "chrome-trace", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    trace = json.loads(out.read_text())
    assert len([e for e in trace["traceEvents"] if e["ph"] == "X"]) == len(OPS)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "nope", "-d", "{db}"], "no session 'nope'"),
        (["export", "-d", "{db}", "-o", "{tmp}/missing/dir/out.json"], "cannot write"),
        (["export", "-d", "{tmp}/missing.db"], "no such file"),
    ],
)
def test_cli_export_bad_input_is_one_line_and_exit_2(
    database: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    filled = [a.format(db=database, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(main, filled)
    assert result.exit_code == 2, result.output
    assert message in result.output and result.output.count("\n") == 1
