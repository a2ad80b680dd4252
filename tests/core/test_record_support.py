"""Fixtures and helpers shared by the recorder tests (this module holds no tests itself).

The tests drive the real `kubernetes` client over real HTTP against the demo's emulated API
server; nothing of the client is mocked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

import opreplay
from opreplay.demo.emulator import KubernetesEmulatorThread
from opreplay.model import Operation, SessionInfo
from opreplay.store import Store

ROOT = Path(__file__).resolve().parents[2]
WIDGETS = ("example.com", "v1", "widgets", "Widget")


@pytest.fixture(scope="module")
def cluster() -> Iterator[KubernetesEmulatorThread]:
    with KubernetesEmulatorThread() as emulator:
        emulator.register_resource(*WIDGETS)
        yield emulator


@pytest.fixture()
def api(cluster: KubernetesEmulatorThread) -> Iterator[client.ApiClient]:
    api_client = cluster.api_client()
    yield api_client
    api_client.close()


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    return tmp_path / "recording.db"


def unique(prefix: str = "obj") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def read_session(path: Path, session: str = "latest") -> tuple[SessionInfo, list[Operation], Store]:
    """The session and its operations; the store stays open for body reads (closed by the caller)."""
    store = Store.open(path)
    info = store.find_session(session)
    return info, store.operations(info), store


def body(store: Store, digest: bytes | None) -> Any:
    assert digest is not None
    return store.body(digest)


def database_bytes(path: Path) -> bytes:
    """Every byte SQLite wrote: the database file, its WAL and shared memory."""
    return b"".join(
        candidate.read_bytes()
        for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
        if candidate.exists()
    )


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "core"), env.get("PYTHONPATH", "")])
    return env


# A recording child: argv[4] list calls to the API at argv[1], recorded into argv[2]; then argv[3].
CHILD = """
import sys, time, opreplay
from kubernetes import client
url, database, then, calls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
configuration = client.Configuration(host=url)
configuration.proxy = None
v1 = client.CoreV1Api(client.ApiClient(configuration))
if then == "handler":
    import signal
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(7))
recorder = opreplay.record(database, f"child-{then}", flush_interval=0.2, batch_size=7).start()
for _ in range(calls):
    v1.list_namespaced_config_map("default")
if then == "stop":
    recorder.stop()
    sys.exit(0)
print("ready", flush=True)
time.sleep(60)
"""


def spawn_recorder(
    cluster: KubernetesEmulatorThread, database: str | Path, then: str, calls: int
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, cluster.url, str(database), then, str(calls)],
        env=python_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def check_recorders_share_one_database(
    cluster: KubernetesEmulatorThread, database: str, calls: int = 30
) -> None:
    """Two processes and four threads record into one database at once: every operation of each lands."""
    children = [spawn_recorder(cluster, database, "stop", calls) for _ in range(2)]
    errors: list[BaseException] = []

    def record_in_thread(index: int) -> None:
        api_client = cluster.api_client()
        try:
            with opreplay.record(
                database, f"thread-{index}", api_client=api_client, flush_interval=0.02, batch_size=5
            ):
                v1 = client.CoreV1Api(api_client)
                for _ in range(calls):
                    v1.list_namespaced_config_map("default")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=record_in_thread, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    outputs = [child.communicate(timeout=60) for child in children]
    assert not errors
    assert [child.returncode for child in children] == [0, 0], outputs

    with Store.open(database) as store:
        sessions = store.sessions()
        assert sorted(s.name or "" for s in sessions) == [
            "child-stop",
            "child-stop",
            "thread-0",
            "thread-1",
            "thread-2",
            "thread-3",
        ]
        for session in sessions:
            ops = store.operations(session)
            assert [op.seq for op in ops] == list(range(1, calls + 1)), session.name
            assert {op.verb for op in ops} == {"list"} and session.operations == calls
            assert session.errors == 0 and session.dropped == 0 and session.ended_at is not None
