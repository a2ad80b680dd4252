"""The Store: the one place that opens a recording database, with its pragmas and its checks.

Opening is careful because recordings come from elsewhere: a file is inspected before SQLite is
allowed near it, a reader never writes (`query_only`), and every database error on the way out is
turned into a `StoreError` that names the file and the problem in one line. Writes go through
`append`, which uses the driver's `executemany` inside one transaction: peewee's query builder is
about ten times slower than that on the recorder's hot path.
"""

from __future__ import annotations

import json
import os
import random
import socket
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import peewee
import zstandard
from playhouse.db_url import connect as connect_url

from opreplay.errors import SessionNotFound, StoreError
from opreplay.model import JSONValue, NewOperation, Operation, ReconcileInfo, SessionInfo
from opreplay.store import bodies
from opreplay.store.guard import DAMAGE, Damaged, describe, guard
from opreplay.store.replay_queries import BodyBlob, ReplayQueries
from opreplay.store.schema import APPLICATION, SCHEMA_VERSION, SQLITE_APPLICATION_ID, bind_models

SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "cache_size": -65536,  # 64 MiB
    "temp_store": "memory",
    "mmap_size": 268435456,
    "foreign_keys": 0,
}
SQLITE_BUSY_TIMEOUT_S = 30
_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: ids are read aloud and typed
_ID_LENGTH = 6
_OBJECT_CACHE_LIMIT = 200_000
_BODY_CACHE_LIMIT = 200_000
_DIGEST_CACHE_BYTES = 16 << 20
_LATEST_LIMIT = 20_000  # objects whose latest version is kept as a delta base while recording
_READ_CACHE_LIMIT = 2_048

BodyRow = tuple[bytearray, int, int, bytearray | None, int, bytearray]
"""digest, format, codec, base digest (or the store's NULL), size, stored bytes: one row of the bodies
table, blobs as bytearrays (see `Store.__init__`)."""

OPERATION_COLUMNS = (
    "o.seq, o.ts, o.duration_us, o.thread, o.verb, b.api_version, b.resource, b.kind, b.namespace, b.name,"
    " o.subresource, o.status, o.reason, o.message, o.resource_version, o.reconcile, o.watch, o.event,"
    " o.request, o.response"
)


def _check_sqlite_file(path: Path, *, create: bool) -> bool:
    """Inspect the file before SQLite opens it; True when it is new (absent or empty)."""
    if not path.exists():
        if not create:
            raise StoreError(f"{path}: no such file")
        if not path.parent.is_dir():
            raise StoreError(f"{path}: the folder {path.parent} does not exist")
        return True
    if path.is_dir():
        raise StoreError(f"{path}: is a directory, not a recording database")
    size = path.stat().st_size
    if size == 0:
        if not create:
            raise StoreError(f"{path}: is empty, not an opreplay recording")
        return True
    try:
        with path.open("rb") as file:
            header = file.read(100)
    except OSError as error:
        raise StoreError(f"{path}: cannot be read ({error.strerror})") from None
    if len(header) < 100 or not header.startswith(SQLITE_HEADER):
        raise StoreError(f"{path}: is not a SQLite database (opreplay recordings are SQLite files)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    page_count = int.from_bytes(header[28:32], "big")
    header_count_valid = header[24:28] == header[92:96]
    if header_count_valid and page_count * page_size > size:
        raise StoreError(
            f"{path}: is truncated (its header says {page_count * page_size} bytes, the file has {size})"
        )
    return False


def _check_sqlite_contents(path: Path, *, create: bool) -> None:
    """Look inside an existing SQLite file through a read-only connection, before any pragma runs."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise StoreError(f"{path}: cannot be opened ({error})") from None
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "opreplay_meta" not in tables:
            if tables or not create:
                raise StoreError(f"{path}: is a SQLite database, but not an opreplay recording")
            return
        row = connection.execute("SELECT value FROM opreplay_meta WHERE key = 'schema_version'").fetchone()
    except DAMAGE as error:
        raise StoreError(f"{path}: {describe(error)}") from None
    finally:
        connection.close()
    _check_schema_version(str(path), row[0] if row else None)


def _check_schema_version(label: str, value: str | None) -> None:
    if value is None:
        raise StoreError(f"{label}: is an opreplay recording without a schema version")
    try:
        version = int(value)
    except ValueError:
        raise StoreError(f"{label}: has an unreadable schema version {value!r}") from None
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{label}: was written by a newer opreplay (schema {version});"
            f" this one reads schema {SCHEMA_VERSION} and older: upgrade opreplay"
        )


class Store(ReplayQueries):
    """A recording database: sessions, operations, bodies, checkpoints."""

    def __init__(
        self, database: peewee.Database, label: str, *, writable: bool, target: str | None = None
    ) -> None:
        self.db = database
        self.label = label
        self.target = target
        """What `Store.open` was given (None for a store made otherwise): another process opens
        the same database with it. Unlike `label`, a URL keeps its password."""
        self.writable = writable
        self.has_reconciles = False
        """Whether the file has the reconciles table (older recordings do not)."""
        self.models = bind_models(database)
        self._sqlite = isinstance(database, peewee.SqliteDatabase)
        self._postgres = isinstance(database, peewee.PostgresqlDatabase)
        param = database.param
        conflict = "OR IGNORE " if self._sqlite else ""
        suffix = "" if self._sqlite else " ON CONFLICT DO NOTHING"
        # Python's sqlite3 binds int, float, str and bytearray directly, but runs None and bytes
        # through its adaptation protocol, about 0.7 us a value: for an operations row, half of
        # SQLite's own work on it. The hot path binds blobs as bytearrays and NULL as an empty blob
        # that SQL turns back into NULL (no column holds an empty blob).
        self._null: bytearray | None = bytearray() if self._sqlite else None
        nullable = f"NULLIF({param}, x'')" if self._sqlite else param
        self._insert_body = (
            f"INSERT {conflict}INTO bodies (digest, format, codec, base, size, data)"
            f" VALUES ({', '.join([param] * 3 + [nullable] + [param] * 2)}){suffix}"
        )
        self._insert_object = (
            f"INSERT {conflict}INTO objects (api_version, resource, kind, namespace, name)"
            f" VALUES ({', '.join([param] * 5)}){suffix}"
        )
        self._select_object = (
            f"SELECT id FROM objects WHERE api_version = {param} AND resource = {param}"
            f" AND namespace = {param} AND name = {param}"
        )
        self._insert_operation = (
            "INSERT INTO operations (session, seq, ts, duration_us, thread, verb, object, subresource,"
            " status, reason, message, resource_version, reconcile, watch, event, request, response)"
            f" VALUES ({', '.join([param] * 7 + [nullable, param] + [nullable] * 8)})"
        )
        self._object_ids: dict[tuple[str, str, str, str], int] = {}
        self._known_bodies: dict[bytes, int] = {}  # digest -> delta depth, for bodies written here
        # Body bytes -> digest: the recorder hands the same bytes object again for an unchanged
        # object (its hash cached), and Python's hash of new bytes costs a third of SHA-256's.
        self._digests: dict[bytes, bytes] = {}
        self._digests_size = 0
        self._latest: OrderedDict[tuple[str, str, str, str], tuple[bytes, bytes, int]] = OrderedDict()
        self._read_cache: OrderedDict[bytes, tuple[int, bytes]] = OrderedDict()
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, target: str | os.PathLike[str], *, create: bool = False) -> Store:
        """Open a SQLite file or a database URL; `create=True` makes a new store where there is none.

        Without `create` the store is read-only: nothing is written to the file, ever.
        """
        text = os.fspath(target)
        if "://" in text and not text.startswith("sqlite"):
            return cls._open_url(text, create=create)
        path = Path(text.removeprefix("sqlite:///")) if text.startswith("sqlite") else Path(text)
        new = _check_sqlite_file(path, create=create)
        pragmas: dict[str, Any] = (
            dict(SQLITE_PRAGMAS)
            if create
            else {
                "query_only": 1,
                "cache_size": SQLITE_PRAGMAS["cache_size"],
                "mmap_size": SQLITE_PRAGMAS["mmap_size"],
            }
        )
        if not new:
            _check_sqlite_contents(path, create=create)
        database = peewee.SqliteDatabase(
            str(path), pragmas=pragmas, timeout=SQLITE_BUSY_TIMEOUT_S, check_same_thread=False
        )
        reopen = None if str(path) == ":memory:" else str(path)
        store = cls(database, str(path), writable=create, target=reopen)
        try:
            store._connect()
        except BaseException:
            database.close()
            raise
        return store

    @classmethod
    def _open_url(cls, url: str, *, create: bool) -> Store:
        label = _redact_url(url)
        try:
            database = connect_url(url)
        except Exception as error:  # bad scheme, missing driver: both are the user's to fix
            raise StoreError(f"{label}: cannot open ({error})") from None
        store = cls(database, label, writable=create, target=url)
        store._connect()
        return store

    def _connect(self) -> None:
        try:
            tables = self._connect_waiting_for_writers()
        except peewee.OperationalError as error:
            raise StoreError(f"{self.label}: cannot connect ({describe(error)})") from None
        except DAMAGE as error:
            raise StoreError(f"{self.label}: {describe(error)}") from None
        if "opreplay_meta" not in tables:
            if tables or not self.writable:
                raise StoreError(f"{self.label}: is a database, but not an opreplay recording")
            self._initialize()
            self.has_reconciles = True
            return
        row = self._guarded_meta("schema_version")
        _check_schema_version(self.label, row)
        self.has_reconciles = "reconciles" in tables
        if not self.has_reconciles and self.writable:
            self._add_reconciles_table()

    def _connect_waiting_for_writers(self) -> set[str]:
        """Connect and list the tables, waiting while another connection holds the write lock.

        Switching a file to WAL needs that lock, and SQLite answers "database is locked" at once
        there instead of calling the busy handler: recorders that open one new file together would
        fail. So a locked connect is retried, within the same time the busy handler would wait.
        """
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
        while True:
            try:
                self.db.connect(reuse_if_open=True)
                return set(self.db.get_tables())
            except peewee.OperationalError as error:
                if not self._sqlite or "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                self.db.close()
                time.sleep(random.uniform(0.002, 0.02))

    @guard
    def _add_reconciles_table(self) -> None:
        with self.db.atomic():
            self._lock_schema()
            self.db.create_tables([self.models.Reconcile], safe=True)
        self.has_reconciles = True

    def _lock_schema(self) -> None:
        """Serialize schema changes between processes, until the transaction ends.

        SQLite's write lock does it already; PostgreSQL runs `CREATE TABLE IF NOT EXISTS` of two
        transactions side by side, and the second fails on the catalog's unique index.
        """
        if self._postgres:
            self.db.execute_sql(f"SELECT pg_advisory_xact_lock({SQLITE_APPLICATION_ID})")

    @guard
    def _guarded_meta(self, key: str) -> str | None:
        row = self.models.Meta.get_or_none(self.models.Meta.key == key)
        return None if row is None else str(row.value)

    @guard
    def _initialize(self) -> None:
        with self.db.atomic():
            self._lock_schema()
            self.db.create_tables(self.models.all)
            self.models.Meta.insert_many(
                [
                    {"key": "schema_version", "value": str(SCHEMA_VERSION)},
                    {"key": "application", "value": APPLICATION},
                ]
            ).on_conflict_ignore().execute()
            if self._sqlite:
                self.db.execute_sql(f"PRAGMA application_id = {SQLITE_APPLICATION_ID}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_writable(self) -> None:
        if not self.writable:
            raise StoreError(f"{self.label}: opened read-only")

    # -- sessions ------------------------------------------------------------------------------

    @guard
    def create_session(
        self,
        *,
        name: str | None,
        started_at: float,
        command: str,
        kube_context: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> SessionInfo:
        self._require_writable()
        Session = self.models.Session
        for _ in range(20):
            session_id = "".join(random.choices(_ID_ALPHABET, k=_ID_LENGTH))
            try:
                with self._write_lock, self.db.atomic():
                    row = Session.create(
                        id=session_id,
                        name=name,
                        started_at=started_at,
                        host=socket.gethostname(),
                        pid=os.getpid(),
                        command=command,
                        kube_context=kube_context,
                        labels=json.dumps(labels or {}, sort_keys=True),
                    )
                return self._session_info(row)
            except peewee.IntegrityError:
                continue
        raise StoreError(f"{self.label}: could not allocate a unique session id")

    @guard
    def end_session(self, session: SessionInfo, ended_at: float) -> None:
        self._require_writable()
        Session = self.models.Session
        with self._write_lock, self.db.atomic():
            Session.update(ended_at=ended_at).where(Session.pk == session.pk).execute()

    @guard
    def sessions(self) -> list[SessionInfo]:
        """Every session, newest first."""
        Session = self.models.Session
        query = Session.select().order_by(Session.started_at.desc(), Session.pk.desc())
        return [self._session_info(row) for row in query]

    @guard
    def find_session(self, ref: str) -> SessionInfo:
        """A session by id, by name (the newest of that name), or `latest`."""
        Session = self.models.Session
        newest = Session.select().order_by(Session.started_at.desc(), Session.pk.desc())
        if ref == "latest":
            row = newest.first()
            if row is None:
                raise SessionNotFound(f"{self.label}: holds no sessions yet")
            return self._session_info(row)
        row = Session.get_or_none(Session.id == ref) or newest.where(Session.name == ref).first()
        if row is None:
            raise SessionNotFound(
                f"{self.label}: no session {ref!r} (see `opreplay sessions -d {self.label}`)"
            )
        return self._session_info(row)

    @staticmethod
    def _session_info(row: Any) -> SessionInfo:
        return SessionInfo(
            pk=row.pk,
            id=row.id,
            name=row.name,
            started_at=row.started_at,
            ended_at=row.ended_at,
            host=row.host,
            pid=row.pid,
            command=row.command,
            kube_context=row.kube_context,
            labels=json.loads(row.labels or "{}"),
            operations=row.operations,
            errors=row.errors,
            dropped=row.dropped,
        )

    # -- writing -------------------------------------------------------------------------------

    @guard
    def append(
        self,
        session: SessionInfo,
        first_seq: int,
        operations: Sequence[NewOperation],
        *,
        dropped: int = 0,
        reconciles: Sequence[ReconcileInfo] = (),
    ) -> None:
        """Insert operations numbered from `first_seq`, in one transaction with their bodies and the
        reconciles that started since the last batch."""
        self._require_writable()
        body_rows: list[BodyRow] = []
        op_rows: list[tuple[Any, ...]] = []
        errors = 0
        null = self._null
        with self._write_lock, self._transaction():
            cursor = self.db.cursor()
            for offset, op in enumerate(operations):
                key = (op.api_version, op.resource, op.namespace, op.name)
                versioned = key if op.name else None
                request = (
                    self._document_row(op.request, body_rows, versioned, remember=False)
                    if op.request is not None
                    else None
                )
                if op.response_items is not None and op.response is not None:
                    items = [self._document_row(item, body_rows, None) for item in op.response_items]
                    response: bytes | None = self._list_row(op.response, items, body_rows)
                elif op.response is not None and op.status < 400:
                    response = self._document_row(op.response, body_rows, versioned)
                elif op.response is not None:
                    response = self._document_row(op.response, body_rows, None)
                else:
                    response = None
                if op.status >= 400 or (op.status == 0 and op.verb not in ("watch-event", "gap")):
                    errors += 1
                op_rows.append(
                    (
                        session.pk,
                        first_seq + offset,
                        op.ts,
                        op.duration_us,
                        op.thread,
                        op.verb,
                        self._object_id(cursor, op),
                        null if op.subresource is None else op.subresource,
                        op.status,
                        null if op.reason is None else op.reason,
                        null if op.message is None else op.message,
                        null if op.resource_version is None else op.resource_version,
                        null if op.reconcile is None else op.reconcile,
                        null if op.watch is None else op.watch,
                        null if op.event is None else op.event,
                        null if request is None else bytearray(request),
                        null if response is None else bytearray(response),
                    )
                )
            if body_rows:
                cursor.executemany(self._insert_body, body_rows)
            cursor.executemany(self._insert_operation, op_rows)
            if reconciles:
                self.models.Reconcile.insert_many(
                    [
                        {
                            "session": session.pk,
                            "id": r.id,
                            "kind": r.kind,
                            "namespace": r.namespace,
                            "name": r.name,
                            "started_at": r.started_at,
                        }
                        for r in reconciles
                    ]
                ).on_conflict_ignore().execute()
            Session = self.models.Session
            Session.update(
                operations=Session.operations + len(op_rows),
                errors=Session.errors + errors,
                dropped=Session.dropped + dropped,
            ).where(Session.pk == session.pk).execute()
        if len(self._known_bodies) > _BODY_CACHE_LIMIT:
            self._known_bodies.clear()

    def _transaction(self) -> Any:
        if self._sqlite:
            return self.db.atomic(lock_type="IMMEDIATE")
        return self.db.atomic()

    def _document_row(
        self,
        data: bytes,
        rows: list[BodyRow],
        versioned: tuple[str, str, str, str] | None,
        *,
        remember: bool = True,
    ) -> bytes:
        """Store a JSON document once; a new version of an object as a delta against the previous.

        Only responses are remembered as the object's latest version: a request (a small patch)
        is a poor base for the next full object.
        """
        key = self._digest(data)
        depth = self._known_bodies.get(key)
        if depth is None:
            previous = self._latest.get(versioned) if versioned is not None else None
            if previous is not None and previous[2] < bodies.MAX_DELTA_DEPTH and len(data) >= 256:
                base, base_data, base_depth = previous
                depth = base_depth + 1
                rows.append(
                    (
                        bytearray(key),
                        bodies.DOCUMENT,
                        bodies.DELTA,
                        bytearray(base),
                        len(data),
                        bytearray(bodies.compress_delta(data, base_data)),
                    )
                )
            else:
                depth = 0
                codec, blob = bodies.compress(data)
                rows.append((bytearray(key), bodies.DOCUMENT, codec, self._null, len(data), bytearray(blob)))
            self._known_bodies[key] = depth
        if versioned is not None and remember:
            self._latest[versioned] = (key, data, depth)
            self._latest.move_to_end(versioned)
            if len(self._latest) > _LATEST_LIMIT:
                self._latest.popitem(last=False)
        return key

    def _digest(self, data: bytes) -> bytes:
        key = self._digests.get(data)
        if key is None:
            key = self._digests[data] = bodies.digest(data)
            self._digests_size += len(data)
            if self._digests_size > _DIGEST_CACHE_BYTES:
                self._digests.clear()
                self._digests_size = 0
        return key

    def _list_row(self, envelope: bytes, items: list[bytes], rows: list[BodyRow]) -> bytes:
        packed = bodies.pack_list(envelope, items)
        key = bodies.digest(packed)
        if key not in self._known_bodies:
            self._known_bodies[key] = 0
            codec, blob = bodies.compress(packed)
            rows.append((bytearray(key), bodies.LIST, codec, self._null, len(packed), bytearray(blob)))
        return key

    def _object_id(self, cursor: Any, op: NewOperation) -> int:
        key = (op.api_version, op.resource, op.namespace, op.name)
        object_id = self._object_ids.get(key)
        if object_id is None:
            cursor.execute(self._insert_object, (op.api_version, op.resource, op.kind, op.namespace, op.name))
            cursor.execute(self._select_object, key)
            object_id = int(cursor.fetchone()[0])
            if len(self._object_ids) > _OBJECT_CACHE_LIMIT:
                self._object_ids.clear()
            self._object_ids[key] = object_id
        return object_id

    # -- reading -------------------------------------------------------------------------------

    @guard
    def operations(self, session: SessionInfo, start: int = 1, stop: int | None = None) -> list[Operation]:
        """Operations with start <= seq < stop, in order."""
        param = self.db.param
        sql = (  # LEFT: an operation whose object row is gone is damage to report, not to skip
            f"SELECT {OPERATION_COLUMNS} FROM operations o LEFT JOIN objects b ON b.id = o.object"
            f" WHERE o.session = {param} AND o.seq >= {param}"
        )
        args: list[Any] = [session.pk, start]
        if stop is not None:
            sql += f" AND o.seq < {param}"
            args.append(stop)
        sql += " ORDER BY o.seq"
        return [_operation(row) for row in self.db.execute_sql(sql, args)]

    @guard
    def iter_operations(self, session: SessionInfo, *, batch: int = 5000) -> Iterator[Operation]:
        """Every operation of a session in order, read in batches: memory does not grow with length."""
        start = 1
        while True:
            chunk = self.operations(session, start, start + batch)
            if not chunk:
                return
            yield from chunk
            start = chunk[-1].seq + 1

    @guard
    def body_bytes(self, key: bytes) -> bytes:
        """The JSON bytes of a body, a LIST reassembled from its items."""
        form, stored = self._stored(key)
        if form == bodies.DOCUMENT:
            return stored
        envelope, items = bodies.unpack_list(stored)
        joined = b",".join(self._stored(item)[1] for item in items)
        return envelope[:-1] + (b"," if envelope[-2:-1] != b"{" else b"") + b'"items":[' + joined + b"]}"

    def _stored(self, key: bytes) -> tuple[int, bytes]:
        """(format, decompressed bytes) of a body, through a small cache of the recent ones.

        A delta needs its base decoded first: the walk goes down the chain to a cached base or a
        keyframe, then decodes back up. A base that is neither cached nor read yet comes with the
        rest of its chain in one query: a version reached by a jump can sit sixteen deltas above
        its keyframe, and sixteen queries cost four times one that returns sixteen rows.
        """
        below: bytes | None = key
        blobs: Mapping[bytes, BodyBlob] = {}
        pending: list[tuple[bytes, BodyBlob]] = []
        decoded = None
        while below is not None:
            if len(pending) > bodies.MAX_DELTA_DEPTH:  # the writer cuts chains there: this one loops
                raise StoreError(
                    f"{self.label}: body {key.hex()} is corrupted (its delta chain does not end)"
                )
            decoded = self._cached_body(below)
            if decoded is not None:
                break
            if below not in blobs:  # the body itself, then the rest of its chain at once
                blobs = self.body_chain(below) if pending else self.body_blobs((below,))
            blob = blobs.get(below)
            if blob is None:
                raise StoreError(f"{self.label}: body {below.hex()} is missing")
            pending.append((below, blob))
            below = blob[2]
        for digest, (form, codec, base, data) in reversed(pending):
            base_bytes = decoded[1] if decoded is not None and base is not None else None
            try:
                decoded = (form, bodies.decompress(codec, data, base_bytes))
            except (ValueError, zstandard.ZstdError) as error:
                raise StoreError(f"{self.label}: body {digest.hex()} is corrupted ({error})") from None
            self._remember_body(digest, decoded)
        assert decoded is not None  # the loop ends on a cached body or after decoding at least `key`
        return decoded

    def _cached_body(self, key: bytes) -> tuple[int, bytes] | None:
        with self._read_lock:
            cached = self._read_cache.get(key)
            if cached is not None:
                self._read_cache.move_to_end(key)
            return cached

    def _remember_body(self, key: bytes, decoded: tuple[int, bytes]) -> None:
        with self._read_lock:
            self._read_cache[key] = decoded
            if len(self._read_cache) > _READ_CACHE_LIMIT:
                self._read_cache.popitem(last=False)

    def body(self, key: bytes) -> JSONValue:
        return bodies.loads(self.body_bytes(key))

    @guard
    def summary(self, session: SessionInfo) -> dict[str, Any]:
        """Counts by verb, kind and status, errors, time span: what `opreplay info` shows."""
        param = self.db.param

        def counts(column: str) -> dict[Any, int]:
            cursor = self.db.execute_sql(
                f"SELECT {column}, COUNT(*) FROM operations o JOIN objects b ON b.id = o.object"
                f" WHERE o.session = {param} GROUP BY {column} ORDER BY COUNT(*) DESC",
                (session.pk,),
            )
            return {key: count for key, count in cursor.fetchall()}

        first, last = self.db.execute_sql(
            f"SELECT MIN(ts), MAX(ts + duration_us / 1e6) FROM operations WHERE session = {param}",
            (session.pk,),
        ).fetchone()
        return {
            "verbs": counts("o.verb"),
            "kinds": counts("b.kind"),
            "statuses": counts("o.status"),
            "first_ts": first,
            "last_ts": last,
        }

    def size_on_disk(self) -> int | None:
        """Bytes of the database file with its WAL, or None for a server database."""
        if not self._sqlite:
            return None
        path = Path(self.label)
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _operation(row: Sequence[Any]) -> Operation:
    (
        seq,
        ts,
        duration_us,
        thread,
        verb,
        api_version,
        resource,
        kind,
        namespace,
        name,
        subresource,
        status,
        reason,
        message,
        resource_version,
        reconcile,
        watch,
        event,
        request,
        response,
    ) = row
    if api_version is None:  # the objects columns are NOT NULL: the LEFT JOIN found no row
        raise Damaged(f"operation {seq} refers to an object that is not in the objects table")
    return Operation(
        seq,
        ts,
        duration_us,
        thread,
        verb,
        api_version,
        resource,
        kind,
        namespace,
        name,
        subresource,
        status,
        reason,
        message,
        resource_version,
        reconcile,
        watch,
        event,
        bytes(request) if request is not None else None,
        bytes(response) if response is not None else None,
    )


def _redact_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}"
    return url
