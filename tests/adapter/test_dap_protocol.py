"""Framing: Content-Length counted in UTF-8 bytes, split and merged reads, every way to break it."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from dapclient import frame

from opreplay_adapter.dap.protocol import (
    MAX_MESSAGE_BYTES,
    ConnectionClosed,
    MessageLog,
    MessageReader,
    MessageWriter,
    ProtocolError,
)

UNICODE = "Zürich – 東京 – 😀"


class Trickle(io.RawIOBase):
    """A raw stream that hands out its data a few bytes per read, as a slow pipe would."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk, self._data = self._data[: self._step], self._data[self._step :]
        buffer[: len(chunk)] = chunk
        return len(chunk)


def read_all(data: bytes, step: int | None = None) -> list[dict[str, Any]]:
    reader = MessageReader(Trickle(data, step) if step else io.BytesIO(data))
    messages = []
    while (message := reader.read_message()) is not None:
        messages.append(message)
    return messages


def written(*messages: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    writer = MessageWriter(out)
    for message in messages:
        writer.send(message)
    return out.getvalue()


def test_content_length_counts_utf8_bytes() -> None:
    data = written({"type": "event", "event": "output", "body": {"output": UNICODE}})
    header, _, body = data.partition(b"\r\n\r\n")
    assert UNICODE.encode() in body  # sent as UTF-8, not \u escapes
    assert header == b"Content-Length: %d" % len(body)
    assert len(body) > len(body.decode())
    assert read_all(data)[0]["body"]["output"] == UNICODE


@pytest.mark.parametrize("step", [1, 2, 7, 4096])
def test_split_reads(step: int) -> None:
    messages = [{"seq": n, "type": "request", "command": "threads", "x": UNICODE * n} for n in range(1, 6)]
    data = b"".join(frame(m) for m in messages)
    assert read_all(data, step) == messages


def test_several_messages_in_one_read() -> None:
    data = b"".join(frame({"seq": n, "type": "request", "command": "threads"}) for n in range(1, 4))
    assert [m["seq"] for m in read_all(data)] == [1, 2, 3]


def test_other_headers_are_tolerated() -> None:
    body = b'{"seq":1,"type":"request","command":"threads"}'
    data = b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    assert read_all(data) == [json.loads(body)]


def test_clean_end_of_input() -> None:
    assert read_all(b"") == []


BROKEN = {
    "no colon": (b"Content-Length 5\r\n\r\n{}{}{", "malformed header line"),
    "not a number": (b"Content-Length: abc\r\n\r\n{}", "Content-Length is not a number"),
    "negative": (b"Content-Length: -5\r\n\r\n{}", "Content-Length is not a number"),
    "empty": (b"Content-Length: \r\n\r\n{}", "Content-Length is not a number"),
    "unicode digits": ("Content-Length: ٣\r\n\r\n{}".encode(), "Content-Length is not a number"),
    "huge": (b"Content-Length: 99999999999999999999\r\n\r\n{}", "exceeds the limit"),
    "over the cap": (b"Content-Length: %d\r\n\r\n" % (MAX_MESSAGE_BYTES + 1), "exceeds the limit"),
    "no length": (b"Content-Type: x\r\n\r\n{}", "no Content-Length"),
    "header too long": (b"X-Pad: " + b"a" * 10_000 + b"\r\n\r\n", "longer than 8 KiB"),
    "endless header": (b"a" * 100_000, "longer than 8 KiB"),
    "truncated header": (b"Content-Length: 10\r\n", "inside a message header"),
    "truncated body": (b"Content-Length: 10\r\n\r\n{}", "input ended after 2 of 10 body bytes"),
    "empty body": (b"Content-Length: 0\r\n\r\n", "not JSON"),
    "not json": (frame(b"{seq: 1}"), "not JSON"),
    "invalid utf-8": (frame(b'{"seq": 1, "x": "\xff\xfe"}'), "not valid UTF-8"),
    "array": (frame(b"[1, 2]"), "a JSON array, not an object"),
    "number": (frame(b"42"), "a JSON number, not an object"),
    "null": (frame(b"null"), "a JSON null, not an object"),
    "NaN": (frame(b'{"seq": NaN}'), "NaN is not JSON"),
    "too deep": (frame(b"[" * 100_000 + b"]" * 100_000), "nests too deeply"),
    "huge integer": (frame(b'{"seq": ' + b"9" * 5000 + b"}"), "cannot be parsed: an integer of 5000 digits"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_input_is_a_protocol_error(name: str, tmp_path: Path) -> None:
    data, reason = BROKEN[name]
    log = MessageLog.open(tmp_path / "log")
    with pytest.raises(ProtocolError, match=reason) as caught:
        read_all_with_log(data, log)
    log.close()
    assert "\n" not in str(caught.value)
    [record] = [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()]
    assert record["direction"] == "in"
    assert record["error"] == str(caught.value)
    assert len(record["raw"]) <= 1024


def read_all_with_log(data: bytes, log: MessageLog) -> None:
    reader = MessageReader(io.BytesIO(data), log=log)
    while reader.read_message() is not None:
        pass


def test_writer_numbers_messages_from_any_thread() -> None:
    out = io.BytesIO()
    writer = MessageWriter(out)

    def send(thread: int) -> None:
        for n in range(200):
            writer.send({"type": "event", "event": "output", "body": {"output": f"{thread}:{n} {UNICODE}"}})

    threads = [threading.Thread(target=send, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    messages = read_all(out.getvalue())
    assert [m["seq"] for m in messages] == list(range(1, 1601))
    outputs = {m["body"]["output"] for m in messages}
    assert outputs == {f"{t}:{n} {UNICODE}" for t in range(8) for n in range(200)}


def test_unencodable_message_leaves_no_gap() -> None:
    out = io.BytesIO()
    writer = MessageWriter(out)
    writer.send({"type": "event", "event": "a"})
    with pytest.raises(TypeError):
        writer.send({"type": "event", "event": "b", "body": {"x": object()}})
    with pytest.raises(TypeError):
        writer.send({"type": "event", "event": "c", "body": {1: object()}})
    writer.send({"type": "event", "event": "d"})
    assert [(m["seq"], m["event"]) for m in read_all(out.getvalue())] == [(1, "a"), (2, "d")]


def test_numbers_json_cannot_hold_are_sent_as_null_and_huge_integers_whole() -> None:
    sent = read_all(
        written(
            {"type": "event", "event": "a", "body": {"x": float("nan"), "y": float("inf")}},
            {"type": "response", "request_seq": 10**30, "command": "next", "success": False},
        )
    )
    assert sent[0]["body"] == {"x": None, "y": None}
    assert sent[1]["request_seq"] == 10**30


def test_lone_surrogate_is_sent_escaped() -> None:
    data = written({"type": "event", "event": "output", "body": {"output": "bad \ud800 text"}})
    data.decode("utf-8")  # valid UTF-8 on the wire
    assert read_all(data)[0]["body"]["output"] == "bad \ud800 text"


def test_write_to_a_closed_peer_raises_connection_closed() -> None:
    class Broken(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    writer = MessageWriter(Broken())
    with pytest.raises(ConnectionClosed):
        writer.send({"type": "event", "event": "a"})
    with pytest.raises(ConnectionClosed):
        writer.send({"type": "event", "event": "a"})


def test_partial_writes_are_completed() -> None:
    class Slow(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            self.data += bytes(data[:3])
            return min(3, len(data))

    stream = Slow()
    MessageWriter(stream).send({"type": "event", "event": "output", "body": {"output": UNICODE}})
    assert read_all(bytes(stream.data))[0]["body"]["output"] == UNICODE


def test_log_has_one_json_line_per_message(tmp_path: Path) -> None:
    log = MessageLog.open(tmp_path / "log")
    out = io.BytesIO()
    # JSON keeps U+2028, U+2029 and U+0085 raw, but editors and str.splitlines() break lines there
    output = UNICODE + "\u2028\u2029\x85"
    MessageWriter(out, log=log).send({"type": "event", "event": "output", "body": {"output": output}})
    MessageReader(
        io.BytesIO(frame({"seq": 1, "type": "request", "command": "threads"})), log=log
    ).read_message()
    log.note("error", "Traceback (most recent call last):\n  ...")
    log.close()
    records = [json.loads(line) for line in (tmp_path / "log").read_text(encoding="utf-8").splitlines()]
    assert [r["direction"] for r in records] == ["out", "in", "adapter"]
    assert records[0]["message"]["body"]["output"] == output
    assert records[1]["message"] == {"seq": 1, "type": "request", "command": "threads"}
    assert records[2]["level"] == "error" and records[2]["text"].startswith("Traceback")
    assert all(r["time"].endswith("+00:00") for r in records)


class Writes(io.RawIOBase):
    """A stream that keeps each write apart."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.chunks.append(bytes(data))
        return len(data)


def test_a_batch_goes_out_in_one_write_in_order_whoever_sends() -> None:
    out = Writes()
    writer = MessageWriter(out)
    writer.send({"type": "event", "event": "before"})
    with writer.batched():
        writer.send({"type": "response", "request_seq": 1, "success": True, "command": "next"})
        other = threading.Thread(
            target=writer.send, args=({"type": "event", "event": "from another thread"},)
        )
        other.start()
        other.join()
        with writer.batched():  # nested: the outer batch writes
            writer.send({"type": "event", "event": "stopped"})
        assert len(out.chunks) == 1
    writer.send({"type": "event", "event": "after"})
    assert len(out.chunks) == 3
    batch = read_all(out.chunks[1])
    assert [m["seq"] for m in batch] == [2, 3, 4]
    assert [m.get("event", m.get("command")) for m in batch] == ["next", "from another thread", "stopped"]
    assert [m["seq"] for m in read_all(b"".join(out.chunks))] == [1, 2, 3, 4, 5]


def test_a_batch_that_cannot_be_written_closes_the_writer() -> None:
    class Broken(Writes):
        def write(self, data: Any) -> int:
            raise BrokenPipeError("the client went away")

    writer = MessageWriter(Broken())
    with pytest.raises(ConnectionClosed), writer.batched():
        writer.send({"type": "event", "event": "stopped"})
    with pytest.raises(ConnectionClosed):
        writer.send({"type": "event", "event": "more"})
