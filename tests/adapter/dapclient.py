"""A small DAP client for the adapter's tests, strict about everything the adapter sends.

Every message from the adapter is checked as it arrives: Content-Length framing, JSON, `seq`
numbering (1, 2, 3, ... with no gap), then the official schema, `ProtocolMessage` first and then
the specific definition (`<Command>Response`, `ErrorResponse` when `success` is false,
`<Event>Event`, `Event` for the adapter's own `opreplay/...` events). A violation is recorded
and raised by the next call that waits, and by `close()`, so a test cannot pass over a bad
message. The client works over any pair of blocking binary streams: pipes to an in-process
session (`InProcess`), a subprocess's stdio (`AdapterProcess`), a socket's files (`connect`).
`Debugger` drives a client through a debug session as VS Code does.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, Protocol, cast

from jsonschema import Draft4Validator

from opreplay_adapter.dap.dispatch import Ending
from opreplay_adapter.dap.protocol import MessageLog, MessageReader, MessageWriter
from opreplay_adapter.dap.session import DebugSession

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / ".." / "shared" / "dap" / "debugAdapterProtocol.json"
CUSTOM_EVENT_PREFIX = "opreplay/"
"""Events the protocol does not define (the extension's status bar reads `opreplay/position`)."""


class Incoming(Protocol):
    """A blocking raw stream: `read(n)` returns what is available, up to n bytes."""

    def read(self, size: int, /) -> bytes | None: ...


class Outgoing(Protocol):
    @property
    def closed(self) -> bool: ...

    def write(self, data: bytes, /) -> int | None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class SchemaChecker:
    """Checks adapter-sent messages against the official DAP schema (validators cached per definition)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.definitions: dict[str, Any] = schema["definitions"]
        self._validators: dict[str, Draft4Validator] = {}
        self._lock = threading.Lock()

    @classmethod
    @cache
    def official(cls) -> SchemaChecker:
        return cls(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))

    def definition_for(self, message: dict[str, Any]) -> str | None:
        """The specific definition a message must match, None if there is none."""
        if message.get("type") == "response":
            if message.get("success") is False:
                return "ErrorResponse"
            name = _capitalised(message.get("command")) + "Response"
            return name if name in self.definitions else "Response"
        if message.get("type") == "event":
            event = message.get("event")
            if isinstance(event, str) and event.startswith(CUSTOM_EVENT_PREFIX):
                return "Event"  # the adapter's own events: the base definition, with a body
            name = _capitalised(event) + "Event"
            return name if name in self.definitions else None
        return None

    def violations(self, message: dict[str, Any]) -> list[str]:
        problems = self._errors("ProtocolMessage", message)
        definition = self.definition_for(message)
        if definition is None:
            problems.append(f"no schema definition for {message.get('type')!r} {message.get('event')!r}")
        else:
            problems += self._errors(definition, message)
        return problems

    def _errors(self, definition: str, message: dict[str, Any]) -> list[str]:
        with self._lock:
            validator = self._validators.get(definition)
            if validator is None:
                root = {"$ref": f"#/definitions/{definition}", "definitions": self.definitions}
                validator = self._validators[definition] = Draft4Validator(root)
        return [
            f"{definition}: {'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator.iter_errors(message)
        ]


def _capitalised(name: Any) -> str:
    return name[:1].upper() + name[1:] if isinstance(name, str) else ""


def frame(message: dict[str, Any] | bytes) -> bytes:
    """A framed message; a dict is encoded as JSON (ASCII-escaped, so lone surrogates survive)."""
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


class AdapterError(AssertionError):
    """The adapter sent something invalid, or did not answer in time."""


class DAPClient:
    """Requests with waits matched by seq, an event list with waits, schema checks on everything."""

    def __init__(self, incoming: Incoming, outgoing: Outgoing) -> None:
        self.checker = SchemaChecker.official()
        self.messages: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.responses: dict[int, dict[str, Any]] = {}
        self.violations: list[str] = []
        self.closed = False
        self._incoming = incoming
        self._outgoing = outgoing
        self._seq = itertools.count(1)
        self._write_lock = threading.Lock()
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read_loop, name="dap-test-client", daemon=True)
        self._reader.start()

    # -- sending ------------------------------------------------------------------------------

    def next_seq(self) -> int:
        return next(self._seq)

    def send_raw(self, data: bytes) -> None:
        with self._write_lock:
            self._outgoing.write(data)
            self._outgoing.flush()

    def send(self, message: dict[str, Any] | bytes) -> None:
        self.send_raw(frame(message))

    def send_request(self, command: str, arguments: Any = None, **extra: Any) -> int:
        seq = self.next_seq()
        message: dict[str, Any] = {"seq": seq, "type": "request", "command": command, **extra}
        if arguments is not None:
            message["arguments"] = arguments
        self.send(message)
        return seq

    def request(self, command: str, arguments: Any = None, *, timeout: float = 5.0) -> dict[str, Any]:
        return self.response(self.send_request(command, arguments), timeout=timeout)

    def close_input(self) -> None:
        """Close the adapter's input (its end of input, EOF)."""
        with self._write_lock:
            self._outgoing.close()

    # -- waiting --------------------------------------------------------------------------------

    def response(self, seq: int, *, timeout: float = 5.0) -> dict[str, Any]:
        found = self._wait(lambda: self.responses.get(seq), f"the response to request {seq}", timeout)
        return cast(dict[str, Any], found)

    def wait_event(self, event: str, *, timeout: float = 5.0, after: int = 0) -> dict[str, Any]:
        """The first `event` event with a seq greater than `after`."""

        def found() -> dict[str, Any] | None:
            return next((e for e in self.events if e["event"] == event and e["seq"] > after), None)

        return cast(dict[str, Any], self._wait(found, f"a {event!r} event", timeout))

    def wait_closed(self, *, timeout: float = 5.0) -> None:
        self._wait(lambda: self.closed or None, "the adapter to close the connection", timeout)

    def check(self) -> None:
        with self._changed:
            if self.violations:
                raise AdapterError("the adapter sent invalid messages:\n" + "\n".join(self.violations[:20]))

    def _wait(self, probe: Callable[[], Any], what: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                self.check()
                value = probe()
                if value is not None:
                    return value
                if self.closed:
                    raise AdapterError(f"the adapter closed the connection while the test waited for {what}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AdapterError(f"timed out after {timeout} s waiting for {what}")
                self._changed.wait(remaining)

    # -- reading ----------------------------------------------------------------------------

    def _read_loop(self) -> None:
        buffer = bytearray()
        expected_seq = 1
        try:
            while True:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if not self._fill(buffer):
                        if buffer:
                            self._violation(
                                f"the adapter's output ended inside a header: {bytes(buffer[:80])!r}"
                            )
                        return
                    continue
                header = bytes(buffer[:end]).decode("ascii")
                name, _, value = header.partition(":")
                if name != "Content-Length" or not value.strip().isdigit() or "\r\n" in header:
                    self._violation(f"bad header from the adapter: {header!r}")
                    return
                length = int(value)
                del buffer[: end + 4]
                while len(buffer) < length:
                    if not self._fill(buffer):
                        self._violation("the adapter's output ended inside a body")
                        return
                body = bytes(buffer[:length])
                del buffer[:length]
                message = json.loads(body.decode("utf-8"))
                if message.get("seq") != expected_seq:
                    self._violation(f"seq {message.get('seq')} where {expected_seq} was due: {message}")
                expected_seq += 1
                self._accept(message)
        except Exception as error:  # an unparseable message: the test must fail, not hang
            self._violation(f"unreadable output from the adapter: {type(error).__name__}: {error}")
        finally:
            with self._changed:
                self.closed = True
                self._changed.notify_all()

    def _fill(self, buffer: bytearray) -> bool:
        try:
            chunk = self._incoming.read(65536)
        except OSError:
            return False
        if not chunk:
            return False
        buffer += chunk
        return True

    def _accept(self, message: dict[str, Any]) -> None:
        problems = self.checker.violations(message)
        with self._changed:
            self.messages.append(message)
            self.violations += [f"{p}\n  in {json.dumps(message)[:300]}" for p in problems]
            if message.get("type") == "response":
                request_seq: Any = message.get("request_seq")
                if request_seq in self.responses:
                    self.violations.append(f"a second response to request {request_seq}: {message}")
                self.responses[request_seq] = message
            elif message.get("type") == "event":
                self.events.append(message)
            self._changed.notify_all()

    def _violation(self, text: str) -> None:
        with self._changed:
            self.violations.append(text)
            self._changed.notify_all()


class InProcess:
    """A session served on a thread of the test process; the client talks to it over two pipes."""

    def __init__(self, session_class: type[DebugSession], log_path: Path) -> None:
        adapter_in_fd, client_out_fd = os.pipe()
        client_in_fd, adapter_out_fd = os.pipe()
        self.log_path = log_path
        self.log = MessageLog.open(log_path)
        self._adapter_in = open(adapter_in_fd, "rb", buffering=0)  # noqa: SIM115
        adapter_out = open(adapter_out_fd, "wb", buffering=0)  # noqa: SIM115
        self.session = session_class(MessageWriter(adapter_out, log=self.log), log=self.log)
        self.ending: Ending | None = None

        def serve() -> None:
            try:
                self.ending = self.session.serve(MessageReader(self._adapter_in, log=self.log))
            finally:
                adapter_out.close()  # the client sees the end of the connection

        self.thread = threading.Thread(target=serve, name="dap-session", daemon=True)
        self.thread.start()
        self.client = DAPClient(
            open(client_in_fd, "rb", buffering=0),  # noqa: SIM115
            open(client_out_fd, "wb", buffering=0),  # noqa: SIM115
        )

    def wait_ended(self, timeout: float = 5.0) -> Ending:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the session did not end"
        assert self.ending is not None
        return self.ending

    def finish(self) -> None:
        if not self.client._outgoing.closed:
            self.client.close_input()
        self.wait_ended()
        self.client.wait_closed()
        self._adapter_in.close()
        self.log.close()
        self.client.check()


class AdapterProcess:
    """`python -m opreplay_adapter.dap ARGS` on stdio, with a `DAPClient` on its pipes."""

    def __init__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        code: str = "",
    ) -> None:
        """`code`, when given, runs (`python -c`) instead of `-m opreplay_adapter.dap`."""
        self.stderr_file = tempfile.TemporaryFile()  # noqa: SIM115  # closed by stop()
        self.process = subprocess.Popen(
            [sys.executable, *(["-c", code] if code else ["-m", "opreplay_adapter.dap"]), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr_file,
            bufsize=0,
            env=env,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.client = DAPClient(self.process.stdout, self.process.stdin)

    def wait_for_port(self, timeout: float = 10.0) -> int:
        """The port of `--port 0`, from the adapter's `listening on 127.0.0.1:PORT` line on stderr."""
        deadline = time.monotonic() + timeout
        while (found := re.search(r"listening on 127\.0\.0\.1:(\d+)", self.stderr)) is None:
            assert self.process.poll() is None, f"the adapter exited: {self.stderr}"
            assert time.monotonic() < deadline, "the adapter did not start listening"
            time.sleep(0.02)
        return int(found.group(1))

    def wait_exit(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    @property
    def stderr(self) -> str:
        self.stderr_file.seek(0)
        return self.stderr_file.read().decode("utf-8", "replace")

    def stop(self) -> str:
        """Kill the adapter if it still runs, release its pipes; return all it wrote to stderr."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        stderr = self.stderr
        self.stderr_file.close()
        return stderr


def connect(port: int) -> tuple[DAPClient, socket.socket]:
    """A client on a new TCP connection to the adapter; `shutdown(SHUT_WR)` the socket for EOF."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(None)
    return DAPClient(sock.makefile("rb", buffering=0), sock.makefile("wb", buffering=0)), sock


class Debugger:
    """A `DAPClient` driven as VS Code drives a debug session, with the waits a test needs."""

    INITIALIZE: dict[str, Any] = {  # noqa: RUF012
        "adapterID": "opreplay",
        "linesStartAt1": True,
        "columnsStartAt1": True,
        "supportsVariableType": True,
        "supportsProgressReporting": True,
    }

    def __init__(self, item: InProcess) -> None:
        self.item = item
        self.client = item.client
        self.last_stop: dict[str, Any] = {"seq": 0}

    @classmethod
    def launched(
        cls, item: InProcess, launch: dict[str, Any], *, configure: Callable[[Debugger], None] | None = None
    ) -> Debugger:
        debugger = cls(item)
        assert debugger.request("initialize", cls.INITIALIZE)["success"]
        response = debugger.request("launch", launch)
        assert response["success"], response.get("message")
        debugger.client.wait_event("initialized")
        if configure is not None:
            configure(debugger)
        assert debugger.request("configurationDone")["success"]
        debugger.wait_stopped()
        return debugger

    def request(self, command: str, arguments: Any = None, *, timeout: float = 15.0) -> dict[str, Any]:
        return self.client.request(command, arguments, timeout=timeout)

    def body(self, command: str, arguments: Any = None) -> Any:
        response = self.request(command, arguments)
        assert response["success"], f"{command}: {response.get('message')}"
        return response.get("body")

    def wait_stopped(self, *, timeout: float = 15.0) -> dict[str, Any]:
        """The next `stopped` event's body (after the last one seen)."""
        event = self.client.wait_event("stopped", timeout=timeout, after=self.last_stop["seq"])
        self.last_stop = event
        return cast(dict[str, Any], event["body"])

    def move(self, command: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """A stepping request and the stop it causes."""
        self.body(command, {"threadId": 1, **(arguments or {})})
        return self.wait_stopped()

    def position(self) -> int:
        event = self.client.wait_event("opreplay/position", after=self.last_stop["seq"])
        return cast(int, event["body"]["seq"])

    def frames(self) -> list[dict[str, Any]]:
        return cast(
            list[dict[str, Any]],
            self.body("stackTrace", {"threadId": self.last_stop["body"]["threadId"]})["stackFrames"],
        )

    def scopes(self) -> dict[str, dict[str, Any]]:
        return {s["name"]: s for s in self.body("scopes", {"frameId": self.frames()[0]["id"]})["scopes"]}

    def variables(self, reference: int, **arguments: Any) -> list[dict[str, Any]]:
        return cast(
            list[dict[str, Any]],
            self.body("variables", {"variablesReference": reference, **arguments})["variables"],
        )

    def scope_variables(self, name: str) -> dict[str, dict[str, Any]]:
        return {v["name"]: v for v in self.variables(self.scopes()[name]["variablesReference"])}

    def evaluate(self, expression: str, context: str = "watch", **arguments: Any) -> dict[str, Any]:
        return self.request(
            "evaluate", {"expression": expression, "context": context, "frameId": 1, **arguments}
        )

    def outputs(self) -> list[str]:
        return [e["body"]["output"] for e in self.client.events if e["event"] == "output"]
