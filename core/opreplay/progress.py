"""Progress for long work: a bar on a terminal, silence when piped.

Library functions that scan a session take an optional `progress` callback and call it with
`(done, total)` now and then; they know nothing of terminals. Front ends make one with
`progress_bar(...)`, which gives a rich progress bar on stderr when stderr is a terminal and
`None` (no reporting at all) otherwise, so piped output and JSON stay clean.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

ProgressCallback = Callable[[int, int], None]
"""`progress(done, total)`: `done` units of `total` finished (total may grow while it runs)."""


def fraction_callback(report: Callable[[float], None]) -> ProgressCallback:
    """Adapt a callback that takes a fraction in [0, 1] to the `(done, total)` form."""

    def progress(done: int, total: int) -> None:
        report(min(1.0, done / total) if total > 0 else 1.0)

    return progress


def is_terminal(stream: TextIO | None = None) -> bool:
    target = sys.stderr if stream is None else stream
    try:
        return bool(target.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


@contextmanager
def progress_bar(description: str, *, enabled: bool | None = None) -> Iterator[ProgressCallback | None]:
    """A `(done, total)` callback drawing a transient bar on stderr, or None when not a terminal.

    `enabled` forces it on or off; by default it is on exactly when stderr is a terminal.
    """
    if enabled is None:
        enabled = is_terminal()
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=max(total, done))

        yield progress
