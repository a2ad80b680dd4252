"""Body screens in a helper process: a long run's body reading and text search on another core.

A run over a condition such as `obj.spec.replicas == 99` spends over half its time reading,
decoding and screening the bodies of the operations the indexes name (`prefilter.BodyScreen`),
about 30 us a body, and the rest on the operations themselves. The body work needs only digests
and the store, so a helper process does it for one window of operations while the engine
prepares the next window and evaluates the previous one: a whole-session run then takes about
the larger of the two halves instead of their sum.

The helper opens the store read-only on its own connection and runs the same `BodyScreen` code,
so it answers, for each digest and each screen, exactly what the engine would; a body it cannot
read (missing, corrupt, written after it looked) it admits, and the engine then decides that body
itself, the ordinary way. The engine starts the helper only for a run that outlives its first
window and sends it work once it says it is ready, screening in its own process until then; when
the helper cannot start or fails, everything stays in the engine's process: same stops, slower.

Wire format, both ways a 4-byte big-endian length then the payload. The engine's first message
is the JSON `{"database": target}`; the helper answers `{"ready": true}` or `{"error": text}`.
A request is a 2-byte length, the JSON list of screens (`[key, value]` pairs), then each digest as
a 1-byte length and its bytes; the answer is one byte per digest and screen, 1 where admitted.
The helper exits when its input closes.
"""

from __future__ import annotations

import contextlib
import json
import select
import subprocess
import sys
import weakref
from collections.abc import Sequence
from typing import IO, Any

from opreplay.conditions import FieldEquality
from opreplay.replay.prefilter import BodyScreen
from opreplay.store import Store

_LENGTH = 4
_MAX_MESSAGE = 1 << 26
MAX_DIGESTS = 8192
"""Digests in one request at most: a window of candidates brings fewer."""


class ScreenHelper:
    """The engine's end of a helper process (see the module docstring)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        assert process.stdin is not None and process.stdout is not None
        self._input: IO[bytes] = process.stdin
        self._output: IO[bytes] = process.stdout
        self._ready = False
        self._pending: list[tuple[Sequence[BodyScreen], list[bytes]]] = []
        """requests sent, in order, whose answers are not read yet"""
        self.failed = False
        self.answered = 0
        """Digests screened by the helper so far."""
        weakref.finalize(self, _stop, process)

    @classmethod
    def start(cls, target: str) -> ScreenHelper | None:
        """A helper for the store at `target` (what `Store.open` takes), or None when none can start."""
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "opreplay.replay.screening"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                close_fds=True,
            )
        except OSError:
            return None
        helper = cls(process)
        if not helper._send(json.dumps({"database": target}).encode()):
            return None
        return helper

    @property
    def ready(self) -> bool:
        """Whether the helper has opened the store; never blocks (a helper still starting is not)."""
        if self._ready or self.failed:
            return self._ready
        try:
            readable, _, _ = select.select([self._output], [], [], 0)
        except (OSError, ValueError):
            readable = []
            self.failed = True
        if readable:
            answer = self._receive()
            try:
                self._ready = answer is not None and json.loads(answer).get("ready") is True
            except (ValueError, AttributeError):
                self._ready = False
            self.failed = not self._ready
        return self._ready

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def submit(self, screens: Sequence[BodyScreen], digests: list[bytes]) -> bool:
        """Ask for `screens` over `digests` (at most MAX_DIGESTS); False when the helper failed."""
        if self.failed or not self._ready:
            return False
        self.collect()  # an answer a run that stopped early left unread
        specs = json.dumps([[screen.key, screen.value] for screen in screens]).encode()
        parts = [len(specs).to_bytes(2, "big"), specs]
        for digest in digests:
            parts += (len(digest).to_bytes(1, "big"), digest)
        if not self._send(b"".join(parts)):
            return False
        self._pending.append((screens, digests))
        return True

    def collect(self) -> None:
        """Read the answers to every request sent, into each screen's memo."""
        while self._pending and not self.failed:
            screens, digests = self._pending.pop(0)
            answer = self._receive()
            if answer is None or len(answer) != len(digests) * len(screens):
                self.failed = True
                break
            width = len(screens)
            for index, screen in enumerate(screens):
                screen.remember(
                    {digest: answer[row * width + index] == 1 for row, digest in enumerate(digests)}
                )
            self.answered += len(digests)
        if self.failed:
            self._pending.clear()

    def close(self) -> None:
        self.failed = True
        _stop(self._process)

    def _send(self, payload: bytes) -> bool:
        try:
            self._input.write(len(payload).to_bytes(_LENGTH, "big") + payload)
            self._input.flush()
        except (OSError, ValueError):
            self.failed = True
            return False
        return True

    def _receive(self) -> bytes | None:
        return _read_message(self._output)


def _stop(process: subprocess.Popen[bytes]) -> None:
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        try:
            chunk = stream.read(size - len(data))
        except (OSError, ValueError):
            return None
        if not chunk:
            return None
        data += chunk
    return data


def _read_message(stream: IO[bytes]) -> bytes | None:
    header = _read_exactly(stream, _LENGTH)
    if header is None:
        return None
    size = int.from_bytes(header, "big")
    if size > _MAX_MESSAGE:
        return None
    return _read_exactly(stream, size)


# -- the helper process ----------------------------------------------------------------------------


def _parse_request(payload: bytes) -> tuple[list[tuple[str, Any]], list[bytes]]:
    size = int.from_bytes(payload[:2], "big")
    specs = [(str(key), value) for key, value in json.loads(payload[2 : 2 + size])]
    digests: list[bytes] = []
    position = 2 + size
    while position < len(payload):
        length = payload[position]
        digests.append(payload[position + 1 : position + 1 + length])
        position += 1 + length
    return specs, digests


def _answer(store: Store, screens: list[BodyScreen], digests: list[bytes]) -> bytes:
    blobs = store.body_blobs(digests)
    answer = bytearray()
    for digest in digests:
        blob = blobs.get(digest)
        try:
            text = store.decode_body_blob(digest, blob, blobs) if blob is not None else None
        except Exception:  # a body the engine will read, and report, itself
            text = None
        answer += bytes(1 if text is None or screen.admits_text(text) else 0 for screen in screens)
    return bytes(answer)


def main() -> int:
    source, sink = sys.stdin.buffer, sys.stdout.buffer

    def send(payload: bytes) -> None:
        sink.write(len(payload).to_bytes(_LENGTH, "big") + payload)
        sink.flush()

    header = _read_message(source)
    if header is None:
        return 1
    try:
        store = Store.open(json.loads(header)["database"])
        store.limit_read_memory()
    except Exception as error:
        send(json.dumps({"error": str(error)}).encode())
        return 1
    send(b'{"ready": true}')
    screens: dict[bytes, list[BodyScreen]] = {}
    while (payload := _read_message(source)) is not None:
        specs, digests = _parse_request(payload)
        key = json.dumps(specs).encode()
        if key not in screens:
            screens.clear()
            screens[key] = [BodyScreen(FieldEquality("obj", name, value)) for name, value in specs]
        send(_answer(store, screens[key], digests))
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
