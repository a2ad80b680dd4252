"""Checkpoints: the cluster state every K operations, so that any seq is one checkpoint plus < K ops away.

Building is one linear pass over the session (`build_checkpoints`, which the recorder calls when
a session stops, or lazily by the engine up to the seq it needs). Storage stays small because a
checkpoint is a *delta* against the previous one (the keys set and removed since), with a full
snapshot every `full_every` checkpoints so that reading one back never walks far.

Format of one checkpoint (the `data` column; the store treats it as opaque bytes)::

    u32 big-endian length of N | N | S

    S = zstd( u32 header length | header JSON | digests )            the state
    header = {"format": "opreplay-checkpoint", "version": 1, "seq": 5000, "base": 4000 | null,
              "full": false, "depth": 3, "chain": 1234,
              "set": [[api_version...], [resource...], [namespace...], [name...]],  # keys set
              "del": [[api_version...], [resource...], [namespace...], [name...]]}  # keys removed
    digests = the 16-byte body digests of "set", concatenated in the same order

    N = zstd( u32 length | {"namespace": [...], "name": [...]} JSON | digests )   the names index

The names index lists, for the operations since the previous checkpoint, the (namespace, name)
of every body whose object the operation row does not name: LIST items, watch events and
creates recorded without a name. Folding from checkpoint C to a seq before the next checkpoint D
reads D's index (a small frame, decompressed alone) instead of decoding those bodies, which
is what a LIST-heavy session would otherwise spend most of a `goto` on.

Keys are stored column by column so that reading a checkpoint back builds its key tuples in C
(`zip`), and zstd takes care of the repeated api versions and resources.
`base` is the previous checkpoint (null for a full snapshot), `depth` the number of deltas since
the last full snapshot and `chain` the number of entries in them. A full snapshot is written every
`full_every` checkpoints, or sooner when the deltas since the last one add up to half the state:
reading any checkpoint then costs at most about one and a half state sizes of entries, however
much the state churns. A checkpoint at seq N is the state after operation N.

Reading: the engine asks for the nearest checkpoint at or below a seq. Stored checkpoints are
used first. Where they are missing (an older recording, a recorder killed before it built them)
the engine builds the rest on demand, as compressed records kept in an anonymous temporary file
(about 10 MB a million operations, in the OS page cache rather than in the process, so that the
engine's memory does not grow with the recording's length): the store is opened read-only and
stays so unless the engine was asked to `save_checkpoints`, in which case `Store.write_checkpoints`
writes them through a separate writable connection. Checkpoints in an unknown format are ignored
and rebuilt.

Materialized states are cached (an LRU bounded by the total number of entries, 60,000 by
default: a delta applied to a cached state shares its key tuples and digests, so most cached
entries cost about 50 bytes; a decoded full snapshot about 300).
"""

from __future__ import annotations

import bisect
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, NamedTuple

import orjson
import zstandard

from opreplay.errors import OpreplayError, StoreError
from opreplay.model import SessionInfo
from opreplay.replay.state import Folder, StateKey, StateMap
from opreplay.store import Store
from opreplay.store.replay_queries import ROW_SEQ

log = logging.getLogger(__name__)

FORMAT = "opreplay-checkpoint"
VERSION = 1
DEFAULT_INTERVAL = 500
"""Operations between checkpoints: a goto folds up to this many rows (about 10 µs each on a slow
machine, so 500 keeps a random goto's p99 near 15 ms), for about 20 bytes of checkpoint an operation
(a full checkpoint of a few hundred objects is ~10 KB; on a busy session nearly every one is full)."""
FULL_EVERY = 16
_DIGEST = 16
_BATCH = 4096
_WRITE_BATCH = 64
_EMPTY: StateMap = {}


class CheckpointFormatError(OpreplayError):
    """Checkpoint bytes this version cannot read (another format, or damaged)."""


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    seq: int
    base: int | None
    full: bool
    depth: int
    chain: int
    sets: dict[StateKey, bytes]
    dels: list[StateKey]


def _columns(keys: list[StateKey]) -> list[list[str]]:
    if not keys:
        return [[], [], [], []]
    return [list(column) for column in zip(*keys, strict=True)]


def _frame(header: bytes, blob: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(len(header).to_bytes(4, "big") + header + blob)


def _unframe(frame: bytes) -> tuple[bytes, bytes]:
    raw = zstandard.ZstdDecompressor().decompress(frame)
    size = int.from_bytes(raw[:4], "big")
    return raw[4 : 4 + size], raw[4 + size :]


def encode_checkpoint(
    seq: int,
    base: int | None,
    full: bool,
    depth: int,
    chain: int,
    sets: StateMap,
    dels: list[StateKey],
    names: dict[bytes, tuple[str, str] | None] | None = None,
) -> bytes:
    header = orjson.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "seq": seq,
            "base": base,
            "full": full,
            "depth": depth,
            "chain": chain,
            "set": _columns(list(sets)),
            "del": _columns(dels),
        }
    )
    state = _frame(header, b"".join(sets.values()))
    known = {digest: name for digest, name in (names or {}).items() if name is not None}
    index = _frame(
        orjson.dumps({"namespace": [n[0] for n in known.values()], "name": [n[1] for n in known.values()]}),
        b"".join(known),
    )
    return len(index).to_bytes(4, "big") + index + state


def _split(data: bytes) -> tuple[bytes, bytes]:
    size = int.from_bytes(data[:4], "big")
    if len(data) < 4 + size:
        raise CheckpointFormatError("checkpoint is truncated")
    return data[4 : 4 + size], data[4 + size :]


def decode_names(data: bytes) -> dict[bytes, tuple[str, str]]:
    """The names index of a checkpoint: body digest -> (namespace, name)."""
    try:
        header, blob = _unframe(_split(data)[0])
        columns = orjson.loads(header)
        pairs = list(zip(columns["namespace"], columns["name"], strict=True))
        if len(blob) != _DIGEST * len(pairs):
            raise CheckpointFormatError("checkpoint names do not match their digests")
        return dict(zip([blob[i : i + _DIGEST] for i in range(0, len(blob), _DIGEST)], pairs, strict=True))
    except CheckpointFormatError:
        raise
    except (zstandard.ZstdError, orjson.JSONDecodeError, LookupError, TypeError, ValueError) as error:
        raise CheckpointFormatError(f"unreadable checkpoint ({error})") from None


def decode_checkpoint(data: bytes, canonical: dict[StateKey, StateKey] | None = None) -> CheckpointRecord:
    """Read a checkpoint; `canonical` (key -> the same key) makes equal keys one shared tuple."""
    try:
        raw_header, blob = _unframe(_split(data)[1])
        header = orjson.loads(raw_header)
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise CheckpointFormatError(
                f"checkpoint format {header.get('format')!r} version {header.get('version')!r} is not"
                f" {FORMAT!r} version {VERSION}"
            )
        keys: list[StateKey] = list(zip(*header["set"], strict=True))
        if canonical is not None:
            keys = [canonical.setdefault(key, key) for key in keys]
        if len(blob) != _DIGEST * len(keys) or len(header["set"]) != 4 or len(header["del"]) != 4:
            raise CheckpointFormatError("checkpoint digests do not match its keys")
        digests = [blob[i : i + _DIGEST] for i in range(0, len(blob), _DIGEST)]
        return CheckpointRecord(
            seq=int(header["seq"]),
            base=None if header["base"] is None else int(header["base"]),
            full=bool(header["full"]),
            depth=int(header["depth"]),
            chain=int(header["chain"]),
            sets=dict(zip(keys, digests, strict=True)),
            dels=list(zip(*header["del"], strict=True)),
        )
    except CheckpointFormatError:
        raise
    except (zstandard.ZstdError, orjson.JSONDecodeError, LookupError, TypeError, ValueError) as error:
        raise CheckpointFormatError(f"unreadable checkpoint ({error})") from None


class _Spill:
    """Checkpoint records built here and not stored: seq -> bytes, the bytes in a temporary file.

    Only the (offset, length) of each record stays in memory. The file is anonymous (deleted on
    creation), appended to, and read with `pread`; a replaced or dropped record leaves its bytes
    behind, which is rare (checkpoints are built once each).
    """

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self._where: dict[int, tuple[int, int]] = {}
        self._end = 0

    def __len__(self) -> int:
        return len(self._where)

    def get(self, seq: int) -> bytes | None:
        where = self._where.get(seq)
        if where is None or self._file is None:
            return None
        offset, size = where
        data = os.pread(self._file.fileno(), size, offset)
        if len(data) != size:
            raise CheckpointFormatError(f"checkpoint {seq} could not be read back")
        return data

    def __setitem__(self, seq: int, data: bytes) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="opreplay-checkpoints-")  # noqa: SIM115
        os.pwrite(self._file.fileno(), data, self._end)
        self._where[seq] = (self._end, len(data))
        self._end += len(data)

    def pop(self, seq: int, default: None = None) -> None:
        self._where.pop(seq, None)

    def clear(self) -> None:
        self._where.clear()
        if self._file is not None:
            self._file.close()
            self._file = None
        self._end = 0

    def close(self) -> None:
        self.clear()


class _Materialized(NamedTuple):
    state: StateMap
    depth: int
    chain: int


class Checkpoints:
    """The checkpoints of one session: stored ones, plus those built in memory as needed."""

    def __init__(
        self,
        store: Store,
        session: SessionInfo,
        folder: Folder,
        total: int,
        *,
        interval: int = DEFAULT_INTERVAL,
        full_every: int = FULL_EVERY,
        save: bool = False,
        cache_entries: int = 60_000,
    ) -> None:
        if interval < 1:
            raise ValueError("checkpoint interval must be at least 1")
        self.store = store
        self.session = session
        self.folder = folder
        self.total = total
        self.interval = interval
        self.full_every = max(1, full_every)
        self.save = save
        self._stored: set[int] = {seq for seq in store.checkpoint_seqs(session) if seq <= total}
        self._memory = _Spill()
        self._seqs: list[int] = sorted(self._stored)
        self._cache: OrderedDict[int, _Materialized] = OrderedDict()
        self._cache_entries = 0
        self._cache_limit = cache_entries
        self._primed: OrderedDict[int, None] = OrderedDict()
        self.built = 0
        """How many checkpoints this object built (in memory or saved)."""

    @property
    def seqs(self) -> list[int]:
        return list(self._seqs)

    def close(self) -> None:
        """Drop the checkpoints built here and not stored (their temporary file)."""
        self._memory.close()

    # -- lookup --------------------------------------------------------------------------------

    def floor(self, seq: int) -> int:
        """The nearest checkpoint at or below `seq` (0: the empty state before operation 1).

        Builds the missing checkpoints up to `seq` first, so the answer is never more than
        `interval` operations below `seq`.
        """
        last = self._seqs[-1] if self._seqs else 0
        if seq - last >= self.interval:
            self.extend(seq)
        index = bisect.bisect_right(self._seqs, seq)
        return self._seqs[index - 1] if index else 0

    def nearest(self, seq: int) -> tuple[int, StateMap]:
        """(checkpoint seq, its state) for the nearest checkpoint at or below `seq`; do not mutate it."""
        for _ in range(2):
            cp = self.floor(seq)
            try:
                return cp, self.state(cp)
            except CheckpointFormatError as error:
                self._discard_stored(error)
        raise CheckpointFormatError("checkpoints could not be rebuilt")  # pragma: no cover

    def state(self, cp: int) -> StateMap:
        """The state at checkpoint `cp` (shared, do not mutate); raises CheckpointFormatError."""
        if cp == 0:
            return _EMPTY
        return self._materialize(cp).state

    def prime_names(self, cp: int) -> None:
        """Teach the folder the names index of checkpoint `cp` (the operations just before it)."""
        if cp in self._primed:
            return
        self._primed[cp] = None
        if len(self._primed) > 64:
            self._primed.popitem(last=False)
        data = self._memory.get(cp)
        if data is None:
            found = self.store.read_checkpoints(self.session, cp, cp)
            if not found:
                return
            data = found[0][1]
        try:
            self.folder.learn_names(decode_names(data))
        except CheckpointFormatError:
            return  # the names are a shortcut: without them the folder reads the bodies

    def next_after(self, seq: int) -> int | None:
        """The first known checkpoint above `seq` (None when there is none yet)."""
        index = bisect.bisect_right(self._seqs, seq)
        return self._seqs[index] if index < len(self._seqs) else None

    # -- materializing -------------------------------------------------------------------------

    def _record(self, seq: int) -> CheckpointRecord:
        data = self._memory.get(seq)
        if data is None:
            found = self.store.read_checkpoints(self.session, seq, seq)
            if not found:
                raise CheckpointFormatError(f"checkpoint {seq} is missing")
            data = found[0][1]
        record = decode_checkpoint(data)
        if record.seq != seq:
            raise CheckpointFormatError(f"checkpoint stored at {seq} says it is at {record.seq}")
        return record

    def _materialize(self, cp: int) -> _Materialized:
        cached = self._cache.get(cp)
        if cached is not None:
            self._cache.move_to_end(cp)
            return cached
        chain: list[CheckpointRecord] = []
        seq: int | None = cp
        base: _Materialized | None = None
        while seq is not None:
            cached = self._cache.get(seq)
            if cached is not None:
                base = cached
                break
            record = self._record(seq)
            chain.append(record)
            if record.full:
                break
            if record.base is None or record.base >= seq or (chain and len(chain) > 4 * self.full_every + 64):
                raise CheckpointFormatError(f"checkpoint {seq} has no usable base")
            seq = record.base
        state: StateMap = dict(base.state) if base is not None else {}
        result = base if base is not None else _Materialized(state, 0, 0)
        for position, record in enumerate(reversed(chain)):
            if record.full:
                state = record.sets
            else:
                for key in record.dels:
                    state.pop(key, None)
                state.update(record.sets)
            result = _Materialized(state, record.depth, record.chain)
            self._cache_put(record.seq, result)
            if position < len(chain) - 1:
                state = dict(state)
        return result

    def _cache_put(self, cp: int, value: _Materialized) -> None:
        old = self._cache.pop(cp, None)
        if old is not None:
            self._cache_entries -= len(old.state)
        self._cache[cp] = value
        self._cache_entries += len(value.state)
        while self._cache_entries > self._cache_limit and len(self._cache) > 1:
            _, evicted = self._cache.popitem(last=False)
            self._cache_entries -= len(evicted.state)

    def _discard_stored(self, error: Exception) -> None:
        log.warning(
            "%s: ignoring stored checkpoints of session %s: %s", self.store.label, self.session.id, error
        )
        self._stored.clear()
        self._memory.clear()
        self._seqs = []
        self._cache.clear()
        self._cache_entries = 0
        self.save = False

    # -- building ------------------------------------------------------------------------------

    def extend(self, until: int, *, progress: Callable[[float], None] | None = None) -> int:
        """Build checkpoints every `interval` operations from the last one up to `until`; returns how many."""
        until = min(until, self.total)
        last = self._seqs[-1] if self._seqs else 0
        if until - last < self.interval:
            return 0
        target = last + ((until - last) // self.interval) * self.interval
        try:
            base = self._materialize(last) if last else _Materialized({}, 0, 0)
        except CheckpointFormatError as error:
            self._discard_stored(error)
            return self.extend(until, progress=progress)
        state = dict(base.state)
        depth, chain = base.depth, base.chain
        touched: set[StateKey] = set()
        previous: int | None = last or None
        next_cp = last + self.interval
        pending: list[tuple[int, bytes]] = []
        made = 0
        effects = self.folder.effects
        names: dict[bytes, tuple[str, str] | None] = {}
        self.folder.noting = names

        def emit(seq: int) -> None:
            nonlocal previous, depth, chain, made
            full = previous is None or depth + 1 >= self.full_every or 2 * (chain + len(touched)) > len(state)
            if full:
                data = encode_checkpoint(seq, None, True, 0, 0, state, [], names)
                depth = chain = 0
            else:
                depth += 1
                chain += len(touched)
                sets = {key: state[key] for key in touched if key in state}
                dels = [key for key in touched if key not in state]
                data = encode_checkpoint(seq, previous, False, depth, chain, sets, dels, names)
            touched.clear()
            names.clear()
            self._memory[seq] = data
            self._seqs.append(seq)
            previous = seq
            made += 1
            if self.save:
                pending.append((seq, data))
                if len(pending) >= _WRITE_BATCH:
                    self._flush(pending)

        try:
            self._fold_and_emit(last, target, state, touched, next_cp, emit, effects, progress)
        finally:
            self.folder.noting = None
        if pending:
            self._flush(pending)
        if previous is not None and previous == target:
            self._cache_put(target, _Materialized(state, depth, chain))
        self.built += made
        return made

    def _fold_and_emit(
        self,
        last: int,
        target: int,
        state: StateMap,
        touched: set[StateKey],
        next_cp: int,
        emit: Callable[[int], None],
        effects: Callable[..., list[tuple[StateKey, bytes | None]]],
        progress: Callable[[float], None] | None,
    ) -> None:
        start = last + 1
        while start <= target:
            stop = min(start + _BATCH, target + 1)
            for row in self.store.operation_rows(self.session, start, stop):
                seq = row[ROW_SEQ]
                while next_cp < seq:
                    emit(next_cp)
                    next_cp += self.interval
                for key, digest in effects(row):
                    touched.add(key)
                    if digest is None:
                        state.pop(key, None)
                    else:
                        state[key] = digest
            start = stop
            if progress is not None:
                progress((start - last - 1) / max(1, target - last))
        while next_cp <= target:
            emit(next_cp)
            next_cp += self.interval

    def _flush(self, pending: list[tuple[int, bytes]]) -> None:
        try:
            self.store.write_checkpoints(self.session, pending)
        except StoreError as error:
            log.warning("%s: keeping checkpoints in memory only: %s", self.store.label, error)
            self.save = False
            pending.clear()
            return
        for seq, _ in pending:
            self._stored.add(seq)
            self._memory.pop(seq, None)
        pending.clear()


def build_checkpoints(
    store: Store,
    session: SessionInfo,
    *,
    interval: int = DEFAULT_INTERVAL,
    full_every: int = FULL_EVERY,
    rebuild: bool = False,
    progress: Callable[[float], None] | None = None,
) -> int:
    """Build and store the checkpoints of a session (one linear pass); returns how many were added.

    Idempotent: existing checkpoints are kept and the missing ones after the last are added
    (`rebuild=True` drops them first; that needs a writable store). On a store opened read-only
    the checkpoints are written through a second, writable connection (`Store.write_checkpoints`).
    `ReplayEngine` does without it, more slowly, and saves what it builds when asked to
    (`save_checkpoints`: the debug adapter and `opreplay replay -i` do).
    """
    if rebuild:
        store.delete_checkpoints(session)
    total = store.last_seq(session)
    checkpoints = Checkpoints(
        store, session, Folder(store), total, interval=interval, full_every=full_every, save=True
    )
    made = checkpoints.extend(total, progress=progress)
    if not checkpoints.save and made:
        raise StoreError(f"{store.label}: could not store the checkpoints of session {session.id}")
    return made
