"""Secret redaction: a recording never holds a Secret's values, only a digest placeholder.

Recordings get attached to bug reports and copied between machines, so Secret `data` and
`stringData` values are replaced before anything reaches the store, in requests, responses, list
items and watch events alike. The placeholder, `<redacted sha256:0123456789ab>`, is a prefix of the
SHA-256 of the value (of the decoded bytes for `data`, so that `data` and `stringData` holding the
same value agree): two recorded Secrets can be compared ("did the password change?") without being
revealed. A 48-bit prefix cannot be reversed, but a guessable value (a dictionary word) can be
confirmed by hashing guesses; that is the price of comparability.

`kubectl.kubernetes.io/last-applied-configuration` on a Secret is a copy of the whole Secret as
JSON, so it is replaced by a placeholder too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from typing import Any

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_VALUE_FIELDS = ("data", "stringData")
_PATCH_PREFIXES = (
    "/data",
    "/stringData",
    "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
)
# JSON patch operations that write a whole object, metadata or annotations: redacted as a Secret would be.
_PATCH_PARENTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "": lambda value: value,
    "/metadata": lambda value: {"metadata": value},
    "/metadata/annotations": lambda value: {"metadata": {"annotations": value}},
}


def placeholder(value: bytes) -> str:
    return f"<redacted sha256:{hashlib.sha256(value).hexdigest()[:12]}>"


def _data_placeholder(value: Any) -> Any:
    if not isinstance(value, str):
        return _any_placeholder(value)
    try:
        return placeholder(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return placeholder(value.encode())


def _any_placeholder(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return placeholder(text.encode())


def redact_secret(secret: Any) -> bool:
    """Redact one Secret (or a patch of one) in place; True when anything changed."""
    if not isinstance(secret, dict):
        return False
    changed = False
    for field in _VALUE_FIELDS:
        values = secret.get(field)
        if isinstance(values, dict):
            convert = _data_placeholder if field == "data" else _any_placeholder
            secret[field] = {key: convert(value) for key, value in values.items()}
            changed = changed or bool(values)
        elif values is not None:
            secret[field] = _any_placeholder(values)
            changed = True
    metadata = secret.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        annotations[LAST_APPLIED] = _any_placeholder(annotations[LAST_APPLIED])
        changed = True
    return changed


def redact_json_patch(operations: list[Any]) -> bool:
    """Redact the values a JSON patch (RFC 6902) writes under a Secret's data, stringData or last-applied."""
    changed = False
    for operation in operations:
        if not isinstance(operation, dict) or "value" not in operation:
            continue
        path, value = operation.get("path"), operation["value"]
        if not isinstance(path, str):
            continue
        if path in _PATCH_PARENTS and isinstance(value, dict):
            changed = redact_secret(_PATCH_PARENTS[path](value)) or changed
        elif path.startswith(_PATCH_PREFIXES):
            convert = _data_placeholder if path.startswith("/data") else _any_placeholder
            if isinstance(value, dict):
                operation["value"] = {key: convert(item) for key, item in value.items()}
            else:
                operation["value"] = convert(value)
            changed = True
    return changed


def redact_nested(document: Any) -> bool:
    """Redact every object of kind Secret anywhere in a document (a List, a custom resource...)."""
    changed = False
    if isinstance(document, dict):
        if document.get("kind") == "Secret":
            changed = redact_secret(document)
        for value in document.values():
            if isinstance(value, (dict, list)):
                changed = redact_nested(value) or changed
    elif isinstance(document, list):
        for value in document:
            if isinstance(value, (dict, list)):
                changed = redact_nested(value) or changed
    return changed
