"""Analysis: the loop, the storm and the slow call of a demo-shaped session; nothing in a clean one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

import opreplay.cli.analyze  # noqa: F401  (registers `opreplay analyze`)
from opreplay.analysis import Analysis, LoopDetector, LoopIndex, ObjectRef, analyze, detect_loops, loop_index
from opreplay.analysis import histogram as H
from opreplay.cli import main
from opreplay.model import NewOperation, SessionInfo
from opreplay.progress import fraction_callback, progress_bar
from opreplay.store import Store

T0 = 1_714_543_200.0  # 2024-05-01 06:00:00 UTC

WEBAPP = ("example.com/v1", "webapps", "WebApp")
DEPLOYMENT = ("apps/v1", "deployments", "Deployment")
SERVICE = ("v1", "services", "Service")
CONFIGMAP = ("v1", "configmaps", "ConfigMap")
POD = ("v1", "pods", "Pod")


def _doc(kind: tuple[str, str, str], name: str, rv: int, **extra: Any) -> bytes:
    api_version, _, kind_name = kind
    return orjson.dumps(
        {
            "apiVersion": api_version,
            "kind": kind_name,
            "metadata": {
                "name": name,
                "namespace": "default",
                "resourceVersion": str(rv),
                "uid": f"uid-{name}",
            },
            **extra,
        }
    )


class Recorder:
    """Builds a session op by op with a moving clock, like the recorder would."""

    def __init__(self, start: float = T0) -> None:
        self.ts = start
        self.ops: list[NewOperation] = []
        self.rv = 100

    def add(
        self,
        verb: str,
        kind: tuple[str, str, str],
        name: str,
        *,
        gap: float = 0.05,
        ms: float = 4.0,
        status: int = 200,
        reason: str | None = None,
        thread: str = "MainThread",
        reconcile: int | None = None,
        subresource: str | None = None,
        request: Any = None,
        namespace: str = "default",
        watch: int | None = None,
        event: str | None = None,
    ) -> int:
        self.ts += gap
        self.rv += 1
        api_version, resource, kind_name = kind
        response = None
        if status < 400 and name and verb != "delete":
            response = _doc(kind, name, self.rv, spec={"replicas": 2})
        elif status >= 400:
            response = orjson.dumps({"kind": "Status", "status": "Failure", "reason": reason, "code": status})
        self.ops.append(
            NewOperation(
                ts=self.ts,
                duration_us=int(ms * 1000),
                thread=thread,
                verb=verb,
                api_version=api_version,
                resource=resource,
                kind=kind_name,
                namespace=namespace,
                name=name,
                subresource=subresource,
                status=status,
                reason=reason,
                message=f"{kind_name} {name}: {reason}" if reason else None,
                resource_version=str(self.rv),
                reconcile=reconcile,
                watch=watch,
                event=event,
                request=orjson.dumps(request) if request is not None else None,
                response=response,
            )
        )
        return len(self.ops)

    def save(self, path: Path, name: str) -> None:
        with Store.open(path, create=True) as store:
            session = store.create_session(name=name, started_at=T0, command="python operator.py")
            for start in range(0, len(self.ops), 50):
                store.append(session, start + 1, self.ops[start : start + 50])
            store.end_session(session, self.ts + 1)


def demo_recorder() -> tuple[Recorder, dict[str, Any]]:
    """The demo's shape: a WebApp whose status patch re-triggers its reconcile, a conflict storm on its
    Deployment, one slow GET, a few 404s and a restarted watch."""
    r = Recorder()
    marks: dict[str, Any] = {}
    r.add("list", WEBAPP, "", ms=12, thread="MainThread")
    marks["watch"] = r.add("watch", WEBAPP, "", ms=2, thread="watch-webapps", watch=1, status=200)
    rec = 0
    loop_seqs = []
    for i in range(30):
        rec += 1
        loop_seqs.append(r.add("get", WEBAPP, "web", reconcile=rec))
        r.add("get", DEPLOYMENT, "web", reconcile=rec)
        if i % 10 == 3:
            r.add("get", SERVICE, "web-svc", status=404, reason="NotFound", reconcile=rec)
        last_patch = r.add(
            "patch",
            WEBAPP,
            "web",
            subresource="status",
            reconcile=rec,
            request={"status": {"observedGeneration": 1, "lastUpdated": f"2024-05-01T06:00:{i:02d}Z"}},
        )
        r.add("watch-event", WEBAPP, "web", gap=0.01, ms=0, thread="watch-webapps", watch=1, event="MODIFIED")
    marks["loop"] = (loop_seqs[0], last_patch)
    # the storm: six conflicts on the Deployment within a second, the reconcile retrying
    rec += 1
    storm = []
    for _ in range(6):
        r.add("get", DEPLOYMENT, "web", gap=0.05, reconcile=rec, thread="worker-1")
        storm.append(
            r.add(
                "patch",
                DEPLOYMENT,
                "web",
                gap=0.05,
                status=409,
                reason="Conflict",
                reconcile=rec,
                thread="worker-1",
                request={"spec": {"replicas": 3}},
            )
        )
    marks["storm"] = storm
    marks["slow"] = r.add("get", CONFIGMAP, "web-config", gap=2.0, ms=300, reconcile=rec + 1)
    r.add("list", POD, "", ms=25, reconcile=rec + 1)
    r.add("get", SERVICE, "web-svc", gap=30.0, status=404, reason="NotFound", reconcile=rec + 2)
    marks["restart"] = r.add("watch", WEBAPP, "", ms=2, thread="watch-webapps", watch=2)
    return r, marks


def clean_recorder() -> Recorder:
    """Steady, spaced reconciles of three WebApps (every 30 s each), nothing going wrong."""
    r = Recorder()
    rec = 0
    for round_ in range(12):
        for app in ("shop", "blog", "wiki"):
            rec += 1
            r.add(
                "get", WEBAPP, app, gap=10.0 + (round_ % 3) * 0.01, reconcile=rec, thread=f"worker-{rec % 2}"
            )
            r.add("get", DEPLOYMENT, app, reconcile=rec, thread=f"worker-{rec % 2}")
            r.add(
                "patch",
                WEBAPP,
                app,
                subresource="status",
                reconcile=rec,
                thread=f"worker-{rec % 2}",
                request={"status": {"ready": True, "observedGeneration": round_}},
            )
    return r


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    recorder, marks = demo_recorder()
    path = tmp_path / "demo.db"
    recorder.save(path, "demo")
    marks["total"] = len(recorder.ops)
    return path, marks


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    path = tmp_path / "clean.db"
    clean_recorder().save(path, "clean")
    return path


def _analyze(path: Path, **options: Any) -> tuple[Analysis, SessionInfo]:
    with Store.open(path) as store:
        session = store.find_session("latest")
        return analyze(store, session, **options), session


def test_demo_session_has_the_loop_the_storm_and_the_slow_call(demo: tuple[Path, dict[str, Any]]) -> None:
    path, marks = demo
    result, _ = _analyze(path)

    webapp = ObjectRef("WebApp", "default", "web")
    loops = [loop for loop in result.loops.hot if loop.object == webapp]
    assert len(loops) == 1, result.loops.hot
    loop = loops[0]
    assert loop.count == 30 and loop.writes == 30
    assert (loop.first_seq, loop.last_seq) == marks["loop"]
    assert loop.period_ops == 4.0 and loop.period_s == pytest.approx(0.16, abs=0.005)
    assert 0 < len(loop.sample_seqs) <= 10 and loop.sample_seqs[0] == marks["loop"][0]
    assert not result.loops.ping_pong  # the loop writes a timestamp, never back and forth

    storms = [s for s in result.errors.storms if s.status == 409]
    assert len(storms) == 1
    storm = storms[0]
    assert storm.object == ObjectRef("Deployment", "default", "web") and storm.reason == "Conflict"
    assert storm.count == 6 and (storm.first_seq, storm.last_seq) == (marks["storm"][0], marks["storm"][-1])
    assert not [s for s in result.errors.storms if s.status == 404]  # three 404s, far apart

    assert result.slow.count == 1
    (slow,) = result.slow.operations
    assert slow.seq == marks["slow"] and slow.duration_ms == 300.0 and slow.verb == "get"
    assert slow.object == ObjectRef("ConfigMap", "default", "web-config")
    assert result.slow.by_verb["get"].max_ms == 300.0 and result.slow.by_verb["get"].slow == 1
    assert result.slow.by_kind["ConfigMap"].p99_ms == pytest.approx(300.0, rel=0.04)
    assert result.slow.by_verb["get"].p50_ms == pytest.approx(4.0, rel=0.04)

    groups = {(g.status, g.object.name): g for g in result.errors.groups}
    not_found = groups[(404, "web-svc")]
    assert not_found.count == 4 and not_found.reason == "NotFound" and not_found.verbs == ("get",)
    assert not_found.first_seq < not_found.last_seq and not_found.first_ts < not_found.last_ts
    assert groups[(409, "web")].count == 6
    assert result.errors.total == 10 and result.errors.by_status == {"404": 4, "409": 6}

    access = result.access
    assert access.hot_objects[0].object == webapp
    assert access.hot_objects[0].operations == 30 * 3 and access.hot_objects[0].writes == 30
    assert all(hot.operations >= 2 for hot in access.hot_objects)  # once is not hot
    (restart,) = access.watch_restarts
    assert (restart.kind, restart.watches, restart.restarts) == ("WebApp", 2, 1)
    assert restart.sample_seqs == (marks["restart"],)
    kinds = {k.kind: k for k in access.by_kind}
    assert kinds["WebApp"].writes == 30 and kinds["WebApp"].watch_events == 30
    assert kinds["WebApp"].reads == 30 + 1 + 2  # gets, a list, two watches
    assert kinds["Deployment"].read_write_ratio == pytest.approx(36 / 6, abs=0.001)
    assert {(p.kind, p.count) for p in access.lists} == {("WebApp", 1), ("Pod", 1)}

    stats = result.stats
    assert stats.operations == marks["total"] and stats.first_seq == 1 and stats.last_seq == marks["total"]
    assert stats.errors == 10 and stats.reconciles == 33
    assert stats.verbs["get"] == 30 * 2 + 3 + 6 + 1 + 1
    assert stats.statuses["409"] == 6
    assert stats.span_s > 0 and stats.rate_per_s == pytest.approx(stats.operations / stats.span_s, rel=0.01)
    assert set(stats.threads) == {"MainThread", "watch-webapps", "worker-1"}


def test_clean_session_has_no_loop_and_no_storm(clean: Path) -> None:
    result, _ = _analyze(clean)
    assert result.loops.hot == ()
    assert result.loops.ping_pong == ()
    assert result.errors.storms == () and result.errors.total == 0
    assert result.slow.count == 0
    # three objects written every 30 s: regular, and reported as such
    assert {str(p.object) for p in result.loops.periodic} == {
        "WebApp default/shop",
        "WebApp default/blog",
        "WebApp default/wiki",
    }
    assert all(p.period_s == pytest.approx(30.3, abs=0.1) and not p.hot_loop for p in result.loops.periodic)


def test_thresholds_are_parameters(demo: tuple[Path, dict[str, Any]]) -> None:
    path, _ = demo
    strict, _ = _analyze(path, threshold_ms=3.0, min_count=40, storm_count=7)
    assert strict.loops.hot == ()  # 30 cycles < 40
    assert strict.errors.storms == ()  # 6 conflicts < 7
    assert strict.slow.count > 1 and strict.slow.threshold_ms == 3.0
    narrow, _ = _analyze(path, window_seconds=1.0)  # 10 cycles take ~1.5 s
    assert narrow.loops.hot == ()
    by_ops, _ = _analyze(path, window=30, window_seconds=None)  # 10 cycles take 37 operations
    assert by_ops.loops.hot == ()
    assert _analyze(path, window=40, window_seconds=None)[0].loops.hot


def test_json_has_the_five_keys_and_is_serialisable(demo: tuple[Path, dict[str, Any]]) -> None:
    path, _ = demo
    result, session = _analyze(path)
    data = result.to_json()
    assert list(data) == ["loops", "slow", "errors", "access", "stats"]
    again = json.loads(json.dumps(data))
    assert again == data
    assert again["stats"]["session"] == session.id
    assert again["loops"]["hot"][0]["object"] == {"kind": "WebApp", "namespace": "default", "name": "web"}
    assert again["errors"]["storms"][0]["status"] == 409
    assert again["slow"]["operations"][0]["duration_ms"] == 300.0


def test_empty_session(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    with Store.open(path, create=True) as store:
        store.create_session(name="empty", started_at=T0, command="x")
    result, _ = _analyze(path)
    assert result.stats.operations == 0 and result.stats.first_ts is None and result.stats.rate_per_s == 0.0
    assert result.to_json()["slow"]["overall"]["count"] == 0


def test_progress_is_reported_per_batch(demo: tuple[Path, dict[str, Any]]) -> None:
    path, marks = demo
    calls: list[tuple[int, int]] = []
    with Store.open(path) as store:
        analyze(store, store.find_session("latest"), progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (marks["total"], marks["total"])
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_progress_helpers() -> None:
    with progress_bar("quiet", enabled=False) as progress:
        assert progress is None
    with progress_bar("shown", enabled=True) as progress:
        assert progress is not None
        progress(1, 2)
        progress(3, 2)  # a total that grows while it runs
    seen: list[float] = []
    as_fraction = fraction_callback(seen.append)
    as_fraction(1, 4)
    as_fraction(0, 0)
    assert seen == [0.25, 1.0]


def test_fighting_writers_are_named_with_the_field(tmp_path: Path) -> None:
    """Two controllers set spec.replicas to 3 and 5 in turn: a ping-pong over that field."""
    r = Recorder()
    for i in range(12):
        thread, replicas = ("autoscaler", 5) if i % 2 else ("operator", 3)
        r.add(
            "patch",
            DEPLOYMENT,
            "web",
            thread=thread,
            reconcile=i + 1,
            request={"spec": {"replicas": replicas}},
        )
        r.add("get", CONFIGMAP, "other", thread=thread)
    path = tmp_path / "fight.db"
    r.save(path, "fight")
    result, _ = _analyze(path)
    (fight,) = result.loops.ping_pong
    assert fight.object == ObjectRef("Deployment", "default", "web")
    assert fight.writers == ("autoscaler", "operator")
    assert fight.flips == 11 and fight.field == "spec.replicas" and set(fight.values) == {"3", "5"}


def test_same_field_fight_on_one_thread_is_found_by_decoding_the_loop(tmp_path: Path) -> None:
    r = Recorder()
    for i in range(12):
        r.add(
            "update",
            DEPLOYMENT,
            "web",
            reconcile=i + 1,
            request={"metadata": {"name": "web"}, "spec": {"paused": i % 2 == 0}},
        )
    path = tmp_path / "flip.db"
    r.save(path, "flip")
    result, _ = _analyze(path)
    assert result.loops.hot
    (fight,) = result.loops.ping_pong
    assert fight.source == "fields" and fight.field == "spec.paused" and fight.writers == ("MainThread",)
    without, _ = _analyze(path, decode_candidates=False)
    assert without.loops.ping_pong == ()


def test_worker_pool_taking_turns_is_not_a_fight(tmp_path: Path) -> None:
    r = Recorder()
    for i in range(12):
        r.add(
            "patch",
            WEBAPP,
            "web",
            subresource="status",
            thread=f"worker-{i % 2}",
            reconcile=i + 1,
            gap=3.0,
            request={"status": {"observedGeneration": i}},
        )
    path = tmp_path / "pool.db"
    r.save(path, "pool")
    assert _analyze(path)[0].loops.ping_pong == ()
    # without bodies to look at, the alternation itself is all there is: reported as a candidate
    threads_only, _ = _analyze(path, decode_candidates=False)
    assert [p.source for p in threads_only.loops.ping_pong] == ["threads"]


def test_loop_index_marks_operations_inside_a_loop(demo: tuple[Path, dict[str, Any]]) -> None:
    path, marks = demo
    first, last = marks["loop"]
    webapp = ObjectRef("WebApp", "default", "web")
    with Store.open(path) as store:
        session = store.find_session("latest")
        index = loop_index(store, session)
        report = detect_loops(store, session)
    assert [loop.object for loop in report.hot] == [webapp]
    assert index.in_loop(first) and index.in_loop(last) and index.in_loop((first + last) // 2, webapp)
    assert not index.in_loop(first - 1) and not index.in_loop(last + 1)
    assert not index.in_loop(first + 1, ObjectRef("Deployment", "default", "web"))
    assert index.intervals == [(webapp, first, last)]
    assert LoopIndex([]).loops_at(5) == []


def test_loop_detector_can_be_fed_operations(demo: tuple[Path, dict[str, Any]]) -> None:
    path, marks = demo
    detector = LoopDetector()
    with Store.open(path) as store:
        for op in store.iter_operations(store.find_session("latest")):
            detector.feed(op)
    (loop,) = detector.finish().hot
    assert (loop.first_seq, loop.last_seq) == marks["loop"]


def test_rows_fallback_gives_the_same_analysis(demo: tuple[Path, dict[str, Any]]) -> None:
    """A store without `operation_rows` is read through `iter_operations`, with the same results."""
    path, _ = demo

    class Plain:
        def __init__(self, store: Store) -> None:
            self.store = store
            self.label = store.label

        def iter_operations(self, session: SessionInfo, *, batch: int = 5000) -> Any:
            return self.store.iter_operations(session, batch=batch)

        def operations(self, session: SessionInfo, start: int = 1, stop: int | None = None) -> Any:
            return self.store.operations(session, start, stop)

        def body(self, key: bytes) -> Any:
            return self.store.body(key)

    with Store.open(path) as store:
        session = store.find_session("latest")
        fast = analyze(store, session).to_json()
        slow = analyze(Plain(store), session).to_json()
    assert fast == slow


def test_histogram_quantiles_are_within_a_few_percent() -> None:
    values = [1000 * (i + 1) for i in range(1000)]  # 1..1000 ms
    histogram = H.from_values(values)
    p50, p95, p99 = H.quantiles(histogram, maximum=1_000_000)
    assert p50 == pytest.approx(500_000, rel=0.035)
    assert p95 == pytest.approx(950_000, rel=0.035)
    assert p99 == pytest.approx(990_000, rel=0.035)
    assert H.quantiles({}, maximum=None) == [0.0, 0.0, 0.0]


# -- the command -------------------------------------------------------------------------------


def test_cli_analyze_json(demo: tuple[Path, dict[str, Any]]) -> None:
    path, marks = demo
    result = CliRunner().invoke(main, ["analyze", "latest", "-d", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"loops", "slow", "errors", "access", "stats"}
    assert data["loops"]["hot"][0]["first_seq"] == marks["loop"][0]
    assert data["stats"]["operations"] == marks["total"]


def test_cli_analyze_options_reach_the_analysis(demo: tuple[Path, dict[str, Any]]) -> None:
    path, _ = demo
    args = [
        "analyze",
        "demo",
        "-d",
        str(path),
        "--json",
        "--threshold",
        "500",
        "--window",
        "10",
        "--window-seconds",
        "0.5",
        "--storm-count",
        "7",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["slow"]["count"] == 0 and data["slow"]["threshold_ms"] == 500.0
    assert data["loops"]["hot"] == [] and data["errors"]["storms"] == []
    assert data["loops"]["parameters"]["window"] == 10


def test_cli_analyze_tables(demo: tuple[Path, dict[str, Any]]) -> None:
    path, _ = demo
    result = CliRunner().invoke(main, ["analyze", "-d", str(path)], terminal_width=160)
    assert result.exit_code == 0, result.output
    for text in (
        "hot loops",
        "WebApp default/web",
        "error storms",
        "409 Conflict",
        "slowest calls",
        "latency by verb",
        "hot objects",
        "watch restarts",
    ):
        assert text in result.output, text


def test_cli_analyze_clean_session_says_so(clean: Path) -> None:
    result = CliRunner().invoke(main, ["analyze", "-d", str(clean)], terminal_width=160)
    assert result.exit_code == 0, result.output
    assert "no hot loop" in result.output and "no error storm" in result.output


def test_cli_analyze_window_zero_turns_a_window_off(demo: tuple[Path, dict[str, Any]]) -> None:
    path, _ = demo
    runner = CliRunner()
    result = runner.invoke(
        main, ["analyze", "-d", str(path), "--json", "--window", "40", "--window-seconds", "0"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["loops"]["parameters"]["window_seconds"] is None
    both = runner.invoke(main, ["analyze", "-d", str(path), "--window", "0", "--window-seconds", "0"])
    assert both.exit_code == 2 and "cannot both be 0" in both.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyze", "nope", "-d", "{db}"], "no session 'nope'"),
        (["analyze", "-d", "{tmp}/missing.db", "--json"], "no such file"),
    ],
)
def test_cli_analyze_bad_input_is_one_line_and_exit_2(
    demo: tuple[Path, dict[str, Any]], tmp_path: Path, args: list[str], message: str
) -> None:
    filled = [a.format(db=demo[0], tmp=tmp_path) for a in args]
    result = CliRunner().invoke(main, filled)
    assert result.exit_code == 2
    assert message in result.output and result.output.count("\n") == 1
