"""The demo scenario: the example WebApp operator, recorded against an emulated cluster.

`opreplay demo` has to give someone who has never recorded anything, in a few seconds and without a
cluster, recordings worth stepping through. This module stages them: it seeds an emulated API with
three WebApps, lets the example operator (webapp_operator) run against it over real HTTP, and
records each phase through the `recorder` it is given:

- "clean": the steady state, no fault, no hot loop: each reconcile reads and writes nothing new;
- "webapp-demo" (recorded last, so it is `latest`): the first reconciles with their natural 404s and
  creates, a conflict storm (six 409s on the update of one Deployment, retried), a slow GET, and
  the operator's hot reconcile loop (every status patch triggers the next reconcile).

The recorder is passed in so that this module knows nothing of how recordings are stored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, Final, Protocol

import kubernetes.client

import webapp_operator
from opreplay.demo.emulator import KubernetesEmulatorThread

__all__ = ["PhaseReport", "Recorder", "Recording", "no_recording", "run_demo_scenario"]

NAMESPACE: Final = "default"

_WEBAPPS: Final = f"{webapp_operator.GROUP}/{webapp_operator.VERSION}/{webapp_operator.PLURAL}"

# name -> (image, replicas, configData, how many of its Pods are ready)
_APPS: Final[Mapping[str, tuple[str, int, Mapping[str, str], int]]] = {
    "storefront": ("nginx:1.27", 3, {"THEME": "dark", "CURRENCY": "EUR"}, 2),
    "checkout": ("ghcr.io/opreplay/checkout:2.1", 2, {"PAYMENT_PROVIDER": "stripe"}, 2),
    "search": ("ghcr.io/opreplay/search:0.9", 1, {"INDEX": "products"}, 0),
}

# The Deployment that the storm hits: it exists already, one image behind its WebApp.
_STORM_TARGET: Final = "checkout"
_STORM_CONFLICTS: Final = 6
_CONFLICT_MESSAGE: Final = (
    f'Operation cannot be fulfilled on deployments.apps "{_STORM_TARGET}": the object has been modified;'
    " please apply your changes to the latest version and try again"
)
_SLOW_CONFIG_MAP: Final = "search-config"
_SLOW_SECONDS: Final = 0.3


class Recording(Protocol):
    """What a recorder's context manager yields: it marks where each reconcile starts and ends."""

    def reconcile(self, kind: str, namespace: str, name: str) -> AbstractContextManager[object]: ...


# Called with a session name; records the kubernetes client's calls while the context is open.
Recorder = Callable[[str], AbstractContextManager[Recording]]


@dataclasses.dataclass(frozen=True)
class PhaseReport:
    """What one recorded phase did, as the operator counted it."""

    session: str
    events: int
    reconciles: int
    failures: int
    conflicts: int
    seconds: float


def run_demo_scenario(
    *, recorder: Recorder, max_events: int = 30, max_seconds: float = 2.5
) -> list[PhaseReport]:
    """Record the "clean" session, then the "webapp-demo" one; each bounded by events and time."""
    return [
        _record_clean(recorder),
        _record_incident(recorder, max_events=max_events, max_seconds=max_seconds),
    ]


class _NoRecording:
    def reconcile(self, kind: str, namespace: str, name: str) -> AbstractContextManager[object]:
        return contextlib.nullcontext()


@contextlib.contextmanager
def no_recording(session: str) -> Iterator[Recording]:
    """A recorder that records nothing: runs the scenario alone (tests, dry runs)."""
    yield _NoRecording()


def _record_clean(recorder: Recorder) -> PhaseReport:
    with KubernetesEmulatorThread() as cluster:
        _seed(cluster, outdated=())
        with contextlib.closing(cluster.api_client()) as api:
            # Converge first, unrecorded: the session shows the steady state, and the client's
            # one-time start-up (lazy imports, model schemas) stays out of every recorded duration.
            webapp_operator.run(
                api,
                NAMESPACE,
                stop_after_events=len(_APPS),
                deadline=time.monotonic() + 10,
                stamp_status=False,
            )
            return _record(
                recorder, "clean", api, stop_after_events=len(_APPS), seconds=2.0, stamp_status=False
            )


def _record_incident(recorder: Recorder, *, max_events: int, max_seconds: float) -> PhaseReport:
    with KubernetesEmulatorThread() as cluster:
        _seed(cluster, outdated=(_STORM_TARGET,))
        cluster.fail(
            "update",
            "apps/v1/deployments",
            _STORM_TARGET,
            namespace=NAMESPACE,
            status=409,
            reason="Conflict",
            message=_CONFLICT_MESSAGE,
            times=_STORM_CONFLICTS,
        )
        cluster.delay("get", "v1/configmaps", _SLOW_CONFIG_MAP, namespace=NAMESPACE, seconds=_SLOW_SECONDS)
        with contextlib.closing(cluster.api_client()) as api:
            return _record(
                recorder,
                "webapp-demo",
                api,
                stop_after_events=max_events,
                seconds=max_seconds,
                stamp_status=True,
            )


def _record(
    recorder: Recorder,
    session: str,
    api: kubernetes.client.ApiClient,
    *,
    stop_after_events: int,
    seconds: float,
    stamp_status: bool,
) -> PhaseReport:
    started = time.monotonic()
    with recorder(session) as recording:
        summary = webapp_operator.run(
            api,
            NAMESPACE,
            stop_after_events=stop_after_events,
            deadline=started + seconds,
            reconcile_wrapper=recording.reconcile,
            stamp_status=stamp_status,
        )
    return PhaseReport(
        session=session,
        events=summary.events,
        reconciles=summary.reconciles,
        failures=summary.failures,
        conflicts=summary.conflicts,
        seconds=time.monotonic() - started,
    )


def _seed(cluster: KubernetesEmulatorThread, *, outdated: tuple[str, ...]) -> None:
    """The WebApps with their Pods; the apps in `outdated` have a Deployment from a previous release."""
    cluster.register_resource(
        webapp_operator.GROUP, webapp_operator.VERSION, webapp_operator.PLURAL, webapp_operator.KIND
    )
    for name, (image, replicas, config, ready) in _APPS.items():
        cluster.add_object(
            _WEBAPPS,
            {
                "apiVersion": f"{webapp_operator.GROUP}/{webapp_operator.VERSION}",
                "kind": webapp_operator.KIND,
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"image": image, "replicas": replicas, "configData": dict(config)},
            },
        )
        for index in range(replicas):
            cluster.add_object("v1/pods", _pod(name, index, image=image, ready=index < ready))
        if name in outdated:
            cluster.add_object("apps/v1/deployments", _deployment(name, _previous(image), replicas))


def _previous(image: str) -> str:
    repository, _, tag = image.rpartition(":")
    major, _, minor = tag.partition(".")
    return f"{repository}:{major}.{int(minor) - 1}"


def _pod(app: str, index: int, *, image: str, ready: bool) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{app}-7c9f8-{index}", "namespace": NAMESPACE, "labels": {"app": app}},
        "spec": {"containers": [{"name": "web", "image": image}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def _deployment(app: str, image: str, replicas: int) -> dict[str, Any]:
    labels = {"app": app}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }
