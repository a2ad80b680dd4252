"""The emulator harness serves the real kubernetes client over real HTTP, with Kubernetes semantics."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import kmock
import pytest
from kubernetes import client, dynamic, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError

from opreplay.demo import emulator as emulator_module
from opreplay.demo.emulator import EmulatorError, KubernetesEmulatorThread

pytestmark = pytest.mark.filterwarnings("error")

GROUP, VERSION, PLURAL = "demo.opreplay.dev", "v1", "webapps"


@pytest.fixture
def cluster() -> Iterator[KubernetesEmulatorThread]:
    with KubernetesEmulatorThread() as emulator:
        emulator.register_resource(GROUP, VERSION, PLURAL, "WebApp")
        yield emulator


@pytest.fixture
def api(cluster: KubernetesEmulatorThread) -> Iterator[client.ApiClient]:
    with contextlib.closing(cluster.api_client()) as api_client:
        yield api_client


def config_map(name: str, data: dict[str, str], **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "data": data}


def deployment(name: str, image: str = "nginx:1.27", replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def webapp(name: str, image: str = "nginx:1.27") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WebApp",
        "metadata": {"name": name},
        "spec": {"image": image},
    }


def emulator_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "opreplay-kubernetes-emulator"]


def error_of(call: Any, *args: Any, **kwargs: Any) -> ApiException:
    with pytest.raises(ApiException) as raised:
        call(*args, **kwargs)
    return raised.value


def test_serves_real_http_on_a_random_local_port(cluster: KubernetesEmulatorThread) -> None:
    assert cluster.url.startswith("http://127.0.0.1:")
    assert int(cluster.url.rsplit(":", 1)[1]) > 0


def test_config_maps_create_get_list_patch_replace_delete(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)

    created, status, _ = core.create_namespaced_config_map_with_http_info(
        "default", config_map("web", {"a": "1"}, app="web")
    )
    assert status == 201
    assert created.metadata.uid and created.metadata.creation_timestamp
    assert created.metadata.namespace == "default"
    first_version = int(created.metadata.resource_version)

    assert core.read_namespaced_config_map("web", "default").data == {"a": "1"}
    core.create_namespaced_config_map("default", config_map("other", {}, app="other"))
    listed = core.list_namespaced_config_map("default", label_selector="app=web")
    assert [item.metadata.name for item in listed.items] == ["web"]
    assert int(listed.metadata.resource_version) >= first_version

    patched = core.patch_namespaced_config_map("web", "default", {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}
    assert int(patched.metadata.resource_version) > first_version

    patched.data = {"c": "3"}
    replaced = core.replace_namespaced_config_map("web", "default", patched)
    assert replaced.data == {"c": "3"}
    assert replaced.metadata.uid == created.metadata.uid

    core.delete_namespaced_config_map("web", "default")
    missing = error_of(core.read_namespaced_config_map, "web", "default")
    assert missing.status == 404
    assert '"reason": "NotFound"' in missing.body
    assert 'configmaps \\"web\\" not found' in missing.body


def test_a_stale_resource_version_is_a_conflict_and_changes_nothing(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    stale = core.create_namespaced_config_map("default", config_map("web", {"a": "1"}))
    current = core.patch_namespaced_config_map("web", "default", {"data": {"a": "2"}})

    stale.data = {"a": "lost update"}
    conflict = error_of(core.replace_namespaced_config_map, "web", "default", stale)

    assert conflict.status == 409
    assert '"reason": "Conflict"' in conflict.body
    assert "the object has been modified" in conflict.body
    assert core.read_namespaced_config_map("web", "default").metadata.resource_version == (
        current.metadata.resource_version
    )


def test_creating_an_existing_object_is_already_exists(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", config_map("web", {}))

    exists = error_of(core.create_namespaced_config_map, "default", config_map("web", {}))

    assert exists.status == 409
    assert '"reason": "AlreadyExists"' in exists.body


def test_deployments_track_generation_and_keep_status_apart(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    created = apps.create_namespaced_deployment("default", deployment("web"))
    assert created.metadata.generation == 1

    status = {"status": {"replicas": 1, "readyReplicas": 1}}
    with_status = apps.patch_namespaced_deployment_status("web", "default", status)
    assert with_status.status.ready_replicas == 1
    assert with_status.metadata.generation == 1

    with_status.spec.replicas = 3
    with_status.status = None
    replaced = apps.replace_namespaced_deployment("web", "default", with_status)
    assert replaced.spec.replicas == 3
    assert replaced.metadata.generation == 2
    assert replaced.status.ready_replicas == 1  # a write to the object leaves its status alone

    listed = apps.list_namespaced_deployment("default")
    assert [item.metadata.name for item in listed.items] == ["web"]
    apps.delete_namespaced_deployment("web", "default")
    assert apps.list_namespaced_deployment("default").items == []


def test_a_write_that_changes_nothing_keeps_the_resource_version(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map("default", config_map("web", {"a": "1"}))

    unchanged = core.patch_namespaced_config_map("web", "default", {"data": {"a": "1"}})

    assert unchanged.metadata.resource_version == created.metadata.resource_version


def test_custom_objects_and_their_status_subresource(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    created: Any = custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, webapp("web"))
    assert created["metadata"]["generation"] == 1

    fetched: Any = custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "web")
    assert fetched["spec"] == {"image": "nginx:1.27"}
    listed: Any = custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["web"]

    patched: Any = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "web", {"spec": {"replicas": 2}}
    )
    assert patched["spec"] == {"image": "nginx:1.27", "replicas": 2}
    assert patched["metadata"]["generation"] == 2

    status: Any = custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "web",
        {"status": {"readyReplicas": 2}, "spec": {"image": "ignored"}},
    )
    assert status["status"] == {"readyReplicas": 2}
    assert status["spec"]["image"] == "nginx:1.27"  # /status changes the status only
    assert status["metadata"]["generation"] == 2

    status["spec"]["image"] = "nginx:1.28"
    replaced: Any = custom.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "web", status)
    assert replaced["spec"]["image"] == "nginx:1.28"

    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "web")
    gone = error_of(custom.get_namespaced_custom_object, GROUP, VERSION, "default", PLURAL, "web")
    assert gone.status == 404


def test_json_patch(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", config_map("web", {"a": "1"}))

    patched = core.patch_namespaced_config_map(
        "web", "default", [{"op": "add", "path": "/data/b", "value": "2"}]
    )

    assert patched.data == {"a": "1", "b": "2"}


def test_the_dynamic_client_discovers_and_uses_builtin_and_custom_resources(api: client.ApiClient) -> None:
    dynamic_client = dynamic.DynamicClient(api)
    services = dynamic_client.resources.get(api_version="v1", kind="Service")
    webapps = dynamic_client.resources.get(api_version=f"{GROUP}/{VERSION}", kind="WebApp")
    assert webapps.namespaced

    with pytest.raises(NotFoundError):
        services.get(name="web", namespace="default")
    body = {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    created = services.create(body=body, namespace="default")
    assert created.metadata.name == "web"
    assert [item.metadata.name for item in services.get(namespace="default").items] == ["web"]

    webapps.create(body=webapp("shop"), namespace="default")
    patched = webapps.patch(
        name="shop",
        namespace="default",
        body={"spec": {"replicas": 3}},
        content_type="application/merge-patch+json",
    )
    assert patched.spec.replicas == 3
    services.delete(name="web", namespace="default")
    assert services.get(namespace="default").items == []


def test_strategic_merge_patch_is_refused_for_custom_resources(api: client.ApiClient) -> None:
    webapps = dynamic.DynamicClient(api).resources.get(api_version=f"{GROUP}/{VERSION}", kind="WebApp")
    webapps.create(body=webapp("shop"), namespace="default")

    with pytest.raises(DynamicApiError) as raised:
        webapps.patch(
            name="shop", namespace="default", body={"spec": {"replicas": 3}}
        )  # strategic by default

    assert raised.value.status == 415


def test_a_watch_stream_receives_added_modified_and_deleted(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", config_map("existing", {}))

    def change() -> None:
        core.create_namespaced_config_map("default", config_map("web", {"a": "1"}))
        core.patch_namespaced_config_map("web", "default", {"data": {"a": "2"}})
        core.delete_namespaced_config_map("web", "default")

    events: list[tuple[str, str]] = []
    watcher = watch.Watch()
    writer = threading.Thread(target=change)
    for event in watcher.stream(core.list_namespaced_config_map, "default", timeout_seconds=10):
        events.append((event["type"], event["object"].metadata.name))
        if len(events) == 1:
            writer.start()
        if event["type"] == "DELETED":
            watcher.stop()
    writer.join()

    assert events == [("ADDED", "existing"), ("ADDED", "web"), ("MODIFIED", "web"), ("DELETED", "web")]


def test_a_watch_honours_selectors(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", config_map("web", {}, app="web"))
    core.create_namespaced_config_map("default", config_map("db", {}, app="db"))

    names = [
        event["object"].metadata.name
        for event in watch.Watch().stream(
            core.list_namespaced_config_map, "default", label_selector="app in (web, api)", timeout_seconds=1
        )
    ]

    assert names == ["web"]


def test_a_watch_ends_after_its_timeout_seconds(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    started = time.monotonic()

    events = list(watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=1))

    assert events == []
    assert 0.9 < time.monotonic() - started < 3


def test_a_watch_resumes_after_a_resource_version(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    first = core.create_namespaced_config_map("default", config_map("one", {}))
    core.create_namespaced_config_map("default", config_map("two", {}))
    core.delete_namespaced_config_map("one", "default")

    events = [
        (event["type"], event["object"].metadata.name)
        for event in watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=first.metadata.resource_version,
            timeout_seconds=1,
        )
    ]

    assert events == [("ADDED", "two"), ("DELETED", "one")]


def test_a_watch_from_a_forgotten_resource_version_gets_410_expired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(emulator_module, "_EVENT_LOG_LIMIT", 2)
    with KubernetesEmulatorThread() as cluster, contextlib.closing(cluster.api_client()) as api:
        core = client.CoreV1Api(api)
        first = core.create_namespaced_config_map("default", config_map("one", {}))
        for name in ("two", "three", "four"):
            core.create_namespaced_config_map("default", config_map(name, {}))

        expired = error_of(
            lambda: list(
                watch.Watch().stream(
                    core.list_namespaced_config_map,
                    "default",
                    resource_version=first.metadata.resource_version,
                    timeout_seconds=1,
                )
            )
        )

    assert expired.status == 410
    assert "Expired: too old resource version" in str(expired.reason)


def test_finalizers_hold_a_deletion_until_they_are_removed(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    body = config_map("web", {})
    body["metadata"]["finalizers"] = ["demo.opreplay.dev/cleanup"]
    core.create_namespaced_config_map("default", body)

    core.delete_namespaced_config_map("web", "default")
    held = core.read_namespaced_config_map("web", "default")
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("web", "default", {"metadata": {"finalizers": None}})

    assert error_of(core.read_namespaced_config_map, "web", "default").status == 404


def test_fail_answers_with_the_status_the_given_number_of_times(
    cluster: KubernetesEmulatorThread, api: client.ApiClient
) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", deployment("web"))
    apps.create_namespaced_deployment("default", deployment("other"))
    cluster.fail(
        ["update", "patch"],
        "apps/v1/deployments",
        "web",
        namespace="default",
        status=409,
        reason="Conflict",
        message="injected conflict",
        times=3,
    )
    change = {"spec": {"replicas": 2}}

    errors = [error_of(apps.patch_namespaced_deployment, "web", "default", change) for _ in range(2)]
    current = apps.read_namespaced_deployment("web", "default")
    current.spec.replicas = 2
    errors.append(error_of(apps.replace_namespaced_deployment, "web", "default", current))

    assert [error.status for error in errors] == [409, 409, 409]
    assert all('"message": "injected conflict"' in error.body for error in errors)
    assert (
        apps.read_namespaced_deployment("web", "default").spec.replicas == 1
    )  # failed writes change nothing
    assert apps.patch_namespaced_deployment("other", "default", change).spec.replicas == 2  # another object
    assert apps.replace_namespaced_deployment("web", "default", current).spec.replicas == 2  # the 4th passes


def test_fail_on_create_matches_the_name_in_the_body(
    cluster: KubernetesEmulatorThread, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    cluster.fail("create", "v1/configmaps", "web", status=403, reason="Forbidden", message="quota")

    assert error_of(core.create_namespaced_config_map, "default", config_map("web", {})).status == 403
    core.create_namespaced_config_map("default", config_map("other", {}))
    core.create_namespaced_config_map("default", config_map("web", {}))


def test_delay_makes_the_given_number_of_calls_slow(
    cluster: KubernetesEmulatorThread, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", config_map("web", {}))
    cluster.delay("get", "v1/configmaps", "web", seconds=0.3, times=2)

    durations = []
    for _ in range(3):
        started = time.monotonic()
        core.read_namespaced_config_map("web", "default")
        durations.append(time.monotonic() - started)

    assert durations[0] >= 0.3
    assert durations[1] >= 0.3
    assert durations[2] < 0.2


def test_a_delayed_call_can_also_fail(cluster: KubernetesEmulatorThread, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    cluster.fail("get", "v1/configmaps", "web", status=503, reason="ServiceUnavailable", message="etcd")
    cluster.delay("get", "v1/configmaps", "web", seconds=0.2)

    started = time.monotonic()
    assert error_of(core.read_namespaced_config_map, "web", "default").status == 503
    assert time.monotonic() - started >= 0.2


def test_seeded_objects_are_served_with_their_status(
    cluster: KubernetesEmulatorThread, api: client.ApiClient
) -> None:
    pod = {
        "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]},
        "status": {"phase": "Running"},
    }
    stored = cluster.add_object("v1/pods", pod)

    served = client.CoreV1Api(api).list_namespaced_pod("default", label_selector="app=web").items
    assert [item.status.phase for item in served] == ["Running"]
    assert cluster.get_object("v1/pods", "default", "web-1") == stored
    assert cluster.get_object("v1/pods", "default", "missing") is None
    with pytest.raises(ValueError, match="already exists"):
        cluster.add_object("v1/pods", pod)
    with pytest.raises(ValueError, match="unknown resource"):
        cluster.add_object("example.com/v1/gadgets", pod)


def test_no_dynamic_client_discovery_cache_outlives_the_emulator() -> None:
    with KubernetesEmulatorThread() as cluster, contextlib.closing(cluster.api_client()) as api:
        dynamic.DynamicClient(api).resources.get(api_version="v1", kind="Service")
        digest = hashlib.md5(cluster.url.encode(), usedforsecurity=False).hexdigest()
        cache = Path(tempfile.gettempdir()) / f"osrcp-{digest}.json"
        assert cache.exists()  # where the kubernetes client keeps it: the emulator removes it at exit

    assert not cache.exists()


def test_stopping_ends_open_watches_and_leaves_no_thread() -> None:
    ended = threading.Event()

    with KubernetesEmulatorThread() as cluster, contextlib.closing(cluster.api_client()) as api:

        def consume() -> None:
            for _ in watch.Watch().stream(client.CoreV1Api(api).list_namespaced_config_map, "default"):
                pass
            ended.set()

        consumer = threading.Thread(target=consume)
        consumer.start()
        time.sleep(0.2)
        started = time.monotonic()

    assert time.monotonic() - started < 2
    consumer.join(5)
    assert ended.is_set()
    assert not emulator_threads()


class SlowServer(kmock.Server):
    async def __aenter__(self) -> Self:
        await asyncio.sleep(0.5)
        return await super().__aenter__()


class BrokenServer(kmock.Server):
    async def __aenter__(self) -> Self:
        raise OSError("address already in use")


def test_a_start_that_takes_too_long_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kmock, "Server", SlowServer)

    with (
        pytest.raises(EmulatorError, match=r"did not start within 0\.1 s"),
        KubernetesEmulatorThread(startup_timeout=0.1),
    ):
        pass

    assert not emulator_threads()


def test_a_start_that_fails_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kmock, "Server", BrokenServer)

    with (
        pytest.raises(EmulatorError, match="failed to start: address already in use"),
        KubernetesEmulatorThread(),
    ):
        pass

    assert not emulator_threads()
