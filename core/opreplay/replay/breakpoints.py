"""Breakpoint definitions: what a front end asks the engine to stop at.

These are plain values (frozen dataclasses): the DAP layer builds them from source lines,
function breakpoints, exception filters and data breakpoints, and `ReplayEngine.set_breakpoints`
validates them. Equal definitions keep their id and hit count when set again, so a front end
can resend its whole list on every edit, as VS Code does.

Every kind takes the same three options, with VS Code / debugpy semantics:
- `condition`: an expression of the condition language; the breakpoint counts only where true.
- `hit_condition`: `N` or `== N` (the N-th hit only, as debugpy reads a bare number), `>= N`,
  `> N`, `< N`, `<= N`, `% N` (every N-th). Hits are counted per breakpoint, across `run()`
  calls in either direction, from the moment the breakpoint was set (or the engine was reset).
- `log_message`: a template (`{name}/{status}`); where the breakpoint would stop it logs the
  rendered message instead (a logpoint) and the run goes on.
An invalid condition, hit condition, template, selector, filter id or path leaves the breakpoint
unverified with a message; it is never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from opreplay.model import ObjectKey

CONFLICT, NOT_FOUND, FORBIDDEN, SERVER_ERROR, TIMEOUT, SLOW, LOOP, ERROR = (
    "conflict",
    "not-found",
    "forbidden",
    "server-error",
    "timeout",
    "slow",
    "loop",
    "error",
)


@dataclass(frozen=True, slots=True)
class ErrorFilter:
    """An error filter as front ends list it (DAP `exceptionBreakpointFilters`)."""

    id: str
    label: str
    description: str
    default: bool = False


ERROR_FILTERS: tuple[ErrorFilter, ...] = (
    ErrorFilter(ERROR, "Any error", "HTTP status >= 400, or a transport error (status 0)"),
    ErrorFilter(CONFLICT, "409 Conflict", "A write rejected because the object changed (HTTP 409)"),
    ErrorFilter(NOT_FOUND, "404 Not Found", "The object or collection does not exist (HTTP 404)"),
    ErrorFilter(FORBIDDEN, "401/403 Forbidden", "Authentication or RBAC refused the call (HTTP 401, 403)"),
    ErrorFilter(SERVER_ERROR, "5xx Server error", "The API server failed (HTTP >= 500)"),
    ErrorFilter(TIMEOUT, "Timeout", "HTTP 504 or 408, or a transport error that timed out"),
    ErrorFilter(SLOW, "Slow call", "A call that took at least the slow threshold"),
    ErrorFilter(LOOP, "Hot loop", "A write to an object written many times in a few operations"),
)
ERROR_FILTER_IDS = frozenset(f.id for f in ERROR_FILTERS)


@dataclass(frozen=True)
class Breakpoint:
    """Options shared by every kind (keyword-only)."""

    condition: str | None = field(default=None, kw_only=True)
    hit_condition: str | None = field(default=None, kw_only=True)
    log_message: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class SeqBreakpoint(Breakpoint):
    """Stop at one operation (a line of the timeline)."""

    seq: int


@dataclass(frozen=True)
class SelectorBreakpoint(Breakpoint):
    """Stop at operations on objects matching `Kind/namespace/name` (shell globs in each part).

    `Kind/name` means any namespace, `Kind` alone any object of that kind. The kind matches the
    kind or the plural resource, case-insensitively (`Deployment`, `deployments`, `deploy*`).
    An operation matches by the object it names: a LIST or a watch on a collection has an empty
    name, which `*` matches (so `Pod/default/*` stops at lists of Pods in `default` too).
    """

    selector: str


@dataclass(frozen=True)
class ConditionBreakpoint(Breakpoint):
    """Stop where an expression of the condition language is true."""

    expression: str


@dataclass(frozen=True)
class ErrorBreakpoint(Breakpoint):
    """Stop at operations that an error filter (see `ERROR_FILTERS`) selects."""

    filter_id: str


@dataclass(frozen=True)
class FieldWatch(Breakpoint):
    """Stop where a field of one object changes in the state the operator had seen.

    `path` as in `opreplay.replay.paths` (`spec.replicas`, `status.conditions[0].status`). The
    object appearing or disappearing counts as a change when the field's value differs (a
    missing field reads None).
    """

    key: ObjectKey
    path: str


@dataclass(frozen=True, slots=True)
class BreakpointStatus:
    """What `set_breakpoints` says about each breakpoint, in the order given."""

    id: int
    verified: bool
    message: str | None
    breakpoint: Breakpoint


@dataclass(frozen=True, slots=True)
class HitCondition:
    """A parsed hit condition: `op` one of ==, >=, >, <, <=, %; `value` a count."""

    op: str
    value: int

    _PATTERN = re.compile(r"^\s*(==|>=|<=|>|<|%)?\s*(\d+)\s*$")

    @classmethod
    def parse(cls, text: str) -> HitCondition:
        match = cls._PATTERN.match(text)
        if match is None:
            raise ValueError(
                f"invalid hit condition {text!r}: expected a count, optionally after ==, >=, >, <, <= or %"
            )
        op, value = match.group(1) or "==", int(match.group(2))
        if op == "%" and value == 0:
            raise ValueError(f"invalid hit condition {text!r}: % 0")
        return cls(op, value)

    def __call__(self, hits: int) -> bool:
        op, value = self.op, self.value
        if op == "==":
            return hits == value
        if op == ">=":
            return hits >= value
        if op == ">":
            return hits > value
        if op == "<":
            return hits < value
        if op == "<=":
            return hits <= value
        return hits % value == 0


def parse_selector(selector: str) -> tuple[str, str, str]:
    """`Kind/namespace/name`, `Kind/name` (any namespace) or `Kind` -> (kind, namespace, name) globs."""
    parts = [part.strip() for part in selector.strip().split("/")]
    if not parts or any(not part for part in parts) or len(parts) > 3:
        raise ValueError(
            f"invalid selector {selector!r}: expected Kind/namespace/name, Kind/name or Kind (globs allowed)"
        )
    if len(parts) == 1:
        return parts[0], "*", "*"
    if len(parts) == 2:
        return parts[0], "*", parts[1]
    return parts[0], parts[1], parts[2]
