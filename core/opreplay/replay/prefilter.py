"""Index filters implied by a condition: which operations a condition breakpoint can skip unread.

A condition such as `kind == "Deployment" and obj.spec.replicas == 99` is true only where each
operand of its top-level `and` is (`conditions.conjuncts`). Some operands read only names that
few values take across a whole session, and that the store indexes:

- the fields an operation takes from its object (`kind`, `namespace`, `name`, `resource`, `group`,
  `version`): the operand is evaluated once per interned object, giving the object ids where it
  holds (the (session, object, seq) index);
- `status`: evaluated once per status that occurs in the session (the (session, status, seq) index);
- `verb`: evaluated once per verb that occurs in the session (the (session, verb, seq) index).

The operand is evaluated with the same compiled code on the same values as an operation would give
it, so the operations it rules out are exactly those where it is false (or fails); the whole
condition is still evaluated on every operation that remains. Running over the filtered operations
therefore stops exactly where a scan of every operation would, with the same hit counts and logs.
Operands over other names (`obj`, `seq`, `message`...) or over a mix of the groups above are left to
the full evaluation.

A condition that reads `obj` or `old` needs each remaining operation's object before and after it.
`fold_ids` are the objects whose operations can change the state of those objects (the objects
themselves, and the collections of their resource: lists, watches and creates without a name), so
folding only their operations into a state taken at the start gives exact `obj` and `old` for the
remaining operations, without folding the rest of the session.

Operands that compare a field of `obj` or `old` with a literal (`obj.status.phase == "Failed"`,
`conditions.field_equalities`) screen the bodies instead: such an operand is true only where the
document holds the key with that value, so where its JSON text has no `"key": <value>` the whole
condition is false, and the body need not be decoded (`BodyScreen`, about 30 times cheaper than
decoding, and memoized per body digest).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import orjson

from opreplay.conditions import Condition, FieldEquality, conjuncts, field_equalities
from opreplay.model import SessionInfo
from opreplay.replay.state import TwoGenerationCache
from opreplay.store import Store
from opreplay.store.replay_queries import ROW_OBJECT, ROW_STATUS, ROW_VERB, Row

OBJECT_NAMES = frozenset({"kind", "namespace", "name", "resource", "group", "version"})
"""Context names that depend only on an operation's object."""
MAX_OBJECTS = 500_000
"""Above this many interned objects in the store, object operands are left to the full evaluation."""
SCREENED_ROOTS = frozenset({"obj", "old"})
_SCREENABLE_KEY = re.compile(r"[A-Za-z0-9_-]{1,200}")
_SCALAR = re.compile(rb'\s*:\s*("(?:[^"\\]|\\.)*"|[-+.0-9eE]+|true|false)')
"""After a key: a string or a scalar (objects, arrays and null never equal a non-None literal)."""
_SCREEN_MEMO = 8192


@dataclass(frozen=True, slots=True)
class Prefilter:
    """Where a condition can be true: None in a field means no restriction on it."""

    object_ids: frozenset[int] | None
    statuses: frozenset[int] | None
    verbs: frozenset[str] | None
    fold_ids: frozenset[int] | None
    """Objects whose operations decide the state of the `object_ids` (None: any object can)."""

    def admits(self, row: Row) -> bool:
        """False where the condition is certainly false (true does not mean it holds)."""
        ids, statuses, verbs = self.object_ids, self.statuses, self.verbs
        return (
            (ids is None or row[ROW_OBJECT] in ids)
            and (statuses is None or row[ROW_STATUS] in statuses)
            and (verbs is None or row[ROW_VERB] in verbs)
        )


def _object_context(api_version: str, resource: str, kind: str, namespace: str, name: str) -> dict[str, str]:
    # as `context.OperationContext` computes them from a row
    return {
        "kind": kind,
        "namespace": namespace,
        "name": name,
        "resource": resource,
        "group": api_version.rpartition("/")[0],
        "version": api_version.rpartition("/")[2],
    }


def _fold_ids(
    objects: Sequence[tuple[int, str, str, str, str, str]], chosen: Collection[int]
) -> frozenset[int]:
    """The chosen objects and those whose operations can change their state (see `_KeyTrack`).

    A named object's state changes by operations on itself, on its resource's collections (no
    name: lists, watch events and creates that the body names), and on the cluster-scoped key of
    its name. An operation on a collection is about whatever object its body names: every object
    of the resource may be the one, so all of them are folded.
    """
    by_resource: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
    for object_id, api_version, resource, _, namespace, name in objects:
        by_resource.setdefault((api_version, resource), []).append((object_id, namespace, name))
    wanted = set(chosen)
    found: set[int] = set(wanted)
    for members in by_resource.values():
        chosen_here = [(namespace, name) for object_id, namespace, name in members if object_id in wanted]
        if not chosen_here:
            continue
        if any(not name for _, name in chosen_here):
            found.update(object_id for object_id, _, _ in members)
            continue
        names = {name for _, name in chosen_here}
        found.update(
            object_id
            for object_id, namespace, name in members
            if not name or (not namespace and name in names)
        )
    return frozenset(found)


def analyse(
    conditions: Sequence[Condition],
    store: Store,
    session: SessionInfo,
    statuses: Callable[[], list[int]],
) -> Prefilter | None:
    """The filters every condition implies together (None when none of their operands gives one).

    `statuses` gives the statuses of the session (the engine caches them).
    """
    object_parts: list[Condition] = []
    status_parts: list[Condition] = []
    verb_parts: list[Condition] = []
    for condition in conditions:
        for part in conjuncts(condition):
            names = part.names
            if not names:
                if not part.test({}):  # a constant false (or failing) operand: never true
                    return Prefilter(frozenset(), None, None, frozenset())
            elif names <= OBJECT_NAMES:
                object_parts.append(part)
            elif names == {"status"}:
                status_parts.append(part)
            elif names == {"verb"}:
                verb_parts.append(part)
    object_ids: frozenset[int] | None = None
    fold_ids: frozenset[int] | None = None
    if object_parts:
        objects = store.object_rows(limit=MAX_OBJECTS)
        if objects is not None:
            object_ids = frozenset(
                object_id
                for object_id, *fields in objects
                if all(part.test(_object_context(*fields)) for part in object_parts)
            )
            fold_ids = _fold_ids(objects, object_ids)
    found_statuses: frozenset[int] | None = None
    if status_parts:
        found_statuses = frozenset(
            s for s in statuses() if all(part.test({"status": s}) for part in status_parts)
        )
    found_verbs: frozenset[str] | None = None
    if verb_parts:
        found_verbs = frozenset(
            v for v in store.distinct_verbs(session) if all(part.test({"verb": v}) for part in verb_parts)
        )
    if object_ids is None and found_statuses is None and found_verbs is None:
        return None
    return Prefilter(object_ids, found_statuses, found_verbs, fold_ids)


class BodyScreen:
    """A necessary condition on a body's JSON text for a `FieldEquality` to hold.

    A decoded document has `key` mapped to a value equal to the literal only if its text holds
    `"key"`, a colon and that value's JSON (spelled any way that decodes to an equal value: `99.0`,
    `true` for 1). Keys are matched as written, so a body with a `\\u00XX` escape of one of the
    key's characters is always admitted (the key may be spelled with it). The literal's own
    spelling is not searched for: each value after the key is decoded and compared, so the screen
    agrees with the condition language's `==` (Python's).
    """

    __slots__ = ("_escapes", "_quoted_key", "_seen", "key", "root", "value")

    def __init__(self, equality: FieldEquality) -> None:
        self.root = equality.root
        self.key = equality.key
        self.value = equality.value
        self._quoted_key = b'"' + equality.key.encode() + b'"'
        hexes = "|".join(sorted({f"{ord(c):02x}" for c in equality.key}))
        self._escapes = re.compile(rb"\\u00(?:" + hexes.encode() + rb")", re.IGNORECASE)
        self._seen = TwoGenerationCache(_SCREEN_MEMO)  # digest -> admitted

    @staticmethod
    def for_conditions(conditions: Sequence[Condition]) -> tuple[BodyScreen, ...]:
        """A screen per conjunct of the conditions comparing a field of `obj` or `old` with a literal."""
        return tuple(
            BodyScreen(equality)
            for condition in conditions
            for equality in field_equalities(condition)
            if equality.root in SCREENED_ROOTS and _SCREENABLE_KEY.fullmatch(equality.key)
        )

    def admits(self, digest: bytes, text: Callable[[bytes], bytes]) -> bool:
        """False where the body of `digest` certainly lacks the field value; `text` reads a body's JSON."""
        found: bool | None = self._seen.get(digest)
        if found is None:
            found = self.admits_text(text(digest))
            self._seen.put(digest, found)
        return found

    def answer(self, digest: bytes) -> bool | None:
        """What `admits(digest, ...)` answers from memory; None when it would read the body."""
        found: bool | None = self._seen.get(digest)
        return found

    def remember(self, results: dict[bytes, bool]) -> None:
        """Answers worked out elsewhere (`replay.screening`), kept as `admits` keeps its own."""
        self._seen.put_many(results)

    def admits_text(self, body: bytes) -> bool:
        key, value = self._quoted_key, self.value
        start = body.find(key)
        if start < 0:
            return self._escaped(body)
        while start >= 0:
            after = _SCALAR.match(body, start + len(key))
            if after is not None:
                try:
                    if orjson.loads(after.group(1)) == value:
                        return True
                except orjson.JSONDecodeError:
                    return True  # not a token this screen understands: let the condition decide
            start = body.find(key, start + 1)
        return self._escaped(body)

    def _escaped(self, body: bytes) -> bool:
        """Whether the body may spell the key with escapes (most have no `\\u00` at all)."""
        return b"\\u00" in body and self._escapes.search(body) is not None
