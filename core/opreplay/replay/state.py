"""The cluster as the operator had seen it: how each operation changes it, at the digest level.

State is the last known version of every object, as a map from object key to body digest. It
is folded from operations without decoding bodies: a successful get/create/update/patch or a
watch ADDED/MODIFIED event sets its object to the response digest; a delete, a DELETED event or
a 404 removes it; a LIST sets each of its items. The only bodies ever read are the packed LIST
bodies (for their item digests, without decoding the items) and, once per distinct digest, an
object whose key the operation row does not carry (list items, a create with `generateName`,
a watch event recorded without a name): both are cached per digest, because the same list and
the same item recur all through a session.

Keys are plain tuples `(api_version, resource, namespace, name)` here (hashing a tuple is a C
call, hashing the `ObjectKey` dataclass is not); `ClusterState` shows them as `ObjectKey`s.

Which responses carry the object: the main resource and its `status` subresource. Other
subresources (`scale`, `eviction`, `binding`, `log`...) answer with other types and leave the
state alone. A LIST is not taken as the whole truth for its collection (it may have had a label
selector the recording does not show): it sets its items and removes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from opreplay.model import JSONValue, ObjectKey
from opreplay.store import Store, bodies
from opreplay.store.replay_queries import (
    ROW_API_VERSION,
    ROW_EVENT,
    ROW_NAME,
    ROW_NAMESPACE,
    ROW_RESOURCE,
    ROW_RESPONSE,
    ROW_STATUS,
    ROW_SUBRESOURCE,
    ROW_VERB,
    BodyBlob,
    Row,
)

StateKey = tuple[str, str, str, str]
"""(api_version, resource, namespace, name): an `ObjectKey` as a tuple."""

StateMap = dict[StateKey, bytes]
Effect = tuple[StateKey, "bytes | None"]
"""One change an operation makes to the state: set the key to a digest, or remove it (None)."""

OBJECT_SUBRESOURCES = frozenset({None, "", "status"})
_SINGLE_WRITES = frozenset({"create", "update", "patch"})
_NOT_FOUND_REMOVES = frozenset({"get", "update", "patch", "delete"})


def state_key(key: ObjectKey) -> StateKey:
    return (key.api_version, key.resource, key.namespace, key.name)


class TwoGenerationCache:
    """A bounded map with LRU-like eviction at dict speed: two generations, the old one retired.

    Lookups hit the young generation, or promote from the old one; when the young one is full it
    becomes the old one, and the old one is retired: no longer read, and freed two entries per
    entry put, so that no single call pays for freeing a whole generation (192 decoded bodies freed at
    once took 1.4-3.3 ms, the tail of a debugger step). Memory is bounded by twice `limit` entries
    whatever the session length: the retired entries are gone before the young ones reach `limit`.
    """

    __slots__ = ("_limit", "_old", "_retired", "_young")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._young: dict[Any, Any] = {}
        self._old: dict[Any, Any] = {}
        self._retired: dict[Any, Any] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        value = self._young.get(key, self)
        if value is not self:
            return value
        value = self._old.get(key, self)
        if value is self:
            return default
        self.put(key, value)
        return value

    def put(self, key: Any, value: Any) -> None:
        if len(self._young) >= self._limit:
            self._turn_over()
        self._young[key] = value
        if self._retired:
            self._retire(2)

    def put_many(self, items: Mapping[Any, Any]) -> None:
        if len(self._young) + len(items) > self._limit:
            self._turn_over()
        self._young.update(items)
        if self._retired:
            self._retire(2 * len(items))

    def clear(self) -> None:
        self._young.clear()
        self._old.clear()
        self._retired.clear()

    def _turn_over(self) -> None:
        self._retired.clear()  # empty already: twice as many were retired as were put since
        self._retired, self._old, self._young = self._old, self._young, {}

    def _retire(self, count: int) -> None:
        retired = self._retired
        for _ in range(min(count, len(retired))):
            retired.popitem()


class Folder:
    """Turns operation rows into state effects; caches what it had to read from the store."""

    # Cache sizes: a two-generation cache holds up to twice its limit, and its size swings between
    # the two as generations turn over, so the largest of these set the process's peak memory
    # (a 5 KB object decodes to ~20 KB of Python objects, a LIST's items to ~1.5 KB of digests).
    # At 20,000 names, 1,024 lists and 192 decoded bodies (with the checkpoint cache at 60,000
    # entries and the store's 512 recent bodies), replaying a 3M-operation session peaked 3 %
    # above a 1M one (benchmarks/replay_bench.py); at twice these, 10 % above, and creeping up
    # with the length. Smaller, neither a goto nor a scan got slower.
    def __init__(self, store: Store, *, cache_limit: int = 20_000, body_cache_limit: int = 192) -> None:
        self.store = store
        self._prefetched: dict[bytes, BodyBlob] = {}  # the last `prefetch`, undecoded
        self._names = TwoGenerationCache(cache_limit)  # digest -> (namespace, name) | None
        self._items = TwoGenerationCache(1024)  # LIST digest -> tuple of item digests | None
        self._listed = TwoGenerationCache(256)  # (LIST digest, api_version, resource) -> [(item, key)]
        self.noting: dict[bytes, tuple[str, str] | None] | None = None
        """When set, every (digest -> namespace, name) the folder relies on is noted here."""
        self._bodies = TwoGenerationCache(body_cache_limit)  # digest -> decoded JSON
        self._strings: dict[str, str] = {}

    # -- bodies --------------------------------------------------------------------------------

    def load(self, digest: bytes | None) -> JSONValue:
        """The decoded body of a digest (None for None), cached: the same state is read often."""
        if digest is None:
            return None
        value = self._bodies.get(digest, self)
        if value is self:
            value = bodies.loads(self.text(digest))
            self._bodies.put(digest, value)
        return value

    def text(self, digest: bytes) -> bytes:
        """The JSON bytes of a body, undecoded (from the last `prefetch` when it holds them)."""
        blob = self._prefetched.get(digest)
        if blob is not None:
            return self.store.decode_body_blob(digest, blob, self._prefetched)
        return self.store.body_bytes(digest)

    def prefetch(self, digests: Iterable[bytes | None]) -> None:
        """Read bodies likely to be loaded next in one query; they are decoded only if loaded.

        Replaces what the previous call fetched: a scan prefetches one batch at a time.
        """
        bodies_cache = self._bodies
        missing = [d for d in dict.fromkeys(digests) if d is not None and bodies_cache.get(d, self) is self]
        self._prefetched = self.store.body_blobs(missing) if missing else {}

    def items(self, digest: bytes | None) -> tuple[bytes, ...] | None:
        """Item digests of a LIST body (None for a plain document or no body)."""
        if digest is None:
            return None
        items = self._items.get(digest, self)
        if items is self:
            found = self.store.list_item_digests(digest)
            items = tuple(found) if found is not None else None
            self._items.put(digest, items)
        return items  # type: ignore[no-any-return]

    def _intern(self, text: str) -> str:
        return self._strings.setdefault(text, text)

    def _name_of(self, document: JSONValue) -> tuple[str, str] | None:
        if isinstance(document, dict):
            metadata = document.get("metadata")
            if isinstance(metadata, dict) and isinstance(metadata.get("name"), str) and metadata["name"]:
                namespace = metadata.get("namespace")
                return (self._intern(namespace if isinstance(namespace, str) else ""), metadata["name"])
        return None

    def learn_names(self, names: Mapping[bytes, tuple[str, str]]) -> None:
        """Names known from elsewhere (a checkpoint's names index): no need to read those bodies."""
        intern = self._intern
        self._names.put_many({digest: (intern(ns), name) for digest, (ns, name) in names.items()})

    def body_name(self, digest: bytes) -> tuple[str, str] | None:
        """(namespace, name) from a body's metadata, read once per digest."""
        found = self._names.get(digest, self)
        if found is self:
            found = self._name_of(self.load(digest))
            self._names.put(digest, found)
        if self.noting is not None:
            self.noting[digest] = found
        return found  # type: ignore[no-any-return]

    def body_names(self, digests: tuple[bytes, ...]) -> list[tuple[str, str] | None]:
        """`body_name` of many digests, the unknown ones read from the store in one go."""
        names = self._names
        found = [names.get(digest, self) for digest in digests]
        missing = [digest for digest, name in zip(digests, found, strict=True) if name is self]
        if missing:
            documents = self.store.body_documents(missing)
            for digest in missing:
                data = documents.get(digest)
                names.put(digest, self._name_of(bodies.loads(data)) if data is not None else None)
            found = [names.get(digest) for digest in digests]
        return found

    def _item_key(self, row: Row, digest: bytes) -> StateKey | None:
        found = self.body_name(digest)
        if found is None:
            return None
        return (self._intern(row[ROW_API_VERSION]), self._intern(row[ROW_RESOURCE]), found[0], found[1])

    # -- effects -------------------------------------------------------------------------------

    def primary_key(self, row: Row) -> StateKey | None:
        """The object an operation is about (None for collections: list, deletecollection, gap)."""
        verb = row[ROW_VERB]
        name = row[ROW_NAME]
        if name:
            return (row[ROW_API_VERSION], row[ROW_RESOURCE], row[ROW_NAMESPACE], name)
        response = row[ROW_RESPONSE]
        created = verb == "create" and 200 <= row[ROW_STATUS] < 300
        if response is not None and (verb == "watch-event" or created):
            return self._item_key(row, response)
        return None

    def effects(self, row: Row) -> list[Effect]:
        """What the operation does to the state, in order (empty for most failures and reads of nothing)."""
        if self.is_bulk(row):
            return self._list_effects(row, remove=row[ROW_VERB] == "deletecollection")
        effect = self.own_effect(row)
        return [effect] if effect is not None else []

    @staticmethod
    def is_bulk(row: Row) -> bool:
        """Whether the operation sets or removes a collection's objects (a successful LIST or
        DELETECOLLECTION): which ones, only its body tells. Any other operation changes at most
        its `own_effect`."""
        verb = row[ROW_VERB]
        return (
            (verb == "list" or verb == "deletecollection")
            and 200 <= row[ROW_STATUS] < 300
            and row[ROW_SUBRESOURCE] in OBJECT_SUBRESOURCES
        )

    def own_effect(self, row: Row) -> Effect | None:
        """What an operation on one object does to it (None: nothing, or a collection operation)."""
        if row[ROW_SUBRESOURCE] not in OBJECT_SUBRESOURCES:
            return None
        verb, status, response, name = row[ROW_VERB], row[ROW_STATUS], row[ROW_RESPONSE], row[ROW_NAME]
        if verb == "watch-event":
            event = row[ROW_EVENT]
            if response is None or event not in ("ADDED", "MODIFIED", "DELETED"):
                return None
            digest = None if event == "DELETED" else response
        elif 200 <= status < 300 and (verb == "get" or verb in _SINGLE_WRITES):
            if response is None or (verb == "get" and not name):
                return None
            digest = response
        elif (200 <= status < 300 and verb == "delete") or (
            status == 404 and verb in _NOT_FOUND_REMOVES and name
        ):
            return ((row[ROW_API_VERSION], row[ROW_RESOURCE], row[ROW_NAMESPACE], name), None)
        else:
            return None
        key = self.primary_key(row)
        if key is None:
            return None
        if name:  # the same version often comes back later as a LIST item: no need to read it then
            self._names.put(response, (key[2], key[3]))
        return (key, digest)

    def _list_effects(self, row: Row, *, remove: bool) -> list[Effect]:
        response = row[ROW_RESPONSE]
        cache_key = (response, row[ROW_API_VERSION], row[ROW_RESOURCE])
        listed: list[tuple[bytes, StateKey]] | None = self._listed.get(cache_key)
        if listed is None:
            listed = []
            items = self.items(response)
            if items:
                api_version, resource = self._intern(row[ROW_API_VERSION]), self._intern(row[ROW_RESOURCE])
                for item, name in zip(items, self.body_names(items), strict=True):
                    if name is not None:
                        listed.append((item, (api_version, resource, name[0], name[1])))
            self._listed.put(cache_key, listed)
        if self.noting is not None:
            for item, key in listed:
                self.noting[item] = (key[2], key[3])
        if remove:
            return [(key, None) for _, key in listed]
        return [(key, item) for item, key in listed]

    def apply(
        self, state: StateMap, row: Row, undo: list[tuple[StateKey, bytes | None]] | None = None
    ) -> None:
        """Fold one operation into `state`; when `undo` is given, append (key, previous digest)."""
        for key, digest in self.effects(row):
            previous = state.get(key)
            if undo is not None:
                undo.append((key, previous))
            if digest is None:
                if previous is not None:
                    del state[key]
            else:
                state[key] = digest


def rollback(state: StateMap, undo: list[tuple[StateKey, bytes | None]]) -> None:
    """Undo what `Folder.apply` recorded, newest first."""
    for key, previous in reversed(undo):
        if previous is None:
            state.pop(key, None)
        else:
            state[key] = previous


class ClusterState(Mapping[ObjectKey, bytes]):
    """The state at one seq: ObjectKey -> body digest, objects decoded only when asked for.

    A snapshot: later moves of the engine do not change it. Iteration is sorted by
    (resource, namespace, name, api_version) so that front ends show a stable order.
    """

    def __init__(self, seq: int, entries: StateMap, loader: Callable[[bytes | None], JSONValue]) -> None:
        self.seq = seq
        self._entries = entries
        self._loader = loader

    def __getitem__(self, key: ObjectKey) -> bytes:
        if not isinstance(key, ObjectKey):
            raise KeyError(key)
        return self._entries[(key.api_version, key.resource, key.namespace, key.name)]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, ObjectKey):
            return False
        return (key.api_version, key.resource, key.namespace, key.name) in self._entries

    def __iter__(self) -> Iterator[ObjectKey]:
        for entry in sorted(self._entries, key=lambda k: (k[1], k[2], k[3], k[0])):
            yield ObjectKey(*entry)

    def __len__(self) -> int:
        return len(self._entries)

    def object(self, key: ObjectKey) -> JSONValue:
        """The decoded object (None when the state does not hold it)."""
        return self._loader(self.get(key))

    def of(self, resource: str, namespace: str | None = None) -> list[ObjectKey]:
        """Keys of one resource (plural, e.g. `pods`), optionally in one namespace, sorted."""
        return [
            ObjectKey(*k)
            for k in sorted(self._entries, key=lambda k: (k[2], k[3], k[0]))
            if k[1] == resource and (namespace is None or k[2] == namespace)
        ]

    @property
    def entries(self) -> Mapping[StateKey, bytes]:
        """The raw tuple-keyed map (read-only use): fast membership for hot loops."""
        return self._entries


class StateView(Mapping[str, JSONValue]):
    """`state` in the condition language: the cluster state by name, each object decoded when read.

    Names are `resource/namespace/name` (`resource/name` for a cluster-scoped object), as `name_of`
    writes them; a lookup also takes the kind for the resource, in any case (`Deployment/demo/web`).
    When the same object is known under several API versions, the first in `ClusterState` order
    answers. Responses that are not objects (discovery documents) are left out.
    """

    def __init__(self, cluster: ClusterState, resources_of_kind: Callable[[str], frozenset[str]]) -> None:
        self.cluster = cluster
        self._resources_of_kind = resources_of_kind
        self._index: dict[tuple[str, str, str], ObjectKey] | None = None

    @staticmethod
    def name_of(key: ObjectKey) -> str:
        return f"{key.resource}/{key.namespace}/{key.name}" if key.namespace else f"{key.resource}/{key.name}"

    def _by_name(self) -> dict[tuple[str, str, str], ObjectKey]:
        if self._index is None:
            self._index = {}
            for key in self.cluster:
                if key.resource:
                    self._index.setdefault((key.resource, key.namespace, key.name), key)
        return self._index

    def __getitem__(self, name: str) -> JSONValue:
        parts = name.split("/") if isinstance(name, str) else []
        if len(parts) == 2:
            parts.insert(1, "")
        if len(parts) != 3:
            raise KeyError(name)
        first, namespace, object_name = parts
        index = self._by_name()
        key = index.get((first, namespace, object_name))
        if key is None:
            for resource in sorted(self._resources_of_kind(first)):
                key = index.get((resource, namespace, object_name))
                if key is not None:
                    break
            else:
                raise KeyError(name)
        return self.cluster.object(key)

    def __iter__(self) -> Iterator[str]:
        return (self.name_of(key) for key in self._by_name().values())

    def __len__(self) -> int:
        return len(self._by_name())
