"""Operations as plain tuples, read in batches: the analysis pass's input.

Building an `Operation` costs more than reading its row, and a pass over a million operations
cannot afford it. When the store offers `operation_rows(session, start, stop)` (rows in the field
order of `Operation`, then the interned object id) the pass reads those; otherwise it falls back to
`iter_operations` and turns each `Operation` into the same tuple (slower, same results). Either
way a batch is the only thing held in memory.

Every row handed out has the `Operation` fields at the indexes below and an integer object id at
`OBJECT`: two rows share an object id exactly when they name the same object.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from opreplay.model import Operation, SessionInfo
from opreplay.progress import ProgressCallback

Row = Sequence[Any]

FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Operation))
SEQ = FIELDS.index("seq")
TS = FIELDS.index("ts")
DURATION_US = FIELDS.index("duration_us")
THREAD = FIELDS.index("thread")
VERB = FIELDS.index("verb")
API_VERSION = FIELDS.index("api_version")
RESOURCE = FIELDS.index("resource")
KIND = FIELDS.index("kind")
NAMESPACE = FIELDS.index("namespace")
NAME = FIELDS.index("name")
SUBRESOURCE = FIELDS.index("subresource")
STATUS = FIELDS.index("status")
REASON = FIELDS.index("reason")
MESSAGE = FIELDS.index("message")
RECONCILE = FIELDS.index("reconcile")
WATCH = FIELDS.index("watch")
EVENT = FIELDS.index("event")
REQUEST = FIELDS.index("request_digest")
RESPONSE = FIELDS.index("response_digest")
OBJECT = len(FIELDS)

DEFAULT_BATCH = 5000

_as_tuple: Callable[[Operation], tuple[Any, ...]] = operator.attrgetter(*FIELDS)


def row_batches(
    store: Any,
    session: SessionInfo,
    *,
    batch: int = DEFAULT_BATCH,
    progress: ProgressCallback | None = None,
) -> Iterator[Sequence[Row]]:
    """The session's operations as lists of rows, in seq order; `progress(done, total)` per batch."""
    total = max(session.operations, 0)
    done = 0
    fetch = getattr(store, "operation_rows", None)
    source = _fast_batches(fetch, session, batch) if callable(fetch) else _slow_batches(store, session, batch)
    for rows in source:
        done += len(rows)
        yield rows
        if progress is not None:
            progress(done, max(total, done))


def _fast_batches(fetch: Callable[..., Any], session: SessionInfo, batch: int) -> Iterator[Sequence[Row]]:
    ids: dict[tuple[str, str, str, str], int] = {}
    start = 1
    while True:
        rows: Sequence[Row] = fetch(session, start, start + batch)
        if not rows:
            return
        if len(rows[0]) <= OBJECT:  # a store without object ids in its rows: intern them here
            yield list(_with_object_ids(rows, ids))
        else:
            yield rows
        start = rows[-1][SEQ] + 1


def _slow_batches(store: Any, session: SessionInfo, batch: int) -> Iterator[Sequence[Row]]:
    ids: dict[tuple[str, str, str, str], int] = {}
    chunk: list[Row] = []
    for op in store.iter_operations(session, batch=batch):
        row = _as_tuple(op)
        key = (row[API_VERSION], row[RESOURCE], row[NAMESPACE], row[NAME])
        object_id = ids.get(key)
        if object_id is None:
            object_id = ids[key] = len(ids) + 1
        chunk.append((*row, object_id))
        if len(chunk) >= batch:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _with_object_ids(rows: Sequence[Row], ids: dict[tuple[str, str, str, str], int]) -> Iterator[Row]:
    for row in rows:
        key = (row[API_VERSION], row[RESOURCE], row[NAMESPACE], row[NAME])
        object_id = ids.get(key)
        if object_id is None:
            object_id = ids[key] = len(ids) + 1
        yield (*row[:OBJECT], object_id)


def operation_of(row: Row) -> Operation:
    """The `Operation` of a row (the object id dropped)."""
    return Operation(*row[:OBJECT])
