"""A Kubernetes API emulator in a background thread, for the demo and the tests.

opreplay records what the official, synchronous `kubernetes` client sends over HTTP, so the demo and
the tests need an API server that this client really talks to, without a cluster. kmock's
`KubernetesEmulator` is an aiohttp application: `KubernetesEmulatorThread` runs it with
`kmock.Server` in an event loop in a daemon thread and gives synchronous code a URL, an `ApiClient`,
seeding, and fault injection written in kmock's reactions DSL.

kmock keeps objects as plain JSON documents and no more; operators rely on more than that, so
`_Emulator` closes the gaps that matter to them:

- a rejected request changes nothing: kmock applies writes before it consults the reactions (an
  injected 409 would still modify the object), here writes happen only in the fallback handlers;
- PUT (replace) is served; kmock does not route it at all;
- server-owned metadata: resourceVersion (one cluster-wide counter), uid, creationTimestamp,
  generation (bumped when anything but metadata and status changes); a write that changes nothing
  keeps the resourceVersion and emits no watch event, as in Kubernetes;
- optimistic concurrency: a stale metadata.resourceVersion (PUT, PATCH, delete preconditions) is
  409 Conflict, creating an existing object is 409 AlreadyExists; errors carry Kubernetes' reasons
  and messages instead of kmock's;
- the status subresource: a write to /status changes only .status, a write to the object keeps it;
- patches: JSON patch, merge patch (RFC 7386); a strategic merge patch is applied as a merge patch
  (lists are replaced, not merged by key) and refused for custom resources, as Kubernetes does;
- label and field selectors on list and watch; lists sorted by namespace and name;
- watch: resumes after a resourceVersion by replaying a bounded event log (410 Expired when it is
  older), honours timeoutSeconds (kmock ignores it), and every stream ends when the emulator stops;
- create answers 201 Created.

Two more differences are about speed and hygiene: kmock keeps every request and scans them all
again to match each new one (quadratic), so served requests are forgotten and the injected faults
count themselves down (depletable payloads) instead of using kmock's slices; and the kubernetes
dynamic client's discovery cache for the emulator's URL is removed at start and stop, since a
later emulator may get the same port.

Not emulated: controllers (nothing creates Pods or fills a Deployment's status), garbage collection
of owned objects, admission and validation, pagination, server-side apply.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import copy
import dataclasses
import datetime
import functools
import gzip
import hashlib
import importlib.resources
import operator
import pathlib
import re
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar, cast

import kmock
import kubernetes.client

from opreplay.errors import OpreplayError

if TYPE_CHECKING:
    import aiohttp.web

__all__ = ["EmulatorError", "KubernetesEmulatorThread"]

_T = TypeVar("_T")
_Object = dict[str, Any]
_Event = dict[str, Any]
_Requirement = Callable[[Mapping[str, Any]], bool]

# How many past watch events a watch can resume from (by resourceVersion) before it gets 410 Expired.
_EVENT_LOG_LIMIT: Final = 10_000

# How long a call from the caller's thread may wait for the event loop (seeding, fault injection).
_CALL_TIMEOUT: Final = 10.0

_ALL_VERBS: Final = frozenset(
    {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
)

# Kubernetes verbs as kmock sees the requests: kmock's "update" action is an HTTP PATCH, and kmock
# has no action for PUT (a Kubernetes update), so that one is matched by its HTTP method.
_VERB_CRITERIA: Final[Mapping[str, kmock.action | kmock.method]] = {
    "get": kmock.action.FETCH,
    "list": kmock.action.LIST,
    "watch": kmock.action.WATCH,
    "create": kmock.action.CREATE,
    "update": kmock.method.PUT,
    "patch": kmock.method.PATCH,
    "delete": kmock.action.DELETE,
}

# Server-owned metadata: whatever a client sends in these fields of an update is ignored.
_SERVER_METADATA: Final = (
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "generation",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


class EmulatorError(OpreplayError):
    """The emulated Kubernetes API did not start, stop, or serve as it should."""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_resource(spec: str) -> kmock.resource:
    resource = kmock.resource(spec)
    if resource.group is None or resource.version is None or resource.plural is None:
        raise ValueError(
            f"not a resource: {spec!r}; write group/version/plural, e.g. 'apps/v1/deployments' or 'v1/pods'"
        )
    return resource


def _api_version(resource: kmock.resource) -> str:
    return f"{resource.group}/{resource.version}" if resource.group else str(resource.version)


def _qualified(resource: kmock.resource) -> str:
    """`deployments.apps`, `configmaps`: how Kubernetes names a resource in its error messages."""
    return f"{resource.plural}.{resource.group}" if resource.group else str(resource.plural)


def _status(code: int, reason: str, message: str, details: Mapping[str, Any]) -> _Object:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": dict(details),
        "code": code,
    }


def _error(
    code: int, reason: str, message: str, resource: kmock.resource | None, name: str | None = None
) -> kmock.KubernetesError:
    # Never empty: kmock puts its own traceback into empty details.
    details: dict[str, Any] = {"causes": []}
    if resource is not None:
        details = {"group": resource.group, "kind": resource.plural}
    if name is not None:
        details["name"] = name
    return kmock.KubernetesError(status=code, reason=reason, message=message, details=details)


def _bad_request(message: str, resource: kmock.resource) -> kmock.KubernetesError:
    return _error(400, "BadRequest", message, resource)


def _not_found(resource: kmock.resource, name: str) -> kmock.KubernetesError:
    return _error(404, "NotFound", f'{_qualified(resource)} "{name}" not found', resource, name)


def _conflict(resource: kmock.resource, name: str) -> kmock.KubernetesError:
    message = (
        f'Operation cannot be fulfilled on {_qualified(resource)} "{name}": the object has been modified;'
        " please apply your changes to the latest version and try again"
    )
    return _error(409, "Conflict", message, resource, name)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null removes a key, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _split_selector(text: str) -> Iterator[str]:
    """Split at the commas that are not inside `in (a, b)` sets."""
    depth, start = 0, 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            yield text[start:index]
            start = index + 1
    yield text[start:]


_SET_REQUIREMENT = re.compile(r"\s*([\w./-]+)\s+(in|notin)\s*\(([^)]*)\)\s*")
_EQUALITY_REQUIREMENT = re.compile(r"\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*")
_EXISTENCE_REQUIREMENT = re.compile(r"\s*(!?)\s*([\w./-]+)\s*")


def _label_requirement(text: str) -> _Requirement | None:
    def labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
        return cast(Mapping[str, str], obj.get("metadata", {}).get("labels") or {})

    if match := _SET_REQUIREMENT.fullmatch(text):
        key, op, values = match[1], match[2], {value.strip() for value in match[3].split(",")}
        return lambda obj: (labels(obj).get(key) in values) == (op == "in")
    if match := _EQUALITY_REQUIREMENT.fullmatch(text):
        key, op, value = match[1], match[2], match[3]
        return lambda obj: (labels(obj).get(key) == value) == (op != "!=")
    if match := _EXISTENCE_REQUIREMENT.fullmatch(text):
        negated, key = match[1] == "!", match[2]
        return lambda obj: (key in labels(obj)) != negated
    return None


def _field_requirement(text: str) -> _Requirement | None:
    match = _EQUALITY_REQUIREMENT.fullmatch(text)
    if match is None:
        return None
    path, op, value = match[1].split("."), match[2], match[3]

    def field(obj: Mapping[str, Any]) -> str:
        found: Any = obj
        for part in path:
            found = found.get(part) if isinstance(found, Mapping) else None
        return "" if found is None else str(found)

    return lambda obj: (field(obj) == value) == (op != "!=")


@dataclasses.dataclass(frozen=True)
class _Query:
    """Which objects a list or a watch is about: namespace, name, label and field selectors."""

    namespace: str | None
    name: str | None
    requirements: tuple[_Requirement, ...]

    @classmethod
    def of(cls, request: kmock.Request, resource: kmock.resource) -> _Query:
        requirements: list[_Requirement] = []
        for param, parse in (("labelSelector", _label_requirement), ("fieldSelector", _field_requirement)):
            for part in _split_selector(request.params.get(param, "")):
                if not part.strip():
                    continue
                requirement = parse(part)
                if requirement is None:
                    raise _bad_request(f"unable to parse requirement: {part.strip()!r} in {param}", resource)
                requirements.append(requirement)
        return cls(request.namespace, request.name, tuple(requirements))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        metadata = obj.get("metadata", {})
        return (
            (self.namespace is None or metadata.get("namespace") == self.namespace)
            and (self.name is None or metadata.get("name") == self.name)
            and all(requirement(obj) for requirement in self.requirements)
        )


@dataclasses.dataclass(eq=False)
class _Watcher:
    """One open watch stream: the live events of its resource arrive in its queue; None ends it."""

    resource: kmock.resource
    queue: asyncio.Queue[_Event | None] = dataclasses.field(default_factory=asyncio.Queue)


class _Emulator(kmock.KubernetesEmulator):
    """kmock's emulator with the Kubernetes semantics an operator relies on (see the module docstring).

    Runs entirely in the event loop's thread; the write paths have no `await`, so each is atomic.
    """

    _resource_version: int
    _event_log: collections.deque[tuple[int, kmock.resource, _Event]]
    _forgotten_up_to: int
    _watchers: set[_Watcher]
    _custom_resources: set[kmock.resource]
    _closing: bool

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._resource_version = 0
        self._event_log = collections.deque(maxlen=_EVENT_LOG_LIMIT)
        self._forgotten_up_to = 0
        self._watchers = set()
        self._custom_resources = set()
        self._closing = False
        # The built-in resources of a recent cluster, as kmock bundles them; read here because kmock's
        # load_bundled() uses a deprecated importlib API and warns on every start.
        bundled = importlib.resources.files(kmock).joinpath("_internal/resources.json.gz").read_bytes()
        self.resources.load_data(gzip.decompress(bundled))
        self.fallback[kmock.method.PUT] << self._serve_replace
        # Kubernetes answers a create with 201 Created, kmock with 200: this outranks kmock's create fallback.
        (self.fallback**1)[kmock.action.CREATE] << 201 << self._serve_create

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # Skip KubernetesEmulator._handle, which writes before the reactions are consulted:
        # the writes happen in the fallback handlers, so a request answered by a reaction changes nothing.
        try:
            return await super(kmock.KubernetesEmulator, self)._handle(request)
        finally:
            self._forget_request(request)

    def _forget_request(self, request: kmock.Request) -> None:
        """Drop a served request from kmock's memory.

        kmock keeps every request for assertions and scans them all again to match each new one:
        quadratic, 20 ms per request after a few hundred. Nothing here asserts on past requests, and
        the harness's reactions deplete instead of counting with slices, so only requests in flight
        are kept.
        """
        self._requests.remove(request)
        for payload in self._payloads:
            if request in payload._requests:
                payload._requests.remove(request)

    # --- called from the harness (in the loop's thread) ---

    def register_custom_resource(self, resource: kmock.resource, *, kind: str, namespaced: bool) -> None:
        self.resources[resource] = kmock.ResourceInfo(
            kind=kind, singular=kind.lower(), namespaced=namespaced, verbs=_ALL_VERBS, subresources={"status"}
        )
        self._custom_resources.add(resource)

    def seed(self, resource: kmock.resource, obj: Mapping[str, Any]) -> _Object:
        if resource not in self.resources:
            raise ValueError(
                f"unknown resource {_api_version(resource)}/{resource.plural}: register it first"
            )
        namespace = obj.get("metadata", {}).get("namespace")
        return copy.deepcopy(self._create(resource, namespace, obj, keep_status=True))

    def lookup(self, resource: kmock.resource, namespace: str | None, name: str) -> _Object | None:
        found = self._current((resource, namespace, name))
        return None if found is None else copy.deepcopy(found)

    def close_watches(self) -> None:
        self._closing = True
        for watcher in self._watchers:
            watcher.queue.put_nowait(None)

    # --- the fallback handlers: what the API server does when no reaction answers ---

    async def _serve_fetch(self, request: kmock.Request) -> kmock.Payload:
        resource = self._resource_of(request)
        return self._existing(resource, self._key(request, resource))

    async def _serve_list(self, request: kmock.Request) -> kmock.Payload:
        resource = self._resource_of(request)
        query = _Query.of(request, resource)
        return {
            "apiVersion": _api_version(resource),
            "kind": f"{self._kind(resource)}List",
            "metadata": {"resourceVersion": str(self._resource_version)},
            "items": [obj for obj in self._objects_of(resource) if query.matches(obj)],
        }

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[kmock.Payload]:
        resource = self._resource_of(request)
        query = _Query.of(request, resource)
        timeout = self._timeout_seconds(request, resource)
        backlog = self._backlog(request, resource)
        if self._closing:
            return
        watcher = _Watcher(resource)
        self._watchers.add(watcher)
        try:
            yield b""  # send the headers now: the client waits for them before it reads events
            for event in backlog:
                if event["type"] == "ERROR" or query.matches(event["object"]):
                    yield event
                if event["type"] == "ERROR":
                    return
            loop = asyncio.get_running_loop()
            deadline = None if timeout is None else loop.time() + timeout
            while True:
                try:
                    live = await asyncio.wait_for(
                        watcher.queue.get(), None if deadline is None else max(0.0, deadline - loop.time())
                    )
                except TimeoutError:
                    return
                if live is None:
                    return
                if query.matches(live["object"]):
                    yield live
        finally:
            self._watchers.discard(watcher)

    async def _serve_create(self, request: kmock.Request) -> kmock.Payload:
        resource = self._resource_of(request)
        if request.subresource is not None:
            raise _error(405, "MethodNotAllowed", "create is not supported on subresources", resource)
        return self._create(
            resource, request.namespace, request.data, keep_status=not self._has_status(resource)
        )

    async def _serve_replace(self, request: kmock.Request) -> kmock.Payload:
        resource = self._resource_of(request)
        if request.name is None:
            raise _error(405, "MethodNotAllowed", "PUT needs an object name in the URL", resource)
        body = request.data
        if not isinstance(body, Mapping):
            raise _bad_request("the body of an update must be an object", resource)
        return self._write(request, resource, lambda current: copy.deepcopy(dict(body)))

    async def _serve_update(self, request: kmock.Request) -> kmock.Payload:
        resource = self._resource_of(request)
        return self._write(request, resource, functools.partial(self._patched, request, resource))

    async def _serve_delete(self, request: kmock.Request) -> kmock.Payload:
        resource = self._resource_of(request)
        key = self._key(request, resource)
        current = self._existing(resource, key)
        options = request.data if isinstance(request.data, Mapping) else {}
        preconditions = options.get("preconditions") or {}
        for field in ("resourceVersion", "uid"):
            expected = preconditions.get(field)
            if expected is not None and expected != current["metadata"].get(field):
                raise _conflict(resource, key[2])
        if not current["metadata"].get("finalizers"):
            return self._delete_now(key, current)
        if current["metadata"].get("deletionTimestamp"):
            return current
        marked = copy.deepcopy(current)
        marked["metadata"].update(deletionTimestamp=_now(), deletionGracePeriodSeconds=0)
        return self._store(key, marked, "MODIFIED")

    # --- the semantics ---

    def _resource_of(self, request: kmock.Request) -> kmock.resource:
        resource = request.resource
        known = resource is not None and resource.plural is not None and resource in self.resources
        if (
            resource is None
            or not known
            or request.subresource not in (None, "status")
            or (request.subresource == "status" and not self._has_status(resource))
        ):
            raise _error(404, "NotFound", "the server could not find the requested resource", resource)
        return resource

    def _has_status(self, resource: kmock.resource) -> bool:
        return "status" in self.resources[resource].subresources

    def _kind(self, resource: kmock.resource) -> str:
        return self.resources[resource].kind or str(resource.plural).capitalize()

    def _key(
        self, request: kmock.Request, resource: kmock.resource
    ) -> tuple[kmock.resource, str | None, str]:
        assert request.name is not None  # kmock routes fetch, update and delete only with a name
        namespace = request.namespace if self.resources[resource].namespaced else None
        return resource, namespace, request.name

    def _current(self, key: tuple[kmock.resource, str | None, str]) -> _Object | None:
        if key not in self.objects or self.objects[key].deleted:
            return None
        return self.objects[key].raw

    def _existing(self, resource: kmock.resource, key: tuple[kmock.resource, str | None, str]) -> _Object:
        current = self._current(key)
        if current is None:
            raise _not_found(resource, key[2])
        return current

    def _objects_of(self, resource: kmock.resource) -> list[_Object]:
        found = [obj.raw for key, obj in self.objects.items() if key[0] == resource and not obj.deleted]
        return sorted(
            found, key=lambda obj: (obj["metadata"].get("namespace") or "", obj["metadata"]["name"])
        )

    def _timeout_seconds(self, request: kmock.Request, resource: kmock.resource) -> float | None:
        text = request.params.get("timeoutSeconds")
        if text is None:
            return None
        try:
            return max(0.0, float(text))
        except ValueError:
            raise _bad_request(f"invalid timeoutSeconds: {text!r}", resource) from None

    def _backlog(self, request: kmock.Request, resource: kmock.resource) -> list[_Event]:
        """What a new watch sends first: every object as ADDED, or the events after its resourceVersion."""
        since = request.params.get("resourceVersion", "")
        if since in ("", "0"):
            return [{"type": "ADDED", "object": obj} for obj in self._objects_of(resource)]
        try:
            since_version = int(since)
        except ValueError:
            raise _bad_request(f"invalid resourceVersion: {since!r}", resource) from None
        if since_version < self._forgotten_up_to:
            message = f"too old resource version: {since_version} ({self._forgotten_up_to})"
            return [{"type": "ERROR", "object": _status(410, "Expired", message, {})}]
        return [
            event for version, kind, event in self._event_log if kind == resource and version > since_version
        ]

    def _create(
        self, resource: kmock.resource, namespace: str | None, body: Any, *, keep_status: bool
    ) -> _Object:
        if not isinstance(body, Mapping) or not isinstance(body.get("metadata", {}), Mapping):
            raise _bad_request("the body of a create must be an object with metadata", resource)
        created: _Object = copy.deepcopy(dict(body))
        metadata = created["metadata"] = dict(created.get("metadata") or {})
        if not self.resources[resource].namespaced:
            namespace = None
        elif metadata.get("namespace") not in (None, namespace):
            raise _bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
                resource,
            )
        elif namespace is None:
            raise _bad_request("a namespaced object needs a namespace", resource)
        name = metadata.get("name") or (
            f"{metadata['generateName']}{uuid.uuid4().hex[:5]}" if metadata.get("generateName") else None
        )
        if not name:
            raise _error(
                422, "Invalid", "metadata.name: Required value: name or generateName is required", resource
            )
        key = (resource, namespace, name)
        if self._current(key) is not None:
            raise _error(
                409, "AlreadyExists", f'{_qualified(resource)} "{name}" already exists', resource, name
            )
        for field in _SERVER_METADATA:
            metadata.pop(field, None)
        metadata.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        if namespace is not None:
            metadata["namespace"] = namespace
        created.update(apiVersion=_api_version(resource), kind=self._kind(resource))
        if not keep_status:
            created.pop("status", None)
        return self._store(key, created, "ADDED")

    def _patched(self, request: kmock.Request, resource: kmock.resource, current: _Object) -> _Object:
        content_type = (
            next((value for header, value in request.headers.items() if header.lower() == "content-type"), "")
            .split(";")[0]
            .strip()
        )
        patch = request.data
        if content_type == "application/json-patch+json" and isinstance(patch, list):
            scratch = kmock.Object(current)
            try:
                # kmock applies a list of operations as a JSON patch (its signature only admits dicts).
                scratch.patch(cast(Mapping[str, Any], patch))
            except Exception as error:  # jsonpatch's errors: a failed test, a missing path, ...
                raise _error(
                    422, "Invalid", f"the JSON patch cannot be applied: {error}", resource
                ) from error
            return scratch.raw
        if content_type == "application/strategic-merge-patch+json" and resource in self._custom_resources:
            raise _error(
                415,
                "UnsupportedMediaType",
                "strategic merge patch is not supported for custom resources",
                resource,
            )
        if content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json") and (
            isinstance(patch, Mapping)
        ):
            return cast(_Object, _merge_patch(current, patch))
        raise _error(
            415, "UnsupportedMediaType", f"unsupported patch: {content_type or 'no content type'}", resource
        )

    def _write(
        self, request: kmock.Request, resource: kmock.resource, change: Callable[[_Object], _Object]
    ) -> _Object:
        """An update or a patch: preconditions, the status subresource, server-owned metadata, no-ops."""
        key = self._key(request, resource)
        current = self._existing(resource, key)
        wanted = change(copy.deepcopy(current))
        if not isinstance(wanted.get("metadata", {}), Mapping):
            raise _bad_request("metadata must be an object", resource)
        expected_version = (wanted.get("metadata") or {}).get("resourceVersion")
        if expected_version is not None and expected_version != current["metadata"]["resourceVersion"]:
            raise _conflict(resource, key[2])

        if request.subresource == "status":
            updated = copy.deepcopy(current)
            updated.pop("status", None)
            if "status" in wanted:
                updated["status"] = wanted["status"]
        else:
            updated = wanted
            if self._has_status(resource):
                updated.pop("status", None)
                if "status" in current:
                    updated["status"] = copy.deepcopy(current["status"])
        metadata = updated["metadata"] = dict(updated.get("metadata") or {})
        for field in _SERVER_METADATA:
            metadata.pop(field, None)
            if field in current["metadata"]:
                metadata[field] = current["metadata"][field]
        updated.update(apiVersion=current["apiVersion"], kind=current["kind"])

        def spec(obj: Mapping[str, Any]) -> dict[str, Any]:
            return {field: value for field, value in obj.items() if field not in ("metadata", "status")}

        if spec(updated) != spec(current):
            metadata["generation"] = current["metadata"].get("generation", 0) + 1
        if updated == current:
            return current
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers"):
            return self._delete_now(key, updated)
        return self._store(key, updated, "MODIFIED")

    def _store(self, key: tuple[kmock.resource, str | None, str], obj: _Object, event_type: str) -> _Object:
        obj["metadata"]["resourceVersion"] = self._next_version()
        if key in self.objects:
            self.objects[key].history.append(obj)
        else:
            self.objects[key] = obj
        self._emit(key[0], {"type": event_type, "object": obj})
        return obj

    def _delete_now(self, key: tuple[kmock.resource, str | None, str], last: _Object) -> _Object:
        gone = copy.deepcopy(last)
        gone["metadata"]["resourceVersion"] = self._next_version()
        self.objects[key].delete()
        self._emit(key[0], {"type": "DELETED", "object": gone})
        return gone

    def _next_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def _emit(self, resource: kmock.resource, event: _Event) -> None:
        if len(self._event_log) == self._event_log.maxlen:
            self._forgotten_up_to = self._event_log[0][0]
        self._event_log.append((self._resource_version, resource, event))
        for watcher in self._watchers:
            if watcher.resource == resource:
                watcher.queue.put_nowait(event)


@dataclasses.dataclass(frozen=True)
class _Running:
    loop: asyncio.AbstractEventLoop
    emulator: _Emulator
    url: str


class KubernetesEmulatorThread:
    """An emulated Kubernetes API on 127.0.0.1 (a random port), served from a daemon thread.

    Use it as a context manager; every method is safe to call from any thread but the emulator's::

        with KubernetesEmulatorThread() as cluster:
            cluster.register_resource("demo.opreplay.dev", "v1", "webapps", "WebApp")
            cluster.fail("update", "apps/v1/deployments", "web", status=409, reason="Conflict",
                         message="injected", times=5)
            api = cluster.api_client()

    Resources are written `group/version/plural` ("apps/v1/deployments", "v1/configmaps"); the
    built-in ones are known from the start. kmock patches aiohttp's resolver process-wide while a
    server runs, so emulators whose lifetimes overlap must be exited in the reverse order.
    """

    def __init__(self, *, startup_timeout: float = 10.0, shutdown_timeout: float = 10.0) -> None:
        self._startup_timeout = startup_timeout
        self._shutdown_timeout = shutdown_timeout
        self._ready: concurrent.futures.Future[_Running] = concurrent.futures.Future()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._running: _Running | None = None
        self._failure: Exception | None = None

    def __enter__(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("a KubernetesEmulatorThread can be entered only once")
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(),), daemon=True, name="opreplay-kubernetes-emulator"
        )
        self._thread.start()
        try:
            self._running = self._ready.result(timeout=self._startup_timeout)
        except TimeoutError:
            if not self._ready.cancel():
                self._signal_stop()
            self._thread.join(self._shutdown_timeout)
            raise EmulatorError(
                f"the Kubernetes emulator did not start within {self._startup_timeout:g} s"
            ) from None
        except Exception as error:
            self._thread.join(self._shutdown_timeout)
            raise EmulatorError(f"the Kubernetes emulator failed to start: {error}") from error
        _discovery_cache(self._running.url).unlink(missing_ok=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._thread is not None
        if self._running is not None:
            _discovery_cache(self._running.url).unlink(missing_ok=True)
        self._signal_stop()
        self._thread.join(self._shutdown_timeout)
        self._running = None
        if exc_type is not None:
            return
        if self._thread.is_alive():
            raise EmulatorError(f"the Kubernetes emulator did not stop within {self._shutdown_timeout:g} s")
        if self._failure is not None:
            raise EmulatorError(f"the Kubernetes emulator failed: {self._failure}") from self._failure

    @property
    def url(self) -> str:
        """The base URL of the API, e.g. http://127.0.0.1:40123."""
        return self._live().url

    def api_client(self) -> kubernetes.client.ApiClient:
        """A new client for this API (no authentication, no proxy); the caller closes it."""
        configuration = kubernetes.client.Configuration(host=self.url)
        configuration.proxy = None  # a local server: never through a proxy taken from the environment
        return kubernetes.client.ApiClient(configuration)

    def register_resource(
        self, group: str, version: str, plural: str, kind: str, *, namespaced: bool = True
    ) -> None:
        """Serve a custom resource (with a status subresource) and list it in API discovery."""
        resource = kmock.resource(group, version, plural)
        self._in_loop(
            lambda emulator: emulator.register_custom_resource(resource, kind=kind, namespaced=namespaced)
        )

    def add_object(self, resource: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create an object as the API would (metadata filled in, watchers told), status included.

        The namespace comes from the object's metadata. Returns the stored object.
        """
        parsed = _parse_resource(resource)
        try:
            return self._in_loop(lambda emulator: emulator.seed(parsed, obj))
        except kmock.KubernetesError as error:
            raise ValueError(f"cannot add {resource} object: {error.reason}: {error.message}") from error

    def get_object(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The current state of an object, or None when it does not exist."""
        parsed = _parse_resource(resource)
        return self._in_loop(lambda emulator: emulator.lookup(parsed, namespace, name))

    def fail(
        self,
        verb: str | Sequence[str],
        resource: str,
        name: str | None = None,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        status: int,
        reason: str,
        message: str,
        times: int = 1,
    ) -> None:
        """Answer the next `times` matching requests with a Kubernetes error; then behave normally.

        `verb` is a Kubernetes verb (get, list, watch, create, update, patch, delete) or several;
        None for name or namespace matches any, None for subresource matches the object itself.
        """
        parsed = _parse_resource(resource)
        details = {"group": parsed.group, "kind": parsed.plural, **({"name": name} if name else {})}
        replies = iter([_status(status, reason, message, details)] * _positive(times))

        def install(emulator: _Emulator) -> None:
            view = _requests_of(
                emulator, verb, parsed, namespace=namespace, name=name, subresource=subresource
            )
            # A depletable payload: once it yields StopIteration, kmock disables the reaction for good.
            view << status << (lambda: next(replies, StopIteration))

        self._in_loop(install)

    def delay(
        self,
        verb: str | Sequence[str],
        resource: str,
        name: str | None = None,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        seconds: float,
        times: int = 1,
    ) -> None:
        """Hold the next `times` matching requests for `seconds`, then serve them as usual.

        Delays come before every other reaction, so a delayed request can still be failed.
        """
        parsed = _parse_resource(resource)

        async def stall() -> None:
            await asyncio.sleep(seconds)
            # "Matched, nothing to respond with": kmock goes on to the next reaction and keeps this
            # one (a reaction that answers None would be disabled after its first request).
            raise NotImplementedError

        stalls = iter([stall] * _positive(times))

        def install(emulator: _Emulator) -> None:
            view = _requests_of(
                emulator**1, verb, parsed, namespace=namespace, name=name, subresource=subresource
            )
            # A depletable payload, as in fail(); the priority puts delays before every other reaction.
            view << (lambda: next(stalls, StopIteration))

        self._in_loop(install)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if not self._ready.set_running_or_notify_cancel():
            return  # abandoned: the caller gave up waiting before the thread ran
        try:
            emulator = _Emulator()
            async with emulator, kmock.Server(emulator) as server:
                self._ready.set_result(_Running(self._loop, emulator, str(server.url).rstrip("/")))
                await self._stop.wait()
                emulator.close_watches()
        except Exception as error:
            if self._ready.done():
                self._failure = error
            else:
                self._ready.set_exception(error)

    def _signal_stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the thread has ended already
                self._loop.call_soon_threadsafe(self._stop.set)

    def _live(self) -> _Running:
        if self._running is None:
            raise RuntimeError("the Kubernetes emulator is not running: use it inside `with`")
        return self._running

    def _in_loop(self, call: Callable[[_Emulator], _T]) -> _T:
        running = self._live()

        async def in_loop() -> _T:
            return call(running.emulator)

        return asyncio.run_coroutine_threadsafe(in_loop(), running.loop).result(timeout=_CALL_TIMEOUT)


def _discovery_cache(url: str) -> pathlib.Path:
    """Where the kubernetes dynamic client caches the API discovery of `url` (named as its Discoverer does).

    The file outlives the server: a later emulator on the same port would then skip discovery, or get
    another server's resources. So it is removed when an emulator starts and when it stops.
    """
    digest = hashlib.md5(url.encode("utf-8"), usedforsecurity=False).hexdigest()
    return pathlib.Path(tempfile.gettempdir()) / f"osrcp-{digest}.json"


def _positive(times: int) -> int:
    if times < 1:
        raise ValueError(f"times must be at least 1, not {times}")
    return times


def _requests_of(
    root: kmock.View,
    verbs: str | Sequence[str],
    resource: kmock.resource,
    *,
    namespace: str | None,
    name: str | None,
    subresource: str | None,
) -> kmock.View:
    """The requests with one of these Kubernetes verbs on this resource (and object), as a kmock view."""
    views: list[kmock.View] = []
    for verb in [verbs] if isinstance(verbs, str) else verbs:
        if verb not in _VERB_CRITERIA:
            raise ValueError(f"unknown verb {verb!r}: use one of {', '.join(_VERB_CRITERIA)}")
        view = root[_VERB_CRITERIA[verb]][resource][kmock.subresource(subresource)]
        if namespace is not None:
            view = view[kmock.namespace(namespace)]
        if name is not None and verb == "create":  # a create names its object in the body, not in the URL
            view = view[lambda request, name=name: _named_in_body(request, name)]
        elif name is not None:
            view = view[kmock.name(name)]
        views.append(view)
    return functools.reduce(operator.or_, views)


def _named_in_body(request: kmock.Request, name: str) -> bool:
    return isinstance(request.data, Mapping) and (request.data.get("metadata") or {}).get("name") == name
