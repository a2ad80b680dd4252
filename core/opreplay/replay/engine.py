"""The replay engine: a cursor over a recorded session that steps, jumps and runs to breakpoints.

A recording is a program whose instructions are API operations: the engine moves a cursor over
them (`step`, `back`, `goto`, `run` forwards or in reverse) and answers what the operator had
seen at the cursor (`state`, `object_after`, `diff`). Front ends (the DAP adapter, the CLI, the
language server) translate their protocol into these calls and the engine's `Stop`s back.

Position: the cursor is always on an operation, `1 <= position <= total`, and that operation
has happened: `state()` is the cluster after it, `object_before` / `object_after` frame it. A
session with no operations cannot be opened for replay.

Nothing here loads a whole session, so a step costs the same on the millionth operation as on the
first and memory does not grow with the session's length:
- operations are read as row tuples in chunks of 256 around the cursor (an LRU of 64 chunks);
  `Operation` objects are built only for what a caller asks for;
- the state at seq N is the nearest checkpoint at or below N plus the operations in between, at
  the digest level (`replay.state`, `replay.checkpoints`); the state at the cursor is cached with
  an undo log, so stepping back is as cheap as stepping forward;
- one object's digest over time (`obj`/`old` at arbitrary seqs, field watches, history) is read
  from the (session, object, seq) index, one checkpoint interval at a time;
- `run()` asks the store's indexes for the next candidates (object ids for selectors and field
  watches, statuses for error filters, duration for slow calls, (seq, object) pairs of the
  writes for hot loops, and for a condition the objects, statuses and verbs its `and` operands
  allow, see `replay.prefilter`) and only
  scans the operations in order when a condition breakpoint needs every operation evaluated;
  bodies are decoded only when an expression reads `obj`, `old`, `req` or `state`.

The engine is not thread-safe, except that `run(cancel=...)` may be cancelled from another thread.
"""

from __future__ import annotations

import bisect
import gc
import os
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal, NamedTuple, Protocol

import orjson

from opreplay.analysis import DEFAULT_THRESHOLD_MS
from opreplay.collector import gc_paused
from opreplay.conditions import Condition, ConditionError, Template, compile_condition, compile_template
from opreplay.errors import OpreplayError
from opreplay.model import (
    WRITE_VERBS,
    JSONValue,
    ObjectKey,
    Operation,
    ReconcileInfo,
    SessionInfo,
    object_label,
)
from opreplay.replay.breakpoints import (
    CONFLICT,
    ERROR,
    ERROR_FILTER_IDS,
    FORBIDDEN,
    NOT_FOUND,
    SERVER_ERROR,
    SLOW,
    TIMEOUT,
    Breakpoint,
    BreakpointStatus,
    ConditionBreakpoint,
    ErrorBreakpoint,
    FieldWatch,
    HitCondition,
    SelectorBreakpoint,
    SeqBreakpoint,
    parse_selector,
)
from opreplay.replay.checkpoints import DEFAULT_INTERVAL, Checkpoints
from opreplay.replay.context import NOT_COMPUTED, DigestPair, OperationContext, row_is_error, status_text
from opreplay.replay.loops import DEFAULT_MIN_WRITES, DEFAULT_WINDOW
from opreplay.replay.paths import DEFAULT_IGNORED, Change, PathError, diff_documents, get_path, parse_path
from opreplay.replay.prefilter import BodyScreen, Prefilter, analyse
from opreplay.replay.screening import MAX_DIGESTS, ScreenHelper
from opreplay.replay.state import ClusterState, Folder, StateKey, StateMap, StateView, rollback
from opreplay.store import Store
from opreplay.store.replay_queries import (
    ROW_API_VERSION,
    ROW_DURATION_US,
    ROW_EVENT,
    ROW_KIND,
    ROW_MESSAGE,
    ROW_NAME,
    ROW_NAMESPACE,
    ROW_OBJECT,
    ROW_REASON,
    ROW_RECONCILE,
    ROW_REQUEST,
    ROW_RESOURCE,
    ROW_RESPONSE,
    ROW_SEQ,
    ROW_STATUS,
    ROW_SUBRESOURCE,
    ROW_VERB,
    Row,
    operation_from_row,
)

_CHUNK = 256
_CHUNKS = 64
_SCAN_BATCH = 4096
_CANDIDATE_WINDOW = 1 << 18
_CANDIDATES = 512
_SCREEN_ANSWER_BYTES = 32768
"""A helper's answer to one request at most: it must fit a pipe's buffer, unread."""
_UNDO = 4096
_MAX_SELECTOR_IDS = 20_000
_TRACKS = 64
_BULK_KEPT = 1024
_SEGMENTS = 32
_NON_ERROR_VERBS = frozenset({"watch-event", "gap"})
_TIMEOUT_WORDS = ("timeout", "timed out", "deadline exceeded")

StopReason = Literal[
    "entry", "step", "breakpoint", "exception", "data-breakpoint", "goto", "end", "start", "pause"
]


class ReplayError(OpreplayError):
    """A replay request that cannot be honoured (an empty session, a seq outside the recording)."""


class CancelToken(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class LogMessage:
    """What a logpoint printed on the way: at which operation, from which breakpoint."""

    seq: int
    breakpoint: int
    text: str


@dataclass(frozen=True, slots=True)
class Stop:
    """Where a move ended and why (DAP's `stopped` event, in engine terms)."""

    reason: StopReason
    seq: int
    description: str
    backwards: bool = False
    breakpoints: tuple[int, ...] = ()
    """Ids of the breakpoints that stopped here (empty unless reason is a breakpoint kind)."""
    logs: tuple[LogMessage, ...] = ()
    """Logpoint messages produced on the way, in the order they happened (a logpoint never stops)."""


class HistoryEntry(NamedTuple):
    """One operation that set or removed an object in the state: the digest after it (None: removed)."""

    seq: int
    verb: str
    digest: bytes | None


# -- garbage collection ----------------------------------------------------------------------------

_heap_frozen = False


def _freeze_heap() -> None:
    """Once per process: move what is alive (modules, classes, functions: tens of thousands of
    objects) out of the collector's sight. A full collection walks every tracked object; without
    this, the few that happen during a goto cost it more than its own work on a slow machine."""
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()


# -- descriptions ----------------------------------------------------------------------------------


def _target(row: Row) -> str:
    return object_label(str(row[ROW_KIND] or row[ROW_RESOURCE]), row[ROW_NAMESPACE], row[ROW_NAME])


def describe_row(row: Row) -> str:
    """One line for an operation: `409 Conflict on Deployment default/web`, `update Pod default/a`."""
    target = _target(row)
    subresource = row[ROW_SUBRESOURCE]
    if subresource:
        target = f"{target} ({subresource})"
    if row_is_error(row):
        return f"{status_text(row[ROW_STATUS], row[ROW_REASON])} on {target}"
    if row[ROW_VERB] == "watch-event":
        return f"watch {row[ROW_EVENT] or 'event'} {target}"
    return f"{row[ROW_VERB]} {target}"


def describe(op: Operation) -> str:
    """`describe_row` for an `Operation`."""
    return describe_row((*(getattr(op, f.name) for f in fields(Operation)), 0))


def _show(value: Any) -> str:
    if value is None:
        return "(absent)"
    text = orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def _same(a: Any, b: Any) -> bool:
    return bool(a == b and type(a) is type(b))


# -- rows around the cursor ------------------------------------------------------------------------


class _RowWindow:
    """Rows read in aligned chunks around where the engine works, an LRU of a few chunks."""

    def __init__(self, store: Store, session: SessionInfo, total: int) -> None:
        self.store = store
        self.session = session
        self.total = total
        self._chunks: OrderedDict[int, list[Row]] = OrderedDict()
        self._operations: OrderedDict[int, Operation] = OrderedDict()

    def _chunk(self, index: int) -> list[Row]:
        chunk = self._chunks.get(index)
        if chunk is not None:
            self._chunks.move_to_end(index)
            return chunk
        start = index * _CHUNK + 1
        chunk = self.store.operation_rows(self.session, start, start + _CHUNK)
        self._chunks[index] = chunk
        if len(self._chunks) > _CHUNKS:
            self._chunks.popitem(last=False)
        return chunk

    def row(self, seq: int) -> Row:
        index, offset = divmod(seq - 1, _CHUNK)
        chunk = self._chunk(index)
        if offset < len(chunk) and chunk[offset][ROW_SEQ] == seq:
            return chunk[offset]
        for row in chunk:  # a gap in seqs: not expected, but never wrong
            if row[ROW_SEQ] == seq:
                return row
        raise ReplayError(f"operation {seq} is missing from the recording")

    def rows(self, start: int, stop: int) -> Iterator[Row]:
        """Rows with start <= seq < stop, ascending."""
        seq = max(1, start)
        stop = min(stop, self.total + 1)
        while seq < stop:
            index = (seq - 1) // _CHUNK
            for row in self._chunk(index):
                if seq <= row[ROW_SEQ] < stop:
                    yield row
            seq = (index + 1) * _CHUNK + 1

    def operation(self, seq: int) -> Operation:
        op = self._operations.get(seq)
        if op is None:
            op = operation_from_row(self.row(seq))
            self._operations[seq] = op
            if len(self._operations) > 256:
                self._operations.popitem(last=False)
        return op


# -- one object over time --------------------------------------------------------------------------


class _Segment(NamedTuple):
    end: int  # inclusive: the next checkpoint (or the last seq)
    base: bytes | None
    seqs: list[int]
    digests: list[bytes | None]


class _KeyTrack:
    """The digest of one object at any seq: checkpoint value + the operations that touch it.

    Operations that can change an object are those on the object itself and on its collections
    (lists, watches and creates without a name, all namespaces or its own), all found through the
    (session, object, seq) index. Memoized by checkpoint interval; a segment's starting value
    comes from the previous segment when known, else from the checkpoint.
    """

    def __init__(self, engine: ReplayEngine, key: StateKey) -> None:
        self.engine = engine
        self.key = key
        api_version, resource, namespace, name = key
        candidates = {
            ObjectKey(api_version, resource, namespace, name),
            ObjectKey(api_version, resource, namespace, ""),
            ObjectKey(api_version, resource, "", ""),
            ObjectKey(api_version, resource, "", name),
        }
        self.object_ids = frozenset(engine.store.object_ids(candidates).values())
        self._segments: OrderedDict[int, _Segment] = OrderedDict()
        self._ends: dict[int, int] = {}  # segment end -> segment start

    def effect(self, row: Row) -> tuple[bool, bytes | None]:
        """(touched, digest after) for this key."""
        touched, digest = False, None
        if row[ROW_OBJECT] in self.object_ids:
            for key, value in self.engine.folder.effects(row):
                if key == self.key:
                    touched, digest = True, value
        return touched, digest

    def at(self, seq: int) -> bytes | None:
        if seq <= 0:
            return None
        cp = self.engine.checkpoints.floor(seq)
        segment = self._segment(cp)
        index = bisect.bisect_right(segment.seqs, seq)
        return segment.digests[index - 1] if index else segment.base

    def latest(self, seq: int) -> bytes | None:
        """`at(seq)`, without building checkpoints when a recent operation settles it."""
        known, digest = self._probe(seq)
        return digest if known else self.at(seq)

    def _probe(self, seq: int) -> tuple[bool, bytes | None]:
        """(known, digest at seq) from the last operation up to seq that touched the object: a
        few index probes, usually; unknown when its last 32 operations did not touch it."""
        if not self.object_ids:
            return True, None
        for limit in (4, 32):  # the operation before is usually the one (a get before an update)
            rows = self.engine.store.find_operation_rows(
                self.engine.session, 1, seq + 1, reverse=True, object_ids=self.object_ids, limit=limit
            )
            for row in rows:
                touched, digest = self.effect(row)
                if touched:
                    return True, digest
            if len(rows) < limit:
                return True, None  # nothing up to seq ever set it
        return False, None

    def _base(self, cp: int) -> bytes | None:
        """The digest at checkpoint `cp`: from a probe, else from the checkpoint itself."""
        known, digest = self._probe(cp)
        return digest if known else self.engine._checkpoint_state(cp).get(self.key)

    def _segment(self, cp: int) -> _Segment:
        segment = self._segments.get(cp)
        if segment is not None:
            self._segments.move_to_end(cp)
            return segment
        engine = self.engine
        # rows in (cp, end], end being the next checkpoint: the last value is the next segment's base
        following = engine.checkpoints.next_after(cp)
        end = following if following is not None else min(engine.total, cp + engine.checkpoints.interval)
        previous_start = self._ends.get(cp)
        previous = self._segments.get(previous_start) if previous_start is not None else None
        base = (previous.digests[-1] if previous.digests else previous.base) if previous else self._base(cp)
        seqs: list[int] = []
        digests: list[bytes | None] = []
        start = cp + 1
        primed = False
        while start <= end and self.object_ids:
            rows = engine.store.find_operation_rows(
                engine.session, start, end + 1, object_ids=self.object_ids, limit=4096
            )
            if not primed and following is not None and any(not row[ROW_NAME] for row in rows):
                engine.checkpoints.prime_names(following)  # collection operations: their items' names
                primed = True
            for row in rows:
                touched, digest = self.effect(row)
                if touched:
                    seqs.append(row[ROW_SEQ])
                    digests.append(digest)
            if len(rows) < 4096:
                break
            start = rows[-1][ROW_SEQ] + 1
        segment = _Segment(end, base, seqs, digests)
        self._segments[cp] = segment
        self._ends[end] = cp
        while len(self._segments) > _SEGMENTS:
            old_cp, old = self._segments.popitem(last=False)
            if self._ends.get(old.end) == old_cp:
                del self._ends[old.end]
        return segment


def _covered_ids(filters: list[_SqlFilter]) -> frozenset[int]:
    """The object ids all of whose operations the filters return (those that filter by nothing else)."""
    covered: set[int] = set()
    for sql_filter in filters:
        others = (getattr(sql_filter, f.name) for f in fields(sql_filter) if f.name != "object_ids")
        if sql_filter.object_ids is not None and all(value is None for value in others):
            covered |= sql_filter.object_ids
    return frozenset(covered)


class _BulkRows:
    """A collection's bulk operations in seq order; the oldest are dropped (memory must not grow
    with a run's length), and an object known from before them costs a probe."""

    __slots__ = ("dropped", "rows", "seqs")

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.rows: list[Row] = []
        self.dropped = 0

    def add(self, row: Row) -> None:
        self.seqs.append(row[ROW_SEQ])
        self.rows.append(row)
        if len(self.rows) > _BULK_KEPT:
            self.dropped = self.seqs[_BULK_KEPT // 2 - 1]
            del self.seqs[: _BULK_KEPT // 2], self.rows[: _BULK_KEPT // 2]


def _admits_any(pairs: dict[int, DigestPair], screens: list[BodyScreen]) -> bool:
    """Whether a screen admits, or has yet to read, one of the (old, obj) digests: where none does,
    no screened breakpoint can hit (an absent object has no field equal to a literal)."""
    for before, after in pairs.values():
        for screen in screens:
            digest = after if screen.root == "obj" else before
            if digest is NOT_COMPUTED or (digest is not None and screen.answer(digest) is not False):
                return True
    return False


class _Sweep:
    """The windows a run over index candidates reads, from the operation after the cursor to an end.

    A window starts 4,096 operations wide and grows fourfold up to `_CANDIDATE_WINDOW`, so that a
    stop nearby is found without reading a wide window. A query that returns its `limit` of rows
    cuts the window at its last row (`clip`): the operations after it were not all read.
    """

    __slots__ = ("cursor", "origin", "reverse", "span", "total", "width")

    def __init__(self, origin: int, total: int, reverse: bool) -> None:
        self.origin, self.total, self.reverse = origin, total, reverse
        self.span = (origin - 1) if reverse else (total - origin)
        self.cursor = origin - 1 if reverse else origin + 1
        """the first seq of the next window (its last, backwards)"""
        self.width = 4096

    @property
    def running(self) -> bool:
        return 1 <= self.cursor <= self.total

    @property
    def first(self) -> bool:
        return self.width == 4096

    @property
    def remaining(self) -> int:
        return self.span - abs(self.cursor - self.origin)

    def window(self) -> tuple[int, int, int]:
        """(low, high, bound) of the next window: seqs in [low, high), complete up to `bound`."""
        cursor, width = self.cursor, self.width
        if self.reverse:
            low = max(1, cursor - width + 1)
            return low, cursor + 1, low
        high = min(self.total + 1, cursor + width)
        return cursor, high, high - 1

    def clip(self, bound: int, rows: Sequence[Row], limit: int) -> int:
        """`bound` cut at the last of `rows` when the query returned its limit."""
        if len(rows) < limit:
            return bound
        last: int = rows[-1][ROW_SEQ]
        return max(bound, last) if self.reverse else min(bound, last)

    def advance(self, bound: int, progress: Callable[[float], None] | None) -> None:
        """Past a window evaluated up to `bound`; reports the fraction of the run done."""
        self.cursor = bound - 1 if self.reverse else bound + 1
        self.width = min(self.width * 4, _CANDIDATE_WINDOW)
        if progress is not None:
            done = (self.origin - self.cursor) if self.reverse else (self.cursor - self.origin)
            progress(min(1.0, done / max(1, self.span)))

    def resume(self, start: int) -> int:
        """Where a run cancelled before the window starting at `start` got to."""
        return start + 1 if self.reverse else start - 1


@dataclass(slots=True)
class _CandidateWindow:
    """A window of a run over candidates, read and paired, waiting to be evaluated."""

    start: int
    ordered: list[int]
    """seqs in the order of evaluation"""
    found: dict[int, Row | None]
    pairs: dict[int, DigestPair]
    paired: bool = False
    """whether `pairs` has every operation a breakpoint matches (`_pair_in_order`)"""


class _KnownObjects:
    """`obj` of a forward run's candidates from the candidates before them: a probe per object,
    not per candidate.

    A run over index candidates reads, in seq order, every operation on the object ids its filters
    name. For an object whose ids (those of its `_KeyTrack`) are all among them, what it is after
    a candidate follows from the candidates since it was last known: an operation's own effect
    sets it, and only a LIST or DELETECOLLECTION of its collection may change it otherwise
    (`Folder.is_bulk`). Those are kept aside and applied to an object only when it is asked for,
    each one's effects worked out once. An unknown object costs one `digest_after` probe, which
    makes it known. A 409 on an update is the common case: the object is what the GET before it
    returned.
    """

    def __init__(self, engine: ReplayEngine, covered: frozenset[int]) -> None:
        self.engine = engine
        self.covered = covered
        self._known: dict[StateKey, tuple[bytes | None, int]] = {}
        """object -> (digest, seq at which it was known)"""
        self._bulk: dict[tuple[str, str, str], _BulkRows] = {}
        """(api_version, resource, namespace or "") -> its bulk operations"""
        self._coverable: dict[StateKey, bool] = {}
        self._bulk_effects: dict[int, dict[StateKey, bytes | None]] = {}

    def after(self, row: Row) -> bytes | None:
        """The digest of the row's object after it (`obj`); rows must come in seq order."""
        folder = self.engine.folder
        seq = row[ROW_SEQ]
        if folder.is_bulk(row):
            collection = (row[ROW_API_VERSION], row[ROW_RESOURCE], row[ROW_NAMESPACE])
            bulk = self._bulk.get(collection)
            if bulk is None:
                bulk = self._bulk[collection] = _BulkRows()
            bulk.add(row)
            return None
        effect = folder.own_effect(row)
        if effect is not None:
            self._known[effect[0]] = (effect[1], seq)
            return effect[1]
        key = folder.primary_key(row)
        if key is None:
            return None
        known = self._known.get(key)
        digest = self._catch_up(key, known) if known is not None and self._covers(key) else NOT_COMPUTED
        if digest is NOT_COMPUTED:
            digest = self.engine.digest_after(row)
        self._known[key] = (digest, seq)
        return digest

    def _catch_up(self, key: StateKey, known: tuple[bytes | None, int]) -> Any:
        """The object's digest after the bulk operations since it was known, applied in seq order;
        NOT_COMPUTED when some of those are no longer kept."""
        digest, since = known
        collections = [key[:3], (key[0], key[1], "")] if key[2] else [key[:3]]
        pending: list[Row] = []
        for collection in collections:
            bulk = self._bulk.get(collection)
            if bulk is not None:
                if since < bulk.dropped:
                    return NOT_COMPUTED
                pending.extend(bulk.rows[bisect.bisect_right(bulk.seqs, since) :])
        if len(collections) > 1:
            pending.sort(key=lambda row: row[ROW_SEQ])
        for row in pending:
            effects = self._bulk_effects.get(row[ROW_SEQ])
            if effects is None:
                if len(self._bulk_effects) >= 256:
                    self._bulk_effects.clear()
                effects = self._bulk_effects[row[ROW_SEQ]] = dict(self.engine.folder.effects(row))
            digest = effects.get(key, digest)
        return digest

    def _covers(self, key: StateKey) -> bool:
        covers = self._coverable.get(key)
        if covers is None:
            covers = self._coverable[key] = self.engine._track(key).object_ids <= self.covered
        return covers


# -- hot loops from the index ----------------------------------------------------------------------


class _LoopIndex:
    """`loops.LoopDetector`'s rule over any range of seqs, from (seq, object) pairs of the writes.

    The pairs come from the (session, verb, seq) index, two integers a write: flagging the
    writes of a range costs a fraction of reading its rows.
    """

    def __init__(self, engine: ReplayEngine, window: int, min_writes: int) -> None:
        self.engine = engine
        self.window = window
        self.min_writes = min_writes
        self._range = (0, 0)
        self._flags: set[int] = set()

    def flagged(self, low: int, high: int) -> list[int]:
        """The seqs in [low, high) of writes inside a hot loop, ascending."""
        window, least = self.window, self.min_writes
        pairs = self.engine.store.operation_objects(
            self.engine.session, max(1, low - window + 1), high, verbs=WRITE_VERBS
        )
        recent: dict[int, deque[int]] = {}
        found: list[int] = []
        for seq, obj in pairs:
            queue = recent.get(obj)
            if queue is None:
                queue = recent[obj] = deque()
            queue.append(seq)
            horizon = seq - window
            while queue[0] <= horizon:
                queue.popleft()
            if seq >= low and len(queue) >= least:
                found.append(seq)
        self._range = (low, high)
        self._flags = set(found)
        return found

    def in_loop(self, row: Row) -> bool:
        if row[ROW_VERB] not in WRITE_VERBS:
            return False
        seq = row[ROW_SEQ]
        low, high = self._range
        if not low <= seq < high:
            self.flagged(max(1, seq - 8192), seq + 8192)
        return seq in self._flags


# -- breakpoints, compiled -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SqlFilter:
    object_ids: frozenset[int] | None = None
    statuses: frozenset[int] | None = None
    verbs: frozenset[str] | None = None
    exclude_verbs: frozenset[str] | None = None
    min_duration_us: int | None = None

    def kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


Match = Callable[[Row], "bool | str"]


class _Active:
    """A breakpoint as the engine runs it: its matcher, index filters, options and hit count."""

    def __init__(self, id: int, group: str, definition: Breakpoint) -> None:
        self.id = id
        self.group = group
        self.definition = definition
        self.verified = False
        self.message: str | None = None
        self.reason: StopReason = "breakpoint"
        self.conditions: tuple[Condition, ...] = ()
        self.hit: HitCondition | None = None
        self.template: Template | None = None
        self.filters: list[_SqlFilter] | None = []
        self.seq_source: Callable[[int, int], list[int]] | None = None
        """Candidate seqs in [low, high) the engine cannot get from `filters` (a seq, hot loops)."""
        self.match: Match = lambda row: False
        self.hits = 0
        self.prefilter: Prefilter | None = None
        """Where a condition breakpoint's condition can be true (`replay.prefilter`), when known."""
        self.fold = False
        """Its candidates come from the prefilter's `fold_ids`, folded to know their `obj` and `old`."""
        self.screens: tuple[BodyScreen, ...] = ()
        """Field equalities its conditions imply, checked on the bodies' text before evaluating."""
        self.exact = False
        """Its one filter returns exactly the operations `match` accepts, and `match` says True."""

    @property
    def counted(self) -> bool:
        """Whether a run can count its hits from the seqs its index filter returns (`_count_hits`)."""
        single = self.filters is not None and len(self.filters) == 1
        return (
            self.exact
            and single
            and not self.conditions
            and self.template is None
            and self.seq_source is None
        )

    @property
    def names(self) -> set[str]:
        """Context names its conditions and log message read."""
        names: set[str] = set()
        for condition in self.conditions:
            names |= condition.names
        if self.template is not None:
            names |= self.template.names
        return names

    def status(self) -> BreakpointStatus:
        return BreakpointStatus(self.id, self.verified, self.message, self.definition)


# -- the engine ------------------------------------------------------------------------------------


class ReplayEngine:
    """A cursor over one recorded session; see the module docstring."""

    def __init__(
        self,
        store: Store,
        session: SessionInfo,
        *,
        checkpoint_interval: int = DEFAULT_INTERVAL,
        slow_threshold_ms: float = DEFAULT_THRESHOLD_MS,
        loop_window: int = DEFAULT_WINDOW,
        loop_min_writes: int = DEFAULT_MIN_WRITES,
        save_checkpoints: bool = False,
        owns_store: bool = False,
    ) -> None:
        total = store.last_seq(session)
        if total == 0:
            raise ReplayError(f"session {session.id} has no operations to replay")
        _freeze_heap()
        self.store = store
        self.session = session
        self.total = total
        self.slow_threshold_ms = slow_threshold_ms
        self.loop_window = loop_window
        self.loop_min_writes = loop_min_writes
        self._owns_store = owns_store
        self.folder = Folder(store)
        self.checkpoints = Checkpoints(
            store, session, self.folder, total, interval=checkpoint_interval, save=save_checkpoints
        )
        self._window = _RowWindow(store, session, total)
        self._position = 1
        self._state: StateMap | None = None
        self._state_seq = 0
        self._state_shared = False
        self._undo: deque[tuple[int, list[tuple[StateKey, bytes | None]]]] = deque(maxlen=_UNDO)
        self._tracks: OrderedDict[StateKey, _KeyTrack] = OrderedDict()
        self._actives: dict[tuple[str, Breakpoint], _Active] = {}
        self._next_id = 1
        self._statuses: list[int] | None = None
        self._reconcile_infos: dict[int, ReconcileInfo | None] = {}
        self._loops: _LoopIndex | None = None
        self._helper: ScreenHelper | Literal[False] | None = None
        self.last_stop = Stop("entry", 1, describe_row(self._window.row(1)))

    @classmethod
    def open(
        cls,
        store_or_path: Store | str | os.PathLike[str],
        session: str | SessionInfo = "latest",
        *,
        checkpoint_interval: int = DEFAULT_INTERVAL,
        slow_threshold_ms: float = DEFAULT_THRESHOLD_MS,
        loop_window: int = DEFAULT_WINDOW,
        loop_min_writes: int = DEFAULT_MIN_WRITES,
        save_checkpoints: bool = False,
    ) -> ReplayEngine:
        """Open a session (`latest`, an id or a name) of a store or of a database path/URL.

        A path is opened read-only (with a 32 MiB page cache and no memory map, so that memory
        stays flat however long the recording) and closed with the engine. Checkpoints stored with the
        session are used; missing ones are built in memory as the cursor needs them, and also
        written to the database only when `save_checkpoints` is true (through a separate writable
        connection; a failure to write is logged and the engine carries on in memory).
        """
        owns = not isinstance(store_or_path, Store)
        store = Store.open(store_or_path) if not isinstance(store_or_path, Store) else store_or_path
        try:
            if owns:
                store.limit_read_memory()
            info = session if isinstance(session, SessionInfo) else store.find_session(session)
            return cls(
                store,
                info,
                checkpoint_interval=checkpoint_interval,
                slow_threshold_ms=slow_threshold_ms,
                loop_window=loop_window,
                loop_min_writes=loop_min_writes,
                save_checkpoints=save_checkpoints,
                owns_store=owns,
            )
        except BaseException:
            if owns:
                store.close()
            raise

    def close(self) -> None:
        if isinstance(self._helper, ScreenHelper):
            self._helper.close()
        self.checkpoints.close()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> ReplayEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- where we are --------------------------------------------------------------------------

    @property
    def screen_helper(self) -> ScreenHelper | None:
        """The helper process that screens bodies for long runs (`replay.screening`), once started."""
        return self._helper if isinstance(self._helper, ScreenHelper) else None

    @property
    def position(self) -> int:
        """The seq of the current operation, 1..total; that operation has happened."""
        return self._position

    @property
    def current(self) -> Operation:
        return self._window.operation(self._position)

    def operation(self, seq: int) -> Operation:
        self._check_seq(seq)
        return self._window.operation(seq)

    def operations(self, start: int, stop: int) -> list[Operation]:
        """Operations with start <= seq < stop (clamped to the recording)."""
        return [operation_from_row(row) for row in self._window.rows(start, stop)]

    def describe(self, seq: int | None = None) -> str:
        return describe_row(self._row(self._position if seq is None else seq))

    def _row(self, seq: int) -> Row:
        self._check_seq(seq)
        return self._window.row(seq)

    def _check_seq(self, seq: int) -> None:
        if not 1 <= seq <= self.total:
            raise ReplayError(f"seq {seq} is outside the recording (1..{self.total})")

    # -- moving --------------------------------------------------------------------------------

    def _moved(
        self,
        reason: StopReason,
        seq: int,
        *,
        backwards: bool = False,
        breakpoints: tuple[int, ...] = (),
        logs: Sequence[LogMessage] = (),
        description: str | None = None,
    ) -> Stop:
        self._position = seq
        if description is None:
            if reason == "end":
                description = "end of recording"
            elif reason == "start":
                description = "start of recording"
            else:
                description = describe_row(self._window.row(seq))
        stop = Stop(reason, seq, description, backwards, breakpoints, tuple(logs))
        self.last_stop = stop
        return stop

    def step(self, n: int = 1) -> Stop:
        """Move n operations forward (reason `end` when the end of the recording cut the move short)."""
        if n < 0:
            return self.back(-n)
        target = self._position + n
        if target > self.total or (n == 0 and self._position == self.total):
            return self._moved("end", self.total)
        return self._moved("step", target)

    def back(self, n: int = 1) -> Stop:
        """Move n operations backward (reason `start` when the start cut the move short)."""
        if n < 0:
            return self.step(-n)
        target = self._position - n
        if target < 1 or (n == 0 and self._position == 1):
            return self._moved("start", 1, backwards=True)
        return self._moved("step", target, backwards=True)

    def goto(self, seq: int) -> Stop:
        """Jump to an operation; ReplayError when seq is outside 1..total."""
        self._check_seq(seq)
        return self._moved("goto", seq, backwards=seq < self._position)

    def reset(self) -> Stop:
        """Back to the first operation (reason `entry`), hit counts cleared."""
        for active in self._actives.values():
            active.hits = 0
        return self._moved("entry", 1, backwards=self._position > 1)

    def next_on_object(self, reverse: bool = False) -> Stop:
        """The next (previous) operation on the current operation's object (DAP stepIn)."""
        row = self._window.row(self._position)
        if reverse:
            found = self.store.find_operation_rows(
                self.session, 1, self._position, reverse=True, object_ids={row[ROW_OBJECT]}, limit=1
            )
        else:
            found = self.store.find_operation_rows(
                self.session, self._position + 1, self.total + 1, object_ids={row[ROW_OBJECT]}, limit=1
            )
        if not found:
            return self._moved("start", 1, backwards=True) if reverse else self._moved("end", self.total)
        return self._moved("step", found[0][ROW_SEQ], backwards=reverse)

    # -- bodies and objects --------------------------------------------------------------------

    def load(self, digest: bytes | None) -> JSONValue:
        """A body by digest, decoded (cached); None for None."""
        return self.folder.load(digest)

    def body(self, op: Operation, which: Literal["response", "request"] = "response") -> JSONValue:
        """The decoded request or response body of an operation (None when it had none)."""
        return self.load(op.response_digest if which == "response" else op.request_digest)

    def object_key(self, op: Operation) -> ObjectKey | None:
        """The object the operation is about (from its body if the row has no name); None for collections."""
        key = self.folder.primary_key(self._row(op.seq))
        return ObjectKey(*key) if key is not None else None

    def object_after(self, op: Operation) -> JSONValue:
        """The operation's object in the state after it (None: absent, or a collection operation)."""
        return self.load(self.digest_after(self._row(op.seq)))

    def object_before(self, op: Operation) -> JSONValue:
        """The operation's object in the state before it."""
        return self.load(self.digest_before(self._row(op.seq)))

    def digest_at(self, key: ObjectKey, seq: int | None = None) -> bytes | None:
        """The digest of an object in the state at seq (default: the cursor); None when absent."""
        return self._digest_at(
            (key.api_version, key.resource, key.namespace, key.name), self._position if seq is None else seq
        )

    def _digest_at(self, key: StateKey, seq: int) -> bytes | None:
        if self._state is not None and self._state_seq == seq:
            return self._state.get(key)
        return self._track(key).at(seq)

    def _track(self, key: StateKey) -> _KeyTrack:
        track = self._tracks.get(key)
        if track is None:
            track = self._tracks[key] = _KeyTrack(self, key)
            if len(self._tracks) > _TRACKS:
                self._tracks.popitem(last=False)
        else:
            self._tracks.move_to_end(key)
        return track

    def diff(self, seq: int | None = None, *, ignore: Sequence[str] | None = None) -> list[Change]:
        """What the operation at seq (default: the cursor) changed in the state, field by field.

        Paths are relative to the object; for an operation that changes several objects (a
        LIST) each path starts with `resource/namespace/name:`. `metadata.managedFields` is left
        out unless `ignore` says otherwise (paths as in `paths.parse_path`).
        """
        seq = self._position if seq is None else seq
        row = self._row(seq)
        ignored = DEFAULT_IGNORED if ignore is None else tuple(parse_path(p) for p in ignore)
        effects = self.folder.effects(row)
        changes: list[Change] = []
        for key, after in effects:
            before = self._digest_at(key, seq - 1)
            if before == after:
                continue
            found = diff_documents(self.load(before), self.load(after), ignore=ignored)
            if len(effects) > 1:
                prefix = f"{key[1]}/{key[2]}/{key[3]}:" if key[2] else f"{key[1]}/{key[3]}:"
                found = [Change(prefix + c.path, c.old, c.new) for c in found]
            changes.extend(found)
        return changes

    def object_history(self, key: ObjectKey, *, limit: int | None = None) -> list[HistoryEntry]:
        """Every operation that set or removed the object in the state, in order.

        Each entry has the digest after the operation (None: removed).
        """
        track = self._track((key.api_version, key.resource, key.namespace, key.name))
        history: list[HistoryEntry] = []
        start = 1
        while track.object_ids and start <= self.total:
            rows = self.store.find_operation_rows(
                self.session, start, self.total + 1, object_ids=track.object_ids, limit=4096
            )
            for row in rows:
                touched, digest = track.effect(row)
                if touched:
                    history.append(HistoryEntry(row[ROW_SEQ], row[ROW_VERB], digest))
                    if limit is not None and len(history) >= limit:
                        return history
            if len(rows) < 4096:
                break
            start = rows[-1][ROW_SEQ] + 1
        return history

    # -- state ---------------------------------------------------------------------------------

    def state(self, seq: int | None = None) -> ClusterState:
        """The cluster as the operator had seen it after the operation at seq (default: the cursor)."""
        seq = self._position if seq is None else seq
        self._check_seq(seq)
        entries = self._state_at(seq)
        self._state_shared = True
        return ClusterState(seq, entries, self.load)

    def _checkpoint_state(self, cp: int) -> StateMap:
        return self.checkpoints.nearest(cp)[1] if cp else {}

    def _writable_state(self) -> StateMap:
        assert self._state is not None
        if self._state_shared:
            self._state = dict(self._state)
            self._state_shared = False
        return self._state

    def _state_at(self, target: int) -> StateMap:
        """The engine's cached state moved to `target` (do not keep a reference without `_state_shared`).

        With the collector paused: folding up to a checkpoint interval of rows makes thousands of
        short-lived containers, and collecting them once afterwards instead of every 700
        allocations on the way keeps the older generations' collections, the slow ones, rarer.
        """
        with gc_paused():
            return self._move_state(target)

    def _move_state(self, target: int) -> StateMap:
        if self._state is not None:
            current = self._state_seq
            if current == target:
                return self._state
            if target < current and self._undo and self._undo[0][0] <= target + 1:
                state = self._writable_state()
                while self._undo and self._undo[-1][0] > target:
                    _, undo = self._undo.pop()
                    rollback(state, undo)
                self._state_seq = target
                return state
            if target > current and self.checkpoints.floor(target) <= current:
                self._fold(self._writable_state(), current + 1, target + 1)
                self._state_seq = target
                return self._state
        cp, base = self.checkpoints.nearest(target)
        following = self.checkpoints.next_after(cp)
        if following is not None and target > cp:
            self.checkpoints.prime_names(following)
        self._state = dict(base)
        self._state_shared = False
        self._undo.clear()
        self._fold(self._state, cp + 1, target + 1)
        self._state_seq = target
        return self._state

    def _prime_names(self, low: int, high: int) -> None:
        """Load the names indexes covering operations [low, high) (see `checkpoints`)."""
        checkpoints = self.checkpoints
        following = checkpoints.next_after(low - 1)
        while following is not None:
            checkpoints.prime_names(following)
            if following >= high - 1:
                break
            following = checkpoints.next_after(following)

    def _fold(self, state: StateMap, start: int, stop: int) -> None:
        apply = self.folder.apply
        for row in self._window.rows(start, stop):
            undo: list[tuple[StateKey, bytes | None]] = []
            apply(state, row, undo)
            self._undo.append((row[ROW_SEQ], undo))

    def _adopt_state(self, seq: int, state: StateMap) -> None:
        self._state = state
        self._state_seq = seq
        self._state_shared = False
        self._undo.clear()

    # -- breakpoints ---------------------------------------------------------------------------

    def set_breakpoints(
        self, breakpoints: Sequence[Breakpoint], *, group: str = ""
    ) -> list[BreakpointStatus]:
        """Replace the breakpoints of `group` (e.g. one per source, `function`, `exception`, `data`).

        A definition equal to one already set in the group keeps its id and hit count. Returns a
        status per breakpoint, in order; invalid ones are unverified with a message.
        """
        keep: dict[tuple[str, Breakpoint], _Active] = {}
        statuses: list[BreakpointStatus] = []
        for definition in breakpoints:
            index = (group, definition)
            active = self._actives.get(index) or keep.get(index)
            if active is None:
                active = _Active(self._next_id, group, definition)
                self._next_id += 1
                self._compile(active)
            keep[index] = active
            statuses.append(active.status())
        self._actives = {k: v for k, v in self._actives.items() if k[0] != group}
        self._actives.update(keep)
        return statuses

    def breakpoints(self) -> list[BreakpointStatus]:
        """Every breakpoint set, by id."""
        return [a.status() for a in sorted(self._actives.values(), key=lambda a: a.id)]

    def breakpoint(self, id: int) -> BreakpointStatus | None:
        for active in self._actives.values():
            if active.id == id:
                return active.status()
        return None

    def hit_count(self, id: int) -> int:
        for active in self._actives.values():
            if active.id == id:
                return active.hits
        return 0

    def _distinct_statuses(self) -> list[int]:
        if self._statuses is None:
            self._statuses = self.store.distinct_statuses(self.session)
        return self._statuses

    def _compile(self, active: _Active) -> None:
        definition = active.definition
        try:
            conditions: list[Condition] = []
            if isinstance(definition, ConditionBreakpoint):
                conditions.append(compile_condition(definition.expression))
            if definition.condition is not None and definition.condition.strip():
                conditions.append(compile_condition(definition.condition))
            active.conditions = tuple(conditions)
            active.screens = BodyScreen.for_conditions(conditions)
            if definition.hit_condition is not None and definition.hit_condition.strip():
                active.hit = HitCondition.parse(definition.hit_condition)
            if definition.log_message is not None and definition.log_message != "":
                active.template = compile_template(definition.log_message)
            if isinstance(definition, SeqBreakpoint):
                self._compile_seq(active, definition)
            elif isinstance(definition, SelectorBreakpoint):
                self._compile_selector(active, definition)
            elif isinstance(definition, ConditionBreakpoint):
                self._compile_condition(active)
            elif isinstance(definition, ErrorBreakpoint):
                self._compile_error(active, definition)
            elif isinstance(definition, FieldWatch):
                self._compile_field_watch(active, definition)
            else:
                raise ValueError(f"unknown breakpoint type {type(definition).__name__}")
        except (ConditionError, PathError, ValueError) as error:
            active.verified = False
            active.message = str(error)
            return
        if active.message is None:
            active.verified = True

    def _compile_condition(self, active: _Active) -> None:
        """Candidates from the indexes where the condition's operands say so, else every operation.

        See `replay.prefilter`: the filters only rule out operations where the condition is false.
        """
        active.filters = None
        active.match = lambda row: True
        found = analyse(active.conditions, self.store, self.session, self._distinct_statuses)
        if found is None:
            return
        active.prefilter = found
        active.match = found.admits
        names = active.names
        ids = found.object_ids
        if "state" in names:
            return  # the whole state, folded by a scan; `match` spares evaluating the rest
        if names & {"obj", "old"} == {"obj"}:
            # each operation's own effect gives its `obj` (`digest_after`): no state to fold
            if ids is not None and len(ids) <= _MAX_SELECTOR_IDS:
                active.filters = [_SqlFilter(object_ids=ids, statuses=found.statuses, verbs=found.verbs)]
            return
        if names & {"obj", "old"}:
            if found.fold_ids is None or len(found.fold_ids) > _MAX_SELECTOR_IDS:
                return
            active.filters = [_SqlFilter(object_ids=found.fold_ids)]
            active.fold = True
        elif ids is None or len(ids) <= _MAX_SELECTOR_IDS:
            active.filters = [_SqlFilter(object_ids=ids, statuses=found.statuses, verbs=found.verbs)]
        elif found.statuses is not None or found.verbs is not None:
            active.filters = [_SqlFilter(statuses=found.statuses, verbs=found.verbs)]

    def _compile_seq(self, active: _Active, definition: SeqBreakpoint) -> None:
        seq = definition.seq
        if not 1 <= seq <= self.total:
            raise ValueError(f"seq {seq} is outside the recording (1..{self.total})")
        active.seq_source = lambda low, high: [seq] if low <= seq < high else []
        active.filters = []
        active.match = lambda row: bool(row[ROW_SEQ] == seq)

    def _compile_selector(self, active: _Active, definition: SelectorBreakpoint) -> None:
        kind, namespace, name = parse_selector(definition.selector)
        ids = frozenset(object_id for object_id, _, _ in self.store.find_objects(kind, namespace, name))
        used = bool(ids) and bool(
            self.store.find_operation_rows(self.session, 1, self.total + 1, object_ids=ids, limit=1)
        )
        if not used:
            active.message = f"no operation in this recording matches {definition.selector}"
            active.verified = False
        active.filters = [_SqlFilter(object_ids=ids)] if len(ids) <= _MAX_SELECTOR_IDS else None
        active.match = lambda row: row[ROW_OBJECT] in ids
        active.exact = active.filters is not None

    def _compile_error(self, active: _Active, definition: ErrorBreakpoint) -> None:
        filter_id = definition.filter_id
        if filter_id not in ERROR_FILTER_IDS:
            known = ", ".join(sorted(ERROR_FILTER_IDS))
            raise ValueError(f"unknown error filter {filter_id!r} (known: {known})")
        active.reason = "exception"
        transport = _SqlFilter(statuses=frozenset({0}), exclude_verbs=_NON_ERROR_VERBS)
        match: Match
        if filter_id == ERROR:
            statuses = frozenset(s for s in self._distinct_statuses() if s >= 400)
            active.filters = [_SqlFilter(statuses=statuses), transport]
            match = row_is_error
        elif filter_id in (CONFLICT, NOT_FOUND, FORBIDDEN):
            codes = {
                CONFLICT: frozenset({409}),
                NOT_FOUND: frozenset({404}),
                FORBIDDEN: frozenset({401, 403}),
            }[filter_id]
            active.filters = [_SqlFilter(statuses=codes)]
            active.exact = True

            def match(row: Row) -> bool:
                return bool(row[ROW_STATUS] in codes)
        elif filter_id == SERVER_ERROR:
            statuses = frozenset(s for s in self._distinct_statuses() if s >= 500)
            active.filters = [_SqlFilter(statuses=statuses)]
            active.exact = True

            def match(row: Row) -> bool:
                return bool(row[ROW_STATUS] >= 500)
        elif filter_id == TIMEOUT:
            active.filters = [_SqlFilter(statuses=frozenset({408, 504})), transport]

            def match(row: Row) -> bool:
                status = row[ROW_STATUS]
                if status in (408, 504):
                    return True
                if status != 0 or row[ROW_VERB] in _NON_ERROR_VERBS:
                    return False
                message = (row[ROW_MESSAGE] or "").lower()
                return any(word in message for word in _TIMEOUT_WORDS)
        elif filter_id == SLOW:
            threshold = int(self.slow_threshold_ms * 1000)
            active.filters = [_SqlFilter(min_duration_us=threshold)]

            def match(row: Row) -> bool | str:
                if row[ROW_DURATION_US] < threshold:
                    return False
                return f"slow: {describe_row(row)} took {row[ROW_DURATION_US] / 1000:.0f} ms"
        else:  # LOOP
            if self._loops is None:
                self._loops = _LoopIndex(self, self.loop_window, self.loop_min_writes)
            loops = self._loops
            active.filters = []
            active.seq_source = loops.flagged

            def match(row: Row) -> bool | str:
                if not loops.in_loop(row):
                    return False
                return (
                    f"hot loop: {describe_row(row)} (at least {loops.min_writes} writes to the object"
                    f" in {loops.window} operations)"
                )

        active.match = match

    def _compile_field_watch(self, active: _Active, definition: FieldWatch) -> None:
        path = parse_path(definition.path)
        key = definition.key
        track = _KeyTrack(self, (key.api_version, key.resource, key.namespace, key.name))
        active.reason = "data-breakpoint"
        if not track.object_ids:
            active.message = f"no operation in this recording touches {key}"
            active.verified = False
        active.filters = [_SqlFilter(object_ids=track.object_ids)]
        load = self.load

        def match(row: Row) -> bool | str:
            touched, after = track.effect(row)
            if not touched:
                return False
            before = track.at(row[ROW_SEQ] - 1)
            if before == after:
                return False
            old, new = get_path(load(before), path), get_path(load(after), path)
            if _same(old, new):
                return False
            what = row[ROW_KIND] if row[ROW_RESOURCE] == key.resource and row[ROW_KIND] else key.resource
            what = what.removesuffix("List") if what != "List" else what
            where = f"{key.namespace}/{key.name}" if key.namespace else key.name
            return f"{definition.path} of {what} {where}: {_show(old)} → {_show(new)}"

        active.match = match

    # -- running -------------------------------------------------------------------------------

    def run(
        self,
        reverse: bool = False,
        *,
        progress: Callable[[float], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> Stop:
        """To the next (previous) operation where a breakpoint stops, else to the last (first) one.

        Logpoints met on the way are in `Stop.logs`. `progress(fraction)` is called after each
        batch; when `cancel.is_set()` the run stops where it got to, with reason `pause`.
        """
        actives = sorted((a for a in self._actives.values() if a.verified), key=lambda a: a.id)
        if reverse and self._position <= 1:
            return self._moved("start", 1, backwards=True)
        if not reverse and self._position >= self.total:
            return self._moved("end", self.total)
        if not actives:
            return self._moved("start", 1, backwards=True) if reverse else self._moved("end", self.total)
        with gc_paused():
            if any(a.filters is None for a in actives):
                return self._scan(actives, reverse, progress, cancel)
            if all(a.counted for a in actives):
                return self._count_hits(actives, reverse, progress, cancel)
            return self._candidates(actives, reverse, progress, cancel)

    def _evaluate(
        self,
        row: Row,
        actives: list[_Active],
        logs: list[LogMessage],
        pair: DigestPair | None = None,
        running: StateMap | None = None,
    ) -> list[tuple[_Active, bool | str]]:
        stopping: list[tuple[_Active, bool | str]] = []
        context: OperationContext | None = None
        for active in actives:
            found = active.match(row)
            if found is False:
                continue
            if active.conditions:
                if active.screens and not self._screened_in(active.screens, row, pair):
                    continue
                if context is None:
                    context = OperationContext(row, self, pair, running)
                if not all(condition.test(context) for condition in active.conditions):
                    continue
            active.hits += 1
            if active.hit is not None and not active.hit(active.hits):
                continue
            if active.template is not None:
                if context is None:
                    context = OperationContext(row, self, pair, running)
                logs.append(LogMessage(row[ROW_SEQ], active.id, active.template.render(context)))
                continue
            stopping.append((active, found))
        return stopping

    def _screened_in(self, screens: tuple[BodyScreen, ...], row: Row, pair: DigestPair | None) -> bool:
        """False where a field equality of the conditions is certainly false (see `BodyScreen`)."""
        text = self.folder.text
        for screen in screens:
            if screen.root == "obj":
                digest = pair[1] if pair is not None else self.digest_after(row)
            elif pair is not None and pair[0] is not NOT_COMPUTED:
                digest = pair[0]
            else:
                digest = self.digest_before(row)
            if digest is None or not screen.admits(digest, text):
                return False  # a field of an absent object is None, and the literal is not
        return True

    def _stopped(
        self, row: Row, stopping: list[tuple[_Active, bool | str]], reverse: bool, logs: list[LogMessage]
    ) -> Stop:
        reasons = {active.reason for active, _ in stopping}
        reason: StopReason = "data-breakpoint"
        if "breakpoint" in reasons:
            reason = "breakpoint"
        elif "exception" in reasons:
            reason = "exception"
        described = next(
            (found for active, found in stopping if isinstance(found, str) and active.reason == reason), None
        )
        return self._moved(
            reason,
            row[ROW_SEQ],
            backwards=reverse,
            breakpoints=tuple(a.id for a, _ in stopping),
            logs=logs,
            description=described,
        )

    # the context's resolver (see context.Resolver)

    def digest_before(self, row: Row) -> bytes | None:
        """The digest of the row's object in the state before it (`old`)."""
        key = self.folder.primary_key(row)
        return None if key is None else self._digest_at(key, row[ROW_SEQ] - 1)

    def digest_after(self, row: Row) -> bytes | None:
        """The digest of the row's object in the state after it (`obj`).

        When the operation itself set or removed the object, its own effect is the answer: no
        walk of the object's history (that walk was most of a debugger step's tail latency, and
        it lets a run over `obj` conditions skip folding the state).
        """
        effect = self.folder.own_effect(row)
        if effect is not None:
            return effect[1]
        key = self.folder.primary_key(row)
        if key is None:
            return None
        seq = row[ROW_SEQ]
        if self._state is not None and self._state_seq == seq:
            return self._state.get(key)
        return self._track(key).latest(seq)

    def state_view(self, seq: int, running: StateMap | None) -> StateView:
        """`state` in an expression: a snapshot of the scan's running state, else computed."""
        entries = dict(running) if running is not None else dict(self._state_at(seq))
        return StateView(ClusterState(seq, entries, self.load), self._resources_of_kind)

    def _resources_of_kind(self, kind: str) -> frozenset[str]:
        """The resources whose objects have this kind (any case), from the store's interned objects."""
        if self._kinds is None:
            self._kinds = {}
            for _, key, found in self.store.find_objects():
                self._kinds.setdefault(found.lower(), set()).add(key.resource)
        return frozenset(self._kinds.get(kind.lower(), ()))

    def _paused(self, seq: int, reverse: bool, logs: list[LogMessage]) -> Stop:
        seq = min(max(seq, 1), self.total)
        return self._moved(
            "pause",
            seq,
            backwards=reverse,
            logs=logs,
            description=f"paused at {describe_row(self._window.row(seq))}",
        )

    def _end(self, reverse: bool, logs: list[LogMessage]) -> Stop:
        if reverse:
            return self._moved("start", 1, backwards=True, logs=logs)
        return self._moved("end", self.total, logs=logs)

    def _scan(
        self,
        actives: list[_Active],
        reverse: bool,
        progress: Callable[[float], None] | None,
        cancel: CancelToken | None,
    ) -> Stop:
        """Evaluate every operation in order (a condition breakpoint needs all of them).

        Batches of rows are read in seq order. When an expression reads `obj` or `old`, the
        batch is folded into the state first (from the previous batch going forwards, from the
        nearest checkpoint going backwards) to know each operation's before/after digests, and
        the bodies are fetched in one query, to be decoded only if an expression reads them.
        An expression that reads `state` going forwards is evaluated as the fold goes.
        """
        logs: list[LogMessage] = []
        names: set[str] = set()
        for active in actives:
            names |= active.names
        needs_pairs = bool(names & {"obj", "old"})
        live_state = "state" in names and not reverse
        screens = [active.prefilter.admits for active in actives if active.prefilter is not None]
        screened = len(screens) == len(actives)  # else every row is evaluated by some breakpoint
        origin = self._position
        span = (origin - 1) if reverse else (self.total - origin)
        folder = self.folder
        running: StateMap | None = None
        seq = origin - 1 if reverse else origin + 1
        while 1 <= seq <= self.total:
            if cancel is not None and cancel.is_set():
                where = seq + 1 if reverse else seq - 1
                if running is not None:
                    self._adopt_state(where, running)
                return self._paused(where, reverse, logs)
            if reverse:
                low, high = max(1, seq - _SCAN_BATCH + 1), seq + 1
            else:
                low, high = seq, min(seq + _SCAN_BATCH, self.total + 1)
            rows = self.store.operation_rows(self.session, low, high)
            if not rows:
                break
            if needs_pairs or live_state:
                self._prime_names(low, high)
            if live_state:
                if running is None:
                    running = dict(self._state_at(low - 1))
                for row in rows:
                    key = folder.primary_key(row)
                    before = running.get(key) if key is not None else None
                    folder.apply(running, row)
                    pair = (before, running.get(key) if key is not None else None)
                    stopping = self._evaluate(row, actives, logs, pair, running)
                    if stopping:
                        self._adopt_state(row[ROW_SEQ], running)
                        return self._stopped(row, stopping, reverse, logs)
            else:
                pairs: list[DigestPair] | None = None
                if needs_pairs:
                    if reverse or running is None:
                        state = dict(self._state_at(low - 1)) if low > 1 else {}
                    else:
                        state = running
                    pairs = []
                    for row in rows:
                        key = folder.primary_key(row)
                        before = state.get(key) if key is not None else None
                        folder.apply(state, row)
                        pairs.append((before, state.get(key) if key is not None else None))
                    if not reverse:
                        running = state
                if needs_pairs or "req" in names:
                    # the bodies the expressions may read, of the rows some breakpoint evaluates
                    wanted: list[bytes | None] = []
                    for index, row in enumerate(rows):
                        if screened and not any(screen(row) for screen in screens):
                            continue
                        if pairs is not None:
                            before, after = pairs[index]
                            wanted.append(before if "old" in names else None)
                            wanted.append(after if "obj" in names else None)
                        if "req" in names:
                            wanted.append(row[ROW_REQUEST])
                    folder.prefetch(wanted)
                indexes = range(len(rows) - 1, -1, -1) if reverse else range(len(rows))
                for index in indexes:
                    row = rows[index]
                    stopping = self._evaluate(row, actives, logs, pairs[index] if pairs is not None else None)
                    if stopping:
                        return self._stopped(row, stopping, reverse, logs)
            seq = low - 1 if reverse else rows[-1][ROW_SEQ] + 1
            if progress is not None:
                done = (origin - 1 - seq) if reverse else (seq - 1 - origin)
                progress(min(1.0, done / max(1, span)))
        if running is not None:
            self._adopt_state(self.total, running)
        return self._end(reverse, logs)

    def _candidates(
        self,
        actives: list[_Active],
        reverse: bool,
        progress: Callable[[float], None] | None,
        cancel: CancelToken | None,
    ) -> Stop:
        """Evaluate only the operations the indexes name as candidates, window by window.

        When every breakpoint screens bodies (`BodyScreen`) and the run outlives its first window,
        a helper process screens each window's bodies while this one reads and prepares the next
        (`replay.screening`); the evaluation then finds the screens answered.
        """
        logs: list[LogMessage] = []
        filters: list[_SqlFilter] = []
        for active in actives:
            for sql_filter in active.filters or ():
                if sql_filter not in filters:
                    filters.append(sql_filter)
        sources = [active.seq_source for active in actives if active.seq_source is not None]
        origin = self._position
        sweep = _Sweep(origin, self.total, reverse)
        # condition breakpoints that read obj/old: their candidates and the operations that decide
        # those objects' state come from `fold_ids`, folded in seq order into a state that is exact
        # for the candidates' objects (see `replay.prefilter`)
        folding = [active.prefilter for active in actives if active.fold and active.prefilter is not None]
        fold_ids: frozenset[int] = frozenset().union(*(p.fold_ids or () for p in folding))
        exact_ids: frozenset[int] = frozenset().union(*(p.object_ids or () for p in folding))
        partial: StateMap | None = dict(self._state_at(origin)) if folding and not reverse else None
        names = set().union(*(active.names for active in actives))
        read_old, read_obj = "old" in names, "obj" in names
        screens = [active for active in actives if active.screens]
        all_screens = [screen for active in screens for screen in active.screens]
        roots = {screen.root for screen in all_screens}
        screened = len(screens) == len(actives)  # nothing is evaluated without its screens passing
        screened_by = all_screens if screened else None
        covered = _covered_ids(filters) if read_obj and not folding else None
        known = _KnownObjects(self, covered) if covered and not reverse else None
        # folding and reading bodies read many: fewer, larger windows (and fewer delta chains to walk)
        limit = _SCAN_BATCH if folding or read_obj or read_old else _CANDIDATES
        helper = self.screen_helper if screened and all_screens else None
        in_flight: _CandidateWindow | None = None  # screened by the helper, evaluated next
        while sweep.running:
            cursor = sweep.cursor
            if cancel is not None and cancel.is_set():
                return self._paused(sweep.resume(in_flight.start if in_flight else cursor), reverse, logs)
            low, high, bound = sweep.window()
            first_window = sweep.first
            found: dict[int, Row | None] = {}
            for sql_filter in filters:
                rows = self.store.find_operation_rows(
                    self.session, low, high, reverse=reverse, limit=limit, **sql_filter.kwargs()
                )
                bound = sweep.clip(bound, rows, limit)
                for row in rows:
                    found[row[ROW_SEQ]] = row
            for source in sources:
                for seq in source(bound, high) if reverse else source(low, bound + 1):
                    found.setdefault(seq, None)  # read when its turn comes
            ordered = sorted((s for s in found if (s >= bound if reverse else s <= bound)), reverse=reverse)
            pairs, wanted = self._fold_candidates(
                found, ordered, reverse, partial, fold_ids, exact_ids, folding, read_old, read_obj
            )
            window = _CandidateWindow(cursor, ordered, found, pairs)
            helped = helper is not None and helper.ready and not helper.failed
            if known is not None:  # forwards: every operation paired
                self._pair_in_order(window, known, None)
            elif helped:  # backwards, each window's own known objects (those before it are unread)
                self._pair_in_order(window, _KnownObjects(self, covered) if covered else None, actives, roots)
            if helper is not None and helped:
                helper.collect()
                for chunk in self._unscreened(window, all_screens):
                    helper.submit(all_screens, chunk)
            else:
                if read_obj and len(folding) < len(actives):
                    # `obj` of an operation that sets its object is its response (`digest_after`)
                    wanted.extend(row[ROW_RESPONSE] for row in found.values() if row is not None)
                self.folder.prefetch(wanted)
                if reverse and screens:
                    window_known = _KnownObjects(self, covered) if covered else None  # rows before it: unread
                    self._screen_in_order(window, screens, window_known)
            if in_flight is not None:
                stopped = self._evaluate_window(in_flight, actives, logs, reverse, screened_by)
                if stopped is not None:
                    return stopped
                in_flight = None
            if helper is not None and helper.busy:
                in_flight = window
            else:
                stopped = self._evaluate_window(window, actives, logs, reverse, screened_by)
                if stopped is not None:
                    return stopped
            sweep.advance(bound, progress)
            if helper is None and first_window and screened and all_screens:
                helper = self._start_screen_helper(sweep.remaining)
        if in_flight is not None:
            if helper is not None:
                helper.collect()
            stopped = self._evaluate_window(in_flight, actives, logs, reverse, screened_by)
            if stopped is not None:
                return stopped
        return self._end(reverse, logs)

    def _count_hits(
        self,
        actives: list[_Active],
        reverse: bool,
        progress: Callable[[float], None] | None,
        cancel: CancelToken | None,
    ) -> Stop:
        """A run whose breakpoints are all `counted`: each hit is a seq its filter's index returns,
        so the run reads seqs alone, counts, and reads the one row it stops at."""
        sweep = _Sweep(self._position, self.total, reverse)
        while sweep.running:
            if cancel is not None and cancel.is_set():
                return self._paused(sweep.resume(sweep.cursor), reverse, [])
            low, high, bound = sweep.window()
            hit_by: dict[int, list[_Active]] = {}
            for active in actives:  # in id order, as `_evaluate` takes them
                sql_filter = active.filters[0] if active.filters else _SqlFilter()
                rows = self.store.find_operation_rows(
                    self.session,
                    low,
                    high,
                    reverse=reverse,
                    limit=_SCAN_BATCH,
                    seq_only=True,
                    **sql_filter.kwargs(),
                )
                bound = sweep.clip(bound, rows, _SCAN_BATCH)
                for (seq,) in rows:
                    hit_by.setdefault(seq, []).append(active)
            for seq in sorted(
                (s for s in hit_by if (s >= bound if reverse else s <= bound)), reverse=reverse
            ):
                stopping: list[tuple[_Active, bool | str]] = []
                for active in hit_by[seq]:
                    active.hits += 1
                    if active.hit is None or active.hit(active.hits):
                        stopping.append((active, True))
                if stopping:
                    return self._stopped(self._window.row(seq), stopping, reverse, [])
            sweep.advance(bound, progress)
        return self._end(reverse, [])

    def _evaluate_window(
        self,
        window: _CandidateWindow,
        actives: list[_Active],
        logs: list[LogMessage],
        reverse: bool,
        screens: list[BodyScreen] | None = None,
    ) -> Stop | None:
        """Evaluate a window's operations in order; `screens`: those of every breakpoint, when each
        has some (a window where none admits any body holds no hit, and is passed over)."""
        if screens and window.paired and not _admits_any(window.pairs, screens):
            return None
        pairs, found = window.pairs, window.found
        for seq in window.ordered:
            candidate = found[seq]
            row = candidate if candidate is not None else self._window.row(seq)
            stopping = self._evaluate(row, actives, logs, pairs.get(seq))
            if stopping:
                return self._stopped(row, stopping, reverse, logs)
        return None

    @staticmethod
    def _unscreened(window: _CandidateWindow, screens: list[BodyScreen]) -> list[list[bytes]]:
        """The window's body digests some screen has not answered yet, in seq order, in requests.

        With them, the response of a delete: the version the object's next one (after a create)
        is a delta of, which the helper would otherwise decode from the bottom of its chain.
        """
        wanted: dict[bytes, None] = {}
        pairs, found = window.pairs, window.found
        for seq in sorted(found):
            row = found[seq]
            if row is not None and (row[ROW_VERB] == "delete" or row[ROW_EVENT] == "DELETED"):
                response = row[ROW_RESPONSE]
                if response is not None and row[ROW_STATUS] < 400 and response not in wanted:
                    wanted[response] = None
            pair = pairs.get(seq)
            if pair is None:
                continue
            for screen in screens:
                digest = pair[1] if screen.root == "obj" else pair[0]
                if isinstance(digest, bytes) and digest not in wanted and screen.answer(digest) is None:
                    wanted[digest] = None
        digests = list(wanted)
        size = max(1, min(MAX_DIGESTS, _SCREEN_ANSWER_BYTES // len(screens)))
        return [digests[start : start + size] for start in range(0, len(digests), size)]

    def _start_screen_helper(self, remaining: int) -> ScreenHelper | None:
        """A screening helper for a run with more than `SCREEN_HELPER_MIN_SPAN` operations left
        (once per engine: a helper that failed is not replaced)."""
        if self._helper is None and remaining > self.SCREEN_HELPER_MIN_SPAN and self.store.target is not None:
            self._helper = ScreenHelper.start(self.store.target) or False
        return self.screen_helper

    def _fold_candidates(
        self,
        found: dict[int, Row | None],
        ordered: list[int],
        reverse: bool,
        partial: StateMap | None,
        fold_ids: frozenset[int],
        exact_ids: frozenset[int],
        folding: list[Prefilter],
        read_old: bool = True,
        read_obj: bool = True,
    ) -> tuple[dict[int, DigestPair], list[bytes | None]]:
        """(old, obj) of the window's candidates of folding breakpoints, and the bodies to prefetch.

        Forwards, `partial` carries on from the previous window; backwards, each window starts
        from the state before its first seq.
        """
        if not folding or not ordered:
            return {}, []
        low, high = (ordered[-1], ordered[0]) if reverse else (ordered[0], ordered[-1])
        state = partial if partial is not None else (dict(self._state_at(low - 1)) if low > 1 else {})
        self._prime_names(low, high + 1)
        folder = self.folder
        pairs: dict[int, DigestPair] = {}
        wanted: list[bytes | None] = []
        for seq in reversed(ordered) if reverse else ordered:
            row = found[seq]
            if row is None or row[ROW_OBJECT] not in fold_ids:
                continue
            key = folder.primary_key(row)
            before = state.get(key) if key is not None else None
            folder.apply(state, row)
            if row[ROW_OBJECT] in exact_ids:
                after = state.get(key) if key is not None else None
                pairs[seq] = (before, after)
                if any(p.admits(row) for p in folding):
                    wanted.append(before if read_old else None)
                    wanted.append(after if read_obj else None)
        return pairs, wanted

    def _pair_in_order(
        self,
        window: _CandidateWindow,
        known: _KnownObjects | None,
        actives: list[_Active] | None,
        roots: Collection[str] = ("obj",),
    ) -> None:
        """(old, obj) digests of the window's operations some breakpoint matches (all of them when
        `actives` is None), in seq order: `obj` from `known` when given (it must see every
        operation), else probed, like `old`, for the screens' `roots`. Kept in `window.pairs`."""
        pairs, found = window.pairs, window.found
        window.paired = True
        for seq in sorted(window.ordered):
            candidate = found[seq]
            if candidate is None and known is None:
                window.paired = False
                continue
            row = candidate if candidate is not None else self._window.row(seq)
            after = known.after(row) if known is not None else NOT_COMPUTED
            if seq in pairs or (actives is not None and all(a.match(row) is False for a in actives)):
                continue
            if after is NOT_COMPUTED and "obj" in roots:
                after = self.digest_after(row)
            pairs[seq] = (self.digest_before(row) if "old" in roots else NOT_COMPUTED, after)

    def _screen_in_order(
        self, window: _CandidateWindow, actives: list[_Active], known: _KnownObjects | None
    ) -> None:
        """Run the body screens over a window in seq order before a backwards run evaluates it.

        A body is stored as a delta against the object's previous version: decoded newest first,
        each one would decode its chain of older versions again. The screens memoize per digest,
        so the backwards evaluation that follows finds them answered, and the digests in
        `window.pairs`.
        """
        self._pair_in_order(window, known, actives)
        pairs, found = window.pairs, window.found
        for seq in sorted(pairs):
            row = found.get(seq)
            if row is not None:
                for active in actives:
                    if active.screens and active.match(row) is not False:
                        self._screened_in(active.screens, row, pairs[seq])

    # -- for front ends: the condition context, reconciles, find ---------------------------------

    SCREEN_HELPER_MIN_SPAN: ClassVar[int] = 100_000
    """Operations a screened run must have left after its first window to start a helper process."""
    RECONCILE_GAP: ClassVar[int] = 1000
    """Operations in a row without one of a reconcile's own that end it (see `reconcile_span`)."""
    _reconcile_spans: OrderedDict[int, tuple[int, int]] | None = None
    _kinds: dict[str, set[str]] | None = None

    def context(self, seq: int | None = None) -> OperationContext:
        """The condition language's names at an operation (default: the cursor), each computed on first read.

        The mapping breakpoint conditions see, for watches, hovers and the REPL to evaluate against.
        """
        return OperationContext(self._row(self._position if seq is None else seq), self)

    def reconcile_info(self, seq: int | None = None) -> ReconcileInfo | None:
        """What the reconcile of the operation at seq (default: the cursor) was about, when recorded."""
        reconcile = self._row(self._position if seq is None else seq)[ROW_RECONCILE]
        if reconcile is None:
            return None
        if reconcile not in self._reconcile_infos:
            if len(self._reconcile_infos) >= 1024:
                self._reconcile_infos.clear()
            self._reconcile_infos[reconcile] = self.store.reconcile_info(self.session, reconcile)
        return self._reconcile_infos[reconcile]

    def reconcile_span(self, seq: int | None = None) -> tuple[int, int] | None:
        """(first, last) seq of the reconcile the operation at seq (default: the cursor) belongs to.

        None when the operation is outside any reconcile. Reconcile ids have no index, so the span
        is read from the rows around seq: operations of other reconciles (or of none) in between do
        not end it, since reconciles interleave across threads and asyncio tasks, but
        `RECONCILE_GAP` operations in a row without one of its own do. Memoized per reconcile id.
        """
        seq = self._position if seq is None else seq
        reconcile = self._row(seq)[ROW_RECONCILE]
        if reconcile is None:
            return None
        if self._reconcile_spans is None:
            self._reconcile_spans = OrderedDict()
        span = self._reconcile_spans.get(reconcile)
        if span is None or not span[0] <= seq <= span[1]:
            span = (self._reconcile_edge(reconcile, seq, -1), self._reconcile_edge(reconcile, seq, 1))
            self._reconcile_spans[reconcile] = span
            if len(self._reconcile_spans) > _CHUNKS * 4:
                self._reconcile_spans.popitem(last=False)
        return span

    def _reconcile_edge(self, reconcile: int, seq: int, direction: int) -> int:
        edge = seq
        misses = 0
        while misses < self.RECONCILE_GAP:
            if direction > 0:
                low, high = edge + misses + 1, min(self.total + 1, edge + misses + 1 + _CHUNK)
                rows: Iterable[Row] = list(self._window.rows(low, high))
            else:
                low, high = max(1, edge - misses - _CHUNK), edge - misses
                rows = reversed(list(self._window.rows(low, high)))
            seen = False
            for row in rows:
                seen = True
                if row[ROW_RECONCILE] == reconcile:
                    edge, misses = row[ROW_SEQ], 0
                else:
                    misses += 1
                    if misses >= self.RECONCILE_GAP:
                        break
            if not seen:
                break
        return edge

    def step_out(self) -> Stop:
        """To the first operation after the current reconcile (DAP stepOut); outside one, a step."""
        span = self.reconcile_span()
        if span is None:
            return self.step()
        if span[1] >= self.total:
            return self._moved("end", self.total)
        return self._moved("step", span[1] + 1)

    def find(
        self,
        expression: str,
        *,
        reverse: bool = False,
        progress: Callable[[float], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> Stop | None:
        """To the next (previous) operation where `expression` is true, the breakpoints left aside.

        Reason `goto`. None when no operation matches, or when `cancel` fired: the cursor then stays
        where it was. An invalid expression is a `ConditionError`.
        """
        active = _Active(0, "find", ConditionBreakpoint(expression))
        self._compile(active)
        if not active.verified:
            raise ConditionError(active.message or f"invalid condition {expression!r}")
        origin, last_stop, actives = self._position, self.last_stop, self._actives
        self._actives = {("find", active.definition): active}
        try:
            stop = self.run(reverse, progress=progress, cancel=cancel)
        finally:
            self._actives = actives
        if stop.reason != "breakpoint":
            self._position, self.last_stop = origin, last_stop
            return None
        return self._moved("goto", stop.seq, backwards=reverse)
