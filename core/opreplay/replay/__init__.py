"""Replay: a recorded session as a program you can step through, backwards too, and break in.

`ReplayEngine` is the cursor (step, back, goto, run to breakpoints, state at the cursor); the
breakpoint kinds are plain values from `replay.breakpoints`; `build_checkpoints` lets the recorder
store the cluster state every K operations when a session stops, so that opening a long session
is instant. This package knows nothing of DAP or VS Code: the adapter maps onto it.
"""

from opreplay.replay.breakpoints import (
    ERROR_FILTERS,
    Breakpoint,
    BreakpointStatus,
    ConditionBreakpoint,
    ErrorBreakpoint,
    ErrorFilter,
    FieldWatch,
    HitCondition,
    SelectorBreakpoint,
    SeqBreakpoint,
)
from opreplay.replay.checkpoints import build_checkpoints
from opreplay.replay.engine import (
    HistoryEntry,
    LogMessage,
    ReplayEngine,
    ReplayError,
    Stop,
    describe,
)
from opreplay.replay.loops import HotLoop, LoopDetector, detect_hot_loops
from opreplay.replay.paths import Change, parse_path
from opreplay.replay.state import ClusterState, StateView

__all__ = [
    "ERROR_FILTERS",
    "Breakpoint",
    "BreakpointStatus",
    "Change",
    "ClusterState",
    "ConditionBreakpoint",
    "ErrorBreakpoint",
    "ErrorFilter",
    "FieldWatch",
    "HistoryEntry",
    "HitCondition",
    "HotLoop",
    "LogMessage",
    "LoopDetector",
    "ReplayEngine",
    "ReplayError",
    "SelectorBreakpoint",
    "SeqBreakpoint",
    "StateView",
    "Stop",
    "build_checkpoints",
    "describe",
    "detect_hot_loops",
    "parse_path",
]
