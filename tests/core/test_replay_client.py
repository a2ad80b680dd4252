"""ReplayApiClient: the example operator, recorded against the emulator, replayed with no cluster at all.

The recordings are made once per module by the real recorder, against the real emulator, with the
real kubernetes client; the emulator is gone before any replay starts, and every replay runs with
the socket functions booby-trapped: a replay that touches the network fails.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import pathlib
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

import opreplay
import webapp_operator
from opreplay.demo.emulator import KubernetesEmulatorThread
from opreplay.model import Operation
from opreplay.record.capture import DONE, Call
from opreplay.record.redact import placeholder
from opreplay.record.writer import Assembler
from opreplay.replay.client import (
    DivergenceError,
    IncompleteReplayError,
    RecordingIncompleteError,
    ReplayApiClient,
)
from opreplay.store import Store
from webapp_operator import operator as webapp

pytestmark = pytest.mark.filterwarnings("error")

NS = "default"
WEBAPPS = f"{webapp_operator.GROUP}/{webapp_operator.VERSION}/{webapp_operator.PLURAL}"
CONFLICT = 'Operation cannot be fulfilled on deployments.apps "shop": the object has been modified'
RUN_EVENTS = 4


@dataclasses.dataclass
class Recording:
    """The recordings, and what the operator got live while they were made."""

    db: pathlib.Path
    summary: webapp_operator.RunSummary
    results: list[webapp_operator.ReconcileResult]
    errors: list[ApiException]
    secret: client.V1Secret
    transport: Exception


# -- the code that is recorded and replayed --------------------------------------------------------


def reconcile_all(api: client.ApiClient) -> list[webapp_operator.ReconcileResult]:
    return [
        webapp_operator.reconcile(api, NS, name, stamp_status=False) for name in ("shop", "blog", "ghost")
    ]


def run_operator(api: client.ApiClient) -> webapp_operator.RunSummary:
    return webapp_operator.run(api, NS, stop_after_events=RUN_EVENTS, deadline=time.monotonic() + 30)


def error_calls(api: client.ApiClient) -> list[ApiException]:
    core = client.CoreV1Api(api)
    calls: list[Callable[[], object]] = [
        lambda: core.read_namespaced_config_map("missing", NS),
        lambda: core.create_namespaced_config_map(
            NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="shop-config"))
        ),
        lambda: core.read_namespaced_config_map("flaky", NS),
    ]
    caught: list[ApiException] = []
    for call in calls:
        with pytest.raises(ApiException) as error:
            call()
        caught.append(error.value)
    return caught


def secret_calls(api: client.ApiClient) -> client.V1Secret:
    core = client.CoreV1Api(api)
    password = base64.b64encode(b"hunter2").decode()
    core.create_namespaced_secret(
        NS, client.V1Secret(metadata=client.V1ObjectMeta(name="db"), data={"password": password})
    )
    return core.read_namespaced_secret("db", NS)


def transport_call(api: client.ApiClient) -> Exception:
    with pytest.raises(urllib3.exceptions.HTTPError) as error:
        client.CoreV1Api(api).read_namespaced_config_map("shop-config", NS)
    return error.value


# -- the recordings ----------------------------------------------------------------------------------


def discovery_cache(url: str) -> pathlib.Path:
    digest = hashlib.md5(url.encode(), usedforsecurity=False).hexdigest()
    return pathlib.Path(tempfile.gettempdir()) / f"osrcp-{digest}.json"


def seed(cluster: KubernetesEmulatorThread) -> None:
    cluster.register_resource(
        webapp_operator.GROUP, webapp_operator.VERSION, webapp_operator.PLURAL, webapp_operator.KIND
    )
    for name, config in (("shop", {"THEME": "dark"}), ("blog", {"MODE": "static"})):
        cluster.add_object(
            WEBAPPS,
            {
                "metadata": {"name": name, "namespace": NS},
                "spec": {"image": "nginx:1.27", "replicas": 2, "configData": config},
            },
        )
    for index in range(2):
        cluster.add_object(
            "v1/pods",
            {
                "metadata": {"name": f"shop-{index}", "namespace": NS, "labels": {"app": "shop"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                "status": {"conditions": [{"type": "Ready", "status": "True" if index else "False"}]},
            },
        )
    labels = {"app": "shop"}
    cluster.add_object(  # one release behind its WebApp: the first reconcile updates it
        "apps/v1/deployments",
        {
            "metadata": {"name": "shop", "namespace": NS, "labels": labels},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]},
                },
            },
        },
    )


def conflicts(cluster: KubernetesEmulatorThread, times: int) -> None:
    cluster.fail(
        "update", "apps/v1/deployments", "shop", namespace=NS, status=409, reason="Conflict",
        message=CONFLICT, times=times,
    )  # fmt: skip


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    db = tmp_path_factory.mktemp("replay") / "recordings.db"
    with KubernetesEmulatorThread() as cluster:
        seed(cluster)
        api = cluster.api_client()
        cold = discovery_cache(cluster.url)  # each session starts as a new process would: cold

        conflicts(cluster, 2)
        with opreplay.record(db, "operator", api_client=api):  # watch loop, 404 creates, 409 retries
            summary = run_operator(api)

        custom = client.CustomObjectsApi(api)
        custom.patch_namespaced_custom_object(
            webapp_operator.GROUP, webapp_operator.VERSION, NS, webapp_operator.PLURAL, "shop",
            {"spec": {"image": "nginx:1.28", "configData": {"THEME": "light"}}},
        )  # fmt: skip
        conflicts(cluster, 2)
        cold.unlink(missing_ok=True)
        with opreplay.record(db, "reconciles", api_client=api):
            results = reconcile_all(api)

        cluster.fail(
            "get", "v1/configmaps", "flaky", namespace=NS, status=500, reason="InternalError",
            message="etcdserver: request timed out",
        )  # fmt: skip
        with opreplay.record(db, "errors", api_client=api):
            errors = error_calls(api)

        with opreplay.record(db, "secrets", api_client=api):
            secret = secret_calls(api)
        cold.unlink(missing_ok=True)
    with contextlib.closing(api), opreplay.record(db, "transport", api_client=api):
        transport = transport_call(api)  # the emulator is gone: connection refused
    assert (summary.events, summary.failures, summary.conflicts) == (RUN_EVENTS, 0, 2)
    assert results[0].conflicts == 2 and not results[2].found
    return Recording(db, summary, results, errors, secret, transport)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every way of reaching the network fails the test (after the module's recordings are made)."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise AssertionError(f"a replay touched the network: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert attempts == []


def operations(db: pathlib.Path, session: str) -> list[Operation]:
    with Store.open(db) as store:
        return list(store.iter_operations(store.find_session(session)))


def requests_of(ops: list[Operation]) -> list[tuple[Any, ...]]:
    return [
        (op.verb, op.api_version, op.resource, op.namespace, op.name, op.subresource, op.status)
        for op in ops
        if op.verb != "watch-event"
    ]


def events_of(ops: list[Operation]) -> list[tuple[Any, ...]]:
    return [(op.event, op.name, op.response_digest) for op in ops if op.verb == "watch-event"]


# -- exact replay ------------------------------------------------------------------------------------


def test_the_operator_run_replays_exactly_with_its_watch_loop_404_creates_and_409_retries(
    recording: Recording, tmp_path: pathlib.Path
) -> None:
    recorded = operations(recording.db, "operator")
    with ReplayApiClient(recording.db, "operator") as api:
        assert (api.position, api.remaining) == (0, len(recorded))
        assert api.configuration.host.endswith(".invalid")
        with opreplay.record(tmp_path / "again.db", "again", api_client=api):  # the replay, recorded
            summary = run_operator(api)
        api.assert_complete()
        assert (api.position, api.remaining, api.divergences) == (recorded[-1].seq, 0, [])

    assert summary == recording.summary
    again = operations(tmp_path / "again.db", "again")
    assert requests_of(again) == requests_of(recorded)  # the same calls, in the same order
    # Events read off the socket live but never by the code (the last chunk) are not read in a replay.
    assert RUN_EVENTS <= len(events_of(again)) <= len(events_of(recorded))
    assert events_of(again) == events_of(recorded)[: len(events_of(again))]
    statuses = [status for *_, status in requests_of(recorded)]
    assert statuses.count(404) >= 3 and statuses.count(409) == 2  # what was replayed
    # The operator got the very bytes it got live: re-recorded, every response has the same digest.
    assert [op.response_digest for op in again if op.verb != "watch-event"] == [
        op.response_digest for op in recorded if op.verb != "watch-event"
    ]


def test_reconcile_results_equal_the_recorded_ones(recording: Recording) -> None:
    with ReplayApiClient(recording.db, "reconciles") as api:
        results = reconcile_all(api)
        api.assert_complete()
    assert results == recording.results
    assert results[0] == webapp_operator.ReconcileResult(
        "shop", updated=["ConfigMap", "Deployment"], conflicts=2, ready_replicas=1
    )
    assert results[2] == webapp_operator.ReconcileResult("ghost", found=False)


def test_a_replay_can_run_in_a_thread_of_another_name(recording: Recording) -> None:
    """Strict order is per thread; a thread with no recorded namesake takes the recorded thread that fits."""
    outcome: list[Any] = []
    with ReplayApiClient(recording.db, "reconciles") as api:

        def work() -> None:
            try:
                outcome.append(reconcile_all(api))
            except BaseException as error:  # handed to the test thread
                outcome.append(error)

        worker = threading.Thread(target=work, name="worker-7")
        worker.start()
        worker.join(30)
        api.assert_complete()
    assert outcome == [recording.results]


def test_start_skips_the_operations_before_it(recording: Recording) -> None:
    ghost = next(op for op in operations(recording.db, "reconciles") if op.name == "ghost")
    with ReplayApiClient(recording.db, "reconciles", start=ghost.seq) as api:
        assert api.position == ghost.seq - 1
        assert webapp_operator.reconcile(api, NS, "ghost") == recording.results[2]
        api.assert_complete()


def test_recorded_errors_raise_the_same_api_exception(recording: Recording) -> None:
    with ReplayApiClient(recording.db, "errors") as api:
        replayed = error_calls(api)
        api.assert_complete()
    assert [type(error) for error in replayed] == [type(error) for error in recording.errors]
    assert [type(error).__name__ for error in replayed] == [
        "NotFoundException",
        "ConflictException",
        "ServiceException",
    ]
    for live, replay in zip(recording.errors, replayed, strict=True):
        assert (replay.status, replay.reason, replay.body) == (live.status, live.reason, live.body)
        assert replay.headers is not None and replay.headers["Content-Type"] == "application/json"
    assert orjson.loads(replayed[1].body)["reason"] == "AlreadyExists"


def test_a_transport_error_is_raised_again_as_the_same_urllib3_error(recording: Recording) -> None:
    with ReplayApiClient(recording.db, "transport") as api:
        error = transport_call(api)
        api.assert_complete()
    assert type(error) is type(recording.transport) is urllib3.exceptions.MaxRetryError
    assert str(error) == str(recording.transport)


def test_secrets_come_back_redacted_as_recorded(recording: Recording) -> None:
    assert base64.b64decode(recording.secret.data["password"]) == b"hunter2"
    with ReplayApiClient(recording.db, "secrets") as api:
        secret = secret_calls(api)  # the create matches although the recording holds no password
        api.assert_complete()
    assert secret.data == {"password": placeholder(b"hunter2")}
    assert secret.metadata.uid == recording.secret.metadata.uid


def test_a_watch_streams_the_recorded_events_as_json_lines_then_ends(recording: Recording) -> None:
    recorded = operations(recording.db, "operator")
    first_watch = next(op for op in recorded if op.verb == "watch")
    events = [op for op in recorded if op.watch == first_watch.seq]
    with ReplayApiClient(recording.db, "operator", strict=False) as api:
        custom = client.CustomObjectsApi(api)
        response = custom.list_namespaced_custom_object(
            webapp_operator.GROUP, webapp_operator.VERSION, NS, webapp_operator.PLURAL,
            watch=True, _preload_content=False,
        )  # fmt: skip
        assert (response.status, response.headers["Transfer-Encoding"]) == (200, "chunked")
        chunks = list(response.stream(amt=None, decode_content=False))
        response.release_conn()
        assert api.remaining == len(recorded) - 1 - len(events)  # the watch and its events are replayed
    assert len(chunks) == len(events)  # one event per chunk, as the API server flushes them
    lines = [orjson.loads(chunk) for chunk in chunks]
    assert all(chunk.endswith(b"\n") and chunk.count(b"\n") == 1 for chunk in chunks)
    assert [(line["type"], line["object"]["metadata"]["name"]) for line in lines] == [
        (op.event, op.name) for op in events
    ]
    with ReplayApiClient(recording.db, "operator", strict=False) as api:
        stream = watch.Watch().stream(
            client.CustomObjectsApi(api).list_namespaced_custom_object,
            webapp_operator.GROUP, webapp_operator.VERSION, NS, webapp_operator.PLURAL,
            timeout_seconds=30,
        )  # fmt: skip
        assert [(event["type"], event["object"]["metadata"]["name"]) for event in stream] == [
            (op.event, op.name) for op in events
        ]


# -- divergence ----------------------------------------------------------------------------------------


def test_a_different_patch_is_a_divergence_that_shows_both_requests(recording: Recording) -> None:
    with ReplayApiClient(recording.db, "reconciles") as api, pytest.raises(DivergenceError) as caught:
        webapp_operator.reconcile(api, NS, "shop", stamp_status=True)  # writes status.lastReconciled too
    message = str(caught.value)
    status = "PATCH demo.opreplay.dev/v1 webapps default/shop/status"
    assert message.count(status) == 2, message  # expected and actual, side by side
    assert "expected: #" in message and "actual:   PATCH" in message
    assert "first difference: status.lastReconciled: missing in the recording" in message
    assert caught.value.seq is not None and caught.value.expected is not None
    assert caught.value.expected.startswith(f"#{caught.value.seq} {status}")


def test_skipping_the_config_map_get_is_a_divergence(
    recording: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webapp, "_ensure_config_map", lambda *args, **kwargs: None)
    with ReplayApiClient(recording.db, "reconciles") as api, pytest.raises(DivergenceError) as caught:
        reconcile_all(api)
    message = str(caught.value)
    assert "GET v1 configmaps default/shop-config" in message, message
    assert "actual:   GET apps/v1 deployments default/shop" in message, message
    assert "first difference: resource: configmaps recorded, deployments now" in message
    assert [divergence.kind for divergence in api.divergences] == ["diverged"]


def test_lenient_mode_tolerates_an_extra_and_a_reordered_get_and_reports_them(
    recording: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Deployment is seen to before the ConfigMap, and the ConfigMap is read once more."""
    ensure_config_map, ensure_deployment = webapp._ensure_config_map, webapp._ensure_deployment
    ensure_service = webapp._ensure_service

    def deployment_first(core: client.CoreV1Api, *args: Any, **kwargs: Any) -> None:
        ensure_deployment(client.AppsV1Api(core.api_client), *args, **kwargs)
        ensure_config_map(core, *args, **kwargs)

    def read_config_again(dynamic: Any, namespace: str, name: str, **kwargs: Any) -> None:
        client.CoreV1Api(dynamic.client).read_namespaced_config_map(f"{name}-config", namespace)
        ensure_service(dynamic, namespace, name, **kwargs)

    monkeypatch.setattr(webapp, "_ensure_config_map", deployment_first)
    monkeypatch.setattr(webapp, "_ensure_deployment", lambda *args, **kwargs: None)
    monkeypatch.setattr(webapp, "_ensure_service", read_config_again)
    with ReplayApiClient(recording.db, "reconciles", strict=False) as api:
        results = reconcile_all(api)
        api.assert_complete()
        divergences = api.divergences
    assert [dataclasses.replace(result, updated=sorted(result.updated)) for result in results] == (
        recording.results
    )
    assert {divergence.kind for divergence in divergences} == {"reordered", "repeated"}, divergences
    reordered = [divergence for divergence in divergences if divergence.kind == "reordered"]
    assert reordered[0].actual == "GET apps/v1 deployments default/shop"
    assert (
        reordered[0].expected is not None
        and " GET v1 configmaps default/shop-config" in reordered[0].expected
    )
    repeated = [divergence.actual for divergence in divergences if divergence.kind == "repeated"]
    assert repeated == ["GET v1 configmaps default/shop-config", "GET v1 configmaps default/blog-config"]


def test_lenient_mode_reports_what_was_never_asked_for_and_fails_on_what_was_never_recorded(
    recording: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webapp, "_ensure_config_map", lambda *args, **kwargs: None)
    with ReplayApiClient(recording.db, "reconciles", strict=False) as api:
        assert reconcile_all(api) == [
            dataclasses.replace(result, updated=[kind for kind in result.updated if kind != "ConfigMap"])
            for result in recording.results
        ]
        with pytest.raises(IncompleteReplayError) as incomplete:
            api.assert_complete()
        assert "GET v1 configmaps default/shop-config" in str(incomplete.value)
        assert "PATCH v1 configmaps default/shop-config" in str(incomplete.value)
        with pytest.raises(DivergenceError) as unmatched:
            client.CoreV1Api(api).delete_namespaced_config_map("shop-config", NS)
        assert "nothing in the recording matches this request" in str(unmatched.value)
        assert api.divergences[-1].kind == "unmatched"


def test_an_operator_that_stops_early_leaves_the_replay_incomplete(recording: Recording) -> None:
    with ReplayApiClient(recording.db, "reconciles") as api:
        webapp_operator.reconcile(api, NS, "shop", stamp_status=False)
        remaining = api.remaining
        with pytest.raises(IncompleteReplayError) as caught:
            api.assert_complete()
    assert remaining > 0
    assert str(caught.value).startswith(f"{remaining} recorded operations of session")
    assert "GET demo.opreplay.dev/v1 webapps default/blog" in str(caught.value)


# -- recordings that do not hold everything (made by the recorder's own assembler) ---------------------


def assemble(db: pathlib.Path, exchanges: list[Any], *, max_body_bytes: int = 1 << 20) -> None:
    """A session of (method, url, status, response, error[, thread]) exchanges or "gap"s, by the
    recorder's own writer."""
    assembler = Assembler(token=object(), redact=True, max_body_bytes=max_body_bytes)
    for exchange in exchanges:
        if exchange == "gap":
            assembler.gap(3, set())
            continue
        method, url, status, response, error, *thread = exchange
        started = time.perf_counter_ns()
        call = Call(
            method, url, None, None, time.time(), started, thread[0] if thread else "MainThread", None
        )
        call.status, call.reason = status, "OK"
        assembler.feed((DONE, call, response, time.perf_counter_ns(), error))
    first, ops, dropped = assembler.take()
    with Store.open(db, create=True) as store:
        session = store.create_session(name="made", started_at=time.time(), command="test")
        store.append(session, first, ops, dropped=dropped)
        store.end_session(session, time.time())


POD_LIST = (
    b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"9"},"items":['
    b'{"metadata":{"name":"a","namespace":"default","uid":"1","resourceVersion":"7"},"spec":{"containers":[{"name":"w","image":"i"}]}},'
    b'{"metadata":{"name":"b","namespace":"default","uid":"2","resourceVersion":"8"},"spec":{"containers":[{"name":"w","image":"i"}]}}]}\n'
)
URL = "http://127.0.0.1:1/api/v1/namespaces/default"


def test_a_built_in_list_comes_back_as_the_api_server_wrote_it(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "made.db"
    assemble(db, [("GET", f"{URL}/pods", 200, POD_LIST, None)])
    with ReplayApiClient(db) as api:
        response = client.CoreV1Api(api).list_namespaced_pod(NS, _preload_content=False)
        assert response.data == POD_LIST.rstrip()  # not the items with the kind the recorder adds
    with ReplayApiClient(db) as api:
        pods = client.CoreV1Api(api).list_namespaced_pod(NS)
    assert [(pod.kind, pod.metadata.name) for pod in pods.items] == [(None, "a"), (None, "b")]


def test_a_body_read_that_failed_half_way_fails_again_after_the_same_bytes(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "made.db"
    broken = urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead(10 bytes read)")
    assemble(db, [("GET", f"{URL}/configmaps/a", 200, b'{"kind":"Co', broken)])
    with ReplayApiClient(db) as api:
        response = client.CoreV1Api(api).read_namespaced_config_map("a", NS, _preload_content=False)
        assert response.read(5) == b'{"kin'
        with pytest.raises(urllib3.exceptions.ProtocolError) as caught:
            response.read()
    assert str(caught.value) == str(broken)


def test_a_truncated_body_is_not_replayed_as_if_it_were_whole(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "made.db"
    big = orjson.dumps({"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": "x" * 500}})
    assemble(db, [("GET", f"{URL}/configmaps/a", 200, big, None)], max_body_bytes=100)
    with ReplayApiClient(db) as api, pytest.raises(RecordingIncompleteError, match="max_body_bytes"):
        client.CoreV1Api(api).read_namespaced_config_map("a", NS)


def test_a_gap_stops_a_strict_replay_and_is_noted_by_a_lenient_one(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "made.db"
    config_map = b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a"}}'
    get = ("GET", f"{URL}/configmaps/a", 200, config_map, None)
    assemble(db, [get, "gap", get])
    with ReplayApiClient(db) as api:
        core = client.CoreV1Api(api)
        core.read_namespaced_config_map("a", NS)
        with pytest.raises(DivergenceError, match="the recording has a gap at seq 2"):
            core.read_namespaced_config_map("a", NS)
    with ReplayApiClient(db, strict=False) as api:
        core = client.CoreV1Api(api)
        core.read_namespaced_config_map("a", NS)
        core.read_namespaced_config_map("a", NS)
        api.assert_complete()  # a gap is not an operation to replay
        assert [divergence.kind for divergence in api.divergences] == ["gap"]


def test_a_replay_never_opens_a_connection(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "made.db"
    assemble(db, [])
    with ReplayApiClient(db) as api:
        pool_manager = api.rest_client.pool_manager
        with pytest.raises(opreplay.OpreplayError, match="never connects"):
            pool_manager.connection_from_url("https://example.com")
        with pytest.raises(DivergenceError, match="no recorded request left"):
            client.CoreV1Api(api).list_namespaced_pod(NS)


def test_strict_order_is_kept_per_thread(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "made.db"

    def get(name: str, thread: str) -> tuple[Any, ...]:
        body = orjson.dumps({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": name}})
        return ("GET", f"{URL}/configmaps/{name}", 200, body, None, thread)

    assemble(db, [get("a1", "Thread-A"), get("b1", "Thread-B"), get("a2", "Thread-A"), get("b2", "Thread-B")])

    def read(api: ReplayApiClient, *names: str) -> list[str]:
        core = client.CoreV1Api(api)
        return [core.read_namespaced_config_map(name, NS).metadata.name for name in names]

    with ReplayApiClient(db) as api:  # the threads of the recording, each in its order, B before A
        done: list[list[str]] = []
        for thread, names in (("Thread-B", ("b1", "b2")), ("Thread-A", ("a1", "a2"))):
            worker = threading.Thread(target=lambda names=names: done.append(read(api, *names)), name=thread)
            worker.start()
            worker.join(10)
        assert done == [["b1", "b2"], ["a1", "a2"]]
        api.assert_complete()
    with ReplayApiClient(db) as api:  # one thread doing the work of both, one after the other
        assert read(api, "b1", "b2", "a1", "a2") == ["b1", "b2", "a1", "a2"]
        api.assert_complete()
    with ReplayApiClient(db) as api, pytest.raises(DivergenceError) as caught:
        read(api, "a1", "b1")  # within a thread, the recorded order holds
    assert "expected: #3 GET v1 configmaps default/a2" in str(caught.value)
    assert "recorded thread Thread-A" in str(caught.value)
