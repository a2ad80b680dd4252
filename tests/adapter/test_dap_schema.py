"""Request arguments are checked against the official schema; errors are one line naming the field."""

from __future__ import annotations

from typing import Any

import pytest

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


def test_missing_schema_is_a_one_line_error(tmp_path: Any) -> None:
    with pytest.raises(SchemaError, match=r"cannot read the DAP schema .*OPREPLAY_DAP_SCHEMA"):
        load_schema(tmp_path / "nowhere.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SchemaError, match="has no definitions"):
        load_schema(tmp_path / "bad.json")
