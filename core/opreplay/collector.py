"""Pausing Python's cyclic garbage collector for the passes over a whole session.

A replay run or an analysis makes rows, digests and decoded bodies by the hundred thousand. They form
no cycles, so the collector finds nothing in them, yet its collections, triggered by the allocations
alone, cost a tenth (analysis) to a third (a run that decodes bodies) of such a pass.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block; the collector's state before it is restored after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
