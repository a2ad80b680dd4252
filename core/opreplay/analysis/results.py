"""The plain results of an analysis: frozen dataclasses that turn into JSON with `to_json()`.

Durations are in milliseconds, timestamps in seconds since the epoch, positions in seqs.
Values are rounded where they are made (durations to the microsecond), so the JSON is stable.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def jsonable(value: Any) -> Any:
    """Dataclasses, tuples and dicts of them as JSON-ready dicts, lists and scalars."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """An object as people name it: kind, namespace ("" if cluster-scoped), name ("" for a collection)."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        if self.name:
            where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        else:
            where = f"{self.namespace}/*" if self.namespace else "*"
        return f"{self.kind} {where}"


# -- loops -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HotLoop:
    """One object reconciled or written again and again: `count` cycles densely packed.

    A cycle is a reconcile that wrote the object or started on it, or a write outside any
    reconcile. `period_ops` / `period_s` are the median distance between cycles.
    """

    object: ObjectRef
    count: int
    writes: int
    first_seq: int
    last_seq: int
    first_ts: float
    last_ts: float
    period_ops: float
    period_s: float
    sample_seqs: tuple[int, ...]

    @property
    def duration_s(self) -> float:
        return self.last_ts - self.first_ts


@dataclass(frozen=True, slots=True)
class PingPong:
    """Two writers fighting over one object: writes alternating between them.

    `source` is "threads" when the writers are threads taking turns, "fields" when the written
    bodies set `field` back and forth between `values` (found by decoding the candidates' bodies).
    """

    object: ObjectRef
    writers: tuple[str, ...]
    flips: int
    first_seq: int
    last_seq: int
    first_ts: float
    last_ts: float
    sample_seqs: tuple[int, ...]
    source: str = "threads"
    field: str | None = None
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Periodic:
    """Writes (cycles) to one object at a regular interval: `period_s` with standard deviation `jitter_s`."""

    object: ObjectRef
    count: int
    period_s: float
    jitter_s: float
    first_seq: int
    last_seq: int
    hot_loop: bool


@dataclass(frozen=True, slots=True)
class LoopReport:
    hot: tuple[HotLoop, ...]
    ping_pong: tuple[PingPong, ...]
    periodic: tuple[Periodic, ...]
    parameters: dict[str, Any] = field(default_factory=dict)


# -- latency -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Count and duration distribution of a group of calls; percentiles are within about 3%."""

    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    slow: int


@dataclass(frozen=True, slots=True)
class SlowOperation:
    seq: int
    ts: float
    verb: str
    object: ObjectRef
    subresource: str | None
    status: int
    reason: str | None
    duration_ms: float
    thread: str
    reconcile: int | None


@dataclass(frozen=True, slots=True)
class SlowReport:
    """Calls above `threshold_ms` (the slowest first) and latency per verb and per kind.

    Watch streams and watch events are not calls and are left out of the latency figures.
    """

    threshold_ms: float
    count: int
    operations: tuple[SlowOperation, ...]
    overall: LatencySummary
    by_verb: dict[str, LatencySummary]
    by_kind: dict[str, LatencySummary]


# -- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    """Errors of one status and reason on one object (`object.name` is "*" once groups overflow)."""

    status: int
    reason: str | None
    object: ObjectRef
    count: int
    first_seq: int
    first_ts: float
    last_seq: int
    last_ts: float
    verbs: tuple[str, ...]
    message: str | None


@dataclass(frozen=True, slots=True)
class ErrorStorm:
    """A burst: at least `min_count` errors of one status on one object within the storm window."""

    status: int
    reason: str | None
    object: ObjectRef
    count: int
    first_seq: int
    last_seq: int
    first_ts: float
    last_ts: float
    sample_seqs: tuple[int, ...]

    @property
    def duration_s(self) -> float:
        return self.last_ts - self.first_ts


@dataclass(frozen=True, slots=True)
class ErrorReport:
    total: int
    by_status: dict[str, int]
    groups: tuple[ErrorGroup, ...]
    storms: tuple[ErrorStorm, ...]
    parameters: dict[str, Any] = field(default_factory=dict)


# -- access ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HotObject:
    """An object with the most operations (two at least), and how many of them wrote it."""

    object: ObjectRef
    operations: int
    writes: int


@dataclass(frozen=True, slots=True)
class KindAccess:
    """Operations on one kind: reads (get, list, watch), writes, watch events, and reads per write."""

    kind: str
    operations: int
    reads: int
    writes: int
    lists: int
    watches: int
    watch_events: int
    read_write_ratio: float | None


@dataclass(frozen=True, slots=True)
class ListPath:
    """LIST calls on one kind in one namespace ("" = all namespaces or cluster-scoped)."""

    kind: str
    namespace: str
    count: int
    share: float
    mean_ms: float
    per_reconcile: float | None


@dataclass(frozen=True, slots=True)
class WatchRestart:
    """WATCH calls on one kind in one namespace after the first: each one a restarted stream."""

    kind: str
    namespace: str
    watches: int
    restarts: int
    first_seq: int
    last_seq: int
    sample_seqs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AccessReport:
    hot_objects: tuple[HotObject, ...]
    by_kind: tuple[KindAccess, ...]
    lists: tuple[ListPath, ...]
    watch_restarts: tuple[WatchRestart, ...]


# -- statistics --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Statistics:
    session: str
    name: str | None
    operations: int
    errors: int
    reconciles: int
    first_seq: int | None
    last_seq: int | None
    first_ts: float | None
    last_ts: float | None
    span_s: float
    rate_per_s: float
    total_duration_ms: float
    duration: LatencySummary
    verbs: dict[str, int]
    kinds: dict[str, int]
    statuses: dict[str, int]
    threads: dict[str, int]


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything `analyze` found in one session."""

    loops: LoopReport
    slow: SlowReport
    errors: ErrorReport
    access: AccessReport
    stats: Statistics

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict with exactly the keys loops, slow, errors, access, stats."""
        return {
            "loops": jsonable(self.loops),
            "slow": jsonable(self.slow),
            "errors": jsonable(self.errors),
            "access": jsonable(self.access),
            "stats": jsonable(self.stats),
        }
