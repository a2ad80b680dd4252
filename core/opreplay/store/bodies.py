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

import ctypes
import ctypes.util
import hashlib
import threading
import weakref
from typing import Any

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
    prefixed = _prefix_compressor()
    if prefixed is not None:
        return prefixed.compress(data, base)
    dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    return zstandard.ZstdCompressor(level=3, dict_data=dictionary).compress(data)


class _PrefixCompressor:
    """libzstd's own API through ctypes: one context for the thread, the base as a one-frame prefix.

    python-zstandard binds a dictionary to a compressor for its life, so each delta made a new
    context: that costs several times the compression itself (a `cpuid`, which a virtual machine
    traps, and fresh tables). `ZSTD_CCtx_refPrefix` is what a raw-content dictionary used once is;
    the frame is the same kind that `decompress` reads.
    """

    def __init__(self, lib: Any) -> None:
        self._lib = lib
        self._cctx = lib.ZSTD_createCCtx()
        if not self._cctx:
            raise MemoryError("ZSTD_createCCtx")
        # Not at exit: a daemon writer thread may still be compressing while atexit handlers run.
        weakref.finalize(self, lib.ZSTD_freeCCtx, self._cctx).atexit = False
        self._check(lib.ZSTD_CCtx_setParameter(self._cctx, _ZSTD_C_COMPRESSION_LEVEL, 3))
        self._buffer = ctypes.create_string_buffer(0)

    def compress(self, data: bytes, base: bytes) -> bytes:
        lib = self._lib
        bound = lib.ZSTD_compressBound(len(data))
        if len(self._buffer) < bound:
            self._buffer = ctypes.create_string_buffer(bound)
        self._check(lib.ZSTD_CCtx_refPrefix(self._cctx, base, len(base)))
        size = self._check(lib.ZSTD_compress2(self._cctx, self._buffer, bound, data, len(data)))
        return ctypes.string_at(self._buffer, size)

    def _check(self, result: int) -> int:
        if self._lib.ZSTD_isError(result):
            raise zstandard.ZstdError(self._lib.ZSTD_getErrorName(result).decode())
        return result


_ZSTD_C_COMPRESSION_LEVEL = 100
_LIBZSTD_NAMES = ("libzstd.so.1", "libzstd.1.dylib")
_libzstd_loaded = False
_libzstd: Any = None


def _load_libzstd() -> Any:
    """The system's libzstd (1.4 or newer, for `ZSTD_CCtx_refPrefix`), or None."""
    for name in (*_LIBZSTD_NAMES, None):
        if name is None:  # find_library runs ldconfig: only when the usual names are not there
            name = ctypes.util.find_library("zstd")
            if name is None:
                break
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            lib.ZSTD_versionNumber.restype = ctypes.c_uint
            if lib.ZSTD_versionNumber() < 10400:
                continue
            lib.ZSTD_createCCtx.restype = ctypes.c_void_p
            lib.ZSTD_createCCtx.argtypes = []
            lib.ZSTD_freeCCtx.restype = ctypes.c_size_t
            lib.ZSTD_freeCCtx.argtypes = [ctypes.c_void_p]
            lib.ZSTD_CCtx_setParameter.restype = ctypes.c_size_t
            lib.ZSTD_CCtx_setParameter.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
            lib.ZSTD_CCtx_refPrefix.restype = ctypes.c_size_t
            lib.ZSTD_CCtx_refPrefix.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
            lib.ZSTD_compress2.restype = ctypes.c_size_t
            lib.ZSTD_compress2.argtypes = [
                ctypes.c_void_p,
                ctypes.c_void_p,
                ctypes.c_size_t,
                ctypes.c_char_p,
                ctypes.c_size_t,
            ]
            lib.ZSTD_compressBound.restype = ctypes.c_size_t
            lib.ZSTD_compressBound.argtypes = [ctypes.c_size_t]
            lib.ZSTD_isError.restype = ctypes.c_uint
            lib.ZSTD_isError.argtypes = [ctypes.c_size_t]
            lib.ZSTD_getErrorName.restype = ctypes.c_char_p
            lib.ZSTD_getErrorName.argtypes = [ctypes.c_size_t]
        except AttributeError:  # a build without the advanced API
            continue
        return lib
    return None


def _prefix_compressor() -> _PrefixCompressor | None:
    global _libzstd, _libzstd_loaded
    compressor: _PrefixCompressor | None = getattr(_local, "prefix_compressor", None)
    if compressor is not None:
        return compressor
    if not _libzstd_loaded:
        _libzstd, _libzstd_loaded = _load_libzstd(), True
    if _libzstd is None:
        return None
    compressor = _local.prefix_compressor = _PrefixCompressor(_libzstd)
    return compressor


def decompress(codec: int, stored: bytes, base: bytes | None = None) -> bytes:
    if codec == RAW:
        return bytes(stored)
    if codec == ZSTD:
        return _decompressor().decompress(stored)
    if codec == DELTA and base is not None:
        return _decompress_delta(stored, base)
    raise ValueError(f"unknown body codec {codec}")


def _decompress_delta(stored: bytes, base: bytes) -> bytes:
    """A delta is a zstd frame compressed with its base as a raw-content dictionary: what zstd's
    content-dictionary chaining decodes when the base comes first as a frame of its own. That
    reuses the thread's decompression context (a new one, which a dictionary needs, costs five
    times the decompression itself); a frame this does not take (one without a content size)
    goes the ordinary way, which also words what is wrong with a damaged one."""
    try:
        return _decompressor().decompress_content_dict_chain([_raw_frame(base), stored])
    except zstandard.ZstdError:
        dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        return zstandard.ZstdDecompressor(dict_data=dictionary).decompress(stored)


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZSTD_BLOCK = 1 << 17


def _raw_frame(content: bytes) -> bytes:
    """`content` as a zstd frame of uncompressed blocks (RFC 8878, 3.1.1): a single segment with a
    4-byte content size, then raw blocks of at most 128 KiB, the last one flagged."""
    parts = [_ZSTD_MAGIC, b"\xa0", len(content).to_bytes(4, "little")]
    position = 0
    while True:
        block = content[position : position + _ZSTD_BLOCK]
        position += len(block)
        last = position >= len(content)
        parts.append(((len(block) << 3) | last).to_bytes(3, "little"))  # block type 0: raw
        parts.append(block)
        if last:
            return b"".join(parts)


def pack_list(envelope: bytes, item_digests: list[bytes]) -> bytes:
    """The stored form of a LIST response: envelope length, envelope, then the item digests."""
    return len(envelope).to_bytes(4, "big") + envelope + b"".join(item_digests)


def unpack_list(packed: bytes) -> tuple[bytes, list[bytes]]:
    size = int.from_bytes(packed[:4], "big")
    envelope = packed[4 : 4 + size]
    rest = packed[4 + size :]
    return envelope, [rest[i : i + _DIGEST_SIZE] for i in range(0, len(rest), _DIGEST_SIZE)]


def loads(data: bytes) -> JSONValue:
    """A stored body's value: its JSON, else its text (a pod's log is kept as it was sent, and a
    damaged file can hold anything), so that every body can be shown."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return data.decode("utf-8", errors="replace")
