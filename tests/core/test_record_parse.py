"""The writer's parse-free fast paths agree with a real JSON parse, and step aside when unsure."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from opreplay.record import parse
from opreplay.record.writer import _as_objects


def _go_sorted(value: Any) -> Any:
    """What Go's encoding of a map (a custom resource, an unstructured list) looks like: sorted keys."""
    if isinstance(value, dict):
        return {key: _go_sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_go_sorted(item) for item in value]
    return value


TRICKY_STRINGS = {
    # JSON text inside a string: `},"` and `],"` occur, but escaped (the split needs balanced braces).
    "kubectl.kubernetes.io/last-applied-configuration": (
        '{"metadata":{"name":"x"},"items":[{"a":"]"}],"x":"\\""}'
    ),
    "name": "label named name",
    "resourceVersion": "an annotation named resourceVersion",
}


def _managed_fields() -> list[dict[str, Any]]:
    return [
        {
            "manager": "op",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2025-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {".": {}, "f:name": {}}},
                "f:spec": {'k:{"name":"web"}': {".": {}, "f:image": {}}},
            },
        }
    ]


def _statefulset(name: str, version: str) -> dict[str, Any]:
    # volumeClaimTemplates: an array of objects that start like list items ({"metadata":{"name":...).
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "resourceVersion": version,
            "labels": {"name": "x", "a": '{}],"'},
            "managedFields": _managed_fields(),
        },
        "spec": {
            "volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": {"x": 1}},
                {
                    "metadata": {"name": "logs", "namespace": "ns", "uid": "u", "resourceVersion": "7"},
                    "spec": {},
                },
            ]
        },
    }


def _widget(name: str, version: str, **extra: Any) -> dict[str, Any]:
    metadata = {
        "name": name,
        "namespace": "ns",
        "uid": f"uid-{name}",
        "resourceVersion": version,
        "generation": 2,
        "creationTimestamp": "2025-01-01T00:00:00Z",
        "finalizers": ["a/b", "c"],
        "annotations": TRICKY_STRINGS,
        "labels": {"name": "n", "namespace": "m"},
        "managedFields": _managed_fields(),
        "ownerReferences": [{"apiVersion": "v1", "kind": "Owner", "name": "o", "uid": "u"}],
        **extra,
    }
    return _go_sorted(
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": metadata,
            "spec": {
                "template": {
                    "apiVersion": "example.com/v1",
                    "kind": "Widget",
                    "metadata": {"name": "inner", "resourceVersion": "1"},
                }
            },
        }
    )


def test_peek_reads_a_built_in_object_as_a_parse_would() -> None:
    document = {"kind": "StatefulSet", "apiVersion": "apps/v1", **_statefulset("db", "42")}
    raw = orjson.dumps(document) + b"\n"
    assert parse.peek(raw) == parse.peek_parsed(document) == parse.Peek("StatefulSet", "ns", "db", "42")


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"deletionTimestamp": "2025-01-02T00:00:00Z", "deletionGracePeriodSeconds": 0, "generateName": "w-"},
    ],
)
def test_peek_reads_a_custom_resource_as_a_parse_would(extra: dict[str, Any]) -> None:
    document = _widget("w1", "99", **extra)
    raw = orjson.dumps(document)
    assert parse.peek(raw) == parse.peek_parsed(document) == parse.Peek("Widget", "ns", "w1", "99")


@pytest.mark.parametrize(
    "raw",
    [
        # as a client writes it (spaces), then in other orders, with unknown keys, with escapes
        b'{"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "resourceVersion": "1"}}',
        b'{"metadata":{"name":"p","resourceVersion":"1"},"kind":"Pod","apiVersion":"v1"}',
        b'{"apiVersion":"v1","kind":"X","metadata":{"labels":{"a":"b"},"zzz":1,"name":"p"}}',
        b'{"apiVersion":"v1","kind":"X","metadata":{"name":"p\\"q","resourceVersion":"1"}}',
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure"}',
    ],
)
def test_peek_steps_aside_when_unsure(raw: bytes) -> None:
    assert parse.peek(raw) is None


def test_a_built_in_list_splits_into_the_objects_a_get_returns() -> None:
    items = [_statefulset(f"db-{index}", str(10 + index)) for index in range(3)]
    listing = {
        "kind": "StatefulSetList",
        "apiVersion": "apps/v1",
        "metadata": {"resourceVersion": "20"},
        "items": items,
    }
    raw = orjson.dumps(listing) + b"\n"
    split = parse.split_list(raw)
    assert split is not None
    assert list(split.items) == [orjson.dumps(item) for item in _as_objects(listing)]
    assert orjson.loads(split.items[0])["kind"] == "StatefulSet"
    assert orjson.loads(split.envelope) == {key: value for key, value in listing.items() if key != "items"}
    assert (split.kind, split.resource_version) == ("StatefulSet", "20")


@pytest.mark.parametrize("limit", [1 << 20, 1], ids=["kept", "forgotten"])
def test_items_seen_in_earlier_lists_split_the_same(limit: int) -> None:
    # nested arrays of objects that start like items: only whole items may be remembered
    seen = parse.SeenItems(limit)
    for versions in (("1", "2", "3"), ("1", "5", "3"), ("1", "5", "3")):
        items = [_statefulset(f"db-{index}", version) for index, version in enumerate(versions)]
        listing = {"kind": "StatefulSetList", "apiVersion": "apps/v1", "metadata": {}, "items": items}
        raw = orjson.dumps(listing)
        expected = parse.split_list(raw)
        assert expected is not None and len(expected.items) == 3
        assert parse.split_list(raw, seen) == expected
    widgets = _go_sorted(
        {"apiVersion": "example.com/v1", "kind": "WidgetList", "metadata": {}, "items": [_widget("w", "1")]}
    )
    raw = orjson.dumps(widgets)
    assert parse.split_list(raw, seen) == parse.split_list(raw, seen) == parse.split_list(raw)


def test_a_custom_resource_list_splits_into_its_items() -> None:
    items = [_widget(f"w{index}", str(index)) for index in range(4)]
    listing = _go_sorted(
        {
            "apiVersion": "example.com/v1",
            "kind": "WidgetList",
            "metadata": {"continue": "", "resourceVersion": "8"},
            "items": items,
        }
    )
    split = parse.split_list(orjson.dumps(listing))
    assert split is not None
    assert list(split.items) == [orjson.dumps(item) for item in items]
    assert orjson.loads(split.envelope) == {
        "apiVersion": "example.com/v1",
        "kind": "WidgetList",
        "metadata": {"continue": "", "resourceVersion": "8"},
    }
    assert (split.kind, split.resource_version) == ("Widget", "8")


def test_an_empty_list_and_lists_it_cannot_split() -> None:
    empty = parse.split_list(
        b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"3"},"items":[]}'
    )
    assert empty is not None and empty.items == ()
    unbalanced = _statefulset("db", "1")
    unbalanced["spec"]["note"] = "{{{"  # braces in a string: the check cannot prove the boundaries
    listing = {"kind": "StatefulSetList", "apiVersion": "apps/v1", "metadata": {}, "items": [unbalanced] * 2}
    assert parse.split_list(orjson.dumps(listing)) is None
    assert parse.split_list(b'{"items":[{"a":1}],"kind":"List"}') is None
