"""The DAP base protocol: Content-Length framing over binary streams, and the message log.

Why it looks like this:

- Content-Length counts UTF-8 *bytes*, so framing works on bytes end to end: the reader never
  decodes before it has cut a whole body, and the writer measures the encoded body.
- Input is untrusted (a buggy client, a fuzzer, a stray process writing to the pipe). Anything that
  breaks framing or is not a JSON object is a `ProtocolError`: the connection cannot go on, so it is
  closed with a one-line reason, never a traceback. Messages are capped (`MAX_MESSAGE_BYTES`) so a
  bogus length cannot make the adapter allocate without bound.
- A client asks in bursts (a step is five requests, each sent as soon as the previous answer
  arrives), and a thread that blocks on its input and is woken again pays for a sleep and a
  wake-up each time, which on a virtual machine whose other CPU is idle costs a good part of a
  millisecond. So the reader may poll its input for a moment (`read_message(poll=...)`) before it
  blocks: a burst is served without a wake-up, an idle adapter sleeps as before.
- Responses and events come from several threads (the worker, a watcher answering `cancel`), so
  the writer assigns outgoing `seq` numbers and writes under one lock: seq order is wire order.
- `--log-file` keeps every message in and out as JSON lines; it is the one place tracebacks go,
  because stdout is the protocol channel and stderr must stay readable for people.
"""

from __future__ import annotations

import contextlib
import json
import select
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TextIO

import orjson

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest body accepted or sent; DAP messages are small, a bigger length is a broken peer."""

MAX_HEADER_BYTES = 8 * 1024
"""Largest header section (everything before the blank line) accepted."""

_LINE_BREAKS_ESCAPED = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}
"""Characters JSON leaves raw in strings where editors and `str.splitlines` end a line: escaped,
a log line stays one line everywhere."""
IDLE_AFTER_SECONDS = 0.25
"""Quiet input for this long means the client waits for its user, not for the adapter: VS Code
sends a step's requests milliseconds apart, and a key held down repeats F10 every 30-50 ms."""
_CHUNK = 64 * 1024
_EXCERPT = 60
_MAX_INT_DIGITS = 1000


class ProtocolError(Exception):
    """The peer broke the base protocol (framing, encoding, JSON); the connection must close."""


class ConnectionClosed(Exception):
    """The peer is gone: writing to it failed, or it was already closed."""


class ReadableStream(Protocol):
    """A blocking binary stream: `read(n)` returns up to n bytes, `b""` at end of input.

    A stream with a `fileno()` (a pipe, a socket) can be polled for input before reading.
    """

    def read(self, size: int, /) -> bytes | None: ...


class WritableStream(Protocol):
    """A blocking binary stream; `write` may write less than given (raw files, sockets)."""

    def write(self, data: bytes | memoryview, /) -> int | None: ...


def excerpt(data: bytes | str, limit: int = _EXCERPT) -> str:
    """A short, printable, single-line rendering of untrusted input for error messages."""
    text = data.decode("utf-8", "backslashreplace") if isinstance(data, bytes) else data
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class MessageLog:
    """JSON lines: one per message in or out, plus the adapter's own notes (tracebacks, closes).

    Every line has `time` (UTC, ISO 8601) and `direction`: `in` and `out` lines carry `message`
    (or, for input that could not be parsed, `error` and `raw`), `adapter` lines carry `level` and
    `text`. Lines are flushed one by one so that a killed adapter leaves a complete log, and a
    line is one line for any reader (`_LINE_BREAKS_ESCAPED`).
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path) -> MessageLog:
        """Append to `path` (created if missing); OSError if it cannot be opened."""
        return cls(open(path, "a", encoding="utf-8", errors="backslashreplace"))

    def message(self, direction: str, message: dict[str, Any]) -> None:
        self._write({"direction": direction, "message": message})

    def unparsed(self, error: str, raw: bytes) -> None:
        """Input that is not a message: the reason and the first bytes, escaped."""
        self._write({"direction": "in", "error": error, "raw": excerpt(raw, 1024)})

    def note(self, level: str, text: str) -> None:
        self._write({"direction": "adapter", "level": level, "text": text})

    def close(self) -> None:
        with self._lock:
            self._stream.close()

    def _write(self, record: dict[str, Any]) -> None:
        record = {"time": datetime.now(timezone.utc).isoformat(timespec="microseconds"), **record}
        try:
            line = json.dumps(record, ensure_ascii=False).translate(_LINE_BREAKS_ESCAPED)
        except (ValueError, TypeError, RecursionError) as error:
            kept = {k: v for k, v in record.items() if k != "message"}
            line = json.dumps({**kept, "error": f"message not loggable: {type(error).__name__}"})
        with self._lock, contextlib.suppress(OSError):  # a full disk must not end the session
            if not self._stream.closed:
                self._stream.write(line + "\n")
                self._stream.flush()


class MessageReader:
    """Cuts framed messages out of a binary stream and parses each into a JSON object.

    `read_message()` returns the next message, None at a clean end of input (between messages),
    and raises `ProtocolError` for anything else. Reads use `read1` when the stream has it so that
    a buffered stream never waits for more bytes than are available.
    """

    _poller: select.poll | None

    def __init__(
        self, stream: ReadableStream, *, log: MessageLog | None = None, max_size: int = MAX_MESSAGE_BYTES
    ) -> None:
        read1: Callable[[int], bytes | None] | None = getattr(stream, "read1", None)
        self._read: Callable[[int], bytes | None] = read1 if read1 is not None else stream.read
        self._log = log
        self._max_size = max_size
        self._buffer = bytearray()
        self._poller = _poller_for(stream)

    def read_message(
        self, *, poll: float = 0.0, idle: Callable[[], None] | None = None
    ) -> dict[str, Any] | None:
        """The next message; when the input is empty, poll it for up to `poll` seconds (a busy
        wait, for streams that have a file descriptor) before blocking on it, and call `idle` once
        the input has stayed empty for `IDLE_AFTER_SECONDS` more."""
        if self._poller is not None and b"\r\n\r\n" not in self._buffer:
            if poll > 0:
                deadline = time.perf_counter() + poll
                while not self._poller.poll(0) and time.perf_counter() < deadline:
                    pass
            if idle is not None and not self._poller.poll(IDLE_AFTER_SECONDS * 1000):
                idle()
        end = self._buffer.find(b"\r\n\r\n")
        while end < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise self._fail("message header is longer than 8 KiB", bytes(self._buffer))
            if not self._fill(_CHUNK):
                if self._buffer:
                    raise self._fail("input ended inside a message header", bytes(self._buffer))
                return None
            end = self._buffer.find(b"\r\n\r\n")
        if end > MAX_HEADER_BYTES:
            raise self._fail("message header is longer than 8 KiB", bytes(self._buffer[:end]))
        header = bytes(self._buffer[:end])
        del self._buffer[: end + 4]
        length = self._content_length(header)
        while len(self._buffer) < length:
            if not self._fill(max(_CHUNK, length - len(self._buffer))):
                raise self._fail(
                    f"input ended after {len(self._buffer)} of {length} body bytes", bytes(self._buffer)
                )
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        message = self._parse(body)
        if self._log is not None:
            self._log.message("in", message)
        return message

    def _fill(self, size: int) -> bool:
        chunk = self._read(size)
        if not chunk:
            return False
        self._buffer += chunk
        return True

    def _content_length(self, header: bytes) -> int:
        length: int | None = None
        for line in header.split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if not colon:
                raise self._fail(f"malformed header line '{excerpt(line)}'", header)
            if name.strip().lower() != b"content-length":
                continue  # DAP defines no other header; tolerate them as LSP-style clients send them
            value = value.strip()
            if not value.isdigit():
                raise self._fail(f"Content-Length is not a number: '{excerpt(value)}'", header)
            if len(value) > 12 or int(value) > self._max_size:
                raise self._fail(
                    f"Content-Length {excerpt(value, 20)} exceeds the limit of {self._max_size} bytes", header
                )
            length = int(value)
        if length is None:
            raise self._fail("message header has no Content-Length", header)
        return length

    def _parse(self, body: bytes) -> dict[str, Any]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise self._fail(f"message body is not valid UTF-8 (byte {error.start})", body) from None
        try:
            value = json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int)
        except RecursionError:
            raise self._fail("message body nests too deeply", body) from None
        except json.JSONDecodeError as error:
            raise self._fail(f"message body is not JSON: {error}", body) from None
        except ValueError as error:  # from the hooks below
            raise self._fail(f"message body cannot be parsed: {error}", body) from None
        if not isinstance(value, dict):
            raise self._fail(f"message is a JSON {_json_kind(value)}, not an object", body)
        return value

    def _fail(self, reason: str, raw: bytes) -> ProtocolError:
        if self._log is not None:
            self._log.unparsed(reason, raw)
        return ProtocolError(reason)


def _poller_for(stream: ReadableStream) -> select.poll | None:
    try:
        descriptor = stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):  # in-memory streams, closed files
        return None
    poller = select.poll()
    poller.register(descriptor, select.POLLIN)
    return poller


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_int(text: str) -> int:
    if len(text) > _MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "number"


class MessageWriter:
    """Frames and writes outgoing messages, numbering them; safe to call from any thread.

    `send` assigns the next `seq` only once the message has been encoded, so a handler that
    returns something unserialisable raises here without leaving a gap in the numbering.
    Any OSError (broken pipe, reset socket) marks the writer closed and raises `ConnectionClosed`.
    Inside `batched()` messages (from any thread) are held and written together, in order.
    """

    def __init__(self, stream: WritableStream, *, log: MessageLog | None = None) -> None:
        self._stream = stream
        self._log = log
        self._lock = threading.Lock()
        self._next_seq = 1
        self._closed = False
        self._held: list[bytes] | None = None

    @contextlib.contextmanager
    def batched(self) -> Iterator[None]:
        """Write what is sent inside in one go: a step's response and its `stopped` event reach a
        client that waits for the event in one read (a wake-up fewer, about half a millisecond)."""
        with self._lock:
            if self._held is not None:  # already batching: the outer batch writes
                nested = True
            else:
                nested, self._held = False, []
        try:
            yield
        finally:
            if not nested:
                with self._lock:
                    held, self._held = self._held, None
                    if held and not self._closed:
                        try:
                            self._write_all(b"".join(held))
                        except OSError as error:
                            self._closed = True
                            raise ConnectionClosed(str(error)) from error

    def send(self, message: dict[str, Any]) -> dict[str, Any]:
        """Write `message` (without `seq`) and return it as sent, `seq` included."""
        with self._lock:
            if self._closed:
                raise ConnectionClosed("the connection is closed")
            full = {"seq": self._next_seq, **message}
            data = encode(full)
            if self._held is not None:
                self._held.append(data)
            else:
                try:
                    self._write_all(data)
                except OSError as error:
                    self._closed = True
                    raise ConnectionClosed(str(error)) from error
            self._next_seq += 1
        if self._log is not None:
            self._log.message("out", full)
        return full

    def close(self) -> None:
        """Refuse further messages (the transport closes the stream itself)."""
        with self._lock:
            self._closed = True

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self._stream.write(view)
            view = view[written or 0 :]
        flush = getattr(self._stream, "flush", None)
        if flush is not None:
            flush()


def encode(message: dict[str, Any]) -> bytes:
    """One framed message, its text in UTF-8.

    orjson writes it: twenty times faster than `json` on a step's responses (1 us against 24 for a
    page of variables). What orjson refuses, the standard library writes, escaped to ASCII: an
    integer beyond 64 bits (a client's huge `seq`, echoed as `request_seq`) and a lone surrogate
    (which a client can smuggle in through a JSON escape and a handler can echo). NaN and the
    infinities, which JSON cannot hold, go out as null.
    """
    try:
        body = orjson.dumps(message)
    except TypeError:  # orjson.JSONEncodeError
        body = json.dumps(message, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()
    if len(body) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {len(body)} bytes exceeds the limit of {MAX_MESSAGE_BYTES} bytes")
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
