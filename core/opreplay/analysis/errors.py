"""Error groups and storms, fed only the failed operations of a session.

- Groups: errors by (status, reason, object), with count, first and last occurrence, the verbs
  that failed and one message. Past `max_groups` distinct groups, new ones are folded into one
  group per (status, reason, kind) with namespace and name "*", so memory stays bounded.
- Storms: a run of errors of one status on one object, consecutive ones at most
  `window_seconds` (and `window` operations, when given) apart, that holds at least `min_count`
  errors within one such window: a conflict storm is a storm of 409s.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from opreplay.analysis.results import ErrorGroup, ErrorReport, ErrorStorm, ObjectRef

DEFAULT_STORM_COUNT = 5
DEFAULT_STORM_WINDOW_SECONDS = 10.0
DEFAULT_MAX_GROUPS = 10_000
MAX_SAMPLES = 10
MAX_STORMS = 10_000


class _Group:
    __slots__ = ("count", "first_seq", "first_ts", "last_seq", "last_ts", "message", "verbs")

    def __init__(self, seq: int, ts: float, verb: str, message: str | None) -> None:
        self.count = 0
        self.first_seq = seq
        self.first_ts = ts
        self.last_seq = seq
        self.last_ts = ts
        self.verbs: set[str] = {verb}
        self.message = message


class _Run:
    __slots__ = (
        "count",
        "first_seq",
        "first_ts",
        "last_seq",
        "last_ts",
        "qualified",
        "reason",
        "recent",
        "samples",
    )

    def __init__(self, seq: int, ts: float, reason: str | None, min_count: int) -> None:
        self.count = 0
        self.first_seq = seq
        self.first_ts = ts
        self.last_seq = seq
        self.last_ts = ts
        self.reason = reason
        self.qualified = False
        self.recent: deque[tuple[int, float]] = deque(maxlen=min_count)
        self.samples: list[int] = []


class ErrorTracker:
    def __init__(
        self,
        *,
        storm_count: int = DEFAULT_STORM_COUNT,
        storm_window_seconds: float | None = DEFAULT_STORM_WINDOW_SECONDS,
        storm_window: int | None = None,
        max_groups: int = DEFAULT_MAX_GROUPS,
        names: dict[Any, tuple[str, str, str]] | None = None,
    ) -> None:
        if storm_window is None and storm_window_seconds is None:
            raise ValueError("a storm needs a window: give storm_window, storm_window_seconds or both")
        self.min_count = max(2, storm_count)
        self.window = storm_window if storm_window is not None else math.inf
        self.window_seconds = storm_window_seconds if storm_window_seconds is not None else math.inf
        self.max_groups = max_groups
        self.names: dict[Any, tuple[str, str, str]] = names if names is not None else {}
        self.parameters: dict[str, Any] = {
            "storm_count": self.min_count,
            "storm_window_seconds": storm_window_seconds,
            "storm_window": storm_window,
        }
        self.total = 0
        self.by_status: dict[int, int] = {}
        self._groups: dict[tuple[int, str | None, Any], _Group] = {}
        self._runs: dict[tuple[Any, int], _Run] = {}
        self._storms: list[ErrorStorm] = []
        self.omitted_storms = 0

    def on_error(
        self, key: Any, seq: int, ts: float, status: int, reason: str | None, verb: str, message: str | None
    ) -> None:
        self.total += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1
        group_key: tuple[int, str | None, Any] = (status, reason, key)
        group = self._groups.get(group_key)
        if group is None:
            if len(self._groups) >= self.max_groups:
                kind = self.names.get(key, ("?", "", ""))[0]
                group_key = (status, reason, ("*", kind))
                group = self._groups.get(group_key)
            if group is None:
                group = self._groups[group_key] = _Group(seq, ts, verb, message)
        group.count += 1
        group.last_seq = seq
        group.last_ts = ts
        if len(group.verbs) < 8:
            group.verbs.add(verb)

        run_key = (key, status)
        run = self._runs.get(run_key)
        if run is not None and (seq - run.last_seq > self.window or ts - run.last_ts > self.window_seconds):
            self._close(run_key, run)
            run = None
        if run is None:
            run = self._runs[run_key] = _Run(seq, ts, reason, self.min_count)
        run.count += 1
        run.last_seq = seq
        run.last_ts = ts
        if len(run.samples) < MAX_SAMPLES:
            run.samples.append(seq)
        recent = run.recent
        recent.append((seq, ts))
        if (
            not run.qualified
            and len(recent) == self.min_count
            and seq - recent[0][0] <= self.window
            and ts - recent[0][1] <= self.window_seconds
        ):
            run.qualified = True

    def _ref(self, key: Any) -> ObjectRef:
        if isinstance(key, tuple) and len(key) == 2 and key[0] == "*":
            return ObjectRef(str(key[1]), "*", "*")
        kind, namespace, name = self.names.get(key, ("?", "", str(key)))
        return ObjectRef(kind, namespace, name)

    def _close(self, run_key: tuple[Any, int], run: _Run) -> None:
        del self._runs[run_key]
        if not run.qualified:
            return
        if len(self._storms) >= MAX_STORMS:
            self.omitted_storms += 1
            return
        self._storms.append(
            ErrorStorm(
                status=run_key[1],
                reason=run.reason,
                object=self._ref(run_key[0]),
                count=run.count,
                first_seq=run.first_seq,
                last_seq=run.last_seq,
                first_ts=run.first_ts,
                last_ts=run.last_ts,
                sample_seqs=tuple(run.samples),
            )
        )

    def finish(self, *, top: int | None = None) -> ErrorReport:
        for run_key, run in list(self._runs.items()):
            self._close(run_key, run)
        groups = [
            ErrorGroup(
                status=status,
                reason=reason,
                object=self._ref(key),
                count=group.count,
                first_seq=group.first_seq,
                first_ts=group.first_ts,
                last_seq=group.last_seq,
                last_ts=group.last_ts,
                verbs=tuple(sorted(group.verbs)),
                message=group.message,
            )
            for (status, reason, key), group in self._groups.items()
        ]
        groups.sort(key=lambda g: (-g.count, g.first_seq))
        storms = sorted(self._storms, key=lambda s: (s.first_seq, s.status))
        return ErrorReport(
            total=self.total,
            by_status={str(status): count for status, count in sorted(self.by_status.items())},
            groups=tuple(groups[:top] if top is not None else groups),
            storms=tuple(storms),
            parameters={**self.parameters, "groups": len(groups)},
        )
