# ruff: noqa: F811  (the fixtures imported from test_record_support are redefined as parameters)
"""The recorder against the real kubernetes client over HTTP: what each kind of call leaves in the store."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path

import pytest
from kubernetes import client, dynamic, watch
from test_record_support import (  # noqa: F401  (cluster and api are fixtures)
    WIDGETS,
    api,
    body,
    cluster,
    db,
    read_session,
    unique,
)

import opreplay
from opreplay.demo.emulator import KubernetesEmulatorThread
from opreplay.record import parse


def test_each_verb_is_stored_field_by_field(api: client.ApiClient, db: Path) -> None:
    v1 = client.CoreV1Api(api)
    ns, name = unique("ns"), unique("cm")
    with opreplay.record(db, "verbs", api_client=api, labels={"suite": "record"}):
        created = v1.create_namespaced_config_map(ns, {"metadata": {"name": name}, "data": {"a": "1"}})
        fetched = v1.read_namespaced_config_map(name, ns)
        listed = v1.list_namespaced_config_map(ns)
        replaced = v1.replace_namespaced_config_map(
            name,
            ns,
            {
                "metadata": {"name": name, "resourceVersion": fetched.metadata.resource_version},
                "data": {"a": "2"},
            },
        )
        patched = v1.patch_namespaced_config_map(name, ns, {"data": {"b": "3"}})
        deleted = v1.delete_namespaced_config_map(name, ns)
        try:
            v1.delete_collection_namespaced_config_map(ns)
            collection_status = 200
        except client.ApiException as error:
            collection_status = error.status

    info, ops, store = read_session(db)
    with store:
        assert (info.name, info.labels, info.pid, info.operations) == (
            "verbs",
            {"suite": "record"},
            os.getpid(),
            7,
        )
        assert info.ended_at is not None and info.ended_at >= info.started_at
        assert sys.argv[0] in info.command
        assert [op.seq for op in ops] == list(range(1, 8))
        assert [op.verb for op in ops] == [
            "create",
            "get",
            "list",
            "update",
            "patch",
            "delete",
            "deletecollection",
        ]
        assert [op.name for op in ops] == [name, name, "", name, name, name, ""]
        assert [op.status for op in ops] == [201, 200, 200, 200, 200, 200, collection_status]
        for op in ops:
            assert (op.api_version, op.resource, op.kind, op.namespace, op.subresource) == (
                "v1",
                "configmaps",
                "ConfigMap",
                ns,
                None,
            )
            assert op.thread == threading.current_thread().name
            assert (op.reconcile, op.watch, op.event) == (None, None, None)
            assert op.duration_us > 0 and info.started_at <= op.ts <= info.ended_at
        expected_versions = [
            created.metadata.resource_version,
            fetched.metadata.resource_version,
            listed.metadata.resource_version,
            replaced.metadata.resource_version,
            patched.metadata.resource_version,
            deleted["metadata"]["resourceVersion"],
        ]
        assert [op.resource_version for op in ops[:6]] == expected_versions
        assert [op.reason for op in ops[:6]] == [None] * 6
        create, get, listing, update, patch, delete, _ = ops
        assert body(store, create.request_digest) == {"metadata": {"name": name}, "data": {"a": "1"}}
        assert body(store, create.response_digest)["metadata"]["uid"] == created.metadata.uid
        assert get.request_digest is None
        assert body(store, get.response_digest)["metadata"]["uid"] == fetched.metadata.uid
        assert body(store, get.response_digest)["data"] == {"a": "1"}
        listed_body = body(store, listing.response_digest)
        assert [item["metadata"]["name"] for item in listed_body["items"]] == [name]
        assert listed_body["metadata"]["resourceVersion"] == listed.metadata.resource_version
        assert body(store, update.request_digest)["data"] == {"a": "2"}
        assert body(store, update.response_digest)["data"] == {"a": "2"}
        assert body(store, patch.request_digest) == {"data": {"b": "3"}}
        assert body(store, patch.response_digest)["data"] == {"a": "2", "b": "3"}
        assert body(store, delete.response_digest)["metadata"]["name"] == name


def test_watch_events_are_operations_linked_to_their_watch(api: client.ApiClient, db: Path) -> None:
    v1 = client.CoreV1Api(api)
    ns, name = unique("ns"), unique("cm")
    v1.create_namespaced_config_map(ns, {"metadata": {"name": name}, "data": {"v": "0"}})
    seen: list[tuple[str, str]] = []
    with opreplay.record(db, "watch", api_client=api):
        stream = watch.Watch()
        for event in stream.stream(v1.list_namespaced_config_map, ns, timeout_seconds=10):
            seen.append((event["type"], event["raw_object"]["data"].get("v", "")))
            if len(seen) == 1:
                v1.patch_namespaced_config_map(name, ns, {"data": {"v": "1"}})
            elif len(seen) == 2:
                v1.delete_namespaced_config_map(name, ns)
            else:
                stream.stop()
    assert seen == [("ADDED", "0"), ("MODIFIED", "1"), ("DELETED", "1")]

    _, ops, store = read_session(db)
    with store:
        watches = [op for op in ops if op.verb == "watch"]
        events = [op for op in ops if op.verb == "watch-event"]
        assert len(watches) == 1
        (watch_op,) = watches
        assert (watch_op.resource, watch_op.namespace, watch_op.name, watch_op.status) == (
            "configmaps",
            ns,
            "",
            200,
        )
        assert watch_op.response_digest is None
        assert [op.event for op in events] == ["ADDED", "MODIFIED", "DELETED"]
        for op in events:
            assert op.watch == watch_op.seq and op.seq > watch_op.seq
            assert (op.kind, op.namespace, op.name, op.status) == ("ConfigMap", ns, name, 200)
            assert op.resource_version == body(store, op.response_digest)["metadata"]["resourceVersion"]
        assert [body(store, op.response_digest)["data"]["v"] for op in events] == ["0", "1", "1"]
        assert {op.verb for op in ops} == {"watch", "watch-event", "patch", "delete"}


@pytest.mark.parametrize("case", ["404", "409", "500"])
def test_errors_are_recorded_and_raised_unchanged(
    case: str, cluster: KubernetesEmulatorThread, api: client.ApiClient, db: Path
) -> None:
    v1 = client.CoreV1Api(api)
    ns, name = unique("ns"), unique("cm")
    if case == "409":
        v1.create_namespaced_config_map(ns, {"metadata": {"name": name}})

    def call() -> client.ApiException:
        """The exception the call raises: the caller must see no difference with recording on."""
        if case == "500":
            cluster.fail("get", "v1/configmaps", name, status=500, reason="InternalError", message="boom")
        with pytest.raises(client.ApiException) as raised:
            if case == "409":
                v1.create_namespaced_config_map(ns, {"metadata": {"name": name}})
            else:
                v1.read_namespaced_config_map(name, ns)
        return raised.value

    plain = call()
    with opreplay.record(db, "errors", api_client=api):
        recorded = call()
    assert type(recorded) is type(plain)
    assert (recorded.status, recorded.reason, recorded.body) == (plain.status, plain.reason, plain.body)

    info, ops, store = read_session(db)
    with store:
        (op,) = ops
        expected = {
            "404": ("get", 404, "NotFound", f'configmaps "{name}" not found'),
            "409": ("create", 409, "AlreadyExists", f'configmaps "{name}" already exists'),
            "500": ("get", 500, "InternalError", "boom"),
        }[case]
        assert (op.verb, op.status, op.reason, op.message) == expected
        assert (op.namespace, op.name, op.kind) == (ns, name, "ConfigMap")
        assert body(store, op.response_digest)["kind"] == "Status"
        assert info.errors == 1


def test_transport_errors_are_recorded_with_status_0_and_reraised(db: Path) -> None:
    configuration = client.Configuration(host="http://127.0.0.1:9")  # discard port: connection refused
    configuration.retries = False
    api_client = client.ApiClient(configuration)
    v1 = client.CoreV1Api(api_client)
    with pytest.raises(Exception) as plain:
        v1.read_namespace("default")
    with opreplay.record(db, api_client=api_client), pytest.raises(Exception) as recorded:
        v1.read_namespace("default")
    assert type(recorded.value) is type(plain.value)
    _, (op,), store = read_session(db)
    store.close()
    assert (op.verb, op.resource, op.name, op.status) == ("get", "namespaces", "default", 0)
    assert op.reason == type(recorded.value).__name__ and op.message and "refused" in op.message.lower()
    assert op.is_error


def test_custom_objects_and_the_status_subresource(api: client.ApiClient, db: Path) -> None:
    group, version, plural, kind = WIDGETS
    objects = client.CustomObjectsApi(api)
    ns, name = unique("ns"), unique("w")
    manifest = {
        "apiVersion": f"{group}/{version}",
        "kind": kind,
        "metadata": {"name": name},
        "spec": {"size": 1},
    }
    with opreplay.record(db, api_client=api):
        objects.create_namespaced_custom_object(group, version, ns, plural, manifest)
        objects.get_namespaced_custom_object(group, version, ns, plural, name)
        objects.list_namespaced_custom_object(group, version, ns, plural)
        objects.patch_namespaced_custom_object_status(
            group, version, ns, plural, name, {"status": {"ready": True}}
        )
        objects.patch_namespaced_custom_object(group, version, ns, plural, name, {"spec": {"size": 2}})
    _, ops, store = read_session(db)
    with store:
        assert [(op.verb, op.subresource) for op in ops] == [
            ("create", None),
            ("get", None),
            ("list", None),
            ("patch", "status"),
            ("patch", None),
        ]
        for op in ops:
            assert (op.api_version, op.resource, op.kind, op.namespace) == (
                "example.com/v1",
                plural,
                kind,
                ns,
            )
            assert op.status in (200, 201)
        assert body(store, ops[3].request_digest) == {"status": {"ready": True}}
        assert body(store, ops[3].response_digest)["status"] == {"ready": True}
        assert body(store, ops[4].response_digest)["spec"] == {"size": 2}


def test_dynamic_client(api: client.ApiClient, db: Path) -> None:
    ns, name = unique("ns"), unique("cm")
    with opreplay.record(db, api_client=api):
        dyn = dynamic.DynamicClient(api)
        configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
        configmaps.create(body={"metadata": {"name": name}, "data": {"d": "1"}}, namespace=ns)
        fetched = configmaps.get(name=name, namespace=ns)
    assert fetched.data.d == "1"
    _, ops, store = read_session(db)
    with store:
        discovery = [op for op in ops if op.resource == ""]
        assert discovery and all(op.verb == "get" and op.status == 200 for op in discovery)
        calls = [(op.verb, op.resource, op.namespace, op.name, op.status) for op in ops if op.resource]
        assert calls == [("create", "configmaps", ns, name, 201), ("get", "configmaps", ns, name, 200)]


def test_list_items_are_stored_once(api: client.ApiClient, db: Path) -> None:
    v1 = client.CoreV1Api(api)
    ns = unique("ns")
    names = sorted(unique("cm") for _ in range(3))
    for name in names:
        v1.create_namespaced_config_map(ns, {"metadata": {"name": name}, "data": {"payload": name * 40}})
    with opreplay.record(db, api_client=api):
        v1.list_namespaced_config_map(ns)
        v1.create_namespaced_config_map(ns, {"metadata": {"name": "zz-" + names[0]}})
        v1.list_namespaced_config_map(ns)
    _, ops, store = read_session(db)
    with store:
        first, _, second = ops
        raw = store.db.execute_sql
        first_items = _item_digests(store, first.response_digest)
        second_items = _item_digests(store, second.response_digest)
        assert len(first_items) == 3 and len(second_items) == 4
        assert second_items[:3] == first_items  # the unchanged objects: the same bodies
        digests = first_items + second_items + [first.response_digest, second.response_digest]
        placeholders = ", ".join("?" * len(set(digests)))
        (rows,) = raw(
            f"SELECT COUNT(*) FROM bodies WHERE digest IN ({placeholders})", list(set(digests))
        ).fetchone()
        assert rows == 4 + 2  # four distinct items, two list envelopes
        assert [item["metadata"]["name"] for item in body(store, second.response_digest)["items"]] == [
            *names,
            "zz-" + names[0],
        ]


def _item_digests(store: opreplay.Store, digest: bytes | None) -> list[bytes]:
    from opreplay.store import bodies

    assert digest is not None
    form, codec, data = store.db.execute_sql(
        "SELECT format, codec, data FROM bodies WHERE digest = ?", (digest,)
    ).fetchone()
    assert form == bodies.LIST
    return bodies.unpack_list(bodies.decompress(codec, data))[1]


def test_api_client_records_only_that_client(cluster: KubernetesEmulatorThread, db: Path) -> None:
    recorded_client, other_client = cluster.api_client(), cluster.api_client()
    ns = unique("ns")
    with opreplay.record(db, api_client=recorded_client):
        client.CoreV1Api(recorded_client).create_namespaced_config_map(ns, {"metadata": {"name": "mine"}})
        client.CoreV1Api(other_client).create_namespaced_config_map(ns, {"metadata": {"name": "other"}})
        client.CoreV1Api(recorded_client).read_namespaced_config_map("other", ns)
    _, ops, store = read_session(db)
    store.close()
    assert [(op.verb, op.name) for op in ops] == [("create", "mine"), ("get", "other")]
    assert "request" not in other_client.rest_client.pool_manager.__dict__
    assert "request" not in recorded_client.rest_client.pool_manager.__dict__  # unhooked by stop()


def test_without_api_client_every_client_is_recorded(cluster: KubernetesEmulatorThread, db: Path) -> None:
    before = cluster.api_client()  # made before recording starts
    ns = unique("ns")
    original = client.rest.RESTClientObject.__dict__["request"]
    with opreplay.record(db):
        assert client.rest.RESTClientObject.__dict__["request"] is not original
        after = cluster.api_client()
        client.CoreV1Api(before).create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
        client.CoreV1Api(after).create_namespaced_config_map(ns, {"metadata": {"name": "b"}})
    client.CoreV1Api(after).read_namespaced_config_map("b", ns)  # after stop: not recorded
    _, ops, store = read_session(db)
    store.close()
    assert [(op.verb, op.name) for op in ops] == [("create", "a"), ("create", "b")]
    assert client.rest.RESTClientObject.__dict__["request"] is original
    assert "request" not in after.rest_client.pool_manager.__dict__


def test_reconcile_ids(api: client.ApiClient, db: Path) -> None:
    v1 = client.CoreV1Api(api)
    ns = unique("ns")
    with opreplay.record(db, api_client=api) as rec:
        v1.list_namespaced_config_map(ns)
        with rec.reconcile("ConfigMap", ns, "a") as first:
            v1.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
            v1.read_namespaced_config_map("a", ns)
        with rec.reconcile("ConfigMap", ns, "b") as second:
            v1.create_namespaced_config_map(ns, {"metadata": {"name": "b"}})

        @rec.reconcile("ConfigMap", ns)
        def decorated(name: str) -> None:
            v1.read_namespaced_config_map(name, ns)

        decorated("a")
        decorated("b")

        @rec.reconcile("ConfigMap", ns)
        async def in_a_task() -> None:
            await asyncio.to_thread(v1.read_namespaced_config_map, "a", ns)

        asyncio.run(in_a_task())
    session, ops, store = read_session(db)
    ids = [op.reconcile for op in ops]
    assert ids[0] is None
    assert ids[1:4] == [first.id, first.id, second.id] and first.id != second.id
    assert len(set(ids[1:])) == 5 and None not in ids[1:]
    assert all(isinstance(i, int) for i in ids[1:])
    # what each reconcile was about is kept for the debugger's reconcile frame
    targets = {i: store.reconcile_info(session, i) for i in ids[1:]}
    store.close()
    assert targets[first.id] is not None and targets[first.id].target == f"ConfigMap {ns}/a"
    assert targets[second.id] is not None and targets[second.id].target == f"ConfigMap {ns}/b"
    assert {info.target for info in targets.values() if info is not None} == {
        f"ConfigMap {ns}/a",
        f"ConfigMap {ns}/b",
        f"ConfigMap in {ns}",
    }


def test_a_body_over_the_limit_is_stored_with_a_marker(api: client.ApiClient, db: Path) -> None:
    v1 = client.CoreV1Api(api)
    ns, name = unique("ns"), unique("cm")
    with opreplay.record(db, api_client=api, max_body_bytes=2048):
        v1.create_namespaced_config_map(ns, {"metadata": {"name": name}, "data": {"big": "x" * 5000}})
        v1.read_namespaced_config_map(name, ns)
    _, ops, store = read_session(db)
    with store:
        for op in ops:
            stored = body(store, op.response_digest)
            assert stored["opreplay.truncated"] is True and stored["size"] > 5000
            assert stored["prefix"].startswith("{") and len(stored["prefix"]) <= 1024
        assert body(store, ops[0].request_digest)["opreplay.truncated"] is True


def test_a_full_queue_drops_calls_and_records_a_gap(api: client.ApiClient, db: Path) -> None:
    v1 = client.CoreV1Api(api)
    ns = unique("ns")
    # The writer sleeps for the flush interval unless a batch fills up or the queue overflows: with
    # room for one call, the second call finds the first one still queued and is dropped.
    with opreplay.record(db, api_client=api, queue_size=1, flush_interval=30, batch_size=1000) as rec:
        for _ in range(10):
            v1.list_namespaced_config_map(ns)
    info, ops, store = read_session(db)
    store.close()
    gaps = [op for op in ops if op.verb == "gap"]
    lists = [op for op in ops if op.verb == "list"]
    assert ops[0].verb == "list" and ops[1].verb == "gap" and len(lists) + len(gaps) == len(ops)
    counts = [int(op.message.split()[0]) for op in gaps if op.message]
    assert [op.message for op in gaps] == [
        f"{count} operations dropped: recorder queue full" for count in counts
    ]
    assert len(lists) + sum(counts) == 10
    assert info.dropped == rec.dropped == sum(counts) >= 1
    assert [op.seq for op in ops] == list(range(1, len(ops) + 1))
    assert info.operations == len(ops) and info.errors == 0


def test_overflow_block_waits_instead_of_dropping(api: client.ApiClient, db: Path) -> None:
    v1 = client.CoreV1Api(api)
    ns = unique("ns")
    with opreplay.record(db, api_client=api, queue_size=1, flush_interval=30, overflow="block") as rec:
        for _ in range(10):
            v1.list_namespaced_config_map(ns)
    info, ops, store = read_session(db)
    store.close()
    assert [op.verb for op in ops] == ["list"] * 10
    assert info.dropped == rec.dropped == 0


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/ns/pods/p", "", ("get", "v1", "pods", "ns", "p", None)),
        ("GET", "/api/v1/namespaces/ns/pods", "", ("list", "v1", "pods", "ns", "", None)),
        ("GET", "/api/v1/pods", "watch=true", ("watch", "v1", "pods", "", "", None)),
        ("GET", "/api/v1/watch/namespaces/ns/pods", "", ("watch", "v1", "pods", "ns", "", None)),
        (
            "GET",
            "/api/v1/namespaces/ns/pods",
            "watch=True&resourceVersion=5",
            ("watch", "v1", "pods", "ns", "", None),
        ),
        ("GET", "/api/v1/namespaces/ns", "", ("get", "v1", "namespaces", "", "ns", None)),
        ("PUT", "/api/v1/namespaces/ns/finalize", "", ("update", "v1", "namespaces", "", "ns", "finalize")),
        ("GET", "/api/v1/nodes/n1", "", ("get", "v1", "nodes", "", "n1", None)),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/ns/deployments/d/scale",
            "",
            ("patch", "apps/v1", "deployments", "ns", "d", "scale"),
        ),
        (
            "POST",
            "/apis/apps/v1/namespaces/ns/deployments",
            "",
            ("create", "apps/v1", "deployments", "ns", "", None),
        ),
        (
            "DELETE",
            "/apis/example.com/v1/widgets/w",
            "",
            ("delete", "example.com/v1", "widgets", "", "w", None),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/ns/configmaps",
            "",
            ("deletecollection", "v1", "configmaps", "ns", "", None),
        ),
        ("GET", "/api/v1/namespaces/ns/pods/p/log", "follow=true", ("get", "v1", "pods", "ns", "p", "log")),
        ("GET", "/apis/apps/v1", "", ("get", "apps/v1", "", "", "", None)),
        ("GET", "/version", "", ("get", "", "", "", "/version", None)),
    ],
)
def test_url_parsing(method: str, path: str, query: str, expected: tuple[object, ...]) -> None:
    target = parse.parse_path(path)
    verb = parse.verb_of(method, target, parse.is_watch(query))
    assert (
        verb,
        target.api_version,
        target.resource,
        target.namespace,
        target.name,
        target.subresource,
    ) == expected


def test_query_from_urllib3_fields_and_absolute_urls() -> None:
    url = parse.full_url("GET", "https://h:6443/k8s/api/v1/pods", [("watch", True), ("limit", 5)])
    path, query = parse.split_url(url)
    assert (path, query) == ("/k8s/api/v1/pods", "watch=True&limit=5")
    assert parse.parse_path(path).resource == "pods" and parse.is_watch(query)
    assert parse.full_url("POST", "http://h/api/v1/pods", {"a": 1}) == "http://h/api/v1/pods"
