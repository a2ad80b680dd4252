"""Fuzz the adapter process with thousands of random and mutated messages (fixed seed, a few seconds).

Three parts, because the rule differs with what can be known about a message:

- Messages whose framing holds and that carry a usable seq go to one stdio adapter in batches.
  Each must get exactly one schema-valid response (wrong types, missing fields, huge numbers,
  unknown or non-string commands, clients' responses and events, deep nesting, odd Unicode).
- Messages that break framing or carry no usable seq cannot be answered, so each one goes on a fresh
  TCP connection to one `--port` adapter, after a few valid requests: those are answered, then the
  adapter closes the connection cleanly, and a fresh connection is served normally afterwards.

- After a launch on the demo recording, thousands of replay requests with random and hostile
  arguments (conditions that try to reach Python, allocate without bound or backtrack forever,
  stale handles, seqs out of range) each get one answer and never an internal error; then
  well-formed requests are served correctly, as if nothing had happened.
- Copies of the demo recording with flipped bytes are launched and stepped through: each launch
  and each request is answered, a damaged part with a one-line error, never an internal one.

The adapter must never print a traceback, and every message it sends is checked against the schema.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dapclient import AdapterProcess, InProcess, connect, frame

from opreplay_adapter.dap.dispatch import ErrorKind

SEED = 20_240_611
STREAM_MESSAGES = 3000
BROKEN_CASES = 400
REPLAY_BATCHES = 20
Start = Callable[..., AdapterProcess]

TEMPLATES: dict[str, dict[str, Any]] = {
    "initialize": {"adapterID": "opreplay", "linesStartAt1": True, "supportsProgressReporting": True},
    "pause": {"threadId": 1},
    "cancel": {"requestId": 3, "progressId": "opreplay-1"},
    "threads": {},
    "configurationDone": {},
    "next": {"threadId": 1, "granularity": "line"},
    "stepBack": {"threadId": 1},
    "launch": {"database": "recordings.db", "session": "latest", "stopOnEntry": True},
    "setBreakpoints": {"source": {"path": "/tmp/a.optrace"}, "breakpoints": [{"line": 3, "condition": "x"}]},
    "evaluate": {"expression": "obj.spec.replicas", "context": "watch", "frameId": 1},
    "variables": {"variablesReference": 5, "filter": "named", "start": 0, "count": 10},
    "setExceptionBreakpoints": {"filters": ["error"], "filterOptions": [{"filterId": "slow"}]},
}
STRINGS = ["", "x", "é", "東京", "😀", "\ud800", "\x00", "a" * 5000, "Content-Length: 3\r\n\r\n{}", "'{}\"\\"]
NUMBERS = [0, 1, -1, 2**31, -(2**31) - 1, 10**30, 1.5, -0.0, 1e308, 2**63]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(8 if depth < 4 else 5)
    if choice == 0:
        return rng.choice(NUMBERS)
    if choice == 1:
        return rng.choice(STRINGS)
    if choice == 2:
        return rng.choice([True, False, None])
    if choice == 3:
        return rng.randint(-5, 5)
    if choice == 4:
        return "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(12)))
    if choice == 5:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if choice == 6:
        return {rng.choice(STRINGS[:6]): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}
    nested: Any = random_value(rng, 4)
    for _ in range(rng.randrange(1, 300)):
        nested = [nested] if rng.random() < 0.5 else {"n": nested}
    return nested


def mutated(rng: random.Random, value: dict[str, Any]) -> Any:
    value = json.loads(json.dumps(value))
    for _ in range(rng.randrange(1, 4)):
        action = rng.randrange(5)
        keys = list(value)
        if action == 0 and keys:
            del value[rng.choice(keys)]
        elif action == 1 and keys:
            value[rng.choice(keys)] = random_value(rng)
        elif action == 2:
            value[rng.choice([*STRINGS[:6], "threadId", "__proto__"])] = random_value(rng)
        elif action == 3:
            return random_value(rng)
    return value


def stream_message(rng: random.Random, seq: int) -> dict[str, Any]:
    """A message with a usable seq and anything else possibly wrong."""
    command: Any = rng.choice([*TEMPLATES, "foo", "", "Threads", "disconnect ", *STRINGS[:6]])
    message: dict[str, Any] = {"seq": seq, "type": "request", "command": command}
    template = TEMPLATES.get(command, {})
    roll = rng.random()
    if roll < 0.25:
        message["arguments"] = template
    elif roll < 0.85:
        message["arguments"] = mutated(rng, template)
    if rng.random() < 0.1:
        message["type"] = rng.choice(["response", "event", "Request", "", None, 1, ["request"]])
    if rng.random() < 0.05:
        message["command"] = random_value(rng)
    if rng.random() < 0.05:
        message[rng.choice(["request_seq", "success", "body", "event", "x"])] = random_value(rng)
    return message


def encoded(rng: random.Random, message: dict[str, Any]) -> bytes:
    if rng.random() < 0.5:
        try:  # raw UTF-8 rather than \u escapes, when there is no lone surrogate
            return frame(json.dumps(message, ensure_ascii=False).encode("utf-8"))
        except UnicodeEncodeError:
            pass
    return frame(message)


def test_fuzz_stream_every_message_is_answered(adapter_process: Start, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    log = tmp_path / "fuzz.jsonl"
    adapter = adapter_process("--log-file", str(log))
    client = adapter.client
    kinds: Counter[Any] = Counter()
    sent = 0
    while sent < STREAM_MESSAGES:
        batch = []
        for _ in range(250):
            sent += 1
            seq = client.next_seq() + (0 if rng.random() < 0.95 else 10**12)
            batch.append(stream_message(rng, seq))
        client.send_raw(b"".join(encoded(rng, m) for m in batch))
        for message in batch:
            response = client.response(message["seq"], timeout=10)
            command = message.get("command")
            assert response["command"] == (command if isinstance(command, str) else "")
            kinds["ok" if response["success"] else ErrorKind(response["body"]["error"]["id"]).name] += 1
    assert kinds["ok"] > 100 and kinds["INVALID"] > 1000 and kinds["CANT_HANDLE"] > 50, kinds
    assert kinds["INTERNAL"] == 0, kinds
    assert client.request("threads")["success"]
    assert client.request("disconnect")["success"]
    assert adapter.wait_exit(timeout=5) == 0
    assert adapter.stderr == ""
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 2 * STREAM_MESSAGES
    for line in lines:
        json.loads(line)


def broken_message(rng: random.Random) -> bytes:
    """One message that breaks framing or cannot be tied to a request."""
    valid = json.dumps({"seq": 99, "type": "request", "command": "threads"}).encode()
    category = rng.randrange(9)
    if category == 0:
        return rng.randbytes(rng.randrange(1, 300))
    if category == 1:
        value = rng.choice(
            [b"", b"abc", b"-1", b"1e3", b"0x10", b" 1 2", b"9" * 40, b"99999999999", "٣".encode()]
        )
        return b"Content-Length: " + value + b"\r\n\r\n" + valid
    if category == 2:
        header = rng.choice(
            [b"Content-Length 46", b"Content-Lenght: 46", b"content-length: 46\r\nbad", b"\x00\xff"]
        )
        return header + b"\r\n\r\n" + valid
    if category == 3:  # declared longer than sent (then end of input), or shorter (body cut)
        return b"Content-Length: %d\r\n\r\n" % (len(valid) + rng.choice([1, 100, -1, -20])) + valid
    if category == 4:
        at = rng.randrange(1, len(valid))
        return frame(valid[:at] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]) + valid[at:])
    if category == 5:
        return frame(rng.choice([b"[]", b"[{}]", b"1", b'"request"', b"null", b"true", b"", b"{", b"{}}"]))
    if category == 6:
        seq = rng.choice(
            ["", '"seq": 0,', '"seq": -3,', '"seq": "1",', '"seq": 1.5,', '"seq": true,', '"seq": null,']
        )
        return frame(("{" + seq + ' "type": "request", "command": "threads"}').encode())
    if category == 7:
        depth = rng.choice([2000, 50_000])
        return frame(b'{"seq": 1, "x": ' + b"[" * depth + b"]" * depth + b"}")
    return frame(
        rng.choice([b'{"seq": NaN}', b'{"seq": 1, "x": Infinity}', b'{"seq": ' + b"7" * 5000 + b"}"])
    )


def served_normally(port: int) -> None:
    client, sock = connect(port)
    with sock:
        response = client.request("initialize", {"adapterID": "opreplay"})
        assert response["success"] and response["body"]["supportsStepBack"] is True
        assert len(response["body"]["exceptionBreakpointFilters"]) == 8
        assert client.request("disconnect")["success"]
        client.wait_closed()
        client.check()


def test_fuzz_broken_framing_closes_cleanly(adapter_process: Start) -> None:
    rng = random.Random(SEED)
    adapter = adapter_process("--port", "0")
    port = adapter.wait_for_port()
    for case in range(BROKEN_CASES):
        client, sock = connect(port)
        with sock:
            prefix = [client.next_seq() for _ in range(rng.randrange(3))]
            payload = b"".join(frame({"seq": seq, "type": "request", "command": "threads"}) for seq in prefix)
            client.send_raw(payload + broken_message(rng))
            sock.shutdown(socket.SHUT_WR)
            client.wait_closed(timeout=5)
            client.check()
            assert sorted(client.responses) == prefix, f"case {case}"
            assert all(r["success"] for r in client.responses.values())
        if case % 50 == 49:
            served_normally(port)
    served_normally(port)
    assert adapter.process.poll() is None
    lines = adapter.stderr.splitlines()
    assert len(lines) > BROKEN_CASES // 2
    assert all(line.startswith("opreplay-dap: ") for line in lines), lines[:5]


HOSTILE = [
    "__import__('os').system('true')",
    "obj.__class__.__mro__",
    "obj._secret",
    "(lambda: 1)()",
    "open('/etc/passwd')",
    "getattr(obj, 'spec')",
    "'a' * 10**9",
    "[x for x in range(10**9)]",
    "[[y for y in obj] for x in obj for z in obj] * 100000",
    "9 ** 9 ** 9",
    "matches(name, '(a+)+$')",
    "matches(message, '(x|x)*y')",
    "f'{obj}' * 100000",
    "(" * 2000 + ")" * 2000,
    "not " * 3000 + "True",
    "x" * 5000,
    "status == \x00",
    "obj.spec.replicas < 3",
    "None < 3",
    "len(state) > 0 and any(c.type == 'Ready' for c in obj.status.conditions)",
    "state",
    "req",
    "{verb} {name",
    "{obj.metadata.name}}",
    "",
    "   ",
    "東京 == 1",
    "😀",
    ":goto 99999999999",
    ":goto -1",
    ":find __import__('os')",
    ":find status == 409",
    ":stats",
    ":diff",
]


def replay_request(rng: random.Random, seq: int, page: str) -> dict[str, Any]:
    """A request after launch: replay commands with plausible, random or hostile arguments."""
    condition = rng.choice(HOSTILE) if rng.random() < 0.7 else random_value(rng)
    line = rng.choice([-1, 0, 1, 3, 6, 7, 21, 256, 261, 262, 5005, 2**31 - 1])
    templates: dict[str, dict[str, Any]] = {
        "next": {"threadId": 1},
        "stepBack": {"threadId": 1},
        "stepIn": {"threadId": 1},
        "stepOut": {"threadId": 1},
        "continue": {"threadId": 1},
        "reverseContinue": {"threadId": 1},
        "restart": {},
        "goto": {"threadId": 1, "targetId": rng.choice([1, 21, 256, 0, -5, 257, 2**31 - 1])},
        "gotoTargets": {"source": {"path": page}, "line": line},
        "threads": {},
        "stackTrace": {
            "threadId": rng.choice([1, 2, 0]),
            "startFrame": rng.randrange(-1, 4),
            "levels": rng.randrange(-1, 4),
        },
        "scopes": {"frameId": rng.choice([1, 2, 3, 4, 0])},
        "variables": {
            "variablesReference": rng.randrange(0, 60),
            "start": rng.randrange(-2, 5),
            "count": rng.randrange(-2, 5),
        },
        "exceptionInfo": {"threadId": 1},
        "loadedSources": {},
        "source": {
            "source": {"path": rng.choice([page, "/etc/passwd", ""])},
            "sourceReference": rng.randrange(3),
        },
        "breakpointLocations": {
            "source": {"path": page},
            "line": line,
            "endLine": line + rng.randrange(-3, 10**6),
        },
        "setBreakpoints": {
            "source": {"path": rng.choice([page, page.replace("p0001", "p0002"), "/tmp/x.py"])},
            "breakpoints": [
                {
                    "line": line,
                    "condition": condition,
                    "hitCondition": rng.choice(["1", "% 0", ">= -1", "x"]),
                    "logMessage": rng.choice(
                        ["{seq}", "{", condition if isinstance(condition, str) else "x"]
                    ),
                }
            ],
        },
        "setFunctionBreakpoints": {
            "breakpoints": [{"name": condition if isinstance(condition, str) else "x"}]
        },
        "setExceptionBreakpoints": {
            "filters": rng.sample(["error", "conflict", "slow", "loop", "bogus"], rng.randrange(3)),
            "filterOptions": [{"filterId": rng.choice(["error", "not-found", "??"]), "condition": condition}],
        },
        "dataBreakpointInfo": {
            "name": rng.choice(["image", "spec", "obj.spec.replicas", "[0]", "seq"]),
            "variablesReference": rng.randrange(0, 60),
        },
        "setDataBreakpoints": {
            "breakpoints": [
                {
                    "dataId": rng.choice(
                        [
                            "{}",
                            "[]",
                            '{"object":[1,2,3,4],"path":"a"}',
                            '{"object":["v1","pods","default","x"],"path":"spec"}',
                        ]
                    )
                }
            ]
        },
        "evaluate": {
            "expression": condition,
            "context": rng.choice(["watch", "repl", "hover", "clipboard", "x"]),
        },
        "completions": {"text": condition, "column": rng.randrange(-1, 40)},
    }
    command = rng.choice(list(templates))
    arguments = templates[command] if rng.random() < 0.6 else mutated(rng, templates[command])
    return {"seq": seq, "type": "request", "command": command, "arguments": arguments}  # fmt: skip


def test_fuzz_after_launch_then_served_correctly(adapter_process: Start, demo_db: Path) -> None:
    rng = random.Random(SEED)
    adapter = adapter_process()
    client = adapter.client
    assert client.request("initialize", TEMPLATES["initialize"], timeout=10)["success"]
    assert client.request("launch", {"database": str(demo_db)}, timeout=10)["success"]
    client.wait_event("initialized")
    assert client.request("configurationDone")["success"]
    client.wait_event("stopped")
    page = client.request("stackTrace", {"threadId": 1})["body"]["stackFrames"][0]["source"]["path"]
    kinds: Counter[Any] = Counter()
    for _ in range(REPLAY_BATCHES):
        batch = [replay_request(rng, client.next_seq(), page) for _ in range(100)]
        client.send_raw(b"".join(encoded(rng, m) for m in batch))
        for message in batch:
            response = client.response(message["seq"], timeout=30)
            assert response["command"] == message["command"]
            kinds["ok" if response["success"] else ErrorKind(response["body"]["error"]["id"]).name] += 1
    assert kinds["INTERNAL"] == 0, kinds
    assert kinds["ok"] > 800 and kinds["CANT_HANDLE"] > 200 and kinds["INVALID"] > 300, kinds

    # Well-formed requests, served as if nothing had happened.
    for command, arguments in [
        ("setBreakpoints", {"source": {"path": page}, "breakpoints": []}),
        ("setFunctionBreakpoints", {"breakpoints": []}),
        ("setExceptionBreakpoints", {"filters": []}),
        ("setDataBreakpoints", {"breakpoints": []}),
    ]:
        assert client.request(command, arguments)["success"]
    goto = client.request("goto", {"threadId": 1, "targetId": 21})
    assert client.wait_event("opreplay/position", after=goto["seq"])["body"]["seq"] == 21
    frames = client.request("stackTrace", {"threadId": 1})["body"]["stackFrames"]
    assert frames[0]["line"] == 5 + 21 and frames[0]["source"]["path"] == page
    assert client.request("evaluate", {"expression": "seq", "context": "watch"})["body"]["result"] == "21"
    shown = client.request("setBreakpoints", {"source": {"path": page}, "breakpoints": [{"line": 5 + 42}]})
    assert shown["body"]["breakpoints"][0]["verified"] is True
    assert client.request("continue", {"threadId": 1})["success"]
    assert (
        client.request("evaluate", {"expression": "seq", "context": "watch"}, timeout=10)["body"]["result"]
        == "42"
    )
    assert client.request("disconnect")["success"]
    assert adapter.wait_exit(timeout=5) == 0


def _damaged_copy(rng: random.Random, source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    with sqlite3.connect(target) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(target.read_bytes())
    for _ in range(rng.choice((1, 4, 32))):
        data[rng.randrange(100, len(data))] = rng.randrange(256)  # past the header: SQLite opens it
    target.write_bytes(bytes(data))


def test_damaged_recordings_get_answers_never_internal_errors(
    in_process: Callable[..., InProcess], demo_db: Path, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    kinds: Counter[Any] = Counter()

    def answered(client: Any, command: str, arguments: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = client.request(command, arguments, timeout=30)
        if response["success"]:
            kinds["ok"] += 1
        else:
            kinds[ErrorKind(response["body"]["error"]["id"]).name] += 1
            assert "\n" not in response["message"], response["message"]
        return response

    for trial in range(12):
        damaged = tmp_path / f"damaged{trial}.db"
        _damaged_copy(rng, demo_db, damaged)
        client = in_process().client
        answered(client, "initialize", TEMPLATES["initialize"])
        pages = str(tmp_path / f"pages{trial}")
        if not answered(client, "launch", {"database": str(damaged), "timelineDir": pages})["success"]:
            continue
        answered(client, "configurationDone", {})
        for step in range(30):
            answered(client, "stepBack" if step % 7 == 6 else "next", {"threadId": 1})
            frames = answered(client, "stackTrace", {"threadId": 1}).get("body", {}).get("stackFrames", [])
            for frame_ in frames[:1]:
                for scope in answered(client, "scopes", {"frameId": frame_["id"]})["body"]["scopes"]:
                    answered(client, "variables", {"variablesReference": scope["variablesReference"]})
        answered(client, "continue", {"threadId": 1})
        answered(client, "evaluate", {"expression": ":stats", "context": "repl"})
    assert kinds["INTERNAL"] == 0, kinds
    assert kinds["ok"] > 1000, kinds
