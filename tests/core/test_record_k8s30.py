"""The same recorder under kubernetes 30.1.0, the client layout before the openapi-generator change.

In that layout `RESTClientObject.request` takes `query_params` and `_preload_content`, passes GET
queries to urllib3 as `fields` (not in the URL), reads bodies itself and raises `ApiException` on
errors. A virtualenv with kubernetes 30.1.0 is built once in ~/.cache/opreplay-tests/k8s30 (outside
the checkout; set OPREPLAY_TEST_CACHE to move it); it sees this checkout and the main virtualenv's
other packages through a .pth file placed after its own site-packages, so its kubernetes wins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from test_record_support import ROOT

VERSION = "30.1.0"

SCRIPT = r"""
import inspect, json, sys, threading
import kubernetes
from kubernetes import client, watch
import opreplay
from opreplay.demo.emulator import KubernetesEmulatorThread

# The 30.x Watch sends watch=True (Kubernetes parses booleans as Go does); kmock knows only "true".
from kmock._internal import parsing
_guess_k8s = parsing.guess_k8s
parsing.guess_k8s = lambda k8s, method, query: _guess_k8s(
    k8s, method, {**query, "watch": query["watch"].lower()} if "watch" in query else query)

database = sys.argv[1]
assert kubernetes.__version__ == "30.1.0", kubernetes.__version__
layout = list(inspect.signature(client.rest.RESTClientObject.request).parameters)
with KubernetesEmulatorThread() as cluster:
    cluster.register_resource("example.com", "v1", "widgets", "Widget")
    api = cluster.api_client()
    v1 = client.CoreV1Api(api)
    objects = client.CustomObjectsApi(api)
    errors = []
    with opreplay.record(database, "k8s30"):
        v1.create_namespaced_config_map("old", {"metadata": {"name": "cm"}, "data": {"a": "1"}})
        v1.read_namespaced_config_map("cm", "old")
        v1.list_namespaced_config_map("old", label_selector="x!=y")
        try:
            v1.read_namespaced_config_map("missing", "old")
        except client.ApiException as error:
            errors.append([error.status, error.reason, json.loads(error.body)["reason"]])
        stream = watch.Watch()
        for event in stream.stream(v1.list_namespaced_config_map, "old", timeout_seconds=10):
            if event["type"] == "ADDED":
                v1.patch_namespaced_config_map("cm", "old", {"data": {"a": "2"}})
            else:
                stream.stop()
        objects.create_namespaced_custom_object("example.com", "v1", "old", "widgets",
            {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}})
        objects.patch_namespaced_custom_object_status("example.com", "v1", "old", "widgets", "w",
            {"status": {"ok": True}})
print(json.dumps({"layout": layout, "errors": errors}))
"""


@pytest.fixture(scope="module")
def k8s30_python() -> Path:
    cache = Path(os.environ.get("OPREPLAY_TEST_CACHE", Path.home() / ".cache" / "opreplay-tests"))
    venv = cache / "k8s30"
    python = venv / "bin" / "python"
    ready = venv / f".kubernetes-{VERSION}"
    if not ready.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
        installed = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"kubernetes=={VERSION}"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if installed.returncode != 0:
            pytest.skip(f"cannot install kubernetes {VERSION}: {installed.stderr.strip()[-300:]}")
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # Appended after its own site-packages: this checkout, then the main virtualenv's packages.
        (Path(site) / "opreplay-checkout.pth").write_text(
            f"{ROOT / 'core'}\n{sysconfig.get_paths()['purelib']}\n"
        )
        ready.touch()
    return python


def test_recording_with_the_pre_generator_client(k8s30_python: Path, tmp_path: Path) -> None:
    database = tmp_path / "k8s30.db"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    finished = subprocess.run(
        [str(k8s30_python), "-c", SCRIPT, str(database)], capture_output=True, text=True, timeout=120, env=env
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    assert "query_params" in report["layout"] and "_preload_content" in report["layout"]
    assert report["errors"] == [[404, "Not Found", "NotFound"]]

    import opreplay

    with opreplay.Store.open(database) as store:
        session = store.find_session("k8s30")
        ops = store.operations(session)
        rows = [
            (op.verb, op.resource, op.namespace, op.name, op.subresource, op.status, op.event) for op in ops
        ]
        assert rows == [
            ("create", "configmaps", "old", "cm", None, 201, None),
            ("get", "configmaps", "old", "cm", None, 200, None),
            ("list", "configmaps", "old", "", None, 200, None),
            ("get", "configmaps", "old", "missing", None, 404, None),
            ("watch", "configmaps", "old", "", None, 200, None),
            ("watch-event", "configmaps", "old", "cm", None, 200, "ADDED"),
            # The patch made while handling ADDED, and the event it caused: whichever completed first.
            *sorted(rows[6:8], key=lambda row: row[0]),
            ("create", "widgets", "old", "w", None, 201, None),
            ("patch", "widgets", "old", "w", "status", 200, None),
        ]
        assert sorted(rows[6:8]) == [
            ("patch", "configmaps", "old", "cm", None, 200, None),
            ("watch-event", "configmaps", "old", "cm", None, 200, "MODIFIED"),
        ]
        watch_seq = ops[4].seq
        assert all(op.watch == watch_seq for op in ops if op.verb == "watch-event")
        assert ops[3].reason == "NotFound" and ops[3].message == 'configmaps "missing" not found'
        assert store.body(ops[0].request_digest) == {"metadata": {"name": "cm"}, "data": {"a": "1"}}  # type: ignore[arg-type]
        assert store.body(ops[1].response_digest)["data"] == {"a": "1"}  # type: ignore[arg-type]
        assert [item["metadata"]["name"] for item in store.body(ops[2].response_digest)["items"]] == ["cm"]  # type: ignore[arg-type]
        assert ops[2].kind == "ConfigMap" and ops[8].kind == "Widget"
        assert session.operations == len(ops) == 10 and session.errors == 1
