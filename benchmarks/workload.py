"""A deterministic, realistic operator workload, as the recorder sees it: raw HTTP exchanges.

What an operator's traffic looks like to the recorder, and why it is shaped this way:
- objects of about 6 KB of JSON, as the API server writes them: built-in kinds (Deployments, Pods,
  ConfigMaps) in Go struct field order, custom resources (WebApps) with sorted keys, all with
  managedFields, labels, annotations, owner references, status conditions;
- a mix of get (mostly of unchanged objects), list, update, patch, create, delete, and a few
  percent of errors (404 on a missing object, 409 on a stale update), with Kubernetes Status bodies;
- watch streams per resource: every write is echoed as a watch event carrying the same bytes as the
  write's response, and other controllers (kubelet, the scheduler) add status-only events.

`exchanges()` yields the messages the recorder's hook would queue (calls with their OPEN, DATA and
DONE messages), so `generate_session()` goes through the recorder's own queue and writer thread:
a generated session is shaped exactly as a real recording, only faster to make. Use it to build
1,000,000- or 3,000,000-operation sessions for the replay benchmarks:

    python benchmarks/workload.py /tmp/big.db --operations 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from opreplay.model import SessionInfo
from opreplay.record.capture import DATA, DONE, OPEN, Call, Message, Sink
from opreplay.record.writer import Assembler, Writer
from opreplay.store import Store

SERVER = "https://10.96.0.1:443"
NAMESPACES = ("shop", "payments", "search", "platform")
THREADS = ("MainThread", "reconcile-0", "reconcile-1", "reconcile-2", "watch-deployments", "watch-pods")
MIX = (  # (what, weight): per 1,000 operations, before the watch events that writes cause
    ("get", 300),
    ("list", 30),
    ("update", 80),
    ("patch", 120),
    ("status", 90),  # another controller writes status: only a watch event reaches the operator
    ("create", 25),
    ("delete", 25),
    ("get404", 20),
    ("update409", 20),
)


@dataclass(frozen=True)
class Resource:
    api_version: str
    plural: str
    kind: str
    sorted_keys: bool  # custom resources: the API server writes them with sorted keys

    def path(self, namespace: str, name: str = "") -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{prefix}/namespaces/{namespace}/{self.plural}" + (f"/{name}" if name else "")


RESOURCES = (
    Resource("apps/v1", "deployments", "Deployment", False),
    Resource("v1", "pods", "Pod", False),
    Resource("v1", "configmaps", "ConfigMap", False),
    Resource("demo.opreplay.dev/v1", "webapps", "WebApp", True),
)


@dataclass
class _Object:
    resource: Resource
    namespace: str
    name: str
    uid: str
    document: dict[str, Any]
    raw: bytes = b""
    item: bytes = b""  # as a list item: without kind and apiVersion
    exists: bool = True


@dataclass
class _Clock:
    """Wall and monotonic time advancing by what the operations take, not by how long generating takes."""

    wall: float = 1_750_000_000.0
    ns: int = 1_000_000_000_000

    def advance(self, micros: int) -> int:
        self.wall += micros / 1e6
        self.ns += micros * 1000
        return self.ns


class Workload:
    """The cluster state and the random choices; `messages()` yields what the recorder would queue."""

    def __init__(self, seed: int = 0, *, objects_per_kind: int = 60) -> None:
        self.random = random.Random(seed)
        self.clock = _Clock()
        self.version = 1000
        self.objects: list[_Object] = []
        for resource in RESOURCES:
            for index in range(objects_per_kind):
                namespace = NAMESPACES[index % len(NAMESPACES)]
                self.objects.append(
                    self._new_object(resource, namespace, f"{resource.plural[:-1]}-{index:04d}")
                )
        self.watches: dict[Resource, Call] = {}
        self._what = [what for what, weight in MIX for _ in range(weight)]

    # -- objects ------------------------------------------------------------------------------

    def _new_object(self, resource: Resource, namespace: str, name: str) -> _Object:
        uid = hashlib.md5(f"{namespace}/{name}/{self.version}".encode()).hexdigest()
        obj = _Object(
            resource, namespace, name, f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:]}", {}
        )
        document = _document(resource, namespace, name, obj.uid, self.random)
        # A custom resource is a map to the server: sorted keys (kept by every later change).
        obj.document = (
            orjson.loads(orjson.dumps(document, option=orjson.OPT_SORT_KEYS))
            if resource.sorted_keys
            else document
        )
        self._bump(obj)
        return obj

    def _bump(self, obj: _Object, change: str = "") -> None:
        """A new version of the object: resourceVersion, a status change, a managedFields timestamp."""
        self.version += 1
        document = obj.document
        metadata = document["metadata"]
        metadata["resourceVersion"] = str(self.version)
        if change == "spec":
            metadata["generation"] += 1
            document["spec"]["replicas"] = self.random.randint(1, 9)
        stamp = (
            f"2025-06-{1 + self.version // 86400 % 28:02d}T{self.version // 3600 % 24:02d}:"
            f"{self.version // 60 % 60:02d}:{self.version % 60:02d}Z"
        )
        metadata["managedFields"][-1]["time"] = stamp
        status = document.setdefault("status", {})
        status["observedGeneration"] = metadata["generation"]
        status["conditions"][self.random.randrange(len(status["conditions"]))]["lastTransitionTime"] = stamp
        if change == "annotate":
            metadata["annotations"]["demo.opreplay.dev/last-reconcile"] = stamp
        obj.raw = orjson.dumps(document)
        obj.item = b""  # made when a list needs it

    # -- messages -----------------------------------------------------------------------------

    def messages(self, operations: int) -> Iterator[Message]:
        """Messages for about `operations` operations (a watch's events may run a few over)."""
        produced = 0
        for resource in RESOURCES:
            call = self._call(
                "GET",
                resource.path(NAMESPACES[0]).replace(f"/namespaces/{NAMESPACES[0]}", "")
                + "?watch=true&allowWatchBookmarks=true",
                thread=f"watch-{resource.plural}",
            )
            call.status = 200
            self.watches[resource] = call
            yield (OPEN, call, self.clock.advance(1500))
            produced += 1
        while produced < operations:
            for message in self._one():
                if message[0] != OPEN:
                    produced += 1
                yield message
        for call in self.watches.values():
            yield (DONE, call, None, self.clock.advance(10), None)

    def _one(self) -> Iterator[Message]:
        what = self.random.choice(self._what)
        obj = self.random.choice(self.objects)
        resource = obj.resource
        if what == "list":
            namespace = self.random.choice(NAMESPACES)
            listed = [
                o for o in self.objects if o.resource is resource and o.namespace == namespace and o.exists
            ]
            kind, api_version, version = (
                resource.kind.encode(),
                resource.api_version.encode(),
                str(self.version),
            )
            if resource.sorted_keys:  # a map to the server: sorted keys, items keep their kind
                body = (
                    b'{"apiVersion":"'
                    + api_version
                    + b'","items":['
                    + b",".join(o.raw for o in listed)
                    + b'],"kind":"'
                    + kind
                    + b'List","metadata":{"continue":"","resourceVersion":"'
                    + version.encode()
                    + b'"}}'
                )
            else:  # a built-in list: items without their kind and apiVersion
                body = (
                    b'{"kind":"'
                    + kind
                    + b'List","apiVersion":"'
                    + api_version
                    + b'","metadata":{"resourceVersion":"'
                    + version.encode()
                    + b'"},"items":['
                    + b",".join(map(_list_item, listed))
                    + b"]}"
                )
            yield from self._exchange("GET", resource.path(namespace), 200, None, body)
            return
        if not obj.exists:
            what = "create"
        elif what == "create":
            what = "get"
        if what == "get":
            yield from self._exchange("GET", resource.path(obj.namespace, obj.name), 200, None, obj.raw)
        elif what == "get404":
            missing = f"{obj.name}-gone"
            yield from self._exchange(
                "GET",
                resource.path(obj.namespace, missing),
                404,
                None,
                _status(404, "NotFound", f'{resource.plural} "{missing}" not found'),
            )
        elif what == "update409":
            stale = orjson.dumps(obj.document).decode()
            message = (
                f'Operation cannot be fulfilled on {resource.plural} "{obj.name}": the object has been'
                " modified; please apply your changes to the latest version and try again"
            )
            yield from self._exchange(
                "PUT", resource.path(obj.namespace, obj.name), 409, stale, _status(409, "Conflict", message)
            )
        elif what == "update":
            self._bump(obj, "spec")
            yield from self._exchange(
                "PUT",
                resource.path(obj.namespace, obj.name),
                200,
                orjson.dumps(obj.document).decode(),
                obj.raw,
            )
            yield from self._event("MODIFIED", obj)
        elif what == "patch":
            self._bump(obj, "annotate")
            patch = {
                "metadata": {
                    "annotations": {
                        "demo.opreplay.dev/last-reconcile": obj.document["metadata"]["managedFields"][-1][
                            "time"
                        ]
                    }
                }
            }
            yield from self._exchange(
                "PATCH", resource.path(obj.namespace, obj.name), 200, orjson.dumps(patch).decode(), obj.raw
            )
            yield from self._event("MODIFIED", obj)
        elif what == "status":
            self._bump(obj)
            yield from self._event("MODIFIED", obj)
        elif what == "create":
            fresh = self._new_object(resource, obj.namespace, obj.name)
            self.objects[self.objects.index(obj)] = fresh
            request = {key: value for key, value in fresh.document.items() if key != "status"}
            yield from self._exchange(
                "POST", resource.path(obj.namespace), 201, orjson.dumps(request).decode(), fresh.raw
            )
            yield from self._event("ADDED", fresh)
        elif what == "delete":
            obj.exists = False
            self._bump(obj)
            yield from self._exchange(
                "DELETE",
                resource.path(obj.namespace, obj.name),
                200,
                '{"propagationPolicy": "Background"}',
                obj.raw,
            )
            yield from self._event("DELETED", obj)

    def _call(self, method: str, path: str, *, thread: str | None = None) -> Call:
        ns = self.clock.advance(self.random.randint(200, 3000))
        return Call(
            method,
            SERVER + path,
            None,
            None,
            self.clock.wall,
            ns,
            thread or self.random.choice(THREADS[:4]),
            None,
        )

    def _exchange(
        self, method: str, path: str, status: int, request: str | None, response: bytes
    ) -> Iterator[Message]:
        call = self._call(method, path)
        call.body = request
        call.status = status
        yield (OPEN, call, self.clock.advance(self.random.randint(800, 6000)))
        yield (DONE, call, response, self.clock.advance(self.random.randint(20, 400)), None)

    def _event(self, event: str, obj: _Object) -> Iterator[Message]:
        line = b'{"type":"' + event.encode() + b'","object":' + obj.raw + b"}\n"
        yield (DATA, self.watches[obj.resource], line, self.clock.advance(self.random.randint(100, 2000)))


def _status(code: int, reason: str, message: str) -> bytes:
    return orjson.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
    )


def _list_item(obj: _Object) -> bytes:
    """The object as a built-in list holds it: without kind and apiVersion."""
    if not obj.item:
        obj.item = orjson.dumps({k: v for k, v in obj.document.items() if k not in ("kind", "apiVersion")})
    return obj.item


def _document(resource: Resource, namespace: str, name: str, uid: str, rnd: random.Random) -> dict[str, Any]:
    """About 6 KB: what a Deployment, Pod, ConfigMap or custom resource looks like with managedFields."""
    app = name.rsplit("-", 1)[0]
    labels = {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": "webapp-operator",
        "tier": rnd.choice(("web", "api", "worker")),
    }
    containers = [
        {
            "name": container,
            "image": f"registry.example.com/{app}/{container}:1.{rnd.randint(0, 40)}.{rnd.randint(0, 9)}",
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": f"SETTING_{i}", "value": f"value-{rnd.randint(0, 10**6)}"} for i in range(8)],
            "resources": {
                "limits": {"cpu": "500m", "memory": "256Mi"},
                "requests": {"cpu": "100m", "memory": "64Mi"},
            },
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
        }
        for container in ("app", "sidecar")
    ]
    fields_v1 = {
        "f:metadata": {
            "f:labels": {".": {}, **{f"f:{key}": {} for key in labels}},
            "f:ownerReferences": {".": {}, f'k:{{"uid":"{uid[::-1]}"}}': {}},
        },
        "f:spec": {
            "f:replicas": {},
            "f:template": {
                "f:spec": {
                    "f:containers": {
                        f'k:{{"name":"{c["name"]}"}}': {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:env": {
                                ".": {},
                                **{
                                    f'k:{{"name":"SETTING_{i}"}}': {".": {}, "f:name": {}, "f:value": {}}
                                    for i in range(8)
                                },
                            },
                        }
                        for c in containers
                    }
                }
            },
        },
    }
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid,
        "resourceVersion": "0",
        "generation": 1,
        "creationTimestamp": "2025-06-01T08:00:00Z",
        "labels": labels,
        "annotations": {"demo.opreplay.dev/owner": "platform-team", "demo.opreplay.dev/last-reconcile": ""},
        "ownerReferences": [
            {
                "apiVersion": "demo.opreplay.dev/v1",
                "kind": "WebApp",
                "name": app,
                "uid": uid[::-1],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
        "managedFields": [
            {
                "manager": "webapp-operator",
                "operation": "Update",
                "apiVersion": resource.api_version,
                "time": "2025-06-01T08:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1,
            },
            {
                "manager": "kube-controller-manager",
                "operation": "Update",
                "apiVersion": resource.api_version,
                "time": "2025-06-01T08:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:status": {"f:conditions": {".": {}}, "f:observedGeneration": {}}},
                "subresource": "status",
            },
        ],
    }
    conditions = [
        {
            "type": kind,
            "status": "True",
            "lastUpdateTime": "2025-06-01T08:00:00Z",
            "lastTransitionTime": "2025-06-01T08:00:00Z",
            "reason": f"{kind}Reason",
            "message": f"{resource.kind} {name} is {kind.lower()}",
        }
        for kind in ("Available", "Progressing", "Ready")
    ]
    return {
        "kind": resource.kind,
        "apiVersion": resource.api_version,
        "metadata": metadata,
        "spec": {
            "replicas": rnd.randint(1, 5),
            "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
        },
        "status": {"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "conditions": conditions},
    }


def exchanges(operations: int, *, seed: int = 0) -> Iterator[Message]:
    """The recorder's queue messages for about `operations` operations of the workload."""
    return Workload(seed).messages(operations)


def generate_session(
    store_path: str | os.PathLike[str], operations: int = 1_000_000, seed: int = 0, *, name: str | None = None
) -> SessionInfo:
    """Record `operations` workload operations into a new session of the store at `store_path`.

    The messages go through the recorder's queue (blocking when full) and its writer thread, batch
    by batch, exactly as a live recording's would.
    """
    store = Store.open(store_path, create=True)
    try:
        session = store.create_session(
            name=name or f"workload-{operations}",
            started_at=time.time(),
            command=" ".join(sys.argv),
            labels={"workload": "benchmarks/workload.py", "seed": str(seed)},
        )
        sink = Sink(20_000, block=True, wake_at=1000)
        writer = Writer(
            sink,
            Assembler(token=None, redact=True, max_body_bytes=1 << 20),
            lambda: (store, session, False),
            batch_size=1000,
            flush_interval=0.2,
        )
        writer.start()
        writer.started_up.wait()
        for message in exchanges(operations, seed=seed):
            sink.offer(message)  # blocks while the queue is full
        writer.stop()
        writer.join()
        if writer.error is not None:
            raise writer.error
        return store.find_session(session.id)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("database")
    parser.add_argument("--operations", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    session = generate_session(Path(args.database), args.operations, args.seed)
    seconds = time.perf_counter() - started
    print(
        f"session {session.id}: {session.operations} operations in {seconds:.1f} s"
        f" ({session.operations / seconds:,.0f}/s)"
    )


if __name__ == "__main__":
    main()
