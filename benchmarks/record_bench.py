"""Recorder benchmark: prints one JSON report (targets in parentheses).

1. caller: the recorder's cost in the operator's thread, per call (p50 <= 20 us, p99 <= 100 us):
   the pool-manager hook driven with a pool manager that returns pre-built urllib3 responses, body
   read as the client reads it, against the same calls unhooked; the writer is not running, so
   this is the hook's own cost and nothing else.
2. wall: recorded over unrecorded wall time of 5,000 kubernetes client calls to the emulated API
   server (in its own process, as a real one would be), writer running (<= 1.05).
3. writer: sustained writer throughput on the workload of benchmarks/workload.py, queue pre-filled,
   store included (>= 50,000 operations/s), with the split between building operations and the store.
4. storage: bytes per operation of the resulting database (<= 500), what they are made of, and the
   store changes that would cut them (measured on the same bodies, not applied).

    python benchmarks/record_bench.py [--operations 30000] [--calls 5000]
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import urllib3

import workload
from opreplay.record.capture import PoolHook, Sink
from opreplay.record.writer import Assembler, Writer
from opreplay.store import Store, bodies

GET_URL = "https://10.96.0.1:443/apis/apps/v1/namespaces/shop/deployments/web"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- 1. caller-thread cost ---------------------------------------------------------------------


class _Pool:
    """Stands in for urllib3's PoolManager: hands out pre-built responses, as fast as possible."""

    def __init__(self, body: bytes, count: int) -> None:
        self.responses = [
            urllib3.HTTPResponse(
                body=io.BytesIO(body),
                status=200,
                preload_content=False,
                headers={"Content-Type": "application/json"},
            )
            for _ in range(count)
        ]

    def request(self, method: str, url: str, **kwargs: Any) -> urllib3.HTTPResponse:
        return self.responses.pop()


def caller_cost(rounds: int = 20, calls: int = 1000) -> dict[str, Any]:
    body = next(iter(workload.Workload(0).objects)).raw
    sink = Sink(10**9, block=False, wake_at=10**9)  # no writer: only what the operator's thread does
    times: dict[str, dict[str, list[float]]] = {
        clock: {"plain": [], "hooked": []} for clock in ("wall", "cpu")
    }
    wall, cpu = time.perf_counter_ns, time.thread_time_ns
    for _ in range(rounds):
        plain, hooked = _Pool(body, calls), _Pool(body, calls)
        hook = PoolHook(hooked)
        hook.sinks = (sink,)
        for label, request in (("plain", plain.request), ("hooked", hook)):
            walls, cpus = times["wall"][label], times["cpu"][label]
            for _ in range(calls):
                start, start_cpu = wall(), cpu()
                response = request("GET", GET_URL, fields={}, timeout=None, headers={}, preload_content=False)
                response.data  # noqa: B018  (RESTResponse.read() reads the body this way)
                end_cpu, end = cpu(), wall()
                walls.append((end - start) / 1000)
                cpus.append((end_cpu - start_cpu) / 1000)
        sink.queue.clear()
    report: dict[str, Any] = {
        "calls": rounds * calls,
        "body_bytes": len(body),
        "targets_us": {"p50": 20, "p99": 100},
    }
    for clock, measured in times.items():
        plain_times, hooked_times = measured["plain"], measured["hooked"]
        report[f"{clock}_clock_us"] = {
            "unhooked": {
                "p50": round(_percentile(plain_times, 0.5), 2),
                "p99": round(_percentile(plain_times, 0.99), 2),
            },
            "hooked": {
                "p50": round(_percentile(hooked_times, 0.5), 2),
                "p99": round(_percentile(hooked_times, 0.99), 2),
            },
            "overhead": {
                "p50": round(_percentile(hooked_times, 0.5) - _percentile(plain_times, 0.5), 2),
                "p99": round(_percentile(hooked_times, 0.99) - _percentile(plain_times, 0.99), 2),
                "mean": round(statistics.fmean(hooked_times) - statistics.fmean(plain_times), 2),
            },
        }
    return report


# -- 2. recorded / unrecorded wall time --------------------------------------------------------

_SERVER = """
import sys, time
from opreplay.demo.emulator import KubernetesEmulatorThread
with KubernetesEmulatorThread() as cluster:
    print(cluster.url, flush=True)
    sys.stdin.read()
"""


def wall_ratio(calls: int, directory: Path) -> dict[str, Any]:
    from kubernetes import client

    import opreplay

    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        configuration = client.Configuration(host=server.stdout.readline().strip())
        configuration.proxy = None
        api = client.ApiClient(configuration)
        v1 = client.CoreV1Api(api)
        for index in range(20):
            v1.create_namespaced_config_map(
                "bench", {"metadata": {"name": f"cm-{index}"}, "data": {"payload": "x" * 2000}}
            )

        def run(count: int) -> tuple[float, float]:
            started, started_cpu = time.perf_counter(), time.process_time()
            for index in range(count):
                if index % 10 == 9:
                    v1.list_namespaced_config_map("bench")
                else:
                    v1.read_namespaced_config_map(f"cm-{index % 20}", "bench")
            return time.perf_counter() - started, time.process_time() - started_cpu

        run(200)  # warm up connections and caches
        # Alternate short rounds, so that a busy moment of the machine hits both sides alike.
        rounds, per_round = 10, max(1, calls // 10)
        plain: list[tuple[float, float]] = []
        recorded: list[tuple[float, float]] = []
        for round_ in range(rounds):
            plain.append(run(per_round))
            with opreplay.record(directory / "wall.db", f"wall-{round_}", api_client=api):
                recorded.append(run(per_round))
        pairs = [r[0] / p[0] for p, r in zip(plain, recorded, strict=True)]
        return {
            "calls": rounds * per_round,
            "unrecorded_s": round(sum(p[0] for p in plain), 3),
            "recorded_s": round(sum(r[0] for r in recorded), 3),
            "ratio": round(sum(r[0] for r in recorded) / sum(p[0] for p in plain), 4),
            "median_round_ratio": round(statistics.median(pairs), 4),
            "client_process_cpu_ratio": round(sum(r[1] for r in recorded) / sum(p[1] for p in plain), 4),
            "target": 1.05,
        }
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(30)


# -- 3. writer throughput ----------------------------------------------------------------------


def writer_throughput(operations: int, directory: Path) -> tuple[dict[str, Any], Path, int]:
    messages = list(workload.exchanges(operations, seed=1))

    # Building operations alone (no store).
    assembler = Assembler(token=None, redact=True, max_body_bytes=1 << 20)
    started, started_cpu = time.perf_counter(), time.process_time()
    for message in messages:
        assembler.feed(message)
    build_s, build_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    first, ops, _ = assembler.take()
    built = len(ops)

    # The store alone, on exactly those operations.
    path = directory / "store-only.db"
    with Store.open(path, create=True) as store:
        session = store.create_session(name="store-only", started_at=time.time(), command="bench")
        started, started_cpu = time.perf_counter(), time.process_time()
        for offset in range(0, built, 1000):
            store.append(session, first + offset, ops[offset : offset + 1000])
        store_s, store_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    del ops

    # The writer thread, end to end: queue pre-filled, then drained into a fresh database.
    path = directory / "writer.db"
    store = Store.open(path, create=True)
    session = store.create_session(name="writer", started_at=time.time(), command="bench")
    sink = Sink(len(messages) + 10, block=False, wake_at=10**9)
    sink.queue.extend(messages)
    del messages
    writer = Writer(
        sink,
        Assembler(token=None, redact=True, max_body_bytes=1 << 20),
        lambda: (store, session, False),
        batch_size=1000,
        flush_interval=0.2,
    )
    gc.collect()
    started, started_cpu = time.perf_counter(), time.process_time()
    writer.start()
    writer.stop()
    writer.join()
    total_s, total_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    written = store.find_session(session.id).operations
    store.close()
    report = {
        "operations": written,
        "ops_per_s": round(written / total_s),
        "ops_per_cpu_s": round(written / total_cpu),
        "seconds": round(total_s, 2),
        "target_ops_per_s": 50_000,
        "build_only": {
            "ops_per_s": round(built / build_s),
            "ops_per_cpu_s": round(built / build_cpu),
            "cpu_us_per_op": round(build_cpu / built * 1e6, 1),
        },
        "store_append_only": {
            "ops_per_s": round(built / store_s),
            "ops_per_cpu_s": round(built / store_cpu),
            "cpu_us_per_op": round(store_cpu / built * 1e6, 1),
        },
    }
    return report, path, written


# -- 4. storage --------------------------------------------------------------------------------


def storage(path: Path, operations: int) -> dict[str, Any]:
    size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    connection = sqlite3.connect(path)
    pages = dict(connection.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
    rows = connection.execute("SELECT codec, size, data FROM bodies").fetchall()
    stored_bytes = sum(len(data) for _, _, data in rows)
    deltas = sum(1 for codec, _, _ in rows if codec == bodies.DELTA)
    index_pages = sum(size for name, size in pages.items() if name.startswith(("operations_", "objects_")))
    report: dict[str, Any] = {
        "bytes_per_op": round(size / operations),
        "target_bytes_per_op": 500,
        "database_bytes": size,
        "bodies": {
            "rows": len(rows),
            "per_op": round(len(rows) / operations, 3),
            "stored_bytes_per_op": round(stored_bytes / operations),
            "pages_bytes_per_op": round(pages.get("bodies", 0) / operations),
            "json_bytes_per_op": round(sum(size for _, size, _ in rows) / operations),
            "deltas": deltas,
        },
        "operations_table_bytes_per_op": round(pages.get("operations", 0) / operations),
        "indexes_bytes_per_op": round(index_pages / operations),
    }
    connection.close()
    return report


def _run(name: str, measure: Callable[[], Any]) -> Any:
    print(f"... {name}", file=sys.stderr, flush=True)
    return measure()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--operations", type=int, default=30_000, help="workload size for writer and storage")
    parser.add_argument("--calls", type=int, default=5_000, help="client calls for the wall-time ratio")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opreplay-bench-") as scratch:
        directory = Path(scratch)
        report: dict[str, Any] = {
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 2),
            },
        }
        report["caller"] = _run("caller-thread cost", caller_cost)
        report["wall"] = _run("wall-time ratio", lambda: wall_ratio(args.calls, directory))
        writer, path, written = _run(
            "writer throughput", lambda: writer_throughput(args.operations, directory)
        )
        report["writer"] = writer
        report["storage"] = _run("storage", lambda: storage(path, written))
        report["machine"]["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
