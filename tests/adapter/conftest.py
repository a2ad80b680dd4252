"""Fixtures for the DAP adapter tests: an in-process session over pipes, an adapter subprocess,
the demo recording.

In-process sessions let a test reach into the `DebugSession` (or a test subclass with extra
handlers) and read the log; subprocesses test what VS Code sees: stdio, exit codes, stderr. Both
hand out a `DAPClient`, and teardown fails the test if the adapter sent anything invalid or
printed a traceback. `demo_db` is the demo scenario recorded once per test run (sessions "clean"
and "webapp-demo", the latest); `debugger` is an in-process session launched on it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dapclient import AdapterProcess, Debugger, InProcess

from opreplay_adapter.dap.session import DebugSession


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[Callable[..., InProcess]]:
    started: list[InProcess] = []

    def start(session_class: type[DebugSession] = DebugSession) -> InProcess:
        started.append(InProcess(session_class, tmp_path / f"dap-{len(started)}.log"))
        return started[-1]

    yield start
    for item in started:
        item.finish()


@pytest.fixture
def adapter_process() -> Iterator[Callable[..., AdapterProcess]]:
    started: list[AdapterProcess] = []

    def start(*args: str, **options: Any) -> AdapterProcess:
        started.append(AdapterProcess(*args, **options))
        return started[-1]

    yield start
    for item in started:
        stderr = item.stop()
        assert "Traceback" not in stderr, stderr
        item.client.check()


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    database = tmp_path_factory.mktemp("demo") / "demo.db"
    opreplay = Path(sys.executable).parent / "opreplay"
    subprocess.run([str(opreplay), "demo", "-d", str(database)], check=True, capture_output=True, timeout=120)
    return database


@pytest.fixture
def debugger(in_process: Callable[..., InProcess], demo_db: Path, tmp_path: Path) -> Callable[..., Debugger]:
    """`debugger(configure=None, **launch_arguments)`: launched on the demo (pages in tmp_path), stopped.

    `configure(debugger)` runs between `initialized` and `configurationDone` (breakpoints).
    """

    def start(configure: Callable[[Debugger], None] | None = None, **launch: Any) -> Debugger:
        pages = str(tmp_path / "pages")
        arguments = {"database": str(demo_db), "timelineDir": pages, **launch}
        return Debugger.launched(in_process(), arguments, configure=configure)

    return start
