"""Fixtures and helpers shared by the recorder tests (this module holds no tests itself).

The tests drive the real `kubernetes` client over real HTTP against the demo's emulated API
server; nothing of the client is mocked.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

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
