"""Request arguments are checked against the official schema; errors are one line naming the field."""

from __future__ import annotations

import random
from typing import Any

import pytest
from jsonschema import Draft4Validator

from opreplay_adapter.dap.schema import MISSING, ArgumentsChecker, ArgumentsError, SchemaError, load_schema


@pytest.fixture(scope="module")
def checker() -> ArgumentsChecker:
    return ArgumentsChecker.default()


@pytest.mark.parametrize(
    ("command", "arguments", "message"),
    [
        ("next", {"threadId": "1"}, "threadId must be an integer"),
        ("next", {}, "threadId is required"),
        ("next", MISSING, "arguments are required"),
        ("next", None, "arguments must be an object"),
        ("next", [1], "arguments must be an object"),
        ("next", {"threadId": 1, "granularity": "word"}, 'granularity must be one of "statement", "line", '),
        ("setBreakpoints", {"source": {"path": 3}}, "source.path must be a string"),
        (
            "setBreakpoints",
            {"source": {}, "breakpoints": [{"line": 1}, {}]},
            "breakpoints[1].line is required",
        ),
        ("setBreakpoints", {"source": {}, "breakpoints": {}}, "breakpoints must be an array"),
        ("cancel", {"requestId": 0}, "requestId must be at least 1"),
        ("cancel", {"requestId": True}, "requestId must be an integer"),
        ("cancel", {"requestId": 1.0}, "requestId must be an integer"),
        ("initialize", {"adapterID": None}, "adapterID must be a string"),
        ("evaluate", {"expression": "x", "format": {"hex": "yes"}}, "format.hex must be a boolean"),
    ],
)
def test_first_error_in_one_line(
    checker: ArgumentsChecker, command: str, arguments: Any, message: str
) -> None:
    with pytest.raises(ArgumentsError) as caught:
        checker.check(command, arguments)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_valid_arguments_are_returned(checker: ArgumentsChecker) -> None:
    arguments = {"threadId": 1, "granularity": "instruction", "extra": [1, 2]}
    assert checker.check("next", arguments) is arguments
    assert checker.check("threads", MISSING) == {}
    assert checker.check("configurationDone", MISSING) == {}
    assert checker.check("disconnect", {"terminateDebuggee": True}) == {"terminateDebuggee": True}


def test_commands_outside_the_schema_take_an_object_or_nothing(checker: ArgumentsChecker) -> None:
    assert not checker.knows("opreplayFind")
    assert checker.check("opreplayFind", MISSING) == {}
    assert checker.check("opreplayFind", {"q": 1}) == {"q": 1}
    with pytest.raises(ArgumentsError, match="arguments must be an object"):
        checker.check("opreplayFind", "q")


def test_every_request_of_the_schema_has_a_validator(checker: ArgumentsChecker) -> None:
    definitions = load_schema()["definitions"]
    commands = [
        d["allOf"][1]["properties"]["command"]["enum"][0]
        for name, d in definitions.items()
        if name.endswith("Request") and name != "Request"
    ]
    assert len(commands) > 40
    for command in commands:
        assert checker.knows(command)
        try:
            checker.check(command, {})
        except ArgumentsError as error:
            assert "is required" in str(error)


_TRICKY = (0, 1, -1, 2**31, 2**63, 10**30, 1.0, 1.5, True, False, None, "", "x", "line", [], [1], [{}], {})


def _arguments_like(definition: dict[str, Any], definitions: dict[str, Any], rng: random.Random) -> Any:
    """Arguments near `definition`'s shape: its own property names, nested objects, wrong types."""
    if "$ref" in definition:
        definition = definitions[definition["$ref"].rpartition("/")[2]]
    properties = definition.get("properties", {})
    if properties and rng.random() < 0.8:
        return {
            name: _arguments_like(schema, definitions, rng) if rng.random() < 0.5 else rng.choice(_TRICKY)
            for name, schema in properties.items()
            if rng.random() < 0.6
        }
    if "items" in definition and rng.random() < 0.7:
        return [_arguments_like(definition["items"], definitions, rng) for _ in range(rng.randint(0, 2))]
    return rng.choice([*_TRICKY, *definition.get("enum", [])])


def test_the_fast_path_agrees_with_jsonschema_on_every_command(checker: ArgumentsChecker) -> None:
    """Arguments the generated validator accepts are never checked again: it must not accept more."""
    definitions = load_schema()["definitions"]
    rng = random.Random(4)
    verdicts = {True: 0, False: 0}
    for name, definition in definitions.items():
        if not name.endswith("Request") or name == "Request":
            continue
        command = definition["allOf"][1]["properties"]["command"]["enum"][0]
        arguments_schema = definition["allOf"][1]["properties"].get("arguments")
        if arguments_schema is None:
            continue
        reference = Draft4Validator({**arguments_schema, "definitions": definitions})
        for _ in range(150):
            arguments = _arguments_like(arguments_schema, definitions, rng)
            expected = reference.is_valid(arguments)
            try:
                checker.check(command, arguments)
                valid = True
            except ArgumentsError:
                valid = False
            assert valid == expected, (command, arguments)
            verdicts[valid] += 1
    assert min(verdicts.values()) > 500, verdicts  # both verdicts well exercised


def test_missing_schema_is_a_one_line_error(tmp_path: Any) -> None:
    with pytest.raises(SchemaError, match=r"cannot read the DAP schema .*OPREPLAY_DAP_SCHEMA"):
        load_schema(tmp_path / "nowhere.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SchemaError, match="has no definitions"):
        load_schema(tmp_path / "bad.json")
