"""Hot-loop detection: the same object written again and again within a short span of operations.

An operator stuck in a loop (a status update that triggers its own reconcile, two controllers
fighting over a field, a conflict retried without backoff) shows up in a recording as one object
written many times in a few operations. The rule here is deliberately simple and local, so that
it can answer "is this operation inside a hot loop?" for any seq from a bounded window of the
past: a write (create/update/patch/delete, failed or not) is in a hot loop when its object was
written at least `min_writes` times within the last `window` operations, itself included.

`LoopDetector` is the streaming form (feed operations in seq order); `detect_hot_loops` groups
the flagged writes into `HotLoop` spans for analysis and diagnostics. The replay engine's `loop`
error filter uses the same rule, answered from the store's indexes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from opreplay.model import WRITE_VERBS, ObjectKey, Operation

DEFAULT_WINDOW = 100
DEFAULT_MIN_WRITES = 5


@dataclass(frozen=True, slots=True)
class HotLoop:
    """A run of writes to one object that the rule flags: from its first flagged write to its last."""

    key: ObjectKey
    first_seq: int
    last_seq: int
    writes: int
    """How many writes to the object fall in [first_seq - window + 1, last_seq]."""


class LoopDetector:
    """Streaming form of the rule: `feed` each operation in seq order, get whether it is in a loop."""

    def __init__(self, *, window: int = DEFAULT_WINDOW, min_writes: int = DEFAULT_MIN_WRITES) -> None:
        if window < 1 or min_writes < 1:
            raise ValueError("window and min_writes must be at least 1")
        self.window = window
        self.min_writes = min_writes
        self._recent: dict[Hashable, deque[int]] = {}
        self._fed = 0

    def feed(self, seq: int, key: Hashable, verb: str) -> bool:
        """True when this operation is a write inside a hot loop."""
        self._fed += 1
        if self._fed % (self.window * 64) == 0:
            self._prune(seq)
        if verb not in WRITE_VERBS:
            return False
        recent = self._recent.get(key)
        if recent is None:
            recent = self._recent[key] = deque()
        recent.append(seq)
        horizon = seq - self.window
        while recent and recent[0] <= horizon:
            recent.popleft()
        return len(recent) >= self.min_writes

    def count(self, key: Hashable) -> int:
        """Writes to `key` in the current window (as of the last seq fed)."""
        recent = self._recent.get(key)
        return len(recent) if recent else 0

    def _prune(self, seq: int) -> None:
        horizon = seq - self.window
        for key in [k for k, q in self._recent.items() if not q or q[-1] <= horizon]:
            del self._recent[key]


def detect_hot_loops(
    operations: Iterable[Operation], *, window: int = DEFAULT_WINDOW, min_writes: int = DEFAULT_MIN_WRITES
) -> list[HotLoop]:
    """Every hot loop in `operations` (in seq order), ordered by first flagged seq.

    Memory holds the writes of the last `window` operations and the loops still open, so a whole
    session can be streamed through (`Store.iter_operations`).
    """
    detector = LoopDetector(window=window, min_writes=min_writes)
    open_loops: dict[ObjectKey, list[int]] = {}  # key -> [first flagged seq, last flagged seq, writes]
    done: list[HotLoop] = []
    for op in operations:
        key = op.key
        if detector.feed(op.seq, key, op.verb):
            span = open_loops.get(key)
            if span is not None and op.seq - span[1] <= window:
                span[1] = op.seq
                span[2] += 1
            else:
                if span is not None:
                    done.append(HotLoop(key, span[0], span[1], span[2]))
                open_loops[key] = [op.seq, op.seq, detector.count(key)]
    done.extend(HotLoop(key, s[0], s[1], s[2]) for key, s in open_loops.items())
    done.sort(key=lambda loop: (loop.first_seq, str(loop.key)))
    return done
