"""Timeline documents: deterministic pages, line <-> seq arithmetic, and lines that parse back."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import opreplay.cli.timeline  # noqa: F401  (registers `opreplay timeline`)
from opreplay.cli import main
from opreplay.model import NewOperation, Operation, SessionInfo
from opreplay.store import Store
from opreplay.timeline import (
    DEFAULT_PAGE_SIZE,
    HEADER_LINES,
    LINE_PATTERN,
    TimelineError,
    Widths,
    format_duration,
    format_line,
    format_time,
    line_of,
    page_count,
    page_filename,
    page_of,
    parse_filename,
    parse_header,
    parse_line,
    render_page,
    seq_at,
    write_timeline,
)

T0 = 1_714_543_200.0  # 2024-05-01 06:00:00 UTC

KINDS = [
    ("apps/v1", "deployments", "Deployment", "default", "web"),
    ("example.com/v1", "webapps", "WebApp", "default", "web"),
    ("v1", "configmaps", "ConfigMap", "kube-system", "coredns"),
    ("v1", "nodes", "Node", "", "node-1"),
    ("v1", "pods", "Pod", "default", ""),
    ("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", "", "system:controller:web"),
]


def _ops(count: int, seed: int = 3) -> list[NewOperation]:
    rnd = random.Random(seed)
    ops = []
    ts = T0
    for i in range(count):
        api_version, resource, kind, namespace, name = rnd.choice(KINDS)
        verb = (
            rnd.choice(["get", "list", "patch", "update", "create", "delete", "watch-event"])
            if name
            else "list"
        )
        status, reason = rnd.choice(
            [(200, None), (200, None), (201, None), (404, "NotFound"), (409, "Conflict")]
        )
        ts += rnd.uniform(0.001, 0.5)
        ops.append(
            NewOperation(
                ts=ts,
                duration_us=rnd.choice([0, 412, 12_000, 312_000, 12_345_678]),
                thread=rnd.choice(["MainThread", "Thread-2 (worker)", "asyncio_0"]),
                verb=verb,
                api_version=api_version,
                resource=resource,
                kind=kind,
                namespace=namespace,
                name=name,
                subresource="status" if verb == "patch" and i % 2 else None,
                status=200 if verb == "watch-event" else status,
                reason=None if verb == "watch-event" else reason,
                reconcile=i // 4 if i % 5 else None,
                watch=7 if verb == "watch-event" else None,
                event=rnd.choice(["ADDED", "MODIFIED", "DELETED"]) if verb == "watch-event" else None,
                response=orjson.dumps({"kind": kind, "metadata": {"name": name, "resourceVersion": str(i)}}),
            )
        )
    return ops


def _store(path: Path, count: int, name: str | None = "timeline") -> Path:
    with Store.open(path, create=True) as store:
        session = store.create_session(name=name, started_at=T0, command="op")
        ops = _ops(count)
        for start in range(0, count, 100):
            store.append(session, start + 1, ops[start : start + 100])
    return path


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return _store(tmp_path / "timeline.db", 23)


def _session(store: Store) -> SessionInfo:
    return store.find_session("latest")


def test_rendering_is_deterministic(database: Path) -> None:
    with Store.open(database) as store:
        first = render_page(store, _session(store), 1, page_size=10)
    with Store.open(database) as store:
        second = render_page(store, _session(store), 1, page_size=10)
    assert first == second
    assert first.endswith("\n") and "\r" not in first


def test_paging_boundaries(database: Path) -> None:
    assert page_count(23, 10) == 3 and page_count(0, 10) == 1 and page_count(20, 10) == 2
    with Store.open(database) as store:
        session = _session(store)
        pages = [render_page(store, session, page, page_size=10).splitlines() for page in (1, 2, 3)]
        with pytest.raises(TimelineError, match="no page 4"):
            render_page(store, session, 4, page_size=10)
        with pytest.raises(TimelineError):
            render_page(store, session, 0, page_size=10)
    assert [len(lines) - HEADER_LINES for lines in pages] == [10, 10, 3]
    for number, lines in enumerate(pages, start=1):
        assert all(line.startswith("#") for line in lines[:HEADER_LINES])
        assert not any(line.startswith("#") for line in lines[HEADER_LINES:])
        header = parse_header(lines)
        assert header is not None
        assert (header.page, header.pages, header.page_size) == (number, 3, 10)
        assert (header.first, header.last) == ((number - 1) * 10 + 1, min(23, number * 10))
        assert header.database == str(database)
    seqs = [parsed.seq for lines in pages for line in lines if (parsed := parse_line(line)) is not None]
    assert seqs == list(range(1, 24))


def test_line_and_seq_round_trip(database: Path) -> None:
    for page_size in (1, 7, 10, DEFAULT_PAGE_SIZE):
        for seq in range(1, 60):
            page, line = page_of(seq, page_size), line_of(seq, page_size)
            assert seq_at(page, line, page_size=page_size) == seq
    assert seq_at(1, HEADER_LINES - 1) is None
    assert seq_at(1, HEADER_LINES + 10, page_size=10) is None
    assert seq_at(3, HEADER_LINES + 5, page_size=10, total=23) is None
    assert seq_at(3, HEADER_LINES + 2, page_size=10, total=23) == 23
    assert line_of(1) == HEADER_LINES and line_of(5001) == HEADER_LINES and page_of(5001) == 2
    with pytest.raises(TimelineError):
        page_of(0)
    # and the documents agree with the arithmetic
    with Store.open(database) as store:
        session = _session(store)
        for page in (1, 2, 3):
            lines = render_page(store, session, page, page_size=10).splitlines()
            for seq in range((page - 1) * 10 + 1, min(23, page * 10) + 1):
                parsed = parse_line(lines[line_of(seq, 10)])
                assert parsed is not None and parsed.seq == seq


def test_parse_line_round_trips_every_field(tmp_path: Path) -> None:
    path = _store(tmp_path / "many.db", 300)
    with Store.open(path) as store:
        ops = store.operations(_session(store))
    widths = Widths.of(ops)
    for op in ops:
        for w in (widths, None):
            line = format_line(op, w)
            parsed = parse_line(line)
            assert parsed is not None, line
            _assert_matches(parsed, op)
            assert parsed.time == format_time(op.ts)


def _assert_matches(parsed: object, op: Operation) -> None:
    from opreplay.timeline import ParsedLine

    assert isinstance(parsed, ParsedLine)
    assert parsed.seq == op.seq
    assert parsed.verb == op.verb
    assert (parsed.api_version, parsed.kind, parsed.subresource) == (op.api_version, op.kind, op.subresource)
    assert (parsed.namespace, parsed.name) == (op.namespace, op.name)
    if op.verb == "watch-event":
        assert parsed.status is None and parsed.event == op.event
    else:
        assert parsed.status == op.status and parsed.reason == op.reason and parsed.event is None
    assert (parsed.reconcile, parsed.watch, parsed.thread) == (op.reconcile, op.watch, op.thread)
    assert parsed.duration_ms == pytest.approx(op.duration_ms, rel=0.01, abs=0.001)
    assert parsed.is_error == (op.status >= 400 and op.verb != "watch-event")


def test_odd_names_are_escaped_and_come_back() -> None:
    op = Operation(
        seq=42,
        ts=T0 + 0.9996,
        duration_us=1500,
        thread="Thread 1\nsecond line",
        verb="deletecollection",
        api_version="v1",
        resource="configmaps",
        kind="ConfigMap",
        namespace="my ns",
        name="",
        subresource=None,
        status=500,
        reason="Internal Error%",
        message=None,
        resource_version=None,
        reconcile=None,
        watch=None,
        event=None,
        request_digest=None,
        response_digest=None,
    )
    line = format_line(op)
    assert "\n" not in line
    assert line.startswith("      42  06:00:01.000  DELETECOLLECTION  v1 ConfigMap my%20ns/*")
    parsed = parse_line(line)
    assert parsed is not None
    assert (parsed.verb, parsed.namespace, parsed.name) == ("deletecollection", "my ns", "")
    assert (parsed.status, parsed.reason, parsed.thread) == (500, "Internal Error%", "Thread 1 second line")


def test_example_line_layout() -> None:
    op = Operation(
        seq=1204,
        ts=T0 + 1.123,
        duration_us=12_000,
        thread="MainThread",
        verb="patch",
        api_version="apps/v1",
        resource="deployments",
        kind="Deployment",
        namespace="default",
        name="web",
        subresource=None,
        status=409,
        reason="Conflict",
        message="the object has been modified",
        resource_version="77",
        reconcile=17,
        watch=None,
        event=None,
        request_digest=None,
        response_digest=None,
    )
    assert format_line(op) == (
        "    1204  06:00:01.123  PATCH   apps/v1 Deployment default/web  409 Conflict     12.0ms"
        "  [reconcile 17] thread=MainThread"
    )
    match = LINE_PATTERN.match(format_line(op))
    assert match is not None and match["kind"] == "Deployment"
    assert [format_duration(us) for us in (412, 12_000, 312_000, 12_345_678)] == [
        "0.412ms",
        "12.0ms",
        "312ms",
        "12.3s",
    ]


def test_headers_and_foreign_lines_do_not_parse() -> None:
    for text in ("", "# page 1 of 2", "   ", "hello world", "12 not a timeline line"):
        assert parse_line(text) is None


def test_empty_session_has_one_empty_page(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    with Store.open(path, create=True) as store:
        store.create_session(name=None, started_at=T0, command="op")
    with Store.open(path) as store:
        text = render_page(store, _session(store), 1)
    lines = text.splitlines()
    assert len(lines) == HEADER_LINES and "no operations" in lines[3]
    header = parse_header(text)
    assert header is not None and (header.first, header.last, header.pages) == (1, 0, 1)


def test_write_timeline_names_files_by_session_and_page(database: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with Store.open(database) as store:
        session = _session(store)
        paths = write_timeline(store, session, out, page_size=10)
        assert [p.name for p in paths] == [page_filename(session.id, n) for n in (1, 2, 3)]
        assert paths[0].name == f"{session.id}.p0001.optrace"
        assert parse_filename(paths[2].name) == (session.id, 3)
        assert paths[1].read_text() == render_page(store, session, 2, page_size=10)
        # a later rendering with bigger pages leaves no stale page behind
        again = write_timeline(store, session, out, page_size=20)
    assert [p.name for p in again] == [page_filename(session.id, n) for n in (1, 2)]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in again)


def test_cli_timeline_writes_pages_and_prints_paths(database: Path, tmp_path: Path) -> None:
    out = tmp_path / "pages"
    result = CliRunner().invoke(
        main, ["timeline", "latest", "-d", str(database), "-o", str(out), "--page-size", "10"]
    )
    assert result.exit_code == 0, result.output
    printed = result.output.splitlines()
    assert len(printed) == 3 and all(Path(p).exists() for p in printed)
    assert Path(printed[0]).read_text().startswith("# opreplay timeline")


def test_cli_timeline_bad_session_is_one_line_and_exit_2(database: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["timeline", "nope", "-d", str(database), "-o", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "no session 'nope'" in result.output and result.output.count("\n") == 1
