"""Plain dataclasses that every layer above the store speaks.

The store turns rows into these and back; the recorder, the replay engine, analysis and the
front ends never see a peewee model. Bodies are referenced by digest and loaded on demand, so an
`Operation` is small whatever the size of the objects it carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERBS = ("get", "list", "watch", "watch-event", "create", "update", "patch", "delete", "deletecollection")
GAP = "gap"
"""Verb of the marker the recorder writes where operations were dropped (queue overflow)."""

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True, slots=True)
class ObjectKey:
    """Identity of a Kubernetes object (or of a collection, when `name` is empty)."""

    api_version: str
    resource: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.resource}.{self.api_version} {where}"


@dataclass(slots=True)
class NewOperation:
    """What the recorder hands to the store: one API call (or watch event), bodies as JSON bytes.

    `response_items` is set for LIST responses: `response` is then the list without its items
    and each item is stored (and deduplicated) as a body of its own.

    Not frozen, though nothing changes one once made: the recorder makes one per operation, and
    a frozen dataclass sets each of these twenty fields through `object.__setattr__` (5 us a
    construction against 1.5 us).
    """

    ts: float
    duration_us: int
    thread: str
    verb: str
    api_version: str
    resource: str
    kind: str
    namespace: str
    name: str
    subresource: str | None = None
    status: int = 0
    reason: str | None = None
    message: str | None = None
    resource_version: str | None = None
    reconcile: int | None = None
    watch: int | None = None
    event: str | None = None
    request: bytes | None = None
    response: bytes | None = None
    response_items: tuple[bytes, ...] | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """One recorded operation as read back from a store."""

    seq: int
    ts: float
    duration_us: int
    thread: str
    verb: str
    api_version: str
    resource: str
    kind: str
    namespace: str
    name: str
    subresource: str | None
    status: int
    reason: str | None
    message: str | None
    resource_version: str | None
    reconcile: int | None
    watch: int | None
    event: str | None
    request_digest: bytes | None
    response_digest: bytes | None

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.api_version, self.resource, self.namespace, self.name)

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def duration_ms(self) -> float:
        return self.duration_us / 1000.0

    @property
    def is_error(self) -> bool:
        return self.status >= 400 or (self.status == 0 and self.verb != "watch-event")


@dataclass(frozen=True, slots=True)
class ReconcileInfo:
    """What a reconcile marked with `rec.reconcile(kind, namespace, name)` was about."""

    id: int
    kind: str
    namespace: str
    name: str
    started_at: float

    @property
    def target(self) -> str:
        return object_label(self.kind, self.namespace, self.name)


def object_label(kind: str, namespace: str, name: str) -> str:
    """`WebApp default/web`, `Namespace ns1`, `WebApp in default`, or the kind alone."""
    if name:
        return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
    return f"{kind} in {namespace}" if namespace else kind


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A recording session: one run of one operator process (or of one `record()` block)."""

    pk: int
    id: str
    name: str | None
    started_at: float
    ended_at: float | None
    host: str
    pid: int
    command: str
    kube_context: str | None
    labels: dict[str, str] = field(default_factory=dict)
    operations: int = 0
    errors: int = 0
    dropped: int = 0


JSONValue = Any
"""A decoded JSON document (dict, list, str, number, bool or None)."""
