"""Validation of request arguments against the official DAP JSON schema.

Handlers trust their arguments' types because every request is checked here first against the
schema's `<Command>Arguments` definition (and whether `<Command>Request` requires arguments at all).
The official schema is the single source of truth: hand-written checks would drift from it. The
first error is reported as one line that names the field (`threadId must be an integer`,
`breakpoints[0].line is required`).

Two validators per command, both made on first use from the same Draft 4 schema: `jsonschema`
is the authority and writes the error messages, but takes 15-45 us per request (about 0.1 ms of
every step's five requests); a `fastjsonschema` function (Python generated from the schema, 1-3 us)
answers first, and only arguments it rejects go to `jsonschema`. A test checks that the fast one
never accepts what `jsonschema` rejects. It is generated from the schema file only, never from
anything a client sends.

The schema is not copied into the project: it is read from `$OPREPLAY_DAP_SCHEMA`, else from the
checkout's sibling `../shared/dap/debugAdapterProtocol.json`.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError, best_match

from opreplay_adapter.dap.protocol import excerpt

SCHEMA_ENV = "OPREPLAY_DAP_SCHEMA"
_CHECKOUT_SCHEMA = Path(__file__).resolve().parents[3].parent / "shared" / "dap" / "debugAdapterProtocol.json"

DRAFT_4 = "http://json-schema.org/draft-04/schema#"
_REFERENCE = re.compile(r'"#/definitions/([^"]+)"')

MISSING: Any = object()
"""Stands for `arguments` absent from a request (as opposed to `"arguments": null`)."""


class SchemaError(Exception):
    """The DAP schema cannot be found or read: the adapter cannot check requests without it."""


class ArgumentsError(Exception):
    """The arguments of a request do not match the schema; the message is one line."""


def schema_path() -> Path:
    configured = os.environ.get(SCHEMA_ENV)
    return Path(configured) if configured else _CHECKOUT_SCHEMA


@cache
def load_schema(path: Path | None = None) -> dict[str, Any]:
    """The parsed schema (read once per process); `SchemaError` with a one-line reason."""
    path = path or schema_path()
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SchemaError(
            f"cannot read the DAP schema {path} ({error.strerror or error}); set ${SCHEMA_ENV} to its path"
        ) from None
    except ValueError as error:
        raise SchemaError(f"the DAP schema {path} is not JSON: {error}") from None
    if not isinstance(schema, dict) or not isinstance(schema.get("definitions"), dict):
        raise SchemaError(f"{path} is not the DAP schema: it has no definitions")
    return schema


@dataclass(frozen=True)
class _CommandShape:
    arguments_required: bool
    arguments_definition: str | None


class ArgumentsChecker:
    """Checks and normalises request arguments: `check(command, arguments)` returns a dict."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self._definitions: dict[str, Any] = schema["definitions"]
        self._shapes = dict(_command_shapes(self._definitions))
        self._validators: dict[str, tuple[Callable[[Any], Any], Draft4Validator]] = {}
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> ArgumentsChecker:
        return _default_checker()

    def knows(self, command: str) -> bool:
        return command in self._shapes

    def check(self, command: str, arguments: Any) -> dict[str, Any]:
        """The arguments to hand to the handler; `ArgumentsError` when they do not validate.

        Absent optional arguments become `{}`. A command the schema does not define (an
        adapter-specific one) accepts an object or nothing.
        """
        shape = self._shapes.get(command)
        if arguments is MISSING:
            if shape is not None and shape.arguments_required:
                raise ArgumentsError("arguments are required")
            return {}
        if shape is None or shape.arguments_definition is None:
            if shape is None and not isinstance(arguments, dict):
                raise ArgumentsError("arguments must be an object")
            return arguments if isinstance(arguments, dict) else {}
        accepts, validator = self._validators_of(shape.arguments_definition)
        try:
            accepts(arguments)
        except Exception:  # rejected, or anything else: jsonschema decides, and says why
            error = best_match(validator.iter_errors(arguments))
            if error is not None:
                raise ArgumentsError(describe(error)) from None
        return arguments  # type: ignore[no-any-return]  # validated: every Arguments schema is an object

    def _validators_of(self, definition: str) -> tuple[Callable[[Any], Any], Draft4Validator]:
        with self._lock:
            validators = self._validators.get(definition)
            if validators is None:
                root = self._root(definition)
                accepts = fastjsonschema.compile(root, use_default=False, use_formats=False)
                validators = self._validators[definition] = (accepts, Draft4Validator(root))
            return validators

    def _root(self, definition: str) -> dict[str, Any]:
        """`definition` as a Draft 4 schema of its own, with the definitions it refers to.

        At the root, not a `$ref` to it: one reference fewer to resolve on every request. Only
        the definitions it needs: generating code for all of them would take seconds.
        """
        needed: set[str] = set()
        pending = [definition]
        while pending:
            for name in _REFERENCE.findall(json.dumps(self._definitions[pending.pop()])):
                if name not in needed:
                    needed.add(name)
                    pending.append(name)
        return {
            **self._definitions[definition],
            "$schema": DRAFT_4,
            "definitions": {name: self._definitions[name] for name in sorted(needed)},
        }


@cache
def _default_checker() -> ArgumentsChecker:
    return ArgumentsChecker(load_schema())


def _command_shapes(definitions: dict[str, Any]) -> Iterable[tuple[str, _CommandShape]]:
    """(command, shape) for every `<Command>Request` definition: `allOf: [Request, {...}]`."""
    for name, definition in definitions.items():
        if not name.endswith("Request") or "allOf" not in definition:
            continue
        own = definition["allOf"][-1]
        properties = own.get("properties", {})
        commands = properties.get("command", {}).get("enum", [])
        reference = properties.get("arguments", {}).get("$ref", "")
        for command in commands:
            yield (
                command,
                _CommandShape(
                    arguments_required="arguments" in own.get("required", []),
                    arguments_definition=reference.rpartition("/")[2] or None,
                ),
            )


_ARTICLES = {"array": "an array", "object": "an object", "integer": "an integer"}


def describe(error: ValidationError) -> str:
    """One line naming the offending field, e.g. `threadId must be an integer`."""
    where = _path(error.absolute_path)
    kind = error.validator
    if kind == "type":
        expected = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        return f"{where or 'arguments'} must be {' or '.join(_ARTICLES.get(n, 'a ' + n) for n in names)}"
    if kind == "required":
        missing = next(p for p in error.validator_value if p not in error.instance)
        return f"{_join(where, missing)} is required"
    if kind == "enum":
        allowed = ", ".join(json.dumps(v) for v in error.validator_value)
        return f"{where or 'arguments'} must be one of {allowed}"
    if kind in ("minimum", "maximum"):
        bound = "at least" if kind == "minimum" else "at most"
        return f"{where or 'arguments'} must be {bound} {error.validator_value}"
    detail = " ".join(error.message.split())
    detail = detail if len(detail) <= 120 else detail[:117] + "..."
    return f"{where}: {detail}" if where else detail


def _path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        text = f"{text}[{part}]" if isinstance(part, int) else _join(text, excerpt(part, 40))
    return text


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
