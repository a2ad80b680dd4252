"""The debug adapter's latency as VS Code feels it, against debugpy's; prints a JSON report.

What is measured, on a long recording (1,000,000 operations by default, made once with
`python benchmarks/workload.py DB --operations N` and cached):

- launch: from the `launch` request to the first `stopped` event (with `stopOnEntry`), and from
  starting the adapter process to that event;
- F10: what VS Code does when the user steps: `next`, wait for `stopped`, then `threads`,
  `stackTrace`, `scopes` and `variables` of the Object scope; one round trip per operation.
  Measured first while the session's analysis still runs in its child process (the first seconds
  after launch: `f10_while_analysing`), then once it is done (`f10`);
- the same with `stepBack`;
- both again with a client that polls its input for up to 5 ms before it blocks on it
  (`polling_client`). The targets are judged on the blocking client, which is what VS Code's
  event loop is; the polling one shows how much of each round trip is the client's own wake-ups
  (on a virtual machine whose other CPU is idle, a thread woken from a blocking read can wait a
  good part of a millisecond for it), which no adapter can remove;
- the floor (`floor`): the same F10 against an adapter that does no work (a few lines of Python
  that answer each request with a canned response, over stdio, polling its input as opreplay's
  adapter does), interleaved with the measured F10s in blocks of 100 so that both see the same
  moments of the machine: what the pipes, the client, two Python processes and the machine's own
  stalls cost before the adapter does anything;
- the machine's own stalls (`machine.stalls`): a thread spinning on each CPU for a few seconds
  counts the moments its clock jumps by more than 0.5 ms (it was not running: the hypervisor or
  the kernel had the CPU), which any round trip that meets one pays;
- a long scan: `continue` from the first operation with a function breakpoint on the replay
  benchmark's field condition, which never holds (`continue_with_field_condition`).

The same client then steps a small Python program under debugpy (`python -m debugpy --listen
--wait-for-client`, attached over TCP) with the same five requests (`variables` of the Locals
scope), once with TCP_NODELAY on every socket (the client's, and debugpy's own through a
sitecustomize) and once without: the number to compare against is what people accept from Python
debugging in VS Code.

The client is written here, not taken from the tests: it does no schema validation, so that
what is timed is the adapter. Usage:

    python benchmarks/dap_bench.py [--database DB] [--operations N] [--steps N] [--debugpy-steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE = Path.home() / ".cache" / "opreplay-bench" / "1m.db"
TARGETS = {"f10_p99_ms": 5.0, "launch_to_first_stopped_ms": 1000.0}
ANALYSING_STEPS = 300
ANALYSED = re.compile(r"opreplay: (\d+ hot loops?|no analysis)")
"""The Debug Console line that says the background analysis is done."""

PROGRAM = textwrap.dedent(
    """\
    total = 0
    values = []
    for i in range(1_000_000):
        total += i
        values.append(total % 7)
        if len(values) > 10:
            values.pop(0)
    print(total)
    """
)
BREAK_LINE = 4
FLOOR_ADAPTER = textwrap.dedent(
    """\
    import json, os, select, sys, time

    poller = select.poll()
    poller.register(0, select.POLLIN)
    bodies = {
        "threads": {"threads": [{"id": 1, "name": "main"}]},
        "stackTrace": {"stackFrames": [{"id": 1, "name": "frame", "line": 1, "column": 1}]},
        "scopes": {"scopes": [{"name": "Object", "variablesReference": 1, "expensive": False}]},
        "variables": {"variables": []},
    }
    stopped = {"type": "event", "event": "stopped", "body": {"reason": "step", "threadId": 1}}
    buffer, seq = b"", 0

    def frame(message):
        global seq
        seq += 1
        body = json.dumps({"seq": seq, **message}).encode()
        return b"Content-Length: %d\\r\\n\\r\\n%s" % (len(body), body)

    while True:
        deadline = time.perf_counter() + 0.002
        while not poller.poll(0) and time.perf_counter() < deadline:
            pass
        chunk = os.read(0, 65536)
        if not chunk:
            break
        buffer += chunk
        while b"\\r\\n\\r\\n" in buffer:
            header, _, rest = buffer.partition(b"\\r\\n\\r\\n")
            length = int(header.split(b":", 1)[1])
            if len(rest) < length:
                break
            request, buffer = json.loads(rest[:length]), rest[length:]
            command = request["command"]
            out = frame({"type": "response", "request_seq": request["seq"], "success": True,
                         "command": command, "body": bodies.get(command, {})})
            if command in ("next", "stepBack"):
                out += frame(stopped)
            os.write(1, out)
    """
)
"""An adapter that does nothing but answer: the floor under any Python adapter on this machine."""
STALL_PROBE = textwrap.dedent(
    """\
    import json, os, sys, time

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(sys.argv[1])})
    seconds, gaps = float(sys.argv[2]), []
    start = last = time.perf_counter()
    while last - start < seconds:
        now = time.perf_counter()
        if now - last > 0.0005:
            gaps.append(now - last)
        last = now
    print(json.dumps(gaps))
    """
)
"""Spins on one CPU and prints the gaps over 0.5 ms between two readings of its clock."""
STALL_SECONDS = 5.0
NODELAY_SITECUSTOMIZE = textwrap.dedent(
    """\
    # TCP_NODELAY on every TCP socket debugpy connects or accepts, in its adapter and in the debuggee
    import socket

    def _nodelay(sock):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    _connect, _accept = socket.socket.connect, socket.socket.accept

    def connect(self, address):
        _connect(self, address)
        _nodelay(self)

    def accept(self):
        conn, address = _accept(self)
        _nodelay(conn)
        return conn, address

    socket.socket.connect, socket.socket.accept = connect, accept
    """
)
"""For debugpy's figure with Nagle's algorithm off on both ends of both of its TCP hops."""


class Client:
    """Framed DAP over a pair of binary streams; requests matched by seq, events kept in order."""

    def __init__(
        self, reader: BinaryIO, writer: BinaryIO | Callable[[bytes], Any], *, poll: float = 0.0
    ) -> None:
        self._reader = reader
        self.poll = poll
        self._poller = select.poll()
        self._poller.register(reader.fileno(), select.POLLIN)
        self._write = writer if callable(writer) else writer.write
        self._flush = getattr(writer, "flush", lambda: None)
        self._seq = 0
        self._buffer = b""
        self.events: list[dict[str, Any]] = []

    def send(self, command: str, arguments: dict[str, Any] | None = None) -> int:
        self._seq += 1
        message: dict[str, Any] = {"seq": self._seq, "type": "request", "command": command}
        if arguments is not None:
            message["arguments"] = arguments
        body = json.dumps(message).encode()
        self._write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self._flush()
        return self._seq

    def _read(self) -> dict[str, Any]:
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        header, _, rest = self._buffer.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in header.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        while len(rest) < length:
            self._buffer = header + b"\r\n\r\n" + rest
            self._fill()
            header, _, rest = self._buffer.partition(b"\r\n\r\n")
        self._buffer = rest[length:]
        message: dict[str, Any] = json.loads(rest[:length])
        return message

    def _fill(self) -> None:
        deadline = time.perf_counter() + self.poll
        while self.poll and not self._poller.poll(0) and time.perf_counter() < deadline:
            pass
        chunk = self._reader.read1(65536) if hasattr(self._reader, "read1") else self._reader.read(65536)
        if not chunk:
            raise EOFError("the adapter closed the connection")
        self._buffer += chunk

    def response(self, seq: int) -> dict[str, Any]:
        while True:
            message = self._read()
            if message["type"] == "response" and message["request_seq"] == seq:
                if not message["success"]:
                    raise RuntimeError(f"{message['command']} failed: {message.get('message')}")
                return message
            if message["type"] == "event":
                self.events.append(message)

    def request(self, command: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.response(self.send(command, arguments))

    def event(self, name: str, test: Callable[[dict[str, Any]], bool] = lambda body: True) -> dict[str, Any]:
        """The first `name` event (whose body passes `test`), kept or to come."""
        for index, message in enumerate(self.events):
            if message["event"] == name and test(message.get("body", {})):
                return self.events.pop(index)
        while True:
            message = self._read()
            if message["type"] == "event" and message["event"] == name and test(message.get("body", {})):
                return message
            if message["type"] == "event":
                self.events.append(message)


FIELD_CONDITION = 'kind == "Deployment" and obj.spec.replicas == 99'
"""The replay benchmark's field condition: never true, so `continue` scans to the end."""


def step_round_trip(client: Client, command: str, thread_id: int, scope: str) -> float:
    """One F10 as VS Code does it; seconds."""
    started = time.perf_counter()
    client.request(command, {"threadId": thread_id})
    stopped = client.event("stopped")
    client.request("threads")
    frames = client.request(
        "stackTrace", {"threadId": stopped["body"]["threadId"], "startFrame": 0, "levels": 20}
    )
    frame = frames["body"]["stackFrames"][0]["id"]
    scopes = client.request("scopes", {"frameId": frame})["body"]["scopes"]
    reference = next(s["variablesReference"] for s in scopes if s["name"] == scope)
    client.request("variables", {"variablesReference": reference})
    return time.perf_counter() - started


def summary(seconds: list[float]) -> dict[str, float | int]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "max_ms": round(ms[-1], 3),
    }


def start_adapter(*command: str) -> tuple[subprocess.Popen[bytes], Client]:
    process = subprocess.Popen(
        [sys.executable, *command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        bufsize=0,
    )
    assert process.stdin is not None and process.stdout is not None
    return process, Client(process.stdout, process.stdin)  # type: ignore[arg-type]


def interleaved(
    measured: Callable[[], float], floor: Callable[[], float], steps: int, *, block: int = 100
) -> tuple[list[float], list[float]]:
    """`steps` of each, alternating in blocks, so that both meet the machine in the same moods."""
    ours: list[float] = []
    theirs: list[float] = []
    while len(ours) < steps:
        count = min(block, steps - len(ours))
        ours += [measured() for _ in range(count)]
        theirs += [floor() for _ in range(count)]
    return ours, theirs


def bench_opreplay(database: Path, steps: int) -> dict[str, Any]:
    started = time.perf_counter()
    process, client = start_adapter("-m", "opreplay_adapter.dap")
    floor_process, floor_client = start_adapter("-c", FLOOR_ADAPTER)
    try:
        client.request(
            "initialize", {"adapterID": "opreplay", "linesStartAt1": True, "columnsStartAt1": True}
        )
        launched = time.perf_counter()
        client.request("launch", {"database": str(database), "stopOnEntry": True})
        client.event("initialized")
        client.request("setExceptionBreakpoints", {"filters": []})
        client.request("configurationDone")
        stopped = client.event("stopped")
        first_stop = time.perf_counter()
        thread_id = stopped["body"]["threadId"]
        for _ in range(20):  # warm-up: the first page is written, imports and caches warm up
            step_round_trip(client, "next", thread_id, "Object")
        # The session's analysis runs in a child process for the first seconds after launch.
        during = [step_round_trip(client, "next", thread_id, "Object") for _ in range(ANALYSING_STEPS)]
        client.event("output", lambda body: ANALYSED.match(body.get("output", "")) is not None)
        analysis_s = time.perf_counter() - first_stop
        for _ in range(20):
            step_round_trip(floor_client, "next", 1, "Object")
        forward, floor = interleaved(
            lambda: step_round_trip(client, "next", thread_id, "Object"),
            lambda: step_round_trip(floor_client, "next", 1, "Object"),
            steps,
        )
        backward = [step_round_trip(client, "stepBack", thread_id, "Object") for _ in range(steps)]
        client.poll = 0.005
        polled = [step_round_trip(client, "next", thread_id, "Object") for _ in range(steps)]
        polled_back = [step_round_trip(client, "stepBack", thread_id, "Object") for _ in range(steps)]
        # a long scan: continue over the whole session with a field condition that never holds
        client.poll = 0.0
        client.request("setFunctionBreakpoints", {"breakpoints": [{"name": FIELD_CONDITION}]})
        client.request("goto", {"threadId": thread_id, "targetId": 1})
        client.event("stopped")
        scan_started = time.perf_counter()
        client.request("continue", {"threadId": thread_id})
        end = client.event("stopped")
        scan_s = time.perf_counter() - scan_started
        client.request("disconnect")
        process.wait(timeout=10)
        floor_process.stdin.close()  # type: ignore[union-attr]
        floor_process.wait(timeout=10)
    finally:
        for started_process in (process, floor_process):
            if started_process.poll() is None:
                started_process.kill()
    return {
        "transport": "stdio",
        "launch_to_first_stopped_ms": round((first_stop - launched) * 1000, 1),
        "process_start_to_first_stopped_ms": round((first_stop - started) * 1000, 1),
        "f10_while_analysing": summary(during),
        "analysis_done_after_s": round(analysis_s, 1),
        "f10": summary(forward),
        "step_back": summary(backward),
        "polling_client": {"f10": summary(polled), "step_back": summary(polled_back)},
        "floor": {"f10": summary(floor)},
        "continue_with_field_condition": {
            "condition": FIELD_CONDITION,
            "seconds": round(scan_s, 2),
            "stopped": end["body"].get("description"),
        },
    }


def bench_debugpy(steps: int, *, nodelay: bool) -> dict[str, Any]:
    import debugpy

    folder = Path(tempfile.mkdtemp(prefix="dap-bench-"))
    script = folder / "program.py"
    script.write_text(PROGRAM)
    env = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    if nodelay:
        (folder / "sitecustomize.py").write_text(NODELAY_SITECUSTOMIZE)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), env.get("PYTHONPATH")) if p)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-Xfrozen_modules=off", "-m", "debugpy", "--listen", f"127.0.0.1:{port}",
         "--wait-for-client", str(script)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with sock:
            client = Client(sock.makefile("rb", buffering=0), sock.sendall)  # type: ignore[arg-type]
            client.request(
                "initialize", {"adapterID": "debugpy", "linesStartAt1": True, "columnsStartAt1": True}
            )
            attach = client.send("attach", {"justMyCode": True})
            client.event("initialized")
            client.request(
                "setBreakpoints", {"source": {"path": str(script)}, "breakpoints": [{"line": BREAK_LINE}]}
            )
            client.request("configurationDone")
            client.response(attach)
            stopped = client.event("stopped")
            thread_id = stopped["body"]["threadId"]
            client.request("setBreakpoints", {"source": {"path": str(script)}, "breakpoints": []})
            for _ in range(20):
                step_round_trip(client, "next", thread_id, "Locals")
            forward = [step_round_trip(client, "next", thread_id, "Locals") for _ in range(steps)]
            client.request("disconnect", {"terminateDebuggee": True})
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
    return {
        "version": debugpy.__version__,
        "transport": "tcp",
        "tcp_nodelay": nodelay,
        "f10": summary(forward),
    }


def machine_stalls(seconds: float = STALL_SECONDS) -> dict[str, Any]:
    """What a thread that never sleeps loses on each CPU at once: counts per second and the longest."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    probes = [
        subprocess.Popen(
            [sys.executable, "-c", STALL_PROBE, str(cpu), str(seconds)], stdout=subprocess.PIPE, text=True
        )
        for cpu in cpus
    ]
    gaps = [gap for probe in probes for gap in json.loads(probe.communicate()[0])]
    per_second = len(cpus) * seconds
    return {
        "seconds": seconds,
        "cpus": len(cpus),
        "over_0_5_ms_per_cpu_second": round(len(gaps) / per_second, 1),
        "over_2_ms_per_cpu_second": round(sum(gap > 0.002 for gap in gaps) / per_second, 1),
        "longest_ms": round(max(gaps, default=0.0) * 1000, 2),
    }


def ensure_database(database: Path, operations: int) -> None:
    if database.exists():
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "workload.py"),
            str(database),
            "--operations",
            str(operations),
        ],
        check=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database", type=Path, default=DEFAULT_DATABASE)
    parser.add_argument(
        "--operations", type=int, default=1_000_000, help="size of the session to make if missing"
    )
    parser.add_argument("--steps", type=int, default=1000, help="round trips measured per direction")
    parser.add_argument(
        "--debugpy-steps",
        type=int,
        default=200,
        help="round trips measured under debugpy (~0.2 s each without TCP_NODELAY)",
    )
    args = parser.parse_args()
    ensure_database(args.database, args.operations)
    opreplay = bench_opreplay(args.database, args.steps)
    report = {
        "database": str(args.database),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "stalls": machine_stalls(),
        },
        "opreplay": opreplay,
        "debugpy": [
            bench_debugpy(args.debugpy_steps, nodelay=True),
            bench_debugpy(args.debugpy_steps, nodelay=False),
        ],
        "targets": TARGETS,
        "met": {
            "f10_p99_ms": opreplay["f10"]["p99_ms"] <= TARGETS["f10_p99_ms"],
            "step_back_p99_ms": opreplay["step_back"]["p99_ms"] <= TARGETS["f10_p99_ms"],
            "launch_to_first_stopped_ms": opreplay["launch_to_first_stopped_ms"]
            <= TARGETS["launch_to_first_stopped_ms"],
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
