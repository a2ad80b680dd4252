"""Hot loops, ping-pong writers and periodic writes, found in one streaming pass.

The unit is a *cycle* on an object: a reconcile that wrote the object or started on it (its first
operation names it), or a write made outside any reconcile. Several writes of one reconcile to
one object are one cycle, so an operator that patches `spec` and then `status` is not counted
twice, while a reconcile that keeps re-triggering itself is counted once per round.

- Hot loop: an object whose last `min_count` cycles all fit within `window` operations and
  `window_seconds` seconds (either may be None to ignore it). An episode opens when that first
  holds and goes on while cycles keep coming; it closes when the object stays quiet for a whole
  window (a gap of more than `window` operations or `window_seconds` seconds).
- Ping-pong: writes to one object alternating between two threads (A B A B ...), consecutive
  writes within the same windows, at least `min_flips` changes of hand. For candidate objects
  only (thread ping-pongs and hot loops, a few dozen at most), `add_field_fights` then decodes
  the request bodies of a few sampled writes: a field set back and forth names the fight (and
  finds fights between two controllers sharing one thread); a thread ping-pong whose bodies
  show no such field is a worker pool taking turns and is dropped.
- Periodic: cycles on one object at a regular interval (coefficient of variation of the
  intervals <= `periodic_jitter`, at least `periodic_min_count` cycles).

State per object is a few numbers and a deque of `min_count` entries: memory grows with the
number of objects written, not with the length of the session.
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, Protocol

import orjson

from opreplay.analysis import rows as R
from opreplay.analysis.results import HotLoop, LoopReport, ObjectRef, Periodic, PingPong
from opreplay.model import WRITE_VERBS, JSONValue, Operation, SessionInfo
from opreplay.progress import ProgressCallback

DEFAULT_WINDOW = 2000
DEFAULT_WINDOW_SECONDS = 10.0
DEFAULT_MIN_COUNT = 10
DEFAULT_MIN_FLIPS = 6
DEFAULT_PERIODIC_MIN_COUNT = 6
DEFAULT_PERIODIC_JITTER = 0.1
MAX_SAMPLES = 10
MAX_FINDINGS = 10_000
_MAX_INTERVALS = 512
_WRITE_SAMPLES = 8
_MAX_DECODED = 50
_MAX_LEAVES = 5000
_IGNORED_FIELDS = ("metadata.resourceVersion", "metadata.generation", "metadata.managedFields")


class _Episode:
    __slots__ = (
        "count",
        "end_seq",
        "end_ts",
        "first_seq",
        "first_ts",
        "gaps_ops",
        "gaps_s",
        "last_seq",
        "last_ts",
        "samples",
        "write_seqs",
        "writes",
        "writes_before",
    )

    def __init__(self, recent: Iterable[tuple[int, float, int]], writes: Iterable[int]) -> None:
        entries = list(recent)
        self.first_seq, self.first_ts, self.writes_before = entries[0]
        self.last_seq, self.last_ts, _ = entries[-1]
        self.end_seq, self.end_ts = self.last_seq, self.last_ts  # the last cycle or write
        self.count = len(entries)
        self.samples = [entry[0] for entry in entries[:MAX_SAMPLES]]
        self.gaps_ops = [b[0] - a[0] for a, b in itertools.pairwise(entries)]
        self.gaps_s = [b[1] - a[1] for a, b in itertools.pairwise(entries)]
        self.write_seqs = [seq for seq in writes if seq >= self.first_seq]
        self.writes = 0  # set when the episode closes


class _State:
    __slots__ = (
        "count",
        "episode",
        "first_seq",
        "flips",
        "last_rec",
        "last_seq",
        "last_ts",
        "last_write_seq",
        "last_write_ts",
        "m2",
        "mean",
        "other",
        "pp_first_seq",
        "pp_first_ts",
        "pp_samples",
        "recent",
        "recent_writes",
        "writer",
        "writes",
    )

    def __init__(self, min_count: int) -> None:
        self.recent: deque[tuple[int, float, int]] = deque(maxlen=min_count)
        self.recent_writes: deque[int] = deque(maxlen=_WRITE_SAMPLES)
        self.last_rec: int | None = None
        self.count = 0
        self.writes = 0
        self.first_seq = 0
        self.last_seq = 0
        self.last_ts = 0.0
        self.mean = 0.0
        self.m2 = 0.0
        self.episode: _Episode | None = None
        self.writer: str | None = None
        self.other: str | None = None
        self.flips = 0
        self.pp_first_seq = 0
        self.pp_first_ts = 0.0
        self.pp_samples: list[int] = []
        self.last_write_seq = 0
        self.last_write_ts = 0.0


class LoopDetector:
    """Feed it operations in seq order (`feed`, or the cheaper `on_write` / `on_reconcile_start`).

    `names` maps the object ids used by the `on_*` methods to (kind, namespace, name); `feed`
    fills it itself.
    """

    def __init__(
        self,
        *,
        window: int | None = DEFAULT_WINDOW,
        window_seconds: float | None = DEFAULT_WINDOW_SECONDS,
        min_count: int = DEFAULT_MIN_COUNT,
        min_flips: int = DEFAULT_MIN_FLIPS,
        periodic_min_count: int = DEFAULT_PERIODIC_MIN_COUNT,
        periodic_jitter: float = DEFAULT_PERIODIC_JITTER,
        names: dict[Any, tuple[str, str, str]] | None = None,
    ) -> None:
        if window is None and window_seconds is None:
            raise ValueError("a loop needs a window: give window, window_seconds or both")
        if min_count < 2:
            raise ValueError("min_count must be at least 2")
        self.window = window if window is not None else math.inf
        self.window_seconds = window_seconds if window_seconds is not None else math.inf
        self.min_count = min_count
        self.min_flips = max(1, min_flips)
        self.periodic_min_count = max(3, periodic_min_count)
        self.periodic_jitter = periodic_jitter
        self.names: dict[Any, tuple[str, str, str]] = names if names is not None else {}
        self.parameters: dict[str, Any] = {
            "window": window,
            "window_seconds": window_seconds,
            "min_count": min_count,
            "min_flips": self.min_flips,
            "periodic_min_count": self.periodic_min_count,
            "periodic_jitter": periodic_jitter,
        }
        self._states: dict[Any, _State] = {}
        self._hot: list[tuple[Any, _Episode, list[int]]] = []
        self._pingpong: list[PingPong] = []
        self._pp_writes: list[list[int]] = []
        self._threads: dict[str, int | None] = {}
        self.omitted = 0
        self.write_samples: dict[HotLoop, list[int]] = {}
        """After `finish`: the last few write seqs of each hot loop (for `add_field_fights`)."""
        self.pingpong_write_samples: dict[PingPong, list[int]] = {}

    # -- input -----------------------------------------------------------------------------

    def feed(self, op: Operation) -> None:
        """One operation, for callers that have `Operation`s rather than rows."""
        key = (op.api_version, op.resource, op.namespace, op.name)
        if key not in self.names:
            self.names[key] = (op.kind, op.namespace, op.name)
        rec = op.reconcile
        if rec is not None and self._threads.get(op.thread) != rec:
            self._threads[op.thread] = rec
            if op.verb not in WRITE_VERBS:
                self.on_reconcile_start(key, op.seq, op.ts, rec)
        if op.verb in WRITE_VERBS:
            self.on_write(key, op.seq, op.ts, op.thread, rec)

    def on_reconcile_start(self, key: Any, seq: int, ts: float, rec: int) -> None:
        """The first operation of reconcile `rec` touched object `key` (and is not a write)."""
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State(self.min_count)
        if state.last_rec != rec:
            state.last_rec = rec
            self._cycle(key, state, seq, ts)

    def on_write(self, key: Any, seq: int, ts: float, thread: str, rec: int | None) -> None:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State(self.min_count)
        if rec is None or state.last_rec != rec:
            state.last_rec = rec
            self._cycle(key, state, seq, ts)
        state.writes += 1
        state.recent_writes.append(seq)
        episode = state.episode
        if episode is not None:
            episode.end_seq = seq
            episode.end_ts = ts
            if len(episode.write_seqs) < _WRITE_SAMPLES:
                episode.write_seqs.append(seq)
        # ping-pong: who holds the pen
        if thread != state.writer:
            writer = state.writer
            if writer is None:
                state.writer = thread
            else:
                if state.flips and (
                    thread != state.other
                    or seq - state.last_write_seq > self.window
                    or ts - state.last_write_ts > self.window_seconds
                ):
                    self._close_pingpong(key, state)
                if not state.flips:
                    state.pp_first_seq = state.last_write_seq
                    state.pp_first_ts = state.last_write_ts
                    state.pp_samples = [state.last_write_seq]
                state.flips += 1
                state.other = writer
                state.writer = thread
                if len(state.pp_samples) < MAX_SAMPLES:
                    state.pp_samples.append(seq)
        elif state.flips and (
            seq - state.last_write_seq > self.window or ts - state.last_write_ts > self.window_seconds
        ):
            self._close_pingpong(key, state)
        state.last_write_seq = seq
        state.last_write_ts = ts

    def _cycle(self, key: Any, state: _State, seq: int, ts: float) -> None:
        count = state.count
        if count:
            interval = ts - state.last_ts
            delta = interval - state.mean
            state.mean += delta / count
            state.m2 += delta * (interval - state.mean)
        else:
            state.first_seq = seq
        state.count = count + 1
        recent = state.recent
        recent.append((seq, ts, state.writes))
        episode = state.episode
        if episode is not None:
            # once open, a loop goes on until it pauses for a whole window
            if seq - episode.last_seq <= self.window and ts - episode.last_ts <= self.window_seconds:
                if len(episode.gaps_ops) < _MAX_INTERVALS:
                    episode.gaps_ops.append(seq - episode.last_seq)
                    episode.gaps_s.append(ts - episode.last_ts)
                if len(episode.samples) < MAX_SAMPLES:
                    episode.samples.append(seq)
                episode.count += 1
                episode.last_seq = episode.end_seq = seq
                episode.last_ts = episode.end_ts = ts
            else:
                self._close_episode(key, state)
        elif len(recent) == self.min_count:
            first = recent[0]
            if seq - first[0] <= self.window and ts - first[1] <= self.window_seconds:
                state.episode = _Episode(recent, state.recent_writes)
        state.last_seq = seq
        state.last_ts = ts

    def _close_episode(self, key: Any, state: _State) -> None:
        episode = state.episode
        if episode is None:
            return
        state.episode = None
        if len(self._hot) >= MAX_FINDINGS:
            self.omitted += 1
            return
        # writes to the object since the episode's first cycle (a closing cycle's own are not in yet)
        episode.writes = state.writes - episode.writes_before
        self._hot.append((key, episode, episode.write_seqs))

    def _close_pingpong(self, key: Any, state: _State) -> None:
        if state.flips >= self.min_flips and state.writer is not None and state.other is not None:
            if len(self._pingpong) < MAX_FINDINGS:
                self._pingpong.append(
                    PingPong(
                        object=self._ref(key),
                        writers=tuple(sorted((state.writer, state.other))),
                        flips=state.flips,
                        first_seq=state.pp_first_seq,
                        last_seq=state.last_write_seq,
                        first_ts=state.pp_first_ts,
                        last_ts=state.last_write_ts,
                        sample_seqs=tuple(state.pp_samples),
                    )
                )
                self._pp_writes.append(list(state.pp_samples))
            else:
                self.omitted += 1
        state.flips = 0
        state.other = None

    def _ref(self, key: Any) -> ObjectRef:
        kind, namespace, name = self.names.get(key, ("?", "", str(key)))
        return ObjectRef(kind, namespace, name)

    # -- output ----------------------------------------------------------------------------

    def writes_of(self, key: Any) -> int:
        """Writes seen so far to the object with this key."""
        state = self._states.get(key)
        return state.writes if state is not None else 0

    def finish(self) -> LoopReport:
        """Close what is open and return the findings (idempotent)."""
        for key, state in self._states.items():
            self._close_episode(key, state)
            self._close_pingpong(key, state)
        hot_keys = {key for key, _, _ in self._hot}
        hot = [self._hot_loop(key, episode) for key, episode, _ in self._hot]
        self.write_samples = {loop: writes for loop, (_, _, writes) in zip(hot, self._hot, strict=True)}
        hot.sort(key=lambda loop: (-loop.count, loop.first_seq))
        periodic: list[Periodic] = []
        for key, state in self._states.items():
            if state.count < self.periodic_min_count or state.mean <= 0:
                continue
            jitter = math.sqrt(state.m2 / (state.count - 1))
            if jitter <= self.periodic_jitter * state.mean:
                periodic.append(
                    Periodic(
                        object=self._ref(key),
                        count=state.count,
                        period_s=round(state.mean, 6),
                        jitter_s=round(jitter, 6),
                        first_seq=state.first_seq,
                        last_seq=state.last_seq,
                        hot_loop=key in hot_keys,
                    )
                )
        periodic.sort(key=lambda p: (-p.count, p.first_seq))
        pingpong = sorted(self._pingpong, key=lambda p: (-p.flips, p.first_seq))
        self.pingpong_write_samples = dict(zip(self._pingpong, self._pp_writes, strict=True))
        return LoopReport(
            hot=tuple(hot),
            ping_pong=tuple(pingpong),
            periodic=tuple(periodic),
            parameters=dict(self.parameters),
        )

    def _hot_loop(self, key: Any, episode: _Episode) -> HotLoop:
        return HotLoop(
            object=self._ref(key),
            count=episode.count,
            writes=episode.writes,
            first_seq=episode.first_seq,
            last_seq=episode.end_seq,
            first_ts=episode.first_ts,
            last_ts=episode.end_ts,
            period_ops=float(statistics.median(episode.gaps_ops)) if episode.gaps_ops else 0.0,
            period_s=round(statistics.median(episode.gaps_s), 6) if episode.gaps_s else 0.0,
            sample_seqs=tuple(episode.samples),
        )


# -- decoding candidates -----------------------------------------------------------------------


class _Reader(Protocol):
    def operations(
        self, session: SessionInfo, start: int = 1, stop: int | None = None
    ) -> list[Operation]: ...

    def body(self, key: bytes) -> JSONValue: ...


def _leaves(value: JSONValue, prefix: str, out: dict[str, str]) -> None:
    if len(out) >= _MAX_LEAVES:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if path.startswith(_IGNORED_FIELDS):
                continue
            _leaves(item, path, out)
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        for index, item in enumerate(value):
            _leaves(item, f"{prefix}[{index}]", out)
    else:
        out[prefix] = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def alternating_field(bodies: Sequence[JSONValue]) -> tuple[str, tuple[str, str]] | None:
    """The first field (in path order) whose value goes back and forth between two values, A B A B."""
    flattened: list[dict[str, str]] = []
    for body in bodies:
        leaves: dict[str, str] = {}
        _leaves(body, "", leaves)
        flattened.append(leaves)
    paths = sorted({path for leaves in flattened for path in leaves})
    for path in paths:
        values = [leaves[path] for leaves in flattened if path in leaves]
        if len(values) < 4 or len(set(values)) != 2:
            continue
        if all(a != b for a, b in itertools.pairwise(values)):
            return path, (values[0], values[1])
    return None


class FieldFight:
    """What decoding the request bodies of some writes to one object showed."""

    __slots__ = ("decoded", "field", "seqs", "threads", "values")

    def __init__(self) -> None:
        self.decoded = 0
        self.field: str | None = None
        self.values: tuple[str, str] = ("", "")
        self.threads: tuple[str, ...] = ()
        self.seqs: list[int] = []


def field_fight(store: _Reader, session: SessionInfo, seqs: Sequence[int]) -> FieldFight:
    """Decode the request bodies of the writes at `seqs` and look for a field set back and forth."""
    fight = FieldFight()
    bodies: list[JSONValue] = []
    threads: set[str] = set()
    for seq in seqs:
        ops = store.operations(session, seq, seq + 1)
        if not ops or ops[0].request_digest is None:
            continue
        try:
            bodies.append(store.body(ops[0].request_digest))
        except ValueError:  # not JSON (orjson.JSONDecodeError is a ValueError)
            continue
        threads.add(ops[0].thread)
        fight.seqs.append(seq)
    fight.decoded = len(bodies)
    fight.threads = tuple(sorted(threads))
    found = alternating_field(bodies)
    if found is not None:
        fight.field, fight.values = found
    return fight


def add_field_fights(
    report: LoopReport,
    detector: LoopDetector,
    store: _Reader,
    session: SessionInfo,
    *,
    limit: int = _MAX_DECODED,
) -> LoopReport:
    """Check ping-pong candidates against the written bodies (decoding only those few writes).

    A thread ping-pong whose bodies set a field back and forth gets that field; one whose bodies
    were decoded (at least 4) without any field going back and forth is dropped: that is a
    worker pool taking turns, not a fight. A hot loop whose writes set a field back and forth
    (whatever the threads) becomes a ping-pong of source "fields".
    """
    kept: list[PingPong] = []
    seen: set[ObjectRef] = set()
    verdicts: dict[ObjectRef, FieldFight | None] = {}  # one decoding per object; None: not decoded
    for p in report.ping_pong:  # most flips first
        if p.object not in verdicts:
            samples = detector.pingpong_write_samples.get(p, list(p.sample_seqs))
            verdicts[p.object] = field_fight(store, session, samples) if len(verdicts) < limit else None
        fight = verdicts[p.object]
        if fight is None or (fight.field is None and fight.decoded < 4):
            kept.append(p)  # nothing to judge by: the alternation of threads is all there is
        elif fight.field is not None:
            kept.append(replace(p, field=fight.field, values=fight.values))
        else:
            continue  # bodies decoded, nothing set back and forth: a worker pool taking turns
        seen.add(p.object)
    seen.update(verdicts)
    decoded = 0
    for loop in report.hot:  # biggest first
        if loop.object in seen or decoded >= limit:
            continue
        seen.add(loop.object)
        decoded += 1
        fight = field_fight(store, session, detector.write_samples.get(loop, []))
        if fight.field is None:
            continue
        kept.append(
            PingPong(
                object=loop.object,
                writers=fight.threads,
                flips=max(0, len(fight.seqs) - 1),
                first_seq=loop.first_seq,
                last_seq=loop.last_seq,
                first_ts=loop.first_ts,
                last_ts=loop.last_ts,
                sample_seqs=tuple(fight.seqs),
                source="fields",
                field=fight.field,
                values=fight.values,
            )
        )
    return replace(report, ping_pong=tuple(kept))


# -- for the replay engine ---------------------------------------------------------------------


class LoopIndex:
    """Answers "is this seq inside a detected loop?" in O(log n + hits).

    `loops_at(seq)` gives the hot loops whose [first_seq, last_seq] contains seq; `in_loop(seq, obj)`
    restricts that to one object (an `ObjectRef`, or None for any object).
    """

    def __init__(self, loops: Iterable[HotLoop]) -> None:
        self.loops = sorted(loops, key=lambda loop: (loop.first_seq, loop.last_seq))
        self._starts = [loop.first_seq for loop in self.loops]
        self._reach: list[int] = []
        reach = 0
        for loop in self.loops:
            reach = max(reach, loop.last_seq)
            self._reach.append(reach)

    @property
    def intervals(self) -> list[tuple[ObjectRef, int, int]]:
        return [(loop.object, loop.first_seq, loop.last_seq) for loop in self.loops]

    def loops_at(self, seq: int) -> list[HotLoop]:
        found: list[HotLoop] = []
        index = bisect.bisect_right(self._starts, seq) - 1
        while index >= 0 and self._reach[index] >= seq:
            if self.loops[index].last_seq >= seq:
                found.append(self.loops[index])
            index -= 1
        found.reverse()
        return found

    def in_loop(self, seq: int, obj: ObjectRef | None = None) -> bool:
        return any(obj is None or loop.object == obj for loop in self.loops_at(seq))

    def __len__(self) -> int:
        return len(self.loops)


def detect_loops(
    store: Any,
    session: SessionInfo,
    *,
    window: int | None = DEFAULT_WINDOW,
    window_seconds: float | None = DEFAULT_WINDOW_SECONDS,
    min_count: int = DEFAULT_MIN_COUNT,
    min_flips: int = DEFAULT_MIN_FLIPS,
    decode_candidates: bool = True,
    progress: ProgressCallback | None = None,
) -> LoopReport:
    """Only the loop part of `analyze`: one streaming pass over writes and reconcile starts."""
    detector = LoopDetector(
        window=window, window_seconds=window_seconds, min_count=min_count, min_flips=min_flips
    )
    run_detector(detector, R.row_batches(store, session, progress=progress))
    report = detector.finish()
    if decode_candidates and (report.hot or report.ping_pong):
        report = add_field_fights(report, detector, store, session)
    return report


def loop_index(store: Any, session: SessionInfo, **options: Any) -> LoopIndex:
    """A `LoopIndex` over the hot loops of a session (options as for `detect_loops`)."""
    options.setdefault("decode_candidates", False)
    return LoopIndex(detect_loops(store, session, **options).hot)


def run_detector(detector: LoopDetector, batches: Iterable[Sequence[R.Row]]) -> None:
    names = detector.names
    threads: dict[str, int | None] = {}
    on_write: Callable[[Any, int, float, str, int | None], None] = detector.on_write
    on_start: Callable[[Any, int, float, int], None] = detector.on_reconcile_start
    writes = WRITE_VERBS
    for rows in batches:
        for r in rows:
            verb = r[R.VERB]
            rec = r[R.RECONCILE]
            key = r[R.OBJECT]
            if rec is not None and threads.get(r[R.THREAD]) != rec:
                threads[r[R.THREAD]] = rec
                if verb not in writes:
                    if key not in names:
                        names[key] = (r[R.KIND], r[R.NAMESPACE], r[R.NAME])
                    on_start(key, r[R.SEQ], r[R.TS], rec)
            if verb in writes:
                if key not in names:
                    names[key] = (r[R.KIND], r[R.NAMESPACE], r[R.NAME])
                on_write(key, r[R.SEQ], r[R.TS], r[R.THREAD], rec)
