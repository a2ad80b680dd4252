"""What a recorded HTTP exchange means in Kubernetes terms: verb, resource, object, kind, version.

Everything here runs in the writer thread, never in the operator's. It is still on the recorder's
hot path (every operation passes through it), so it is written for throughput:

- URL paths are parsed once and cached: an operator talks to a few hundred distinct paths.
- A JSON body is parsed with orjson only when nothing cheaper will do. The API server writes an
  object in one of two fixed layouts: a built-in kind in Go struct field order
  (`{"kind":..,"apiVersion":..,"metadata":{"name":..`), a custom resource as a map with sorted keys.
  Anchored patterns read kind, namespace, name and resourceVersion from the first bytes of either,
  exactly; anything else (bodies written by clients, an unexpected layout) is parsed.
- A LIST is split into its items without parsing: item boundaries are found by search, each
  candidate checked (the piece's braces balance, it starts as an object does) unless the same
  piece was a whole item of an earlier list; any doubt and the list is parsed instead. An item is
  stored as the object it is, with the kind and apiVersion a GET would show, which makes it
  byte-identical to the GET and watch bodies of the same version.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlencode

import orjson

# urllib3 puts `fields` into the URL (instead of the body) for these methods.
_FIELDS_IN_URL = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})

# Subresources of a namespace itself: /api/v1/namespaces/{name}/status is not a resource `status`.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})

# Kinds of the built-in resources, for when a body does not say (errors, empty responses, clients
# that omit it). Plural names do not collide between the built-in groups in a way that matters.
BUILTIN_KINDS = {
    "apiservices": "APIService",
    "bindings": "Binding",
    "certificatesigningrequests": "CertificateSigningRequest",
    "clusterrolebindings": "ClusterRoleBinding",
    "clusterroles": "ClusterRole",
    "componentstatuses": "ComponentStatus",
    "configmaps": "ConfigMap",
    "controllerrevisions": "ControllerRevision",
    "cronjobs": "CronJob",
    "csidrivers": "CSIDriver",
    "csinodes": "CSINode",
    "csistoragecapacities": "CSIStorageCapacity",
    "customresourcedefinitions": "CustomResourceDefinition",
    "daemonsets": "DaemonSet",
    "deployments": "Deployment",
    "endpoints": "Endpoints",
    "endpointslices": "EndpointSlice",
    "events": "Event",
    "horizontalpodautoscalers": "HorizontalPodAutoscaler",
    "ingressclasses": "IngressClass",
    "ingresses": "Ingress",
    "jobs": "Job",
    "leases": "Lease",
    "limitranges": "LimitRange",
    "localsubjectaccessreviews": "LocalSubjectAccessReview",
    "mutatingwebhookconfigurations": "MutatingWebhookConfiguration",
    "namespaces": "Namespace",
    "networkpolicies": "NetworkPolicy",
    "nodes": "Node",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "persistentvolumes": "PersistentVolume",
    "poddisruptionbudgets": "PodDisruptionBudget",
    "pods": "Pod",
    "podtemplates": "PodTemplate",
    "priorityclasses": "PriorityClass",
    "replicasets": "ReplicaSet",
    "replicationcontrollers": "ReplicationController",
    "resourcequotas": "ResourceQuota",
    "rolebindings": "RoleBinding",
    "roles": "Role",
    "runtimeclasses": "RuntimeClass",
    "secrets": "Secret",
    "selfsubjectaccessreviews": "SelfSubjectAccessReview",
    "selfsubjectrulesreviews": "SelfSubjectRulesReview",
    "serviceaccounts": "ServiceAccount",
    "services": "Service",
    "statefulsets": "StatefulSet",
    "storageclasses": "StorageClass",
    "subjectaccessreviews": "SubjectAccessReview",
    "tokenreviews": "TokenReview",
    "validatingadmissionpolicies": "ValidatingAdmissionPolicy",
    "validatingadmissionpolicybindings": "ValidatingAdmissionPolicyBinding",
    "validatingwebhookconfigurations": "ValidatingWebhookConfiguration",
    "volumeattachments": "VolumeAttachment",
}

_WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True, slots=True)
class Target:
    """The object (or collection) a request path names."""

    api_version: str
    resource: str
    namespace: str
    name: str
    subresource: str | None
    watch_path: bool  # the deprecated /watch/ form of a watch


def full_url(method: str, url: str, fields: Any) -> str:
    """The URL as sent: urllib3 appends `fields` to it for GET-like methods (older client layout)."""
    if fields and method in _FIELDS_IN_URL:
        return f"{url}{'&' if '?' in url else '?'}{urlencode(fields)}"
    return url


def split_url(url: str) -> tuple[str, str]:
    """(path, query) of an absolute or relative URL."""
    scheme_end = url.find("://")
    if scheme_end >= 0:
        path_start = url.find("/", scheme_end + 3)
        url = url[path_start:] if path_start >= 0 else "/"
    path, _, query = url.partition("?")
    return path, query


def is_watch(query: str) -> bool:
    """True when the query asks for a watch (`watch=true`, `watch=1`; the old client sends `True`)."""
    if "watch" not in query:
        return False
    return any(key == "watch" and value.lower() in ("true", "1") for key, value in parse_qsl(query))


@functools.lru_cache(maxsize=8192)
def parse_path(path: str) -> Target:
    """The target of a request path; paths that name no resource (discovery, /version) keep the path."""
    parts = [unquote(part) for part in path.split("/") if part]
    for index, part in enumerate(parts):
        if part == "api" and len(parts) > index + 1:
            api_version, rest = parts[index + 1], parts[index + 2 :]
            break
        if part == "apis" and len(parts) > index + 2:
            api_version, rest = f"{parts[index + 1]}/{parts[index + 2]}", parts[index + 3 :]
            break
    else:
        return Target("", "", "", path, None, False)
    watch_path = bool(rest) and rest[0] == "watch"
    if watch_path:
        rest = rest[1:]
    if not rest:
        return Target(api_version, "", "", "", None, False)
    namespace = ""
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and not (len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES)
    ):
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = "/".join(rest[2:]) or None
    return Target(api_version, resource, namespace, name, subresource, watch_path)


def verb_of(method: str, target: Target, watch: bool) -> str:
    if method in _WRITE_VERBS:
        return _WRITE_VERBS[method]
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    if watch or target.watch_path:
        return "watch"
    return "get" if target.name or not target.resource else "list"


def guess_kind(resource: str) -> str:
    """The kind of a resource the recording has not seen a body of: `widgets` -> `Widget`."""
    known = BUILTIN_KINDS.get(resource)
    if known is not None:
        return known
    if not resource:
        return ""
    if resource.endswith("ies"):
        singular = resource[:-3] + "y"
    elif resource.endswith(("sses", "xes", "ches", "shes", "zes")):
        singular = resource[:-2]
    elif resource.endswith("s"):
        singular = resource[:-1]
    else:
        singular = resource
    return singular[:1].upper() + singular[1:]


class Peek(NamedTuple):
    """The fields of a body the operation row needs."""

    kind: str
    namespace: str
    name: str
    resource_version: str | None


# Go encodes a built-in object's TypeMeta and ObjectMeta in struct order, so these are the first
# bytes of every object the API server sends for a built-in kind. Anchored: a match is exact.
_TYPED_HEAD = re.compile(
    rb'\{"kind":"([^"\\]+)","apiVersion":"[^"\\]+","metadata":\{"name":"([^"\\]*)",'
    rb'(?:"generateName":"[^"\\]*",)?(?:"namespace":"([^"\\]*)",)?(?:"selfLink":"[^"\\]*",)?'
    rb'(?:"uid":"[^"\\]*",)?"resourceVersion":"([^"\\]*)"'
)

# Custom resources are maps to the server, and Go writes maps with sorted keys: apiVersion, kind,
# metadata first, and in metadata annotations, creationTimestamp, ..., labels, managedFields, name,
# namespace, ownerReferences, resourceVersion. Between the anchors below only string maps
# (annotations, labels), a string list (finalizers) and managedFields can occur. The end of a
# string map is the first `},"` after its start (a quote inside a string is escaped, so `},"` cannot
# occur within one), and managedFields, whose entries hold no arrays, ends at the first `],"`.
_SORTED_HEAD = re.compile(rb'\{"apiVersion":"[^"\\]+","kind":"([^"\\]+)","metadata":\{')
_SORTED_SCALARS = re.compile(
    rb'(?:"creationTimestamp":(?:"[^"\\]*"|null),)?(?:"deletionGracePeriodSeconds":\d+,)?'
    rb'(?:"deletionTimestamp":"[^"\\]*",)?(?:"finalizers":\[(?:"[^"\\]*",?)*\],)?'
    rb'(?:"generateName":"[^"\\]*",)?(?:"generation":\d+,)?'
)
_SORTED_NAME = re.compile(rb'"name":"([^"\\]*)"(?:,"namespace":"([^"\\]*)")?')
_SORTED_VERSION = re.compile(rb',"(?:ownerReferences":\[|resourceVersion":"([^"\\]*)")')
_RESOURCE_VERSION = b'"resourceVersion":"'


def peek(body: bytes) -> Peek | None:
    """Kind, namespace, name and resourceVersion of an object as the API server writes it, else None."""
    match = _TYPED_HEAD.match(body)
    if match is not None:
        kind, name, namespace, version = match.groups()
        return Peek(kind.decode(), namespace.decode() if namespace else "", name.decode(), version.decode())
    return _peek_sorted(body)


def _peek_sorted(body: bytes) -> Peek | None:
    match = _SORTED_HEAD.match(body)
    if match is None:
        return None
    position = match.end()
    for key, closing in (
        (b'"annotations":{', b'},"'),
        (None, None),
        (b'"labels":{', b'},"'),
        (b'"managedFields":[', b'],"'),
    ):
        if key is None:
            position = _SORTED_SCALARS.match(body, position).end()  # type: ignore[union-attr]  # always matches
        elif body.startswith(key, position):
            end = body.find(closing, position)  # type: ignore[arg-type]
            if end < 0:
                return None
            position = end + 2
    named = _SORTED_NAME.match(body, position)
    if named is None:
        return None
    after = _SORTED_VERSION.match(body, named.end())
    if after is None:
        return None
    if after[1] is not None:
        version = after[1].decode()
    else:  # ownerReferences first: they hold no resourceVersion, so the next one is the object's
        start = body.find(_RESOURCE_VERSION, after.end())
        if start < 0:
            return None
        start += len(_RESOURCE_VERSION)
        version = body[start : body.find(b'"', start)].decode()
    name, namespace = named.groups()
    return Peek(match[1].decode(), namespace.decode() if namespace else "", name.decode(), version)


class Listing(NamedTuple):
    envelope: bytes
    items: tuple[bytes, ...]
    kind: str
    resource_version: str | None


# A LIST of a built-in kind: TypeMeta, ListMeta, then items written without their TypeMeta.
_TYPED_LIST = re.compile(
    rb'\{"kind":"([^"\\]+)List","apiVersion":"([^"\\]+)","metadata":\{[^{}]*\},"items":\['
)
_TYPED_ITEM = re.compile(
    rb'\{"metadata":\{"name":"[^"\\]*",(?:"generateName":"[^"\\]*",)?(?:"namespace":"[^"\\]*",)?'
    rb'(?:"selfLink":"[^"\\]*",)?(?:"uid":"[^"\\]*",)?"resourceVersion":"'
)
# A LIST of custom resources: sorted keys, so items come between apiVersion and kind.
_SORTED_LIST = re.compile(rb'\{"apiVersion":"[^"\\]+","items":\[')
_SORTED_LIST_TAIL = re.compile(rb'\],"kind":"([^"\\]+)List","metadata":\{[^{}]*\}\}')
_LIST_VERSION = re.compile(rb'"resourceVersion":"([^"\\]*)"')


class SeenItems:
    """Pieces of earlier lists that were whole items, bounded by the bytes they hold.

    A list repeats most of its items from one call to the next, and whether a piece is a whole
    item depends on its bytes alone: a lookup (a hash) costs a fraction of counting its braces.
    """

    def __init__(self, limit: int) -> None:
        self._pieces: set[bytes] = set()
        self._size = 0
        self._limit = limit

    def __contains__(self, piece: bytes) -> bool:
        return piece in self._pieces

    def add(self, piece: bytes) -> None:
        self._size += len(piece)
        if self._size > self._limit:
            self._pieces.clear()
            self._size = len(piece)
        self._pieces.add(piece)


def split_list(body: bytes, seen: SeenItems | None = None) -> Listing | None:
    """A server-written LIST split into its items without parsing, each item as a GET would show it.

    Item boundaries are found by search; a candidate is taken only when the piece before it is a
    whole object (its braces balance) that starts as an item does, or is in `seen`. Anything
    else: None.
    """
    body = body.rstrip()  # the API server's JSON encoder ends a body with a newline
    typed = _TYPED_LIST.match(body)
    if typed is not None and body.endswith(b"]}"):
        kind, api_version = typed.groups()
        start, end = typed.end(), len(body) - 2
        envelope = body[: start - len(b',"items":[')] + b"}"
        prefix = b'{"kind":"' + kind + b'","apiVersion":"' + api_version + b'",'
        items = _split_items(body, start, end, b'},{"metadata":{"name":"', _typed_item, seen)
        if items is None:
            return None
        items = [prefix + item[1:] for item in items]
    else:
        head = _SORTED_LIST.match(body)
        tail_start = body.rfind(b'],"kind":"')
        tail = _SORTED_LIST_TAIL.fullmatch(body, tail_start) if head is not None and tail_start > 0 else None
        if head is None or tail is None:
            return None
        kind = tail[1]
        envelope = body[: head.end() - len(b'"items":[')] + body[tail_start + 2 :]
        items = _split_items(body, head.end(), tail_start, b'},{"apiVersion":"', _sorted_item, seen)
        if items is None:
            return None
    version = _LIST_VERSION.search(envelope)
    return Listing(envelope, tuple(items), kind.decode(), version[1].decode() if version else None)


def _typed_item(piece: bytes) -> bool:
    return _TYPED_ITEM.match(piece) is not None


def _sorted_item(piece: bytes) -> bool:
    return _peek_sorted(piece) is not None


def _split_items(
    body: bytes,
    start: int,
    end: int,
    boundary: bytes,
    is_item: Callable[[bytes], bool],
    seen: SeenItems | None,
) -> list[bytes] | None:
    items: list[bytes] = []
    position = search = start
    while position < end:
        cut = body.find(boundary, search, end)
        piece = body[position : end if cut < 0 else cut + 1]
        whole = seen is not None and piece in seen
        if not whole and piece.count(b"{") == piece.count(b"}") and is_item(piece):
            whole = True
            if seen is not None:
                seen.add(piece)
        if whole:
            items.append(piece)
            if cut < 0:
                break
            position = search = cut + 2
        elif cut < 0:
            return None  # no boundary makes a whole item: let the parser decide
        else:
            search = cut + 1  # a nested object that looks like an item: not a boundary
    return items


INVALID: Any = object()
"""What `loads` gives for bytes that are not JSON."""


def loads(data: bytes) -> Any:
    """The decoded JSON, or `INVALID` (a body the recorder keeps as it is: not JSON is no error)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return INVALID


def peek_parsed(document: Any) -> Peek:
    """The same fields from a parsed document (any JSON value)."""
    if not isinstance(document, dict):
        return Peek("", "", "", None)
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    version = metadata.get("resourceVersion")
    return Peek(
        _text(document.get("kind")),
        _text(metadata.get("namespace")),
        _text(metadata.get("name")),
        version if isinstance(version, str) else None,
    )


def status_fields(document: Any) -> tuple[str | None, str | None, str]:
    """(reason, message, details.name) of a Kubernetes Status; Nones when it is not one."""
    if not isinstance(document, dict) or document.get("kind") != "Status":
        return None, None, ""
    details = document.get("details")
    name = details.get("name") if isinstance(details, dict) else None
    reason, message = document.get("reason"), document.get("message")
    return (
        reason if isinstance(reason, str) else None,
        message if isinstance(message, str) else None,
        _text(name),
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
