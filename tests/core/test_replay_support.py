"""Builders for replay tests: recordings written straight into a store, and a reference state fold.

The reference fold (`reference_states`) is written from the rules in DESIGN.md and the replay
docstrings, independently of `opreplay.replay.state`, over `NewOperation`s and JSON bytes; the
tests compare the engine against it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from opreplay.model import NewOperation, SessionInfo
from opreplay.store import Store, bodies

Key = tuple[str, str, str, str]

KINDS = {
    "deployments": ("apps/v1", "Deployment"),
    "pods": ("v1", "Pod"),
    "configmaps": ("v1", "ConfigMap"),
    "secrets": ("v1", "Secret"),
    "namespaces": ("v1", "Namespace"),
}


def digest(data: bytes) -> bytes:
    return bodies.digest(data)


def body(
    resource: str, namespace: str, name: str, rv: int, replicas: int | None = None, **extra: Any
) -> bytes:
    api_version, kind = KINDS[resource]
    metadata: dict[str, Any] = {"name": name, "resourceVersion": str(rv), "uid": f"uid-{name}"}
    if namespace:
        metadata["namespace"] = namespace
    document: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": metadata}
    if replicas is not None:
        document["spec"] = {"replicas": replicas, "template": {"spec": {"containers": [{"image": "web:1"}]}}}
    document.update(extra)
    return orjson.dumps(document)


def status_body(code: int, reason: str, message: str) -> bytes:
    return orjson.dumps(
        {
            "apiVersion": "v1",
            "kind": "Status",
            "status": "Failure",
            "code": code,
            "reason": reason,
            "message": message,
        }
    )


@dataclass
class Recording:
    """A list of NewOperations with helpers named after what an operator does."""

    ops: list[NewOperation] = field(default_factory=list)
    clock: float = 1_700_000_000.0

    def add(self, resource: str, verb: str, namespace: str, name: str, **fields: Any) -> int:
        api_version, kind = KINDS[resource]
        self.clock += 0.01
        values: dict[str, Any] = dict(
            ts=self.clock,
            duration_us=1500,
            thread="worker-1",
            verb=verb,
            api_version=api_version,
            resource=resource,
            kind=kind,
            namespace=namespace,
            name=name,
            status=200,
        )
        values.update(fields)
        self.ops.append(NewOperation(**values))
        return len(self.ops)

    def get(
        self, resource: str, namespace: str, name: str, rv: int, replicas: int | None = None, **kw: Any
    ) -> int:
        return self.add(
            resource, "get", namespace, name, response=body(resource, namespace, name, rv, replicas), **kw
        )

    def get_missing(self, resource: str, namespace: str, name: str) -> int:
        return self.add(
            resource,
            "get",
            namespace,
            name,
            status=404,
            reason="NotFound",
            message=f'{resource} "{name}" not found',
            response=status_body(404, "NotFound", "not found"),
        )

    def write(
        self,
        verb: str,
        resource: str,
        namespace: str,
        name: str,
        rv: int,
        replicas: int | None = None,
        **kw: Any,
    ) -> int:
        data = body(resource, namespace, name, rv, replicas)
        status = kw.pop("status", 201 if verb == "create" else 200)
        return self.add(resource, verb, namespace, name, request=data, response=data, status=status, **kw)

    def conflict(self, resource: str, namespace: str, name: str, verb: str = "update") -> int:
        message = f'Operation cannot be fulfilled on {resource} "{name}": the object has been modified'
        return self.add(
            resource,
            verb,
            namespace,
            name,
            status=409,
            reason="Conflict",
            message=message,
            request=body(resource, namespace, name, 1),
            response=status_body(409, "Conflict", message),
        )

    def delete(self, resource: str, namespace: str, name: str, status: int = 200) -> int:
        return self.add(
            resource,
            "delete",
            namespace,
            name,
            status=status,
            response=status_body(status, "Success" if status == 200 else "NotFound", "deleted"),
        )

    def list(self, resource: str, namespace: str, items: Sequence[bytes], rv: int = 100) -> int:
        api_version, kind = KINDS[resource]
        envelope = orjson.dumps(
            {"apiVersion": api_version, "kind": f"{kind}List", "metadata": {"resourceVersion": str(rv)}}
        )
        return self.add(resource, "list", namespace, "", response=envelope, response_items=tuple(items))

    def event(
        self,
        resource: str,
        event: str,
        namespace: str,
        name: str,
        rv: int,
        replicas: int | None = None,
        *,
        named: bool = True,
    ) -> int:
        return self.add(
            resource,
            "watch-event",
            namespace if named else "",
            name if named else "",
            status=0,
            event=event,
            watch=1,
            response=body(resource, namespace, name, rv, replicas),
        )

    def error(
        self, resource: str, namespace: str, name: str, status: int, message: str = "boom", **kw: Any
    ) -> int:
        return self.add(
            resource,
            kw.pop("verb", "get"),
            namespace,
            name,
            status=status,
            message=message,
            reason=kw.pop("reason", None),
            **kw,
        )

    def save(self, path: Path, *, chunk: int = 5000) -> tuple[Path, SessionInfo]:
        with Store.open(path, create=True) as store:
            session = store.create_session(name="test", started_at=time.time(), command="pytest")
            for start in range(0, len(self.ops), chunk):
                store.append(session, start + 1, self.ops[start : start + chunk])
            store.end_session(session, time.time())
        return path, session


# -- reference fold --------------------------------------------------------------------------------


def _name_of(data: bytes) -> tuple[str, str] | None:
    metadata = orjson.loads(data).get("metadata") or {}
    if not metadata.get("name"):
        return None
    return metadata.get("namespace") or "", metadata["name"]


def reference_effects(op: NewOperation) -> list[tuple[Key, bytes | None]]:
    """What an operation does to the state, per the documented rules, from the raw operation."""
    if op.subresource not in (None, "", "status") or op.verb == "gap":
        return []
    own: Key = (op.api_version, op.resource, op.namespace, op.name)

    def key_of(data: bytes) -> Key | None:
        found = _name_of(data)
        return None if found is None else (op.api_version, op.resource, found[0], found[1])

    if op.verb == "watch-event":
        if op.response is None or op.event not in ("ADDED", "MODIFIED", "DELETED"):
            return []
        key = own if op.name else key_of(op.response)
        if key is None:
            return []
        return [(key, None if op.event == "DELETED" else digest(op.response))]
    if 200 <= op.status < 300:
        if op.verb in ("get", "create", "update", "patch") and op.response is not None:
            if op.name:
                return [(own, digest(op.response))]
            if op.verb == "create":
                key = key_of(op.response)
                return [] if key is None else [(key, digest(op.response))]
            return []
        if op.verb == "delete":
            return [(own, None)]
        if op.verb in ("list", "deletecollection") and op.response_items:
            out: list[tuple[Key, bytes | None]] = []
            for item in op.response_items:
                key = key_of(item)
                if key is not None:
                    out.append((key, None if op.verb == "deletecollection" else digest(item)))
            return out
        return []
    if op.status == 404 and op.verb in ("get", "update", "patch", "delete") and op.name:
        return [(own, None)]
    return []


def reference_primary_key(op: NewOperation) -> Key | None:
    """The object an operation is about: the row's name, else (a watch event, a created object
    named by the server) the body's metadata; None for collection operations."""
    if op.name:
        return (op.api_version, op.resource, op.namespace, op.name)
    created = op.verb == "create" and 200 <= op.status < 300
    if op.response is None or not (op.verb == "watch-event" or created):
        return None
    found = _name_of(op.response)
    return None if found is None else (op.api_version, op.resource, found[0], found[1])


def reference_states(ops: Iterable[NewOperation]) -> list[dict[Key, bytes]]:
    """states[n] = the state after operation n (states[0] is empty)."""
    state: dict[Key, bytes] = {}
    states = [dict(state)]
    for op in ops:
        for key, value in reference_effects(op):
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
        states.append(dict(state))
    return states


def as_dict(cluster_state: Any) -> dict[Key, bytes]:
    return {(k.api_version, k.resource, k.namespace, k.name): v for k, v in cluster_state.items()}


def slowed(op: NewOperation, duration_us: int) -> NewOperation:
    return replace(op, duration_us=duration_us)
