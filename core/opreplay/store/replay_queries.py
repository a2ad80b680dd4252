"""Store queries the replay engine needs, kept apart from the recorder's write path.

The engine must not load a session to move around in it, so everything here is shaped for
random access: operations as plain row tuples over a seq range (building an `Operation` costs
more than reading the row, and a scan over a million rows cannot afford it), the next rows after
(or before) a seq that match an object, status, verb or duration filter (answered by the indexes
on (session, object, seq), (session, status, seq) and (session, verb, seq)), the item digests of
a LIST body without decoding its items, and the checkpoints table.

Checkpoint bytes are opaque here: their format belongs to `opreplay.replay.checkpoints`.
Readers open the database read-only (`query_only`), so `write_checkpoints` on a read-only store
opens a second, writable connection to the same SQLite file for the duration of the call: the
caller asks for it explicitly, nothing here writes behind a reader's back.

This is a mixin of `Store` (see store.py) so that the two files can evolve independently.
"""

from __future__ import annotations

import fnmatch
import heapq
import sqlite3
from collections import ChainMap, OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import peewee
import zstandard

from opreplay.errors import StoreError
from opreplay.model import ObjectKey, Operation, ReconcileInfo, SessionInfo
from opreplay.store import bodies
from opreplay.store.guard import Damaged, guard

BodyBlob = tuple[int, int, "bytes | None", bytes]
"""A body as stored: (format, codec, digest of its delta base or None, data)."""

Row = tuple[Any, ...]
"""One operation as a tuple: the fields of `Operation` in order, then the object id (`ROW_OBJECT`)."""

ROW_SEQ, ROW_TS, ROW_DURATION_US, ROW_THREAD, ROW_VERB = 0, 1, 2, 3, 4
ROW_API_VERSION, ROW_RESOURCE, ROW_KIND, ROW_NAMESPACE, ROW_NAME = 5, 6, 7, 8, 9
ROW_SUBRESOURCE, ROW_STATUS, ROW_REASON, ROW_MESSAGE, ROW_RESOURCE_VERSION = 10, 11, 12, 13, 14
ROW_RECONCILE, ROW_WATCH, ROW_EVENT, ROW_REQUEST, ROW_RESPONSE, ROW_OBJECT = 15, 16, 17, 18, 19, 20

_ROW_COLUMNS = (
    "o.seq, o.ts, o.duration_us, o.thread, o.verb, o.subresource, o.status, o.reason, o.message,"
    " o.resource_version, o.reconcile, o.watch, o.event, o.request, o.response, o.object"
)
"""What is read from `operations`; the object's five columns are joined in Python from a cache of
`objects` (an SQL join costs more than the rest of the row, and the same few objects recur)."""
_RAW_OBJECT = 15
_OBJECT_CACHE = 100_000
_RECENT_BODIES = 512
_DRIVER_LIMIT = 64
"""Up to this many object ids (or statuses, verbs) a query runs once per value on its index."""


def _body_blob(form: Any, codec: Any, base: Any, data: Any) -> BodyBlob:
    """A `bodies` row as Python values (the drivers hand out memoryviews and their own integers)."""
    return int(form), int(codec), bytes(base) if base is not None else None, bytes(data)


def operation_from_row(row: Sequence[Any]) -> Operation:
    """The `Operation` of a row returned by `operation_rows` / `find_operation_rows`."""
    request, response = row[ROW_REQUEST], row[ROW_RESPONSE]
    return Operation(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        row[11],
        row[12],
        row[13],
        row[14],
        row[15],
        row[16],
        row[17],
        bytes(request) if request is not None else None,
        bytes(response) if response is not None else None,
    )


def _seq_rows(raw: list[Any]) -> list[Row]:
    return [(int(row[0]),) for row in raw]


def _digests_as_bytes(row: Row) -> Row:
    request, response = row[ROW_REQUEST], row[ROW_RESPONSE]
    if (request is None or type(request) is bytes) and (response is None or type(response) is bytes):
        return row
    values = list(row)
    values[ROW_REQUEST] = bytes(request) if request is not None else None
    values[ROW_RESPONSE] = bytes(response) if response is not None else None
    return tuple(values)


class ReplayQueries:
    """Read queries for replay and the checkpoints table (mixed into `Store`)."""

    _replay_objects: dict[int, tuple[str, str, str, str, str]]
    _replay_seq_indexes: dict[str, str]
    _replay_recent: OrderedDict[bytes, bytes]
    db: Any  # peewee.Database; typed loosely because peewee's methods are untyped
    label: str
    writable: bool
    has_reconciles: bool
    models: SimpleNamespace

    # -- operations as rows --------------------------------------------------------------------

    def _rows(self, raw: list[Any]) -> list[Row]:
        """Raw `operations` rows -> `Row`s: object columns spliced in, digests as bytes."""
        if not raw:
            return []
        cache: dict[int, tuple[str, str, str, str, str]] | None = getattr(self, "_replay_objects", None)
        if cache is None or len(cache) > _OBJECT_CACHE:
            cache = self._replay_objects = {}
        missing = {r[_RAW_OBJECT] for r in raw if r[_RAW_OBJECT] not in cache}
        if missing:
            param = self.db.param
            ids = sorted(missing)
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                cursor = self.db.execute_sql(
                    "SELECT id, api_version, resource, kind, namespace, name FROM objects"
                    f" WHERE id IN ({', '.join([param] * len(chunk))})",
                    chunk,
                )
                for object_id, api_version, resource, kind, namespace, name in cursor.fetchall():
                    cache[int(object_id)] = (api_version, resource, kind, namespace, name)
        dangling = missing - cache.keys()
        if dangling:
            raise Damaged(f"operations refer to object {min(dangling)}, which is not in the objects table")
        rows = [r[:5] + cache[r[_RAW_OBJECT]] + r[5:] for r in raw]
        if isinstance(self.db, peewee.SqliteDatabase):
            return rows  # sqlite3 returns BLOBs as bytes
        return [_digests_as_bytes(row) for row in rows]

    @guard
    def limit_read_memory(self, *, cache_mib: int = 32, mmap_mib: int = 0) -> None:
        """SQLite: cap the page cache and the memory map of this connection.

        A reader that walks a whole recording (a replay engine running to a breakpoint) would
        otherwise map up to 256 MiB of the file and keep 64 MiB of pages: its resident memory
        would grow with the recording. No effect on other databases.
        """
        if isinstance(self.db, peewee.SqliteDatabase):
            db: Any = self.db
            db.execute_sql(f"PRAGMA cache_size = {-1024 * int(cache_mib)}")
            db.execute_sql(f"PRAGMA mmap_size = {1024 * 1024 * int(mmap_mib)}")

    @guard
    def last_seq(self, session: SessionInfo) -> int:
        """The highest seq of a session (0 when it has none): one index probe."""
        param = self.db.param
        row = self.db.execute_sql(
            f"SELECT MAX(seq) FROM operations WHERE session = {param}", (session.pk,)
        ).fetchone()
        return int(row[0] or 0)

    @guard
    def operation_rows(self, session: SessionInfo, start: int, stop: int) -> list[Row]:
        """Rows (see `Row`) with start <= seq < stop, in seq order."""
        param = self.db.param
        cursor = self.db.execute_sql(
            f"SELECT {_ROW_COLUMNS} FROM operations o"
            f" WHERE o.session = {param} AND o.seq >= {param} AND o.seq < {param} ORDER BY o.seq",
            (session.pk, start, stop),
        )
        return self._rows(cursor.fetchall())

    @guard
    def find_operation_rows(
        self,
        session: SessionInfo,
        start: int,
        stop: int,
        *,
        reverse: bool = False,
        object_ids: Collection[int] | None = None,
        statuses: Collection[int] | None = None,
        verbs: Collection[str] | None = None,
        exclude_verbs: Collection[str] | None = None,
        min_duration_us: int | None = None,
        limit: int = 256,
        seq_only: bool = False,
    ) -> list[Row]:
        """Up to `limit` rows with start <= seq < stop matching every filter given, nearest first.

        Ascending from `start`, or descending from `stop - 1` when `reverse`. A filter left at None
        does not filter; an empty collection matches nothing. A small set of object ids (or
        statuses, verbs) is answered by one index range query per value, merged: the cost is
        that of the rows returned, not of the range. Otherwise the range is scanned inside the
        database with the filters as a WHERE clause. With `seq_only`, each row is `(seq,)`: an
        index answers it without reading the operations themselves (a tenth of the cost).
        """
        if start >= stop or limit <= 0:
            return []
        for values in (object_ids, statuses, verbs):
            if values is not None and not values:
                return []
        param = self.db.param
        clauses = [f"o.session = {param}", f"o.seq >= {param}", f"o.seq < {param}"]
        args: list[Any] = [session.pk, start, stop]

        def add_in(column: str, values: Collection[Any] | None, negate: bool = False) -> None:
            if values is None:
                return
            values = sorted(values)
            marks = ", ".join([param] * len(values))
            clauses.append(f"{column} {'NOT IN' if negate else 'IN'} ({marks})")
            args.extend(values)

        driver: tuple[str, list[Any]] | None = None
        if object_ids is not None and len(object_ids) <= _DRIVER_LIMIT:
            driver = ("o.object", sorted(object_ids))
        else:
            add_in("o.object", object_ids)
        if driver is None and statuses is not None and len(statuses) <= _DRIVER_LIMIT:
            driver = ("o.status", sorted(statuses))
        else:
            add_in("o.status", statuses)
        if driver is None and verbs is not None and len(verbs) <= _DRIVER_LIMIT:
            driver = ("o.verb", sorted(verbs))
        else:
            add_in("o.verb", verbs)
        add_in("o.verb", exclude_verbs, negate=True)
        if min_duration_us is not None:
            clauses.append(f"o.duration_us >= {param}")
            args.append(min_duration_us)
        order = "DESC" if reverse else "ASC"
        base = f"SELECT {'o.seq' if seq_only else _ROW_COLUMNS} FROM operations o WHERE "
        convert: Callable[[list[Any]], list[Row]] = _seq_rows if seq_only else self._rows

        if driver is None:
            sql = f"{base}{' AND '.join(clauses)} ORDER BY o.seq {order} LIMIT {int(limit)}"
            return convert(self.db.execute_sql(sql, args).fetchall())
        column, values = driver
        index = self._seq_indexes().get(column.removeprefix("o."))
        if index is not None:  # SQLite has no statistics here and would rather walk the primary key
            base = base.replace("FROM operations o ", f'FROM operations o INDEXED BY "{index}" ', 1)
        sql = (
            f"{base}{column} = {param} AND {' AND '.join(clauses)} ORDER BY o.seq {order} LIMIT {int(limit)}"
        )
        streams = [convert(self.db.execute_sql(sql, [value, *args]).fetchall()) for value in values]
        streams = [stream for stream in streams if stream]
        if len(streams) == 1:
            return streams[0]
        merged = heapq.merge(*streams, key=lambda row: row[ROW_SEQ], reverse=reverse)
        return [row for _, row in zip(range(limit), merged, strict=False)]

    @guard
    def operation_objects(
        self, session: SessionInfo, start: int, stop: int, *, verbs: Collection[str] | None = None
    ) -> list[tuple[int, int]]:
        """(seq, object id) of the operations with start <= seq < stop (of those verbs), ascending.

        Two integers a row, read from the indexes: what a detector that counts operations per
        object over a window (hot loops) needs, without the rows' text and digests.
        """
        param = self.db.param
        base = (
            f"SELECT seq, object FROM operations WHERE session = {param} AND seq >= {param} AND seq < {param}"
        )
        if verbs is None:
            cursor = self.db.execute_sql(f"{base} ORDER BY seq", (session.pk, start, stop))
            return [(int(seq), int(obj)) for seq, obj in cursor.fetchall()]
        found: list[tuple[int, int]] = []
        for verb in sorted(verbs):
            cursor = self.db.execute_sql(f"{base} AND verb = {param}", (session.pk, start, stop, verb))
            found.extend((int(seq), int(obj)) for seq, obj in cursor.fetchall())
        found.sort()
        return found

    def _seq_indexes(self) -> dict[str, str]:
        """SQLite: column -> name of the index on (session, column, seq), to name in INDEXED BY.

        Without ANALYZE statistics SQLite answers `status = ? AND seq > ? ORDER BY seq LIMIT n`
        by walking the primary key from `seq`, which reads the whole range when the status is rare.
        """
        found: dict[str, str] | None = getattr(self, "_replay_seq_indexes", None)
        if found is not None:
            return found
        found = {}
        db = self.db
        sqlite = isinstance(db, peewee.SqliteDatabase)
        if sqlite:
            cursor = db.execute_sql(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'operations'"
            )
            for (name,) in cursor.fetchall():
                columns = [row[2] for row in db.execute_sql(f'PRAGMA index_info("{name}")').fetchall()]
                if len(columns) == 3 and columns[0] == "session" and columns[2] == "seq":
                    found[columns[1]] = name
        self._replay_seq_indexes = found
        return found

    def distinct_statuses(self, session: SessionInfo) -> list[int]:
        """The HTTP statuses that occur in a session."""
        return [int(value) for value in self._distinct(session, "status")]

    def distinct_verbs(self, session: SessionInfo) -> list[str]:
        """The verbs that occur in a session."""
        return [str(value) for value in self._distinct(session, "verb")]

    @guard
    def _distinct(self, session: SessionInfo, column: str) -> list[Any]:
        """The values of an indexed (session, column, seq) column in a session: one index probe each."""
        param = self.db.param
        sql = (
            "WITH RECURSIVE s(x) AS ("
            f" SELECT MIN({column}) FROM operations WHERE session = {param}"
            f" UNION ALL SELECT (SELECT MIN({column}) FROM operations"
            f" WHERE session = {param} AND {column} > s.x)"
            " FROM s WHERE s.x IS NOT NULL)"
            " SELECT x FROM s WHERE x IS NOT NULL"
        )
        return [row[0] for row in self.db.execute_sql(sql, (session.pk, session.pk)).fetchall()]

    # -- objects -------------------------------------------------------------------------------

    @guard
    def object_rows(self, limit: int | None = None) -> list[tuple[int, str, str, str, str, str]] | None:
        """(id, api_version, resource, kind, namespace, name) of every interned object, by id.

        The columns an operation row takes from its object, exactly as the rows have them (see
        `Row`): a predicate on those fields is a predicate on object ids. The table is shared by
        the sessions of the store. None when it holds more than `limit` objects.
        """
        sql = "SELECT id, api_version, resource, kind, namespace, name FROM objects ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit) + 1}"
        found = [
            (int(object_id), api_version, resource, kind, namespace, name)
            for object_id, api_version, resource, kind, namespace, name in self.db.execute_sql(sql)
        ]
        if limit is not None and len(found) > limit:
            return None
        return found

    @guard
    def find_objects(
        self, kind: str = "*", namespace: str = "*", name: str = "*"
    ) -> list[tuple[int, ObjectKey, str]]:
        """(id, key, kind) of the interned objects matching shell-style globs (`*`, `?`, `[...]`).

        `kind` matches the kind or the plural resource name, case-insensitively; namespace and
        name match exactly (case-sensitive, as Kubernetes names are). The table is shared by all
        sessions of the store, so an id here may have no operation in a given session.
        """
        param = self.db.param
        clauses: list[str] = []
        args: list[Any] = []
        for column, pattern in (("namespace", namespace), ("name", name)):
            if not any(ch in pattern for ch in "*?["):
                clauses.append(f"{column} = {param}")
                args.append(pattern)
        sql = "SELECT id, api_version, resource, namespace, name, kind FROM objects"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        kind_pattern = kind.lower()
        found = []
        for object_id, api_version, resource, ns, nm, knd in self.db.execute_sql(sql, args):
            kinds = (knd.lower(), resource.lower())
            if not any(fnmatch.fnmatchcase(k, kind_pattern) for k in kinds):
                continue
            if fnmatch.fnmatchcase(ns, namespace) and fnmatch.fnmatchcase(nm, name):
                found.append((int(object_id), ObjectKey(api_version, resource, ns, nm), knd))
        return found

    @guard
    def object_ids(self, keys: Iterable[ObjectKey]) -> dict[ObjectKey, int]:
        """The interned ids of the keys that some operation touched (absent keys are left out)."""
        param = self.db.param
        sql = (
            f"SELECT id FROM objects WHERE api_version = {param} AND resource = {param}"
            f" AND namespace = {param} AND name = {param}"
        )
        found: dict[ObjectKey, int] = {}
        for key in keys:
            args = (key.api_version, key.resource, key.namespace, key.name)
            row = self.db.execute_sql(sql, args).fetchone()
            if row is not None:
                found[key] = int(row[0])
        return found

    # -- bodies --------------------------------------------------------------------------------

    @guard
    def list_item_digests(self, key: bytes) -> list[bytes] | None:
        """The item digests of a LIST body, without decoding the items; None for a plain document."""
        form, stored = self._stored(key)
        if form != bodies.LIST:
            return None
        return bodies.unpack_list(stored)[1]

    @guard
    def body_documents(self, keys: Collection[bytes]) -> dict[bytes, bytes]:
        """JSON bytes of several bodies, read in a few queries (LIST bodies reassembled).

        Digests the store does not hold are left out of the result.
        """
        blobs = self.body_blobs(keys)
        return {key: self.decode_body_blob(key, blob) for key, blob in blobs.items()}

    @guard
    def body_blobs(self, keys: Collection[bytes]) -> dict[bytes, BodyBlob]:
        """Several bodies as stored, undecoded, in a few queries: for a reader that prefetches many
        bodies and decodes (`decode_body_blob`) only those it ends up using. Digests the store does
        not hold are left out."""
        param = self.db.param
        wanted = list(dict.fromkeys(keys))
        found: dict[bytes, BodyBlob] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join([param] * len(chunk))
            sql = f"SELECT digest, format, codec, base, data FROM bodies WHERE digest IN ({marks})"
            for key, *stored in self.db.execute_sql(sql, chunk).fetchall():
                found[bytes(key)] = _body_blob(*stored)
        return found

    @guard
    def reconcile_info(self, session: SessionInfo, reconcile: int) -> ReconcileInfo | None:
        """What the reconcile was about, when the recorder was told (`rec.reconcile(kind, ns, name)`)."""
        if not self.has_reconciles:
            return None
        param = self.db.param
        sql = (
            "SELECT kind, namespace, name, started_at FROM reconciles"
            f" WHERE session = {param} AND id = {param}"
        )
        row = self.db.execute_sql(sql, [session.pk, reconcile]).fetchone()
        return None if row is None else ReconcileInfo(reconcile, row[0], row[1], row[2], float(row[3]))

    @guard
    def body_chain(self, key: bytes) -> dict[bytes, BodyBlob]:
        """A body and the delta bases under it, as stored, in one query (see `decode_body_blob`)."""
        param = self.db.param
        sql = (
            "WITH RECURSIVE chain(digest, format, codec, base, data, depth) AS ("
            f" SELECT digest, format, codec, base, data, 0 FROM bodies WHERE digest = {param}"
            " UNION ALL SELECT b.digest, b.format, b.codec, b.base, b.data, c.depth + 1"
            f" FROM bodies b JOIN chain c ON b.digest = c.base WHERE c.depth < {bodies.MAX_DELTA_DEPTH})"
            " SELECT digest, format, codec, base, data FROM chain"
        )
        return {bytes(digest): _body_blob(*stored) for digest, *stored in self.db.execute_sql(sql, [key])}

    @guard
    def decode_body_blob(
        self, key: bytes, blob: BodyBlob, others: Mapping[bytes, BodyBlob] | None = None, _depth: int = 0
    ) -> bytes:
        """The JSON bytes of a body from `body_blobs`.

        A delta's base comes from the bodies this method decoded last (a scan decodes an object's
        versions one after the other), else from `others` (the rest of a prefetched batch: going
        backwards, a version is decoded before its base), else it is read and decoded the same way,
        so that walking down a chain stops at the first version decoded lately (a version a scan
        never read, such as a LIST item, is often the base of the next one it reads).
        """
        recent: OrderedDict[bytes, bytes] | None = getattr(self, "_replay_recent", None)
        if recent is None:
            recent = self._replay_recent = OrderedDict()
        found = recent.get(key)
        if found is not None:
            return found
        form, codec, base, data = blob
        if form != bodies.DOCUMENT:
            return self.body_bytes(key)
        base_bytes = None
        if base is not None:
            base_bytes = recent.get(base)
            if base_bytes is None:
                base_blob = None
                if _depth < 64:
                    base_blob = others.get(base) if others is not None else None
                    if base_blob is None:
                        # going backwards, the versions under this one were not decoded yet
                        chain = self.body_chain(base)
                        base_blob = chain.get(base)
                        others = ChainMap(chain, cast(dict[bytes, BodyBlob], others)) if others else chain
                if base_blob is not None:
                    base_bytes = self.decode_body_blob(base, base_blob, others, _depth + 1)
                else:
                    base_bytes = self._stored(base)[1]
        try:
            decoded = bodies.decompress(codec, data, base_bytes)
        except (ValueError, zstandard.ZstdError) as error:
            raise StoreError(f"{self.label}: body {key.hex()} is corrupted ({error})") from None
        recent[key] = decoded
        if len(recent) > _RECENT_BODIES:
            recent.popitem(last=False)
        return decoded

    def body_bytes(self, key: bytes) -> bytes:  # provided by Store
        raise NotImplementedError

    def _stored(self, key: bytes) -> tuple[int, bytes]:  # provided by Store: (format, decoded bytes)
        raise NotImplementedError

    # -- checkpoints ---------------------------------------------------------------------------

    @guard
    def checkpoint_seqs(self, session: SessionInfo) -> list[int]:
        """The seqs at which the session has a stored checkpoint, ascending."""
        param = self.db.param
        cursor = self.db.execute_sql(
            f"SELECT seq FROM checkpoints WHERE session = {param} ORDER BY seq", (session.pk,)
        )
        return [int(row[0]) for row in cursor.fetchall()]

    @guard
    def read_checkpoints(self, session: SessionInfo, start: int, stop: int) -> list[tuple[int, bytes]]:
        """(seq, data) of the checkpoints with start <= seq <= stop, ascending."""
        param = self.db.param
        cursor = self.db.execute_sql(
            f"SELECT seq, data FROM checkpoints WHERE session = {param} AND seq >= {param} AND seq <= {param}"
            " ORDER BY seq",
            (session.pk, start, stop),
        )
        return [(int(seq), bytes(data)) for seq, data in cursor.fetchall()]

    @guard
    def write_checkpoints(self, session: SessionInfo, records: Sequence[tuple[int, bytes]]) -> None:
        """Store (seq, data) checkpoints, replacing any at the same seqs, in one transaction.

        A writable store writes on its own connection. A read-only SQLite store opens a second,
        writable connection to its file for this call only (raising `StoreError` when the file or
        its folder is not writable); a read-only server store refuses.
        """
        if not records:
            return
        rows = [(session.pk, int(seq), data) for seq, data in records]
        if self.writable:
            param = self.db.param
            delete = f"DELETE FROM checkpoints WHERE session = {param} AND seq = {param}"
            insert = f"INSERT INTO checkpoints (session, seq, data) VALUES ({param}, {param}, {param})"
            with self.db.atomic():
                cursor = self.db.cursor()
                cursor.executemany(delete, [(pk, seq) for pk, seq, _ in rows])
                cursor.executemany(insert, rows)
            return
        if not isinstance(self.db, peewee.SqliteDatabase):
            raise StoreError(f"{self.label}: opened read-only; cannot store checkpoints")
        path = Path(self.db.database)
        try:
            connection = sqlite3.connect(str(path), timeout=30)
        except sqlite3.Error as error:
            raise StoreError(f"{self.label}: cannot open for writing checkpoints ({error})") from None
        try:
            with connection:
                connection.executemany(
                    "INSERT OR REPLACE INTO checkpoints (session, seq, data) VALUES (?, ?, ?)", rows
                )
        except sqlite3.Error as error:
            raise StoreError(f"{self.label}: cannot write checkpoints ({error})") from None
        finally:
            connection.close()

    @guard
    def delete_checkpoints(self, session: SessionInfo) -> None:
        """Drop every checkpoint of a session (to rebuild them); needs a writable store."""
        if not self.writable:
            raise StoreError(f"{self.label}: opened read-only")
        param = self.db.param
        with self.db.atomic():
            self.db.execute_sql(f"DELETE FROM checkpoints WHERE session = {param}", (session.pk,))
