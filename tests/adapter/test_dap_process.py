"""`python -m opreplay_adapter.dap` as VS Code runs it: stdio, exit codes, stderr, --log-file, --port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dapclient import AdapterProcess, connect, frame

from opreplay_adapter.dap.transport import accept_client, listen

Start = Callable[..., AdapterProcess]
INITIALIZE = {
    "adapterID": "opreplay",
    "clientName": "Visual Studio Cöde 😀",
    "supportsProgressReporting": True,
}


def initialize(adapter: AdapterProcess) -> None:
    response = adapter.client.request("initialize", INITIALIZE, timeout=10)
    assert response["success"] and response["body"]["supportsStepBack"] is True


def exits_quickly(adapter: AdapterProcess, since: float, code: int = 0) -> None:
    assert adapter.wait_exit(timeout=5) == code
    assert time.monotonic() - since < 1.0


def test_exit_after_disconnect(adapter_process: Start) -> None:
    adapter = adapter_process()
    initialize(adapter)
    since = time.monotonic()
    assert adapter.client.request("disconnect", {"restart": False})["success"]
    exits_quickly(adapter, since)
    assert adapter.stderr == ""


def test_exit_after_terminate(adapter_process: Start) -> None:
    adapter = adapter_process()
    initialize(adapter)
    since = time.monotonic()
    assert adapter.client.request("terminate")["success"]
    adapter.client.wait_event("terminated")
    exits_quickly(adapter, since)


def test_exit_at_end_of_input(adapter_process: Start) -> None:
    adapter = adapter_process()
    initialize(adapter)
    since = time.monotonic()
    adapter.client.close_input()
    exits_quickly(adapter, since)
    adapter.client.wait_closed()


def test_messages_merged_and_split_across_writes(adapter_process: Start) -> None:
    adapter = adapter_process()
    client = adapter.client
    first, second = client.next_seq(), client.next_seq()
    client.send_raw(
        frame({"seq": first, "type": "request", "command": "initialize", "arguments": INITIALIZE})
        + frame({"seq": second, "type": "request", "command": "threads"})
    )
    assert client.response(first, timeout=10)["success"] and client.response(second)["success"]
    third = client.next_seq()
    data = frame({"seq": third, "type": "request", "command": "unknown-é😀"})
    for offset in range(len(data)):
        client.send_raw(data[offset : offset + 1])
        if offset % 16 == 0:
            time.sleep(0.001)
    assert client.response(third)["message"] == "unsupported command 'unknown-\\xe9\\U0001f600'"


def test_utf8_bodies_are_counted_in_bytes(adapter_process: Start) -> None:
    adapter = adapter_process()
    client = adapter.client
    seq = client.next_seq()
    body = json.dumps(
        {"seq": seq, "type": "request", "command": "initialize", "arguments": INITIALIZE}, ensure_ascii=False
    ).encode()
    assert len(body) > len(body.decode())
    client.send_raw(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    assert client.response(seq, timeout=10)["success"]
    assert client.request("threads")["success"]  # framing still in step


def test_broken_framing_closes_with_one_line_on_stderr(adapter_process: Start) -> None:
    adapter = adapter_process()
    initialize(adapter)
    since = time.monotonic()
    adapter.client.send_raw(b"Content-Length: x\r\n\r\n{}")
    exits_quickly(adapter, since, code=1)
    adapter.client.wait_closed()
    assert adapter.stderr == "opreplay-dap: closing the connection: Content-Length is not a number: 'x'\n"


def test_log_file(adapter_process: Start, tmp_path: Path) -> None:
    log = tmp_path / "dap.jsonl"
    adapter = adapter_process("--log-file", str(log))
    initialize(adapter)
    adapter.client.request("disconnect")
    assert adapter.wait_exit(timeout=5) == 0
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert records[0]["text"].startswith("opreplay-dap started: pid")
    logged = [(r["direction"], r["message"]) for r in records if "message" in r]
    sent = [m for d, m in logged if d == "out"]
    assert sent == adapter.client.messages
    assert [m["command"] for d, m in logged if d == "in"] == ["initialize", "disconnect"]
    assert logged[0][1]["arguments"]["clientName"] == INITIALIZE["clientName"]
    assert records[-1]["text"] == "connection ended: disconnect"


def test_missing_schema_is_one_line_and_status_2(adapter_process: Start, tmp_path: Path) -> None:
    adapter = adapter_process(env={**os.environ, "OPREPLAY_DAP_SCHEMA": str(tmp_path / "none.json")})
    assert adapter.wait_exit(timeout=10) == 2
    assert adapter.stderr.count("\n") == 1
    assert adapter.stderr.startswith("opreplay-dap: cannot read the DAP schema")


def test_nothing_but_the_protocol_on_stdout() -> None:
    for args in (["--help"], ["--port", "x"], ["--log-file", "/nonexistent/dir/log"]):
        done = subprocess.run(
            [sys.executable, "-m", "opreplay_adapter.dap", *args],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=20,
        )
        assert done.stdout == b"", args
        assert done.stderr and b"Traceback" not in done.stderr
        assert done.returncode == (0 if args == ["--help"] else 2)


STRAY_OUTPUT = """
import os, sys, threading, time
from opreplay_adapter.dap.__main__ import main

def stray():
    time.sleep(0.3)
    print("stray print", flush=True)
    os.write(1, b"stray bytes on fd 1\\n")

threading.Thread(target=stray, daemon=True).start()
sys.exit(main(sys.argv[1:]))
"""


def test_stray_output_goes_to_stderr(adapter_process: Start) -> None:
    adapter = adapter_process(code=STRAY_OUTPUT)
    initialize(adapter)
    time.sleep(0.5)
    assert adapter.client.request("threads")["success"]  # the client fails on any byte outside a frame
    assert adapter.client.request("disconnect")["success"]
    assert adapter.wait_exit(timeout=5) == 0
    assert adapter.stderr == "stray print\nstray bytes on fd 1\n"


def test_port_mode_serves_one_client_after_another(adapter_process: Start) -> None:
    adapter = adapter_process("--port", "0")
    port = adapter.wait_for_port()
    for _ in range(2):
        client, sock = connect(port)
        with sock:
            response = client.request("initialize", INITIALIZE)
            assert response["body"]["exceptionBreakpointFilters"][0]["filter"] == "error"
            assert client.request("disconnect")["success"]
            client.wait_closed()
            client.check()
    assert adapter.process.poll() is None


def test_accepted_sockets_have_tcp_nodelay() -> None:
    with (
        listen(0) as listener,
        socket.create_connection(listener.getsockname()),
        accept_client(listener) as accepted,
    ):
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
