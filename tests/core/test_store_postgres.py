# ruff: noqa: F811  (the fixtures imported from test_record_support are redefined as parameters)
"""PostgreSQL as the shared store, against a real server: recorders in several processes append to one
database, and a session reads back the same as from SQLite (operations, state, breakpoints, analysis)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from postgres_support import PostgresServer, postgres_server
from test_record_support import check_recorders_share_one_database, cluster  # noqa: F401
from test_replay_support import Recording, body

from opreplay.analysis import analyze
from opreplay.cli import main
from opreplay.demo.emulator import KubernetesEmulatorThread
from opreplay.errors import StoreError
from opreplay.replay import ConditionBreakpoint, ErrorBreakpoint, ReplayEngine, SelectorBreakpoint
from opreplay.store import Store


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with postgres_server() as running:
        yield running


def test_recorders_in_processes_and_threads_share_one_postgres_database(
    server: PostgresServer, cluster: KubernetesEmulatorThread
) -> None:
    check_recorders_share_one_database(cluster, server.new_database(), calls=25)


def _session(seed: int) -> Recording:
    rng = random.Random(seed)
    r = Recording()
    names = [("deployments", "default", "web"), ("deployments", "prod", "api"), ("pods", "default", "a")]
    for step in range(400):
        resource, namespace, name = rng.choice(names)
        replicas = rng.randint(1, 4) if resource == "deployments" else None
        what = rng.random()
        if what < 0.35:
            r.get(resource, namespace, name, step, replicas)
        elif what < 0.6:
            r.write("update", resource, namespace, name, step, replicas)
        elif what < 0.7:
            r.conflict(resource, namespace, name)
        elif what < 0.8:
            r.list(
                resource,
                "",
                [body(resource, ns, n, step, replicas) for res, ns, n in names if res == resource],
            )
        elif what < 0.9:
            r.event(resource, "MODIFIED", namespace, name, step, replicas)
        else:
            r.get_missing(resource, namespace, name)
    return r


def _everything(database: str) -> dict[str, Any]:
    """What a user reads of the latest session: operations, state, where breakpoints stop, the analysis."""
    found: dict[str, Any] = {}
    with ReplayEngine.open(database) as engine:
        found["operations"] = [
            (op.seq, op.verb, op.kind, op.namespace, op.name, op.status, op.response_digest)
            for op in engine.store.operations(engine.session)
        ]
        found["states"] = {seq: dict(engine.state(seq)) for seq in (1, 57, 200, engine.total)}
        found["objects"] = engine.state(engine.total).object(next(iter(engine.state(engine.total))))
        stops = []
        for definition in (
            ConditionBreakpoint('kind == "Deployment" and obj.spec.replicas == 3 and old.spec.replicas != 3'),
            ErrorBreakpoint("conflict"),
            SelectorBreakpoint("Pod/default/a", condition="status == 404"),
        ):
            engine.set_breakpoints([definition])
            engine.reset()
            for reverse in (False, True):
                while (stop := engine.run(reverse=reverse)).reason not in ("end", "start"):
                    stops.append((stop.reason, stop.seq))
        found["stops"] = stops
        analysis = analyze(engine.store, engine.session).to_json()
        analysis["stats"].pop("session", None)
        found["analysis"] = analysis
    return found


def test_a_session_reads_the_same_from_postgres_as_from_sqlite(
    server: PostgresServer, tmp_path: Path
) -> None:
    recording = _session(11)
    sqlite_path, _ = recording.save(tmp_path / "rec.db")
    url = server.new_database()
    recording.save(url)  # type: ignore[arg-type]  # Store.open takes a URL where it takes a path
    from_sqlite, from_postgres = _everything(str(sqlite_path)), _everything(url)
    assert from_postgres["stops"] and from_postgres == from_sqlite


def test_the_cli_reads_a_postgres_recording(server: PostgresServer, tmp_path: Path) -> None:
    url = server.new_database()
    _session(5).save(url)  # type: ignore[arg-type]
    runner = CliRunner()
    listed = runner.invoke(main, ["sessions", "-d", url, "--json"])
    assert listed.exit_code == 0, listed.output
    info = runner.invoke(main, ["info", "latest", "-d", url, "--json"])
    assert info.exit_code == 0 and '"operations": 400' in info.output


def test_an_unreachable_server_is_one_line(server: PostgresServer) -> None:
    url = f"postgresql://postgres@/nowhere?host={server.folder}&port=1"
    with pytest.raises(StoreError) as raised:
        Store.open(url)
    assert "\n" not in str(raised.value) and "cannot connect" in str(raised.value)
    result = CliRunner().invoke(main, ["sessions", "-d", url])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
