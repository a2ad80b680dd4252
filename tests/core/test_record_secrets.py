# ruff: noqa: F811  (the fixtures imported from test_record_support are redefined as parameters)
"""Secret redaction: a Secret's values never reach the database file, in any form the client sends them."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
from kubernetes import client, watch
from test_record_support import api, cluster, database_bytes, db, read_session, unique  # noqa: F401

import opreplay
from opreplay.record import redact
from opreplay.store import Store


def _values() -> dict[str, str]:
    return {
        label: f"{label}-{uuid.uuid4().hex}" for label in ("created", "patched", "json-patched", "string")
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _every_body(path: Path) -> bytes:
    """All stored bodies, decompressed: compression would otherwise hide a leak from a byte search."""
    with Store.open(path) as store:
        digests = store.db.execute_sql("SELECT digest FROM bodies").fetchall()
        texts = store.db.execute_sql("SELECT COALESCE(reason, '') || COALESCE(message, '') FROM operations")
        return b"\n".join(
            [store.body_bytes(bytes(digest)) for (digest,) in digests] + [text.encode() for (text,) in texts]
        )


def _record_secret_traffic(
    api: client.ApiClient, path: Path, values: dict[str, str], *, redacting: bool
) -> bytes:
    """Create, read, list, watch and patch (merge and JSON patch) a Secret; the file bytes while open."""
    v1 = client.CoreV1Api(api)
    ns, name = unique("ns"), unique("secret")
    last_applied = json.dumps(
        {"apiVersion": "v1", "kind": "Secret", "data": {"password": _b64(values["created"])}}
    )
    with opreplay.record(path, api_client=api, redact=redacting) as rec:
        v1.create_namespaced_secret(
            ns,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "annotations": {redact.LAST_APPLIED: last_applied}},
                "data": {"password": _b64(values["created"])},
                "stringData": {"token": values["string"]},
            },
        )
        v1.read_namespaced_secret(name, ns)
        v1.list_namespaced_secret(ns)
        stream = watch.Watch()
        for event in stream.stream(v1.list_namespaced_secret, ns, timeout_seconds=10):
            if event["type"] == "ADDED":
                v1.patch_namespaced_secret(name, ns, {"data": {"password": _b64(values["patched"])}})
            else:
                stream.stop()
        v1.patch_namespaced_secret(
            name, ns, [{"op": "replace", "path": "/data/password", "value": _b64(values["json-patched"])}]
        )
        v1.list_secret_for_all_namespaces()
        assert rec.flush()
        while_open = database_bytes(path)
    return while_open


def test_secret_values_never_reach_the_database(api: client.ApiClient, db: Path) -> None:
    values = _values()
    while_open = _record_secret_traffic(api, db, values, redacting=True)
    after = database_bytes(db)
    stored = _every_body(db)
    for value in values.values():
        for form in (value, _b64(value)):
            for where, data in (("file while recording", while_open), ("file", after), ("bodies", stored)):
                assert form.encode() not in data, f"{form} found in the {where}"

    _, ops, store = read_session(db)
    with store:
        verbs = [op.verb for op in ops]
        assert verbs.count("watch-event") >= 2 and "list" in verbs
        created = store.body(ops[0].response_digest)  # type: ignore[arg-type]
        expected = redact.placeholder(values["created"].encode())
        assert created["data"] == {"password": expected}
        assert store.body(ops[0].request_digest)["data"] == {"password": expected}  # type: ignore[arg-type]
        assert store.body(ops[1].response_digest)["data"] == {"password": expected}  # type: ignore[arg-type]
        assert created["metadata"]["annotations"][redact.LAST_APPLIED].startswith("<redacted sha256:")
        events = [store.body(op.response_digest) for op in ops if op.verb == "watch-event"]  # type: ignore[arg-type]
        assert events[0]["data"] == {"password": expected}
        assert events[1]["data"] == {"password": redact.placeholder(values["patched"].encode())}


def test_redact_false_records_secret_values(api: client.ApiClient, db: Path) -> None:
    values = _values()
    _record_secret_traffic(api, db, values, redacting=False)
    stored = _every_body(db)
    for label in ("created", "patched", "json-patched"):
        assert _b64(values[label]).encode() in stored
    assert values["string"].encode() in stored


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"data": {"k": _b64("v")}}, {"data": {"k": redact.placeholder(b"v")}}),
        ({"stringData": {"k": "v"}}, {"stringData": {"k": redact.placeholder(b"v")}}),
        ({"data": {"k": "not base64!"}}, {"data": {"k": redact.placeholder(b"not base64!")}}),
    ],
)
def test_equal_values_get_equal_placeholders(
    document: dict[str, object], expected: dict[str, object]
) -> None:
    assert redact.redact_secret(document)
    assert document == expected


def test_json_patch_and_nested_secrets() -> None:
    operations = [
        {"op": "add", "path": "/data/k", "value": _b64("v")},
        {"op": "add", "path": "/stringData", "value": {"t": "w"}},
        {
            "op": "replace",
            "path": "/metadata/annotations",
            "value": {redact.LAST_APPLIED: "{}", "keep": "me"},
        },
        {"op": "replace", "path": "/spec/replicas", "value": 3},
    ]
    assert redact.redact_json_patch(operations)
    assert [operation["value"] for operation in operations] == [
        redact.placeholder(b"v"),
        {"t": redact.placeholder(b"w")},
        {redact.LAST_APPLIED: redact.placeholder(b"{}"), "keep": "me"},
        3,
    ]
    listing = {
        "kind": "List",
        "items": [{"kind": "Secret", "data": {"k": _b64("v")}}, {"kind": "ConfigMap", "data": {"k": "v"}}],
    }
    assert redact.redact_nested(listing)
    assert listing["items"] == [
        {"kind": "Secret", "data": {"k": redact.placeholder(b"v")}},
        {"kind": "ConfigMap", "data": {"k": "v"}},
    ]
