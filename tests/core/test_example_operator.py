"""The example WebApp operator, unrecorded, against the emulator: what the demo records must be real."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

import webapp_operator
from opreplay.demo.emulator import KubernetesEmulatorThread
from opreplay.demo.scenario import no_recording, run_demo_scenario
from webapp_operator.operator import MAX_UPDATE_ATTEMPTS

pytestmark = pytest.mark.filterwarnings("error")

WEBAPPS = "demo.opreplay.dev/v1/webapps"


@pytest.fixture
def cluster() -> Iterator[KubernetesEmulatorThread]:
    with KubernetesEmulatorThread() as emulator:
        emulator.register_resource(
            webapp_operator.GROUP, webapp_operator.VERSION, webapp_operator.PLURAL, webapp_operator.KIND
        )
        yield emulator


@pytest.fixture
def api(cluster: KubernetesEmulatorThread) -> Iterator[client.ApiClient]:
    with contextlib.closing(cluster.api_client()) as api_client:
        yield api_client


def add_webapp(
    cluster: KubernetesEmulatorThread, name: str, *, image: str = "nginx:1.27", replicas: int = 2
) -> None:
    cluster.add_object(
        WEBAPPS,
        {
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"image": image, "replicas": replicas, "configData": {"MODE": name}},
        },
    )


def add_pod(cluster: KubernetesEmulatorThread, app: str, index: int, *, ready: bool) -> None:
    cluster.add_object(
        "v1/pods",
        {
            "metadata": {"name": f"{app}-{index}", "namespace": "default", "labels": {"app": app}},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
        },
    )


def add_deployment(cluster: KubernetesEmulatorThread, name: str, image: str) -> None:
    labels = {"app": name}
    cluster.add_object(
        "apps/v1/deployments",
        {
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": image}]},
                },
            },
        },
    )


def get(cluster: KubernetesEmulatorThread, resource: str, name: str) -> dict[str, Any]:
    found = cluster.get_object(resource, "default", name)
    assert found is not None, f"{resource} {name} does not exist"
    return found


def test_a_run_creates_the_children_of_every_webapp_and_reports_status(
    cluster: KubernetesEmulatorThread, api: client.ApiClient
) -> None:
    for name in ("shop", "blog"):
        add_webapp(cluster, name)
    add_pod(cluster, "shop", 0, ready=True)
    add_pod(cluster, "shop", 1, ready=False)

    summary = webapp_operator.run(
        api, "default", stop_after_events=2, deadline=time.monotonic() + 30, stamp_status=False
    )

    assert (summary.events, summary.reconciles, summary.failures, summary.stopped_by) == (2, 2, 0, "events")
    for name in ("shop", "blog"):
        owner = get(cluster, WEBAPPS, name)
        config = get(cluster, "v1/configmaps", f"{name}-config")
        deployment = get(cluster, "apps/v1/deployments", name)
        service = get(cluster, "v1/services", name)
        assert config["data"] == {"MODE": name}
        assert deployment["spec"]["replicas"] == 2
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
        assert service["spec"]["selector"] == {"app": name}
        for child in (config, deployment, service):
            assert child["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
            assert child["metadata"]["labels"]["app"] == name
    assert get(cluster, WEBAPPS, "shop")["status"] == {"readyReplicas": 1, "observedGeneration": 1}
    assert get(cluster, WEBAPPS, "blog")["status"] == {"readyReplicas": 0, "observedGeneration": 1}


def test_reconcile_updates_what_drifted_and_nothing_else(
    cluster: KubernetesEmulatorThread, api: client.ApiClient
) -> None:
    add_webapp(cluster, "shop")
    webapp_operator.reconcile(api, "default", "shop", stamp_status=False)
    drift = {"spec": {"configData": {"MODE": None, "THEME": "dark"}}}  # a merge patch: MODE goes away
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        webapp_operator.GROUP, webapp_operator.VERSION, "default", webapp_operator.PLURAL, "shop", drift
    )

    changed = webapp_operator.reconcile(api, "default", "shop", stamp_status=False)
    unchanged = webapp_operator.reconcile(api, "default", "shop", stamp_status=False)

    assert (changed.created, changed.updated) == ([], ["ConfigMap"])
    assert (unchanged.created, unchanged.updated) == ([], [])
    assert get(cluster, "v1/configmaps", "shop-config")["data"] == {"THEME": "dark"}
    assert get(cluster, WEBAPPS, "shop")["status"]["observedGeneration"] == 2


def test_the_deployment_update_retries_through_conflicts(
    cluster: KubernetesEmulatorThread, api: client.ApiClient
) -> None:
    add_webapp(cluster, "shop", image="shop:2.1")
    add_deployment(cluster, "shop", image="shop:2.0")
    cluster.fail(
        "update",
        "apps/v1/deployments",
        "shop",
        namespace="default",
        status=409,
        reason="Conflict",
        message="the object has been modified",
        times=6,
    )

    result = webapp_operator.reconcile(api, "default", "shop")

    assert result.conflicts == 6
    assert result.updated == ["Deployment"]
    assert get(cluster, "apps/v1/deployments", "shop")["spec"]["template"]["spec"]["containers"][0][
        "image"
    ] == ("shop:2.1")


def test_the_conflict_retries_are_bounded(cluster: KubernetesEmulatorThread, api: client.ApiClient) -> None:
    add_webapp(cluster, "shop", image="shop:2.1")
    add_deployment(cluster, "shop", image="shop:2.0")
    cluster.fail(
        "update",
        "apps/v1/deployments",
        "shop",
        status=409,
        reason="Conflict",
        message="the object has been modified",
        times=MAX_UPDATE_ATTEMPTS,
    )

    with pytest.raises(ApiException) as raised:
        webapp_operator.reconcile(api, "default", "shop")

    assert raised.value.status == 409
    image = get(cluster, "apps/v1/deployments", "shop")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "shop:2.0"


def test_a_failed_reconcile_is_counted_and_the_run_goes_on(
    cluster: KubernetesEmulatorThread, api: client.ApiClient
) -> None:
    add_webapp(cluster, "shop")
    add_webapp(cluster, "blog")
    cluster.fail(
        "create", "v1/configmaps", "blog-config", status=403, reason="Forbidden", message="quota exceeded"
    )

    summary = webapp_operator.run(api, "default", stop_after_events=2, deadline=time.monotonic() + 30)

    assert (summary.reconciles, summary.failures) == (1, 1)


def test_a_deleted_webapp_needs_nothing(api: client.ApiClient) -> None:
    result = webapp_operator.reconcile(api, "default", "gone")

    assert not result.found


def test_the_status_stamp_makes_a_hot_loop_bounded_by_events(
    cluster: KubernetesEmulatorThread, api: client.ApiClient
) -> None:
    add_webapp(cluster, "shop")
    wrapped: list[tuple[str, str, str]] = []

    def wrapper(kind: str, namespace: str, name: str) -> contextlib.AbstractContextManager[object]:
        wrapped.append((kind, namespace, name))
        return contextlib.nullcontext()

    summary = webapp_operator.run(
        api, "default", stop_after_events=10, deadline=time.monotonic() + 30, reconcile_wrapper=wrapper
    )

    assert (summary.events, summary.reconciles, summary.stopped_by) == (10, 10, "events")
    assert wrapped == [("WebApp", "default", "shop")] * 10


def test_without_the_stamp_a_run_is_quiet_and_stops_at_its_deadline(
    cluster: KubernetesEmulatorThread, api: client.ApiClient
) -> None:
    add_webapp(cluster, "shop")
    webapp_operator.reconcile(
        api, "default", "shop", stamp_status=False
    )  # warm: the client's first calls are slow
    started = time.monotonic()

    summary = webapp_operator.run(api, "default", deadline=started + 0.5, stamp_status=False)

    assert (summary.events, summary.reconciles, summary.stopped_by) == (1, 1, "deadline")
    assert 0.5 <= time.monotonic() - started < 1.5


def test_the_demo_scenario_records_both_phases_within_their_bounds() -> None:
    clean, incident = run_demo_scenario(recorder=no_recording, max_events=30, max_seconds=2.5)

    assert (clean.session, clean.events, clean.reconciles, clean.conflicts, clean.failures) == (
        "clean",
        3,
        3,
        0,
        0,
    )
    assert clean.seconds < 2.5
    assert (incident.session, incident.conflicts, incident.failures) == ("webapp-demo", 6, 0)
    assert 3 < incident.events <= 30  # the hot loop, stopped by its bound
    assert incident.reconciles == incident.events
    assert incident.seconds < 2.5 + 1
