"""Fixtures for the DAP adapter tests: an in-process session over pipes, an adapter subprocess.

In-process sessions let a test reach into the `DebugSession` (or a test subclass with extra
handlers) and read the log; subprocesses test what VS Code sees: stdio, exit codes, stderr. Both
hand out a `DAPClient`, and teardown fails the test if the adapter sent anything invalid or
printed a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dapclient import AdapterProcess, InProcess

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
