"""Variables: recorded JSON documents and the cluster state as lazily expanded DAP variables.

A `variablesReference` is a handle in `Handles`, which the session clears at every move (handles
are "valid until the next resume"). Numbering goes on across moves, so a stale handle is an error
rather than a different variable. A container builds its children only when the client expands it,
one page at a time (`start`/`count`): a LIST of 10,000 items or a ConfigMap with 10,000 keys costs
what the client shows. VS Code pages only *indexed* children (in chunks of 100), so dicts with more
than `PAGED_KEYS` keys are announced as indexed too; their children keep their key as name.

Every variable of a document carries an `evaluateName` in the condition language, built from its
container's (`obj.spec.containers[0].image`, `obj.metadata.labels["app.kubernetes.io/name"]`), so
Add to Watch and Copy as Expression give an expression that evaluates to the same value. Variables
of an object (the Object scope, the objects of the cluster state) also know which object and field
they show: that is what a data breakpoint on them watches (`FieldRef`).
"""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opreplay.model import ObjectKey
from opreplay.replay import ClusterState, StateView
from opreplay_adapter.dap.dispatch import CantHandle

PAGED_KEYS = 100
"""Dicts with more keys than this are announced as indexed children, so that VS Code pages them."""
PREVIEW = 80
"""Characters of a value shown in the Variables view before it is cut with an ellipsis."""
_MAX_HANDLE = 2**31 - 1
_INDEX = re.compile(r"^\[(\d+)\]$")

PathPart = str | int
Variable = dict[str, Any]


@dataclass(frozen=True)
class Page:
    """Which children a `variables` request asks for, and how to show numbers."""

    filter: str | None = None
    start: int = 0
    count: int = 0
    hex: bool = False

    def cut(self, total: int) -> range:
        start = min(max(self.start, 0), total)
        stop = total if self.count <= 0 else min(total, start + self.count)
        return range(start, stop)


@dataclass(frozen=True)
class FieldRef:
    """A field of one recorded object: what a data breakpoint watches."""

    key: ObjectKey
    kind: str
    path: tuple[PathPart, ...] = ()

    def child(self, part: PathPart) -> FieldRef:
        return FieldRef(self.key, self.kind, (*self.path, part))


class Container(Protocol):
    """Something with children: a document node, a scope, the cluster state."""

    def children(self, page: Page) -> list[Variable]: ...

    def field_of(self, name: str) -> FieldRef | None:
        """The object field the child `name` shows (None: not a field of a recorded object)."""
        ...


class Handles:
    """variablesReference -> container, for the current stop only."""

    def __init__(self) -> None:
        self._items: dict[int, Container] = {}
        self._next = 1

    def add(self, container: Container) -> int:
        handle = self._next
        self._next = handle + 1 if handle < _MAX_HANDLE else 1
        self._items[handle] = container
        return handle

    def get(self, handle: int) -> Container:
        container = self._items.get(handle)
        if container is None:
            raise CantHandle(f"variablesReference {handle} is not valid (any more): the cursor has moved")
        return container

    def clear(self) -> None:
        self._items.clear()


# -- text --------------------------------------------------------------------------------------


def field_expression(base: str, parts: Iterable[PathPart]) -> str:
    """`obj` + ("spec", "containers", 0) -> `obj.spec.containers[0]`; other keys as `["a.b/c"]`."""
    text = base
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier() and not keyword.iskeyword(part) and not part.startswith("_"):
            text += f".{part}"
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text


def _cut(text: str, limit: int = PREVIEW) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def object_title(document: Any) -> str | None:
    """`Deployment default/web` for a Kubernetes object, None for anything else."""
    if not isinstance(document, dict):
        return None
    metadata = document.get("metadata")
    kind = document.get("kind")
    if (
        not isinstance(kind, str)
        or not isinstance(metadata, dict)
        or not isinstance(metadata.get("name"), str)
    ):
        return None
    namespace = metadata.get("namespace")
    where = (
        f"{namespace}/{metadata['name']}" if isinstance(namespace, str) and namespace else metadata["name"]
    )
    return f"{kind} {where}"


def format_value(value: Any, *, hex: bool = False, limit: int = PREVIEW) -> str:
    """One line for a value: JSON scalars as JSON (numbers in hex on request), containers previewed."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return (f"-{-value:#x}" if value < 0 else f"{value:#x}") if hex else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _cut(json.dumps(value, ensure_ascii=False), limit)
    if isinstance(value, StateView):
        return f"cluster state: {len(value.cluster)} objects"
    if isinstance(value, dict):
        title = object_title(value)
        if title is not None:
            return title
        return _preview("{", "}", ((f"{k}: ", v) for k, v in value.items()), hex, limit)
    if isinstance(value, (list, tuple)):
        return _preview(f"({len(value)}) [", "]", (("", v) for v in value), hex, limit)
    return _cut(str(value), limit)


def _preview(opening: str, closing: str, items: Iterable[tuple[str, Any]], hex: bool, limit: int) -> str:
    text = opening
    for index, (label, item) in enumerate(items):
        if isinstance(item, dict):
            shown = "{…}"
        elif isinstance(item, (list, tuple)):
            shown = f"[{len(item)}]"
        else:
            shown = format_value(item, hex=hex, limit=limit)
        text += (", " if index else "") + label + shown
        if len(text) >= limit:
            return text[: limit - 2] + "…" + closing
    return text + closing


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


# -- building variables ------------------------------------------------------------------------


class Builder:
    """Makes DAP variables for values, registering a container for each expandable one."""

    def __init__(self, handles: Handles, *, with_types: bool) -> None:
        self.handles = handles
        self.with_types = with_types

    def variable(
        self,
        name: str,
        value: Any,
        *,
        hex: bool = False,
        evaluate_name: str | None = None,
        field: FieldRef | None = None,
        text: str | None = None,
    ) -> Variable:
        """A variable; `text` replaces the formatted value (the Changes scope's `old -> new`)."""
        variable: Variable = {
            "name": name,
            "value": text if text is not None else format_value(value, hex=hex),
        }
        variable.update(self.expandable(value, evaluate_name, field))
        if evaluate_name is not None:
            variable["evaluateName"] = evaluate_name
        if self.with_types:
            variable["type"] = json_type(value)
        return variable

    def expandable(self, value: Any, evaluate_name: str | None, field: FieldRef | None) -> Variable:
        """`variablesReference` and the child counts for a value (reference 0 for a scalar)."""
        if isinstance(value, StateView):
            return {"variablesReference": self.handles.add(StateScope(self, value.cluster))}
        if isinstance(value, (dict, list, tuple)) and value:
            handle = self.handles.add(DocumentNode(self, value, evaluate_name, field))
            if isinstance(value, dict) and len(value) <= PAGED_KEYS:
                return {"variablesReference": handle, "namedVariables": len(value)}
            return {"variablesReference": handle, "indexedVariables": len(value)}
        return {"variablesReference": 0}

    def container(self, container: Container) -> int:
        return self.handles.add(container)

    def document(self, value: Any, base: str | None, field: FieldRef | None) -> Container:
        """The children of a document as a scope shows them (none for a missing or scalar one)."""
        if isinstance(value, (dict, list)):
            return DocumentNode(self, value, base, field)
        return Listing(lambda page: [])


class DocumentNode:
    """The children of a dict or list of a recorded document."""

    def __init__(
        self, builder: Builder, value: dict[str, Any] | list[Any] | tuple[Any, ...], base: str | None,
        field: FieldRef | None,
    ) -> None:  # fmt: skip
        self._builder = builder
        self._value = value
        self._base = base
        self._field = field

    def _parts(self) -> Sequence[PathPart]:
        return list(self._value) if isinstance(self._value, dict) else range(len(self._value))

    def children(self, page: Page) -> list[Variable]:
        value = self._value
        announced_named = isinstance(value, dict) and len(value) <= PAGED_KEYS
        if page.filter == ("indexed" if announced_named else "named"):
            return []
        parts = self._parts()
        found = []
        for index in page.cut(len(parts)):
            part = parts[index]
            child = value[part]  # type: ignore[index]
            found.append(
                self._builder.variable(
                    part if isinstance(part, str) else f"[{part}]",
                    child,
                    hex=page.hex,
                    evaluate_name=field_expression(self._base, [part]) if self._base is not None else None,
                    field=self._field.child(part) if self._field is not None else None,
                )
            )
        return found

    def field_of(self, name: str) -> FieldRef | None:
        if self._field is None:
            return None
        if isinstance(self._value, dict):
            return self._field.child(name) if name in self._value else None
        match = _INDEX.match(name)
        if match is None or int(match.group(1)) >= len(self._value):
            return None
        return self._field.child(int(match.group(1)))


class Listing:
    """A fixed list of variables built on expansion (the Operation, Changes and Error scopes)."""

    def __init__(self, build: Callable[[Page], list[Variable]]) -> None:
        self._build = build

    def children(self, page: Page) -> list[Variable]:
        if page.filter == "indexed":
            return []
        found = self._build(page)
        return [found[i] for i in page.cut(len(found))]

    def field_of(self, name: str) -> FieldRef | None:
        return None


class StateScope:
    """The cluster state at the cursor: one child per resource, then its objects (`StateGroup`)."""

    def __init__(self, builder: Builder, state: ClusterState) -> None:
        self._builder = builder
        self._state = state

    def groups(self) -> list[tuple[str, list[ObjectKey]]]:
        found: dict[tuple[str, str], list[ObjectKey]] = {}
        for key in self._state:
            found.setdefault((key.resource, key.api_version), []).append(key)
        return [(f"{resource} ({api_version})", keys) for (resource, api_version), keys in found.items()]

    def children(self, page: Page) -> list[Variable]:
        if page.filter == "indexed":
            return []
        groups = self.groups()
        found = []
        for index in page.cut(len(groups)):
            name, keys = groups[index]
            handle = self._builder.container(StateGroup(self._builder, self._state, keys))
            found.append(
                {
                    "name": name,
                    "value": f"{len(keys)} object{'s' if len(keys) != 1 else ''}",
                    "variablesReference": handle,
                    "indexedVariables": len(keys),
                }
            )
        return found

    def field_of(self, name: str) -> FieldRef | None:
        return None


class StateGroup:
    """The objects of one resource in the cluster state, paged; each expands to its document."""

    def __init__(self, builder: Builder, state: ClusterState, keys: list[ObjectKey]) -> None:
        self._builder = builder
        self._state = state
        self._keys = keys

    @staticmethod
    def _name(key: ObjectKey) -> str:
        return f"{key.namespace}/{key.name}" if key.namespace else key.name

    def children(self, page: Page) -> list[Variable]:
        if page.filter == "named":
            return []
        found = []
        for index in page.cut(len(self._keys)):
            key = self._keys[index]
            document = self._state.object(key)
            kind = document.get("kind") if isinstance(document, dict) else None
            field = FieldRef(key, kind if isinstance(kind, str) else key.resource)
            found.append(
                self._builder.variable(
                    self._name(key),
                    document,
                    hex=page.hex,
                    field=field,
                    evaluate_name=(
                        f"state[{json.dumps(StateView.name_of(key), ensure_ascii=False)}]"
                        if key.resource  # else a discovery document (`/apis`), not an object
                        else None
                    ),
                )
            )
        return found

    def field_of(self, name: str) -> FieldRef | None:
        for key in self._keys:
            if self._name(key) == name:
                document = self._state.object(key)
                kind = document.get("kind") if isinstance(document, dict) else None
                return FieldRef(key, kind if isinstance(kind, str) else key.resource)
        return None


class Deferred:
    """A container made on first expansion: a scope whose contents cost a body decode or a state fold."""

    def __init__(self, make: Callable[[], Container]) -> None:
        self._make = make
        self._made: Container | None = None

    def _target(self) -> Container:
        if self._made is None:
            self._made = self._make()
        return self._made

    def children(self, page: Page) -> list[Variable]:
        return self._target().children(page)

    def field_of(self, name: str) -> FieldRef | None:
        return self._target().field_of(name)
