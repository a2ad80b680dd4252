"""Evaluate and completions: the condition language at the cursor, and the REPL's commands.

Watches, hovers, the Debug Console and Copy Value all evaluate the condition language against
`engine.context()`, the very mapping breakpoint conditions see, built lazily (an expression that
reads only `status` decodes no body). The frame does not matter: every frame is the current
operation. A dict or list result is expandable, its children named with `evaluateName`s that
extend the expression. Hovering a word of a timeline evaluates the word: a context name such as
`status` shows its value, anything else is not an expression and shows nothing.

The Debug Console also takes commands, all of which start with `:`:

    :goto SEQ     jump to an operation (a `stopped` event, reason goto)
    :find EXPR    the next operation where EXPR is true; stops there
    :stats        the session's statistics (from the background analysis)
    :diff         the fields the current operation changed
    :help         this list, and the names and helpers of the language

`evaluate` is a `scan` handler because `:find` may read the whole recording and `:stats` may wait
for the analysis: `pause` and `cancel` reach both.

Completions offer the context names and helpers, the REPL commands after `:`, and after a dot the
fields of the value before it (`obj.spec.` lists the keys of the current object's spec).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from opreplay.conditions import CONTEXT_NAMES, HELPERS, METHODS, ConditionError, compile_condition
from opreplay.errors import OpreplayError
from opreplay_adapter.dap.dispatch import Cancelled, CantHandle, Request, handler_options
from opreplay_adapter.dap.recording import SessionCore
from opreplay_adapter.dap.text import diff_text, stats_text
from opreplay_adapter.dap.variables import field_expression, format_value, json_type

COMMANDS = {
    ":goto": ":goto SEQ: jump to an operation",
    ":find": ":find EXPR: the next operation where EXPR is true",
    ":stats": ":stats: the session's statistics",
    ":diff": ":diff: the fields the current operation changed",
    ":help": ":help: the commands, names and helpers",
}
KEYWORDS = ("and", "or", "not", "in", "is", "if", "else", "for", "None", "True", "False")
_PATH = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[\d+\]|\[\"[^\"\\]*\"\])*")
_AFTER_DOT = re.compile(r"(" + _PATH.pattern + r")\.([\w-]*)$")
_WORD = re.compile(r"[A-Za-z_]\w*$")
_STRING_METHODS = ("startswith", "endswith", "lower", "upper", "split", "strip")
_DICT_METHODS = ("keys", "values", "items")


def child_base(expression: str) -> str:
    """What a child's evaluateName extends: the expression, in parentheses unless it is a plain path."""
    return expression if _PATH.fullmatch(expression) else f"({expression})"


def _utf16_index(text: str, units: int) -> int:
    """The index in `text` of a position given in UTF-16 code units (how DAP counts columns)."""
    count = 0
    for index, char in enumerate(text):
        if count >= units:
            return index
        count += 2 if ord(char) > 0xFFFF else 1
    return len(text)


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class EvaluationHandlers(SessionCore):
    @handler_options(scan=True)
    def evaluate_request(self, request: Request) -> dict[str, Any]:
        recording = self.require_recording()
        arguments = request.arguments
        expression = arguments["expression"].strip()
        context = arguments.get("context")
        if context == "repl" and expression.startswith(":"):
            return {"result": self._command(request, expression), "variablesReference": 0}
        value = compile_condition(expression).evaluate(recording.engine.context())
        if context == "clipboard":
            return {
                "result": json.dumps(value, ensure_ascii=False, indent=2, default=str),
                "variablesReference": 0,
            }
        hex = arguments.get("format", {}).get("hex") is True
        body: dict[str, Any] = {"result": format_value(value, hex=hex)}
        body.update(self.builder().expandable(value, child_base(expression), None))
        if self.client.variable_type:
            body["type"] = json_type(value)
        return body

    def _command(self, request: Request, text: str) -> str:
        command, _, argument = text.partition(" ")
        run = {
            ":goto": self._goto,
            ":find": self._find,
            ":stats": self._stats,
            ":diff": self._diff,
            ":help": self._help,
        }.get(command)
        if run is None:
            raise CantHandle(f"unknown command {command} (commands: {', '.join(COMMANDS)})")
        return run(request, argument.strip())

    def _goto(self, request: Request, argument: str) -> str:
        engine = self.require_recording().engine
        if not (argument.isascii() and argument.isdigit()):
            raise CantHandle(f":goto takes a seq between 1 and {engine.total}, e.g. :goto 42")
        stop = engine.goto(int(argument))
        request.then(lambda: self.announce(stop))
        return f"seq {stop.seq}: {stop.description}"

    def _find(self, request: Request, argument: str) -> str:
        engine = self.require_recording().engine
        if not argument:
            raise CantHandle(':find takes a condition, e.g. :find status == 409 and kind == "Deployment"')
        origin = engine.position
        with self.progress(request, f"Finding {argument}") as progress:
            found = engine.find(
                argument, progress=lambda done: progress.update(percentage=100 * done), cancel=request.token
            )
        if request.token.cancelled:
            raise Cancelled()
        if found is None:
            return f"no operation after seq {origin} matches {argument}"
        request.then(lambda: self.announce(found))
        return f"seq {found.seq}: {found.description}"

    def _stats(self, request: Request, argument: str) -> str:
        """Waits for the background analysis (started now if the first stop has not come yet)."""
        analysis = self.require_recording().analysis
        analysis.start()
        while not analysis.wait(0.05):
            request.token.check()
        if analysis.result is None:
            raise CantHandle(f"no statistics: {analysis.error}")
        return stats_text(analysis.result)

    def _diff(self, request: Request, argument: str) -> str:
        return diff_text(self.require_recording().engine.diff())

    def _help(self, request: Request, argument: str) -> str:
        names = ", ".join(sorted(CONTEXT_NAMES))
        return "\n".join(COMMANDS.values()) + f"\nnames: {names}\nhelpers: {', '.join(sorted(HELPERS))}"

    def completions_request(self, request: Request) -> dict[str, Any]:
        recording = self.require_recording()
        text = request.arguments["text"]
        prefix = text[: _utf16_index(text, self.own_column(request.arguments["column"]))]
        if prefix.startswith(":") and " " not in prefix:
            return {"targets": self._items(prefix, COMMANDS, "keyword", len(prefix))}
        after_dot = _AFTER_DOT.search(prefix)
        if after_dot is not None:
            base, partial = after_dot.group(1), after_dot.group(2)
            try:
                value = compile_condition(base).evaluate(recording.engine.context())
            except (ConditionError, OpreplayError):
                return {"targets": []}
            return {"targets": self._fields(prefix, value, partial)}
        word = _WORD.search(prefix)
        partial = word.group() if word is not None else ""
        found = self._items(prefix, dict.fromkeys(CONTEXT_NAMES, ""), "variable", len(partial))
        found += self._items(prefix, dict.fromkeys(KEYWORDS, ""), "keyword", len(partial))
        found += self._items(prefix, HELPERS, "function", len(partial), suffix="(")
        return {"targets": sorted(found, key=lambda item: item["label"])}

    def _items(
        self,
        prefix: str,
        candidates: Mapping[str, str],
        kind: str,
        replace: int,
        *,
        suffix: str = "",
    ) -> list[dict[str, Any]]:
        """Completion items for the candidates that extend the last `replace` characters of `prefix`."""
        typed = prefix[len(prefix) - replace :]
        start = self.client_column(_utf16_length(prefix[: len(prefix) - replace]))
        items = []
        for label, detail in candidates.items():
            if not label.startswith(typed):
                continue
            item: dict[str, Any] = {
                "label": label,
                "text": label + suffix,
                "type": kind,
                "start": start,
                "length": _utf16_length(typed),
            }
            if detail:
                item["detail"] = detail
            items.append(item)
        return items

    def _fields(self, prefix: str, value: Any, partial: str) -> list[dict[str, Any]]:
        """After `base.`: the keys of a dict (`["app.kubernetes.io/name"]` replacing the dot when
        a key is no identifier), or the methods of a string."""
        if isinstance(value, str):
            return self._items(
                prefix, {m: METHODS[m] for m in _STRING_METHODS}, "method", len(partial), suffix="("
            )
        if not isinstance(value, dict):
            return []
        items = []
        dot = len(prefix) - len(partial) - 1
        for key in value:
            if not isinstance(key, str) or not key.startswith(partial):
                continue
            accessor = field_expression("", [key])
            replace_dot = not accessor.startswith(".")
            start = dot if replace_dot else dot + 1
            items.append(
                {
                    "label": key,
                    "text": accessor if replace_dot else key,
                    "type": "property",
                    "detail": format_value(value[key]),
                    "start": self.client_column(_utf16_length(prefix[:start])),
                    "length": _utf16_length(prefix[start:]),
                }
            )
        items += self._items(
            prefix, {m: METHODS[m] for m in _DICT_METHODS}, "method", len(partial), suffix="("
        )
        return items
