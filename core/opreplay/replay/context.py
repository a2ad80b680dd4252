"""The names a condition, log message or watch expression sees at one operation, computed lazily.

Scanning a million operations for `kind == "Deployment" and obj.spec.replicas > 3` must not decode
a million bodies: the condition language looks names up one at a time in the mapping it is
given, so this mapping computes each name on first access. Plain fields come from the row; `obj`
and `old` (the operation's object after and before it, in the state the operator had seen)
from digests the engine supplies, decoded through its cache; `req` from the request body; `state`
(the whole cluster state, a `StateView`) only when asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from http import HTTPStatus
from typing import Any, Protocol

from opreplay.conditions import CONTEXT_NAMES
from opreplay.model import JSONValue
from opreplay.replay.state import StateMap
from opreplay.store.replay_queries import (
    ROW_API_VERSION,
    ROW_DURATION_US,
    ROW_EVENT,
    ROW_KIND,
    ROW_MESSAGE,
    ROW_NAME,
    ROW_NAMESPACE,
    ROW_REASON,
    ROW_RECONCILE,
    ROW_REQUEST,
    ROW_RESOURCE,
    ROW_SEQ,
    ROW_STATUS,
    ROW_SUBRESOURCE,
    ROW_THREAD,
    ROW_VERB,
    Row,
)

BODY_NAMES = frozenset({"obj", "old", "req", "state"})
"""Names whose value needs a body or the state: the engine prepares for them only when read."""
STATE_NAMES = frozenset({"obj", "old", "state"})

_DIRECT = {
    "seq": ROW_SEQ, "verb": ROW_VERB, "kind": ROW_KIND, "namespace": ROW_NAMESPACE, "name": ROW_NAME,
    "resource": ROW_RESOURCE, "subresource": ROW_SUBRESOURCE, "status": ROW_STATUS, "reason": ROW_REASON,
    "message": ROW_MESSAGE, "thread": ROW_THREAD, "reconcile": ROW_RECONCILE, "event": ROW_EVENT,
}  # fmt: skip
_NON_ERROR_VERBS = frozenset({"watch-event", "gap"})


def row_is_error(row: Row) -> bool:
    """Status >= 400, or a transport error (status 0 on a call; watch events and gaps have none)."""
    status = row[ROW_STATUS]
    return bool(status >= 400 or (status == 0 and row[ROW_VERB] not in _NON_ERROR_VERBS))


def status_text(status: int, reason: str | None = None) -> str:
    """`409 Conflict`, `404 NotFound` (the Kubernetes reason when recorded), `transport error`."""
    if status == 0:
        return "transport error"
    if reason:
        return f"{status} {reason}"
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def row_error(row: Row) -> str | None:
    """The `error` name: the failure in one line (None when the operation succeeded)."""
    if not row_is_error(row):
        return None
    text = status_text(row[ROW_STATUS], row[ROW_REASON])
    message = row[ROW_MESSAGE]
    return f"{text}: {message}" if message else text


DigestPair = tuple["bytes | None", "bytes | None"]
"""(old, obj) digests of an operation's object; `old` may be `NOT_COMPUTED`."""
NOT_COMPUTED = b""
"""An `old` digest the caller did not compute (no digest is empty): the context looks it up if read."""


class Resolver(Protocol):
    """What a context asks the engine for, only when an expression reads it."""

    def load(self, digest: bytes | None) -> JSONValue: ...

    def digest_before(self, row: Row) -> bytes | None: ...

    def digest_after(self, row: Row) -> bytes | None: ...

    def state_view(self, seq: int, running: StateMap | None) -> Any: ...


class OperationContext(Mapping[str, Any]):
    """`Mapping` of context names for one row; bodies and state are resolved on first access.

    `pair` is (old, obj) as digests when the caller already knows them (a scan folding the
    state as it goes), else the resolver looks them up; `running` is the scan's live state,
    copied into a `StateView` only if `state` is read.
    """

    __slots__ = ("_pair", "_resolver", "_row", "_running", "_values")

    def __init__(
        self, row: Row, resolver: Resolver, pair: DigestPair | None = None, running: StateMap | None = None
    ) -> None:
        self._row = row
        self._resolver = resolver
        self._pair = pair
        self._running = running
        self._values: dict[str, Any] | None = None

    def __getitem__(self, name: str) -> Any:
        index = _DIRECT.get(name)
        if index is not None:
            return self._row[index]
        values = self._values
        if values is not None and name in values:
            return values[name]
        value = self._compute(name)
        if values is None:
            values = self._values = {}
        values[name] = value
        return value

    def _compute(self, name: str) -> Any:
        row = self._row
        if name == "obj":
            pair = self._pair
            return self._resolver.load(pair[1] if pair is not None else self._resolver.digest_after(row))
        if name == "old":
            pair = self._pair
            if pair is not None and pair[0] is not NOT_COMPUTED:
                return self._resolver.load(pair[0])
            return self._resolver.load(self._resolver.digest_before(row))
        if name == "req":
            return self._resolver.load(row[ROW_REQUEST])
        if name == "state":
            return self._resolver.state_view(row[ROW_SEQ], self._running)
        if name == "duration_ms":
            return row[ROW_DURATION_US] / 1000.0
        if name == "error":
            return row_error(row)
        if name == "group":
            return row[ROW_API_VERSION].rpartition("/")[0]
        if name == "version":
            return row[ROW_API_VERSION].rpartition("/")[2]
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in CONTEXT_NAMES

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(CONTEXT_NAMES))

    def __len__(self) -> int:
        return len(CONTEXT_NAMES)
