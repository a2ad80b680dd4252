"""`analyze`: one streaming pass over a session feeding every detector, then the reports.

The pass reads rows in batches (see `rows`) and does a few dictionary updates per operation:

- one cell per (verb, kind, status, duration bucket, thread) holding count, total and maximum
  duration: statistics, latency percentiles per verb and per kind and the read/write mix are all
  sums over these cells afterwards (a few thousand of them, whatever the session's length);
- one counter per object (hot objects);
- writes and reconcile starts go to the `LoopDetector`, failures to the `ErrorTracker`, calls
  over the threshold to a bounded heap, LIST and WATCH calls to per-(kind, namespace) counters.

Nothing keeps a list of operations; bodies are decoded only for loop candidates (a few dozen at
most) to name the field two writers fight over.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from typing import Any

from opreplay.analysis import histogram as H
from opreplay.analysis import rows as R
from opreplay.analysis.errors import DEFAULT_STORM_COUNT, DEFAULT_STORM_WINDOW_SECONDS, ErrorTracker
from opreplay.analysis.loops import (
    DEFAULT_MIN_COUNT,
    DEFAULT_MIN_FLIPS,
    DEFAULT_WINDOW,
    DEFAULT_WINDOW_SECONDS,
    LoopDetector,
    add_field_fights,
)
from opreplay.analysis.results import (
    AccessReport,
    Analysis,
    HotObject,
    KindAccess,
    LatencySummary,
    ListPath,
    ObjectRef,
    SlowOperation,
    SlowReport,
    Statistics,
    WatchRestart,
)
from opreplay.collector import gc_paused
from opreplay.model import GAP, WRITE_VERBS, SessionInfo
from opreplay.progress import ProgressCallback

DEFAULT_THRESHOLD_MS = 100.0
DEFAULT_TOP = 20
MAX_SAMPLES = 10

STREAM_VERBS = frozenset({"watch", "watch-event", GAP})
"""Not calls: their durations are stream lifetimes (or nothing) and stay out of latency figures."""
READ_VERBS = frozenset({"get", "list", "watch"})
_NOT_ERRORS_WITHOUT_STATUS = frozenset({"watch-event", GAP})
WIDTH = R.OBJECT + 1
_UNPACKED = (
    "seq", "ts", "duration_us", "thread", "verb", "api_version", "resource", "kind", "namespace", "name",
    "subresource", "status", "reason", "message", "resource_version", "reconcile", "watch", "event",
    "request_digest", "response_digest",
)  # fmt: skip
if _UNPACKED != R.FIELDS:  # `_Scan.run` unpacks rows in this order
    raise ImportError("opreplay.analysis.scan: the fields of Operation changed; update _Scan.run")


def analyze(
    store: Any,
    session: SessionInfo,
    *,
    threshold_ms: float = DEFAULT_THRESHOLD_MS,
    window: int | None = DEFAULT_WINDOW,
    window_seconds: float | None = DEFAULT_WINDOW_SECONDS,
    min_count: int = DEFAULT_MIN_COUNT,
    min_flips: int = DEFAULT_MIN_FLIPS,
    storm_count: int = DEFAULT_STORM_COUNT,
    storm_window_seconds: float | None = DEFAULT_STORM_WINDOW_SECONDS,
    top: int = DEFAULT_TOP,
    decode_candidates: bool = True,
    progress: ProgressCallback | None = None,
) -> Analysis:
    """Loops, slow calls, errors, access patterns and statistics of `session`, in one pass.

    `threshold_ms`: a call slower than this is slow. `window` (operations) and `window_seconds`:
    a hot loop is `min_count` cycles on one object within both (None ignores one of them).
    `storm_count` errors of one status on one object within `storm_window_seconds` make a storm.
    `top` bounds the lists of hot objects, slow calls and error groups. `progress(done, total)`
    is called after each batch.
    """
    scan = _Scan(
        threshold_ms=threshold_ms,
        window=window,
        window_seconds=window_seconds,
        min_count=min_count,
        min_flips=min_flips,
        storm_count=storm_count,
        storm_window_seconds=storm_window_seconds,
        top=top,
    )
    with gc_paused():
        scan.run(R.row_batches(store, session, progress=progress))
    analysis = scan.finish(session)
    if decode_candidates and (analysis.loops.hot or analysis.loops.ping_pong):
        loops = add_field_fights(analysis.loops, scan.loops, store, session)
        analysis = Analysis(loops, analysis.slow, analysis.errors, analysis.access, analysis.stats)
    return analysis


def _ms(us: float) -> float:
    return round(us / 1000.0, 3)


class _Latency:
    __slots__ = ("count", "histogram", "maximum", "slow", "sums", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0
        self.maximum = 0
        self.slow = 0
        self.histogram: dict[int, int] = {}
        self.sums: dict[int, float] = {}

    def add(self, bucket: int, count: int, total: int, maximum: int) -> None:
        self.count += count
        self.total += total
        self.maximum = max(self.maximum, maximum)
        self.histogram[bucket] = self.histogram.get(bucket, 0) + count
        self.sums[bucket] = self.sums.get(bucket, 0.0) + total

    def summary(self) -> LatencySummary:
        if not self.count:
            return LatencySummary(0, 0.0, 0.0, 0.0, 0.0, 0.0, self.slow)
        p50, p95, p99 = H.quantiles(self.histogram, maximum=float(self.maximum), totals=self.sums)
        return LatencySummary(
            count=self.count,
            mean_ms=_ms(self.total / self.count),
            p50_ms=_ms(p50),
            p95_ms=_ms(p95),
            p99_ms=_ms(p99),
            max_ms=_ms(self.maximum),
            slow=self.slow,
        )


class _Scan:
    def __init__(
        self,
        *,
        threshold_ms: float,
        window: int | None,
        window_seconds: float | None,
        min_count: int,
        min_flips: int,
        storm_count: int,
        storm_window_seconds: float | None,
        top: int,
    ) -> None:
        if threshold_ms < 0:
            raise ValueError("threshold_ms must not be negative")
        self.threshold_ms = threshold_ms
        self.top = max(1, top)
        self.names: dict[Any, tuple[str, str, str]] = {}
        self.loops = LoopDetector(
            window=window,
            window_seconds=window_seconds,
            min_count=min_count,
            min_flips=min_flips,
            names=self.names,
        )
        self.errors = ErrorTracker(
            storm_count=storm_count, storm_window_seconds=storm_window_seconds, names=self.names
        )
        self.cells: dict[tuple[str, str, int, int, str], list[int]] = {}
        self.objects: dict[Any, int] = {}
        self.slow: list[tuple[Any, ...]] = []
        self.slow_count = 0
        self.slow_by: dict[tuple[str, str], int] = {}
        self.lists: dict[tuple[str, str], list[int]] = {}
        self.watches: dict[tuple[str, str], list[Any]] = {}
        self.reconciles = 0
        self.operations = 0
        self.first: Sequence[Any] | None = None
        self.last: Sequence[Any] | None = None

    def run(self, batches: Iterable[Sequence[R.Row]]) -> None:
        # Everything the loop touches is a local: this runs a million times.
        cells = self.cells
        cells_get = cells.get
        objects = self.objects
        objects_get = objects.get
        names = self.names
        threads: dict[str, int | None] = {}
        threads_get = threads.get
        on_write = self.loops.on_write
        on_start = self.loops.on_reconcile_start
        on_error = self.errors.on_error
        writes = WRITE_VERBS
        streams = STREAM_VERBS
        not_errors = _NOT_ERRORS_WITHOUT_STATUS
        log = math.log
        scale = H.SCALE
        threshold_us = self.threshold_ms * 1000.0
        slow = self.slow
        top = self.top
        reconciles = 0
        operations = 0
        last_rec: int | None = None
        NS, NAME = R.NAMESPACE, R.NAME
        for rows in batches:
            if not rows:
                continue
            if self.first is None:
                self.first = rows[0]
            self.last = rows[-1]
            operations += len(rows)
            if len(rows[0]) != WIDTH:  # rows with more columns than we know: keep ours
                rows = [tuple(r[:WIDTH]) for r in rows]
            for r in rows:
                (seq, ts, duration, thread, verb, _av, _res, kind, _ns, _name, _sub, status, reason, message,
                 _rv, rec, _watch, _event, _req, _resp, key) = r  # fmt: skip
                if verb in streams:
                    bucket = -1
                else:
                    # a duration is never negative, but a damaged file can say so: no log of it
                    bucket = int(log(duration + 1) * scale) if duration > 0 else 0
                    if duration > threshold_us:
                        self._slow(r, slow, top)
                cell_key = (verb, kind, status, bucket, thread)
                cell = cells_get(cell_key)
                if cell is None:
                    cells[cell_key] = [1, duration, duration]
                else:
                    cell[0] += 1
                    cell[1] += duration
                    if duration > cell[2]:
                        cell[2] = duration
                count = objects_get(key)
                if count is None:
                    objects[key] = 1
                    names[key] = (kind, r[NS], r[NAME])
                else:
                    objects[key] = count + 1
                if rec is not None and rec != last_rec:
                    last_rec = rec
                    if threads_get(thread) != rec:
                        threads[thread] = rec
                        reconciles += 1
                        if verb not in writes:
                            on_start(key, seq, ts, rec)
                if verb in writes:
                    on_write(key, seq, ts, thread, rec)
                elif verb == "list" or verb == "watch":
                    self._collection(r, verb)
                if status >= 400 or (status == 0 and verb not in not_errors):
                    on_error(key, seq, ts, status, reason, verb, message)
        self.reconciles += reconciles
        self.operations += operations

    def _slow(self, r: R.Row, slow: list[tuple[Any, ...]], top: int) -> None:
        self.slow_count += 1
        key = (r[R.VERB], r[R.KIND])
        self.slow_by[key] = self.slow_by.get(key, 0) + 1
        entry = (r[R.DURATION_US], -r[R.SEQ], tuple(r))
        if len(slow) < top:
            heapq.heappush(slow, entry)
        elif entry > slow[0]:
            heapq.heapreplace(slow, entry)

    def _collection(self, r: R.Row, verb: str) -> None:
        key = (r[R.KIND], r[R.NAMESPACE])
        if verb == "list":
            entry = self.lists.get(key)
            if entry is None:
                self.lists[key] = [1, r[R.DURATION_US]]
            else:
                entry[0] += 1
                entry[1] += r[R.DURATION_US]
            return
        seq = r[R.SEQ]
        watch = self.watches.get(key)
        if watch is None:  # watches, first seq, last seq, restart samples
            self.watches[key] = [1, seq, seq, []]
            return
        watch[0] += 1
        watch[2] = seq
        if len(watch[3]) < MAX_SAMPLES:
            watch[3].append(seq)

    # -- reports ---------------------------------------------------------------------------

    def finish(self, session: SessionInfo) -> Analysis:
        loops = self.loops.finish()
        errors = self.errors.finish(top=self.top)

        verbs: dict[str, int] = {}
        kinds: dict[str, int] = {}
        statuses: dict[int, int] = {}
        threads: dict[str, int] = {}
        by_kind_verb: dict[tuple[str, str], int] = {}
        overall = _Latency()
        by_verb: dict[str, _Latency] = {}
        by_kind: dict[str, _Latency] = {}
        for (verb, kind, status, bucket, thread), (count, total, maximum) in self.cells.items():
            verbs[verb] = verbs.get(verb, 0) + count
            kinds[kind] = kinds.get(kind, 0) + count
            statuses[status] = statuses.get(status, 0) + count
            threads[thread] = threads.get(thread, 0) + count
            by_kind_verb[(kind, verb)] = by_kind_verb.get((kind, verb), 0) + count
            if bucket >= 0:
                overall.add(bucket, count, total, maximum)
                by_verb.setdefault(verb, _Latency()).add(bucket, count, total, maximum)
                by_kind.setdefault(kind, _Latency()).add(bucket, count, total, maximum)
        for (verb, kind), count in self.slow_by.items():
            by_verb[verb].slow += count
            by_kind[kind].slow += count
        overall.slow = self.slow_count

        slow_ops = [self._slow_operation(entry[2]) for entry in sorted(self.slow, reverse=True)]
        slow = SlowReport(
            threshold_ms=self.threshold_ms,
            count=self.slow_count,
            operations=tuple(slow_ops),
            overall=overall.summary(),
            by_verb={
                verb: by_verb[verb].summary() for verb in sorted(by_verb, key=lambda v: -by_verb[v].count)
            },
            by_kind={
                kind: by_kind[kind].summary() for kind in sorted(by_kind, key=lambda k: -by_kind[k].count)
            },
        )

        access = self._access(by_kind_verb)

        first, last = self.first, self.last
        first_ts = float(first[R.TS]) if first is not None else None
        last_ts = float(last[R.TS] + last[R.DURATION_US] / 1e6) if last is not None else None
        span = max(0.0, last_ts - first_ts) if first_ts is not None and last_ts is not None else 0.0
        stats = Statistics(
            session=session.id,
            name=session.name,
            operations=self.operations,
            errors=self.errors.total,
            reconciles=self.reconciles,
            first_seq=int(first[R.SEQ]) if first is not None else None,
            last_seq=int(last[R.SEQ]) if last is not None else None,
            first_ts=first_ts,
            last_ts=last_ts,
            span_s=round(span, 6),
            rate_per_s=round(self.operations / span, 3) if span > 0 else 0.0,
            total_duration_ms=_ms(overall.total),
            duration=overall.summary(),
            verbs=_by_count(verbs),
            kinds=_by_count(kinds),
            statuses={str(k): v for k, v in _by_count(statuses).items()},
            threads=_by_count(threads),
        )
        return Analysis(loops=loops, slow=slow, errors=errors, access=access, stats=stats)

    def _slow_operation(self, r: R.Row) -> SlowOperation:
        return SlowOperation(
            seq=r[R.SEQ],
            ts=r[R.TS],
            verb=r[R.VERB],
            object=ObjectRef(r[R.KIND], r[R.NAMESPACE], r[R.NAME]),
            subresource=r[R.SUBRESOURCE],
            status=r[R.STATUS],
            reason=r[R.REASON],
            duration_ms=_ms(r[R.DURATION_US]),
            thread=r[R.THREAD],
            reconcile=r[R.RECONCILE],
        )

    def _access(self, by_kind_verb: dict[tuple[str, str], int]) -> AccessReport:
        # an object touched once is not hot (and would fill the list with one-off discovery calls)
        repeated = ((key, count) for key, count in self.objects.items() if count > 1)
        hottest = heapq.nlargest(self.top, repeated, key=lambda item: item[1])
        hot_objects = tuple(
            HotObject(object=ObjectRef(*self.names[key]), operations=count, writes=self.loops.writes_of(key))
            for key, count in hottest
        )
        kinds: dict[str, dict[str, int]] = {}
        for (kind, verb), count in by_kind_verb.items():
            kinds.setdefault(kind, {})[verb] = count
        by_kind = []
        for kind, counts in kinds.items():
            reads = sum(counts.get(verb, 0) for verb in READ_VERBS)
            writes = sum(counts.get(verb, 0) for verb in WRITE_VERBS)
            by_kind.append(
                KindAccess(
                    kind=kind,
                    operations=sum(counts.values()),
                    reads=reads,
                    writes=writes,
                    lists=counts.get("list", 0),
                    watches=counts.get("watch", 0),
                    watch_events=counts.get("watch-event", 0),
                    read_write_ratio=round(reads / writes, 3) if writes else None,
                )
            )
        by_kind.sort(key=lambda k: (-k.operations, k.kind))
        total = max(1, self.operations)
        lists = sorted(
            (
                ListPath(
                    kind=kind,
                    namespace=namespace,
                    count=count,
                    share=round(count / total, 4),
                    mean_ms=_ms(duration / count),
                    per_reconcile=round(count / self.reconciles, 3) if self.reconciles else None,
                )
                for (kind, namespace), (count, duration) in self.lists.items()
            ),
            key=lambda p: (-p.count, p.kind, p.namespace),
        )
        restarts = sorted(
            (
                WatchRestart(
                    kind=kind,
                    namespace=namespace,
                    watches=watches,
                    restarts=watches - 1,
                    first_seq=first,
                    last_seq=last,
                    sample_seqs=tuple(samples),
                )
                for (kind, namespace), (watches, first, last, samples) in self.watches.items()
                if watches > 1
            ),
            key=lambda w: (-w.restarts, w.kind, w.namespace),
        )
        return AccessReport(
            hot_objects=hot_objects,
            by_kind=tuple(by_kind),
            lists=tuple(lists[: self.top]),
            watch_restarts=tuple(restarts),
        )


def _by_count(counts: dict[Any, int]) -> dict[Any, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], str(item[0]))))
