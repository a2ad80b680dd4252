"""Field paths into Kubernetes objects, and field-by-field differences between two versions.

A path is what people type and what the Changes view shows: `spec.replicas`,
`spec.template.spec.containers[0].image`, `metadata.labels["app.kubernetes.io/name"]`. Parsing
is strict (a field watch on a mistyped path should say so when it is set, not silently never
fire); reading is lenient (a missing field is None, as in the condition language).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

PathPart = str | int
Path = tuple[PathPart, ...]

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")
_BARE_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")
DEFAULT_IGNORED: tuple[Path, ...] = (("metadata", "managedFields"),)
"""Left out of diffs by default: server-side-apply bookkeeping that changes with every write."""


class PathError(ValueError):
    """A field path that does not parse; the message says where."""


@dataclass(frozen=True, slots=True)
class Change:
    """One field that differs: its path (as text), the old value and the new (None when absent)."""

    path: str
    old: Any
    new: Any


def parse_path(text: str) -> Path:
    """`spec.containers[0].image` -> ("spec", "containers", 0, "image")."""
    parts: list[PathPart] = []
    i, n = 0, len(text)
    if not text.strip():
        raise PathError("empty field path")
    expect_name = True
    while i < n:
        ch = text[i]
        if ch == "[":
            end = text.find("]", i)
            if end < 0:
                raise PathError(f"unclosed '[' at {i} in {text!r}")
            inner = text[i + 1 : end].strip()
            if inner.isdigit():
                parts.append(int(inner))
            elif len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "\"'":
                parts.append(inner[1:-1])
            else:
                raise PathError(f"expected a number or a quoted key inside [] at {i} in {text!r}")
            i = end + 1
            expect_name = False
        elif ch == ".":
            if expect_name:
                raise PathError(f"unexpected '.' at {i} in {text!r}")
            i += 1
            expect_name = True
        else:
            if not expect_name:
                raise PathError(f"expected '.' or '[' at {i} in {text!r}")
            match = _IDENTIFIER.match(text, i)
            if match is None:
                raise PathError(f"unexpected {ch!r} at {i} in {text!r}")
            parts.append(match.group())
            i = match.end()
            expect_name = False
    if expect_name:
        raise PathError(f"field path {text!r} ends with '.'")
    return tuple(parts)


def format_path(path: Iterable[PathPart]) -> str:
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _BARE_KEY.match(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{orjson.dumps(part).decode()}]")
    return "".join(out)


def get_path(document: Any, path: Path) -> Any:
    """The value at `path`, or None where any step is missing."""
    value = document
    for part in path:
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                return None
            value = value[part]
        else:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
            if value is None:
                return None
    return value


def diff_documents(old: Any, new: Any, *, ignore: Iterable[Path] = DEFAULT_IGNORED) -> list[Change]:
    """Leaf-level differences between two JSON documents, in document order.

    Dicts are compared key by key (keys of `old` first, then keys only in `new`), lists
    element by element; a value that changes type is reported whole.
    """
    ignored = set(ignore)
    changes: list[Change] = []

    def walk(path: tuple[PathPart, ...], a: Any, b: Any) -> None:
        if path in ignored or a == b:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in a:
                walk((*path, key), a[key], b.get(key))
            for key in b:
                if key not in a:
                    walk((*path, key), None, b[key])
            return
        if isinstance(a, list) and isinstance(b, list):
            for index in range(max(len(a), len(b))):
                old = a[index] if index < len(a) else None
                walk((*path, index), old, b[index] if index < len(b) else None)
            return
        if isinstance(a, dict) and b is None:
            for key in a:
                walk((*path, key), a[key], None)
            return
        if a is None and isinstance(b, dict):
            for key in b:
                walk((*path, key), None, b[key])
            return
        changes.append(Change(format_path(path), a, b))

    walk((), old, new)
    return changes
