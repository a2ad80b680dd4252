"""The WebApp operator: an ordinary operator on the official kubernetes client, recorded by the demo.

A WebApp (demo.opreplay.dev/v1) asks for an image, a replica count and some configuration; the
operator keeps a ConfigMap, a Deployment and a Service for it, counts the ready Pods and reports them
in the WebApp's status. It touches every part of the client that opreplay records: the typed APIs
(CoreV1Api, AppsV1Api), CustomObjectsApi, the dynamic client (for the Service) and a watch stream,
and it has the classic bounded retry-on-409 loop around the Deployment update.

It also keeps one classic bug on purpose, for opreplay to find: every status patch writes
`lastReconciled`, so every reconcile causes a MODIFIED event, which causes another reconcile, a
hot loop. `stamp_status=False` is the fix: a status patch that changes nothing is a no-op for the
API server, which then sends no event.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError

GROUP: Final = "demo.opreplay.dev"
VERSION: Final = "v1"
PLURAL: Final = "webapps"
KIND: Final = "WebApp"

APP_LABEL: Final = "app"
MANAGED_BY: Final = {"app.kubernetes.io/managed-by": "webapp-operator"}

# The Deployment update is retried on 409 Conflict this many times in all, re-reading it each time.
MAX_UPDATE_ATTEMPTS: Final = 10
RETRY_BACKOFF_SECONDS: Final = 0.01  # times the attempt number

# What run() puts around each reconcile: called with (kind, namespace, name), returns a context manager.
ReconcileWrapper = Callable[[str, str, str], AbstractContextManager[object]]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ReconcileResult:
    """What one reconcile did; the kinds of the children it created or updated."""

    name: str
    found: bool = True
    created: list[str] = dataclasses.field(default_factory=list)
    updated: list[str] = dataclasses.field(default_factory=list)
    conflicts: int = 0
    ready_replicas: int = 0


@dataclasses.dataclass
class RunSummary:
    """What run() did and why it stopped: "events", "deadline" or "stream end"."""

    events: int = 0
    reconciles: int = 0
    failures: int = 0
    conflicts: int = 0
    stopped_by: str = "stream end"


def reconcile(
    api_client: client.ApiClient,
    namespace: str,
    name: str,
    *,
    stamp_status: bool = True,
    dynamic_client: DynamicClient | None = None,
) -> ReconcileResult:
    """Bring the children of one WebApp in line with its spec and report its status.

    A WebApp that is gone needs nothing: its children carry an owner reference to it. The dynamic
    client is made (with its API discovery) when none is given.
    """
    custom = client.CustomObjectsApi(api_client)
    core = client.CoreV1Api(api_client)
    try:
        webapp = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as error:
        if error.status == 404:
            return ReconcileResult(name, found=False)
        raise
    spec: Mapping[str, Any] = webapp.get("spec") or {}
    owner = client.V1OwnerReference(
        api_version=f"{GROUP}/{VERSION}",
        kind=KIND,
        name=name,
        uid=webapp["metadata"]["uid"],
        controller=True,
        block_owner_deletion=True,
    )
    labels = {APP_LABEL: name, **MANAGED_BY}
    result = ReconcileResult(name)

    _ensure_config_map(core, namespace, name, spec, owner=owner, labels=labels, result=result)
    _ensure_deployment(
        client.AppsV1Api(api_client), namespace, name, spec, owner=owner, labels=labels, result=result
    )
    _ensure_service(
        dynamic_client or DynamicClient(api_client),
        namespace,
        name,
        owner=api_client.sanitize_for_serialization(owner),
        labels=labels,
        result=result,
    )

    pods = core.list_namespaced_pod(namespace, label_selector=f"{APP_LABEL}={name}")
    result.ready_replicas = sum(1 for pod in pods.items if _is_ready(pod))
    status: dict[str, Any] = {
        "readyReplicas": result.ready_replicas,
        "observedGeneration": webapp["metadata"].get("generation"),
    }
    if stamp_status:
        status["lastReconciled"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, {"status": status})
    return result


def run(
    api_client: client.ApiClient,
    namespace: str,
    *,
    stop_after_events: int | None = None,
    deadline: float | None = None,
    reconcile_wrapper: ReconcileWrapper | None = None,
    stamp_status: bool = True,
) -> RunSummary:
    """Watch the WebApps of a namespace and reconcile each one that is ADDED or MODIFIED.

    Stops after `stop_after_events` watch events or at `deadline` (a `time.monotonic()` instant),
    whichever comes first, always between two reconciles; with neither, it runs until the watch
    stream fails. A failed reconcile is logged and counted; the loop goes on.
    """
    wrapper = reconcile_wrapper or _unwrapped
    summary = RunSummary()
    dynamic_client: DynamicClient | None = None

    def reconcile_one(name: str) -> None:
        nonlocal dynamic_client
        try:
            with wrapper(KIND, namespace, name):
                if dynamic_client is None:
                    dynamic_client = DynamicClient(api_client)
                result = reconcile(
                    api_client, namespace, name, stamp_status=stamp_status, dynamic_client=dynamic_client
                )
        except (ApiException, DynamicApiError) as error:
            summary.failures += 1
            logger.warning("reconcile of %s %s/%s failed: %s", KIND, namespace, name, error)
        else:
            summary.reconciles += 1
            summary.conflicts += result.conflicts

    watcher = watch.Watch()
    stream_options: dict[str, Any] = {}
    deadline_passed = threading.Event()
    timer: threading.Timer | None = None
    if deadline is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            summary.stopped_by = "deadline"
            return summary

        def stop_at_deadline() -> None:
            deadline_passed.set()
            watcher.stop()  # a read in progress then fails with ProtocolError

        # The server ends the stream after timeout_seconds (whole seconds); the timer stops it on time.
        stream_options["timeout_seconds"] = math.ceil(remaining)
        timer = threading.Timer(remaining, stop_at_deadline)
        timer.daemon = True
        timer.start()
    custom = client.CustomObjectsApi(api_client)
    stream = watcher.stream(
        custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, **stream_options
    )
    try:
        with contextlib.closing(stream):
            for event in stream:
                summary.events += 1
                if event["type"] in ("ADDED", "MODIFIED"):
                    reconcile_one(event["object"]["metadata"]["name"])
                if stop_after_events is not None and summary.events >= stop_after_events:
                    summary.stopped_by = "events"
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
    except urllib3.exceptions.ProtocolError:
        if not deadline_passed.is_set():
            raise
    finally:
        if timer is not None:
            timer.cancel()
    if summary.stopped_by != "events" and (
        deadline_passed.is_set() or (deadline is not None and time.monotonic() >= deadline)
    ):
        summary.stopped_by = "deadline"
    return summary


def _unwrapped(kind: str, namespace: str, name: str) -> AbstractContextManager[object]:
    return contextlib.nullcontext()


def _ensure_config_map(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    spec: Mapping[str, Any],
    *,
    owner: client.V1OwnerReference,
    labels: Mapping[str, str],
    result: ReconcileResult,
) -> None:
    config_name = f"{name}-config"
    data = {str(key): str(value) for key, value in (spec.get("configData") or {}).items()}
    try:
        current = core.read_namespaced_config_map(config_name, namespace)
    except ApiException as error:
        if error.status != 404:
            raise
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=config_name, labels=dict(labels), owner_references=[owner]),
            data=data,
        )
        core.create_namespaced_config_map(namespace, body)
        logger.info("created ConfigMap %s/%s", namespace, config_name)
        result.created.append("ConfigMap")
        return
    if (current.data or {}) != data:
        removed = {key: None for key in current.data or {} if key not in data}
        core.patch_namespaced_config_map(config_name, namespace, {"data": {**removed, **data}})
        logger.info("updated ConfigMap %s/%s", namespace, config_name)
        result.updated.append("ConfigMap")


def _ensure_deployment(
    apps: client.AppsV1Api,
    namespace: str,
    name: str,
    spec: Mapping[str, Any],
    *,
    owner: client.V1OwnerReference,
    labels: Mapping[str, str],
    result: ReconcileResult,
) -> None:
    image = str(spec["image"])
    replicas = int(spec.get("replicas", 1))
    try:
        current = apps.read_namespaced_deployment(name, namespace)
    except ApiException as error:
        if error.status != 404:
            raise
        apps.create_namespaced_deployment(
            namespace, _deployment(name, image, replicas, owner=owner, labels=labels)
        )
        logger.info("created Deployment %s/%s", namespace, name)
        result.created.append("Deployment")
        return
    for attempt in range(1, MAX_UPDATE_ATTEMPTS + 1):
        container = current.spec.template.spec.containers[0]
        if current.spec.replicas == replicas and container.image == image:
            return
        # Change only the fields the operator owns; the rest (and the resourceVersion) is the server's.
        current.spec.replicas = replicas
        container.image = image
        try:
            apps.replace_namespaced_deployment(name, namespace, current)
        except ApiException as error:
            if error.status != 409 or attempt == MAX_UPDATE_ATTEMPTS:
                raise
            result.conflicts += 1
            logger.info("conflict on Deployment %s/%s (attempt %d), re-reading", namespace, name, attempt)
            time.sleep(RETRY_BACKOFF_SECONDS * attempt)
            current = apps.read_namespaced_deployment(name, namespace)
        else:
            logger.info("updated Deployment %s/%s", namespace, name)
            result.updated.append("Deployment")
            return


def _deployment(
    name: str, image: str, replicas: int, *, owner: client.V1OwnerReference, labels: Mapping[str, str]
) -> client.V1Deployment:
    container = client.V1Container(
        name="web",
        image=image,
        ports=[client.V1ContainerPort(container_port=8080, name="http")],
        env_from=[client.V1EnvFromSource(config_map_ref=client.V1ConfigMapEnvSource(name=f"{name}-config"))],
    )
    return client.V1Deployment(
        api_version="apps/v1",
        kind="Deployment",
        metadata=client.V1ObjectMeta(name=name, labels=dict(labels), owner_references=[owner]),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels={APP_LABEL: name}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=dict(labels)),
                spec=client.V1PodSpec(containers=[container]),
            ),
        ),
    )


def _ensure_service(
    dynamic_client: DynamicClient,
    namespace: str,
    name: str,
    *,
    owner: Mapping[str, Any],
    labels: Mapping[str, str],
    result: ReconcileResult,
) -> None:
    services = dynamic_client.resources.get(api_version="v1", kind="Service")
    try:
        services.get(name=name, namespace=namespace)
    except NotFoundError:
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": dict(labels), "ownerReferences": [owner]},
            "spec": {
                "selector": {APP_LABEL: name},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        }
        services.create(body=body, namespace=namespace)
        logger.info("created Service %s/%s", namespace, name)
        result.created.append("Service")


def _is_ready(pod: client.V1Pod) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(condition.type == "Ready" and condition.status == "True" for condition in conditions)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m webapp_operator`: run against the cluster of the kubeconfig, or in-cluster."""
    parser = argparse.ArgumentParser(
        prog="python -m webapp_operator", description="Run the WebApp operator against the current cluster."
    )
    parser.add_argument("--namespace", default="default", help="the namespace to watch (default: default)")
    parser.add_argument("--max-events", type=int, help="stop after this many watch events")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument(
        "--no-stamp", action="store_true", help="do not write status.lastReconciled (no hot reconcile loop)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    api_client = client.ApiClient()
    try:
        summary = run(
            api_client,
            args.namespace,
            stop_after_events=args.max_events,
            deadline=None if args.seconds is None else time.monotonic() + args.seconds,
            stamp_status=not args.no_stamp,
        )
    finally:
        api_client.close()
    logger.info("stopped (%s): %s", summary.stopped_by, summary)
    return 0
