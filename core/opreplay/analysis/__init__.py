"""Analysis of a recorded session: hot loops, slow calls, error patterns, access patterns, statistics.

`analyze(store, session)` makes one streaming pass (memory bounded by the number of distinct
objects, not by the session's length) and returns an `Analysis` of plain dataclasses;
`Analysis.to_json()` is the stable JSON form (`opreplay analyze --json`).

For the replay engine: `loop_index(store, session)` (or `LoopIndex(analysis.loops.hot)`) answers
whether an operation lies inside a detected loop; `LoopDetector` can also be fed live.
"""

from opreplay.analysis.errors import ErrorTracker
from opreplay.analysis.loops import LoopDetector, LoopIndex, detect_loops, loop_index
from opreplay.analysis.results import (
    AccessReport,
    Analysis,
    ErrorGroup,
    ErrorReport,
    ErrorStorm,
    HotLoop,
    HotObject,
    KindAccess,
    LatencySummary,
    ListPath,
    LoopReport,
    ObjectRef,
    Periodic,
    PingPong,
    SlowOperation,
    SlowReport,
    Statistics,
    WatchRestart,
)
from opreplay.analysis.scan import DEFAULT_THRESHOLD_MS, analyze

__all__ = [
    "DEFAULT_THRESHOLD_MS",
    "AccessReport",
    "Analysis",
    "ErrorGroup",
    "ErrorReport",
    "ErrorStorm",
    "ErrorTracker",
    "HotLoop",
    "HotObject",
    "KindAccess",
    "LatencySummary",
    "ListPath",
    "LoopDetector",
    "LoopIndex",
    "LoopReport",
    "ObjectRef",
    "Periodic",
    "PingPong",
    "SlowOperation",
    "SlowReport",
    "Statistics",
    "WatchRestart",
    "analyze",
    "detect_loops",
    "loop_index",
]
