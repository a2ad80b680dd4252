"""Body encoding: content addressing, compression, and LIST responses split into their items.

A body is identified by a 128-bit SHA-256 digest of its JSON bytes, so the same object state is
stored once however many GETs, watch events and list items carry it, and a new version of an
object is compressed against the previous one (a delta: tens of bytes instead of a kilobyte), with
chains cut every `MAX_DELTA_DEPTH` versions so reading one costs a bounded number of steps.
A LIST response is stored as its envelope (the list without `items`) followed by the digests of
its items, each item a body of its own: a list of fifty Pods repeated every reconcile costs a few
hundred bytes.
"""

from __future__ import annotations

import hashlib
import threading

import orjson
import zstandard

from opreplay.model import JSONValue

DOCUMENT = 0
LIST = 1
RAW = 0
ZSTD = 1
DELTA = 2
"""zstd with the base body (the previous version of the same object) as a raw-content dictionary."""

MAX_DELTA_DEPTH = 16
_SMALL = 96  # below this, zstd's frame header costs more than it saves
_DIGEST_SIZE = 16
_local = threading.local()


def digest(data: bytes) -> bytes:
    """SHA-256 cut to 128 bits: collision-resistant, and about twice as fast as BLAKE2b here because
    OpenSSL uses the CPU's SHA extensions."""
    return hashlib.sha256(data).digest()[:_DIGEST_SIZE]


def _compressor() -> zstandard.ZstdCompressor:
    compressor: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=3)
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor


def compress(data: bytes) -> tuple[int, bytes]:
    """(codec, stored bytes) for `data`."""
    if len(data) < _SMALL:
        return RAW, data
    return ZSTD, _compressor().compress(data)


def compress_delta(data: bytes, base: bytes) -> bytes:
    """`data` compressed against `base`: an object's next version costs only what changed."""
    dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    return zstandard.ZstdCompressor(level=3, dict_data=dictionary).compress(data)


def decompress(codec: int, stored: bytes, base: bytes | None = None) -> bytes:
    if codec == RAW:
        return bytes(stored)
    if codec == ZSTD:
        return _decompressor().decompress(stored)
    if codec == DELTA and base is not None:
        dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        return zstandard.ZstdDecompressor(dict_data=dictionary).decompress(stored)
    raise ValueError(f"unknown body codec {codec}")


def pack_list(envelope: bytes, item_digests: list[bytes]) -> bytes:
    """The stored form of a LIST response: envelope length, envelope, then the item digests."""
    return len(envelope).to_bytes(4, "big") + envelope + b"".join(item_digests)


def unpack_list(packed: bytes) -> tuple[bytes, list[bytes]]:
    size = int.from_bytes(packed[:4], "big")
    envelope = packed[4 : 4 + size]
    rest = packed[4 + size :]
    return envelope, [rest[i : i + _DIGEST_SIZE] for i in range(0, len(rest), _DIGEST_SIZE)]


def loads(data: bytes) -> JSONValue:
    return orjson.loads(data)
