# ruff: noqa: F811  (the fixtures imported from test_record_support are redefined as parameters)
"""The recorder and processes: concurrent writers on one file, kill -9, SIGTERM, `opreplay record`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_record_support import (  # noqa: F401
    check_recorders_share_one_database,
    cluster,
    db,
    python_env,
    read_session,
    spawn_recorder,
    unique,
)

from opreplay.cli import main
from opreplay.demo.emulator import KubernetesEmulatorThread


def _wait_ready(child: subprocess.Popen[str]) -> None:
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "ready", child.stderr.read() if child.stderr else line


def test_concurrent_recorders_share_one_file(cluster: KubernetesEmulatorThread, db: Path) -> None:
    check_recorders_share_one_database(cluster, str(db))


def test_process_endings(cluster: KubernetesEmulatorThread, tmp_path: Path) -> None:
    """kill -9, SIGTERM (default action) and SIGTERM (the program's own handler), side by side."""
    children = {
        case: spawn_recorder(
            cluster, tmp_path / f"{case}.db", "handler" if case == "handler" else "sleep", 25
        )
        for case in ("kill", "term", "handler")
    }
    try:
        for child in children.values():
            _wait_ready(child)
        time.sleep(0.8)  # the calls are now older than the flush interval (0.2 s)
        children["kill"].kill()
        children["term"].send_signal(signal.SIGTERM)
        children["handler"].send_signal(signal.SIGTERM)
        returncodes = {case: child.wait(20) for case, child in children.items()}
    finally:
        for child in children.values():
            child.kill()
    # The program's handler ran (it exits with 7); without one, the child dies by the signal.
    assert returncodes == {"kill": -signal.SIGKILL, "term": -signal.SIGTERM, "handler": 7}
    for case in children:
        info, ops, store = read_session(tmp_path / f"{case}.db")  # opens cleanly, even after kill -9
        store.close()
        assert [op.seq for op in ops] == list(range(1, 26)) and info.operations == 25, case
        # A killed process cannot close its session; SIGTERM stops (default) or flushes and exits.
        assert (info.ended_at is None) == (case == "kill"), case


SCRIPT = """
import sys
from kubernetes import client
configuration = client.Configuration(host=sys.argv[1])
configuration.proxy = None
v1 = client.CoreV1Api(client.ApiClient(configuration))
v1.create_namespaced_config_map(sys.argv[2], {"metadata": {"name": "from-script"}})
v1.read_namespaced_config_map("from-script", sys.argv[2])
try:
    v1.read_namespaced_config_map("missing", sys.argv[2])
except client.ApiException as error:
    print("status", error.status)
sys.exit(3)
"""


def test_opreplay_record_runs_an_unmodified_program(
    cluster: KubernetesEmulatorThread, db: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "my_operator.py"
    script.write_text(SCRIPT)
    site = tmp_path / "site"  # a sitecustomize of the program's own: it must still run
    site.mkdir()
    (site / "sitecustomize.py").write_text("print('own sitecustomize')\n")
    env = python_env()
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(site)])
    ns = unique("ns")
    args = [
        "record",
        "-d",
        str(db),
        "--session",
        "scripted",
        "--label",
        "team=platform",
        "--",
        sys.executable,
        str(script),
        cluster.url,
        ns,
    ]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 3, result.output
    # The child writes to the real stdout, not to click's.
    assert capfd.readouterr().out.split() == ["own", "sitecustomize", "status", "404"]
    info, ops, store = read_session(db)
    store.close()
    assert (info.name, info.labels) == ("scripted", {"team": "platform"})
    assert str(script) in info.command and info.ended_at is not None
    assert [(op.verb, op.name, op.status) for op in ops] == [
        ("create", "from-script", 201),
        ("get", "from-script", 200),
        ("get", "missing", 404),
    ]


def test_record_command_rejects_a_bad_label(db: Path) -> None:
    result = CliRunner().invoke(main, ["record", "-d", str(db), "--label", "nolabel", "--", "true"])
    assert result.exit_code == 2 and "KEY=VALUE" in result.output
    assert not db.exists()
