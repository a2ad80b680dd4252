"""The condition language: values, null safety, templates, names, and refusal of hostile input."""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest

from opreplay.conditions import (
    CONTEXT_NAMES,
    HELPERS,
    MAX_SOURCE_LENGTH,
    METHODS,
    Condition,
    ConditionError,
    compile_condition,
    compile_template,
)
from opreplay.errors import OpreplayError, StoreError

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web",
        "namespace": "default",
        "generation": 4,
        "resourceVersion": "1187",
        "labels": {"app": "web", "app.kubernetes.io/name": "web", "tier": "frontend"},
        "annotations": {"deployment.kubernetes.io/revision": "3"},
    },
    "spec": {
        "replicas": 5,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "nginx:1.25",
                        "ports": [{"containerPort": 80}, {"containerPort": 443}],
                        "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
                    }
                ]
            },
        },
    },
    "status": {
        "observedGeneration": 3,
        "replicas": 3,
        "readyReplicas": 2,
        "conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"},
        ],
    },
}

OLD = copy.deepcopy(DEPLOYMENT)
OLD["spec"]["replicas"] = 3
OLD["metadata"]["resourceVersion"] = "1180"

CONTEXT: dict[str, Any] = {
    "seq": 42,
    "verb": "update",
    "kind": "Deployment",
    "namespace": "default",
    "name": "web",
    "group": "apps",
    "version": "v1",
    "resource": "deployments",
    "subresource": None,
    "status": 409,
    "reason": "Conflict",
    "message": 'Operation cannot be fulfilled on deployments.apps "web": the object has been modified',
    "error": "Conflict",
    "duration_ms": 12.5,
    "thread": "worker-1",
    "reconcile": 7,
    "obj": DEPLOYMENT,
    "old": OLD,
    "req": {"method": "PUT", "path": "/apis/apps/v1/namespaces/default/deployments/web"},
    "state": {"Deployment/default/web": DEPLOYMENT},
    "event": None,
}


def evaluate(source: str, context: Mapping[str, Any] = CONTEXT) -> Any:
    return compile_condition(source).evaluate(context)


# --------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------

VALID: list[tuple[str, Any]] = [
    # the typical breakpoint condition
    ('kind == "Deployment" and obj.spec.replicas > 3', True),
    ('kind == "Pod" or obj.spec.replicas > 3', True),
    ('kind == "Pod" and obj.spec.replicas > 3', False),
    # literals
    ("1", 1),
    ("-2.5", -2.5),
    ("'x'", "x"),
    ("True", True),
    ("None", None),
    ("(1, 'a')", (1, "a")),
    ("[1, [2, 3]]", [1, [2, 3]]),
    ("{1, 2}", {1, 2}),
    ("{'a': 1, 'b': [2]}", {"a": 1, "b": [2]}),
    # names and dotted access into dicts
    ("seq", 42),
    ("verb", "update"),
    ("duration_ms", 12.5),
    ("obj.spec.replicas", 5),
    ("old.spec.replicas", 3),
    ("obj.metadata.labels.app", "web"),
    ('obj["metadata"]["labels"]["app"]', "web"),
    ('obj.metadata.labels["app.kubernetes.io/name"]', "web"),
    ("obj.status.conditions[0].type", "Available"),
    ("obj.status.conditions[-1].status", "True"),
    ("obj.spec.template.spec.containers[0].ports[1].containerPort", 443),
    ("req.method", "PUT"),
    ('state["Deployment/default/web"].metadata.name', "web"),
    # comparisons
    ("status == 409", True),
    ("409 == status", True),
    ("status != 409", False),
    ("400 <= status < 500", True),
    ("1 < 2 < 3 > 2", True),
    ("3 > 2 > 2", False),
    ("status in (409, 500)", True),
    ('verb not in ["get", "list", "watch"]', True),
    ('"app" in obj.metadata.labels', True),
    ('"modified" in lower(message)', True),
    ("'nginx:1.25' in [c.image for c in obj.spec.template.spec.containers]", True),
    ("subresource is None", True),
    ("reason is not None", True),
    ("obj.spec != old.spec", True),
    ("obj.metadata.labels == old.metadata.labels", True),
    ("obj.status.conditions[0] == old.status.conditions[0]", True),
    ("(1, 2) == (1, 2)", True),
    # boolean operators keep Python's values
    ('True and "x"', "x"),
    ('None or 0 or "y"', "y"),
    ("not error", False),
    ("not event", True),
    # arithmetic
    ("-obj.spec.replicas", -5),
    ("+obj.spec.replicas", 5),
    ("obj.spec.replicas * 2 + 1", 11),
    ("obj.spec.replicas - old.spec.replicas", 2),
    ("obj.spec.replicas / 2", 2.5),
    ("obj.spec.replicas // 2", 2),
    ("obj.spec.replicas % 2", 1),
    ("2 ** 10", 1024),
    ("2 ** -1", 0.5),
    ("10 ** 64", 10**64),
    ("duration_ms > 10", True),
    ('"web" + "-" + str(seq)', "web-42"),
    ("[1] + [2]", [1, 2]),
    ('"ab" * 3', "ababab"),
    ("[0] * 3", [0, 0, 0]),
    ("{1, 2} - {1}", {2}),
    # conditional expression, subscripts, slices
    ('"web" if name == "web" else "other"', "web"),
    ("obj.spec.replicas if obj.spec.replicas > 10 else 10", 10),
    ("name[0]", "w"),
    ("name[0:2]", "we"),
    ("name[::-1]", "bew"),
    ("obj.status.conditions[:1][0].type", "Available"),
    ("[1, 2, 3][-2:]", [2, 3]),
    ("{'a': 1}['a']", 1),
    ("{'a': 1}.a", 1),
    # comprehensions (one for, any number of ifs), loop variables are scoped
    ("[c.type for c in obj.status.conditions]", ["Available", "Progressing"]),
    ('[c.type for c in obj.status.conditions if c.status == "True"]', ["Progressing"]),
    ('[c.type for c in obj.status.conditions if c.status == "True" if c.reason]', ["Progressing"]),
    ("{c.type: c.status for c in obj.status.conditions}", {"Available": "False", "Progressing": "True"}),
    ("{c.status for c in obj.status.conditions}", {"False", "True"}),
    ("[k for k, v in obj.metadata.labels.items() if v == 'frontend']", ["tier"]),
    ("[obj for obj in [1, 2]]", [1, 2]),
    ("[[y for y in x] for x in ['ab', 'c']]", [["a", "b"], ["c"]]),
    ('any(c.type == "Available" and c.status == "True" for c in obj.status.conditions)', False),
    ('any(c.type == "Progressing" and c.status == "True" for c in obj.status.conditions)', True),
    ("all(c.reason for c in obj.status.conditions)", True),
    ("sum(p.containerPort for p in obj.spec.template.spec.containers[0].ports)", 523),
    ("max(len(c.type) for c in obj.status.conditions)", 11),
    ("len([c for c in obj.status.conditions])", 2),
    # helpers
    ("len(obj.status.conditions)", 2),
    ("len(name)", 3),
    ("len(obj.metadata.labels)", 3),
    ("any([0, '', 1])", True),
    ("all([])", True),
    ("min(obj.spec.replicas, obj.status.replicas)", 3),
    ("max([1, 5, 3])", 5),
    ("sum([1, 2.5])", 3.5),
    ("abs(-3)", 3),
    ('int("42")', 42),
    ('int("ff", 16)', 255),
    ("int(2.9)", 2),
    ('float("1.5")', 1.5),
    ("str(status)", "409"),
    ("str(None)", "None"),
    ("bool(0)", False),
    ("bool(obj.status.conditions)", True),
    ('lower("ABC")', "abc"),
    ("upper(name)", "WEB"),
    ('startswith(name, "we")', True),
    ('startswith(name, ("x", "w"))', True),
    ('endswith(obj.spec.template.spec.containers[0].image, ":1.25")', True),
    ('contains(obj.metadata.labels, "app")', True),
    ('contains("abc", "b")', True),
    ('contains(obj.metadata.finalizers, "x")', False),
    ('matches(message, "has been modified$")', True),
    ('matches(name, "^w[a-z]+$")', True),
    (r'matches(obj.spec.template.spec.containers[0].image, "^nginx:\d+\.\d+$")', True),
    ('matches(name, "^[a-z]+(?>-[a-z0-9]+)*$")', True),
    ('matches(reason, "(?i)conflict")', True),
    ("matches(status, '^4')", True),
    ('changed("spec.replicas")', True),
    ('changed("metadata.name")', False),
    ('changed(["metadata", "labels", "app.kubernetes.io/name"])', False),
    ('changed("metadata.resourceVersion")', True),
    ('has("spec.replicas")', True),
    ('has("spec.paused")', False),
    ('has("spec.template.spec.containers.0.image")', True),
    ('get(obj, "spec.template.spec.containers.0.image", "none")', "nginx:1.25"),
    ('get(obj, "spec.nope", 7)', 7),
    ('get(obj, ["metadata", "annotations", "deployment.kubernetes.io/revision"])', "3"),
    ('get(obj.status.conditions, "1.type")', "Progressing"),
    # methods on strings and dicts
    ('name.startswith("web")', True),
    ('name.endswith("x")', False),
    ("reason.lower()", "conflict"),
    ("reason.upper()", "CONFLICT"),
    ('message.split(" ")[0]', "Operation"),
    ('"a b  c".split()', ["a", "b", "c"]),
    ('"a,b,c".split(",", 1)', ["a", "b,c"]),
    ('"  x ".strip()', "x"),
    ('"--x--".strip("-")', "x"),
    ("obj.metadata.labels.keys()", ["app", "app.kubernetes.io/name", "tier"]),
    ("obj.spec.selector.matchLabels.values()", ["web"]),
    ("obj.spec.selector.matchLabels.items()", [("app", "web")]),
    # f-strings
    ('f"{kind}/{namespace}/{name}"', "Deployment/default/web"),
    ('f"{status!r} {reason!s}"', "409 Conflict"),
    ('f"{{literal}} {1 + 1}"', "{literal} 2"),
]


@pytest.mark.parametrize(("source", "expected"), VALID)
def test_valid_expressions(source: str, expected: Any) -> None:
    condition = compile_condition(source)
    value = condition.evaluate(CONTEXT)
    assert value == expected
    assert type(value) is type(expected)
    assert condition.test(CONTEXT) is bool(expected)


def test_the_context_is_not_modified() -> None:
    before = copy.deepcopy(CONTEXT)
    for source, _ in VALID:
        compile_condition(source).evaluate(CONTEXT)
    assert before == CONTEXT


def test_folded_containers_are_not_shared_between_evaluations() -> None:
    condition = compile_condition("[1, [2]]")
    first = condition.evaluate({})
    first.append(3)
    first[1].append(4)
    assert condition.evaluate({}) == [1, [2]]


# --------------------------------------------------------------------------------------------------
# Null safety
# --------------------------------------------------------------------------------------------------

NULL_SAFE: list[tuple[str, Any]] = [
    ("obj.spec.nothing", None),
    ("obj.spec.nothing.deeper.still", None),
    ('obj["nothing"]["deeper"]', None),
    ("obj.metadata.finalizers[0]", None),
    ("obj.status.conditions[10]", None),
    ("obj.status.conditions[10].type", None),
    ("name[100]", None),
    ("event.type", None),
    ("event[0]", None),
    ("event[1:2]", None),
    ("obj.metadata.name.length", None),  # attribute of a string: not Python attribute access
    ("obj.spec.replicas.real", None),  # nor on numbers
    ("obj.status.conditions.type", None),  # nor on lists
    ("event.lower()", None),
    ("obj.metadata.nothing.startswith('x')", None),
    ('"app" in obj.metadata.finalizers', False),
    ('"app" not in obj.metadata.finalizers', True),
    ("[c for c in obj.metadata.finalizers]", []),
    ("any(c for c in obj.metadata.finalizers)", False),
    ("all(c for c in obj.metadata.finalizers)", True),
    ("len(obj.metadata.finalizers)", 0),
    ("lower(obj.metadata.nothing)", None),
    ("upper(event)", None),
    ("startswith(event, 'x')", False),
    ("endswith(event, 'x')", False),
    ("matches(event, 'x')", False),
    ("contains(event, 'x')", False),
    ('get(event, "a.b", 1)', 1),
    ('has("status.nothing.deeper")', False),
]


@pytest.mark.parametrize(("source", "expected"), NULL_SAFE)
def test_null_safety(source: str, expected: Any) -> None:
    assert evaluate(source) == expected


def test_missing_context_keys_are_none() -> None:
    assert evaluate("obj", {}) is None
    assert evaluate("obj.spec.replicas", {}) is None
    assert evaluate('kind == "Pod"', {}) is False
    assert compile_condition("changed('spec.replicas')").evaluate({"obj": DEPLOYMENT}) is True


class LazyContext(Mapping[str, Any]):
    """Like the engine's context: loads values on first access and remembers what was read."""

    def __init__(self, values: dict[str, Any], fail_on: str | None = None) -> None:
        self.data = values
        self.fail_on = fail_on
        self.read: list[str] = []

    def __getitem__(self, key: str) -> Any:
        self.read.append(key)
        if key == self.fail_on:
            raise StoreError(f"cannot load {key}")
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def test_context_is_read_lazily_and_short_circuits() -> None:
    context = LazyContext(CONTEXT)
    assert compile_condition('kind == "Pod" and obj.spec.replicas > 3').test(context) is False
    assert context.read == ["kind"]
    context = LazyContext({"kind": "Pod"})
    assert compile_condition("obj.spec.replicas").evaluate(context) is None
    assert context.read == ["obj"]


def test_errors_from_the_context_itself_propagate() -> None:
    condition = compile_condition("obj.spec.replicas > 3")
    with pytest.raises(StoreError):
        condition.test(LazyContext(CONTEXT, fail_on="obj"))
    with pytest.raises(StoreError):
        condition.evaluate(LazyContext(CONTEXT, fail_on="obj"))


EVALUATION_ERRORS: list[tuple[str, str]] = [
    ("obj.spec.nothing < 3", "'<' not supported between instances of 'NoneType' and 'int'"),
    ("None < 3", "not supported"),
    ("1 / 0", "division by zero"),
    ('int("x")', "invalid literal"),
    ('obj.spec.replicas + "x"', "unsupported operand"),
    ('name["x"]', "index must be an integer"),
    ("min([])", "empty"),
    ("sum(['a'])", "sum() adds numbers"),
    ("len(obj.spec.replicas)", "has no len()"),
    ("[x for x in obj.spec.replicas]", "cannot iterate over int"),
    ("[k for k, v in ['abc']]", "cannot unpack"),
    ("1 in obj.spec.replicas", "'in' needs"),
    ("name.split('')", "empty separator"),
    ("obj.metadata.labels.lower()", "needs a string"),
    ("name.items()", "needs a dict"),
    ("message % 1", "% is not supported"),
    ('int("9" * 5000)', "longer than 4,300"),
]


@pytest.mark.parametrize(("source", "fragment"), EVALUATION_ERRORS)
def test_evaluation_errors(source: str, fragment: str) -> None:
    condition = compile_condition(source)
    assert condition.test(CONTEXT) is False
    with pytest.raises(ConditionError) as info:
        condition.evaluate(CONTEXT)
    assert fragment in str(info.value)
    assert str(info.value).startswith("error evaluating condition: ")
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------

NAMES: list[tuple[str, set[str]]] = [
    ('kind == "Deployment"', {"kind"}),
    ('kind == "Deployment" and obj.spec.replicas > 3', {"kind", "obj"}),
    ("obj.spec.replicas > old.spec.replicas", {"obj", "old"}),
    ('changed("spec.replicas")', {"obj", "old"}),
    ('has("spec.replicas")', {"obj"}),
    ('get(req, "method")', {"req"}),
    ("[obj for obj in state]", {"state"}),  # the loop variable shadows the context name
    ("[c.type for c in obj.status.conditions]", {"obj"}),
    ('f"{verb} {name}"', {"verb", "name"}),
    ("1 + 1", set()),
    ("status == 409 or error", {"status", "error"}),
]


@pytest.mark.parametrize(("source", "names"), NAMES)
def test_names(source: str, names: set[str]) -> None:
    assert compile_condition(source).names == frozenset(names)


def test_restricted_names() -> None:
    assert compile_condition("kind", names={"kind"}).names == {"kind"}
    with pytest.raises(ConditionError, match="unknown name 'obj'"):
        compile_condition("obj.spec", names={"kind"})
    with pytest.raises(ConditionError, match="reads 'old'"):
        compile_condition('changed("spec")', names={"obj"})
    assert compile_condition("custom.x", names={"custom"}).evaluate({"custom": {"x": 1}}) == 1


def test_context_names_and_helpers() -> None:
    assert {"seq", "verb", "kind", "obj", "old", "req", "state", "event", "duration_ms"} <= CONTEXT_NAMES
    assert list(HELPERS) == [
        "len", "any", "all", "min", "max", "sum", "abs", "int", "float", "str", "bool", "lower", "upper",
        "startswith", "endswith", "contains", "matches", "changed", "has", "get",
    ]  # fmt: skip
    for table in (HELPERS, METHODS):
        for name, description in table.items():
            assert name in description and "\n" not in description


def test_compilation_is_cached() -> None:
    source = 'kind == "Deployment" and obj.spec.replicas > 3'
    assert compile_condition(source) is compile_condition(source)
    assert compile_condition(source) == compile_condition(source, names=set(CONTEXT_NAMES))
    assert isinstance(compile_condition(source), Condition)


# --------------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------------

TEMPLATES: list[tuple[str, str]] = [
    ("{obj.metadata.name} is {obj.status.phase}", "web is None"),
    ("{kind}/{namespace}/{name}: {status} {reason}", "Deployment/default/web: 409 Conflict"),
    ("replicas {old.spec.replicas} -> {obj.spec.replicas}", "replicas 3 -> 5"),
    ("{{literal}} {{{kind}}}", "{literal} {Deployment}"),
    ("no fields", "no fields"),
    ("", ""),
    ("{ {'a': '}'}['a'] }", "}"),
    ("{'}' + '{'}", "}{"),
    ("{[c.type for c in obj.status.conditions]}", "['Available', 'Progressing']"),
    ("{obj.spec.replicas > 'x'}!", "<error: '>' not supported between instances of 'int' and 'str'>!"),
    ("{1 / 0} then {seq}", "<error: division by zero> then 42"),
    ("{obj.spec.selector}", "{'matchLabels': {'app': 'web'}}"),
]


@pytest.mark.parametrize(("source", "expected"), TEMPLATES)
def test_templates(source: str, expected: str) -> None:
    assert compile_template(source).render(CONTEXT) == expected


def test_template_names() -> None:
    template = compile_template("{kind} {obj.metadata.name} {changed('spec')}")
    assert template.names == {"kind", "obj", "old"}
    assert compile_template("plain").names == frozenset()


BAD_TEMPLATES: list[tuple[str, str, int]] = [
    ("{", "'{' is not closed", 1),
    ("x }", "single '}'", 3),
    ("a {} b", "empty field", 3),
    ("ab {open('x')}", "'open' is not one", 5),
    ("{name!r}", "invalid syntax", 6),
    ("{obj.__class__}", "private and dunder", 2),
]


@pytest.mark.parametrize(("source", "fragment", "column"), BAD_TEMPLATES)
def test_bad_templates(source: str, fragment: str, column: int) -> None:
    with pytest.raises(ConditionError) as info:
        compile_template(source)
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"invalid template at column {column}: ")
    assert info.value.column == column


# --------------------------------------------------------------------------------------------------
# Compile errors and their columns
# --------------------------------------------------------------------------------------------------

COMPILE_ERRORS: list[tuple[str, str, int | None]] = [
    ("kind == open('x')", "calls are limited to len, any, all, min, max, sum", 9),
    ("kind ==", "invalid syntax", 8),
    ("'é' + $", "invalid syntax", 7),
    ("'é' + open(1)", "'open' is not one", 7),
    ("   kind == x", "unknown name 'x'", 12),
    ("nmae == 'web'", "unknown name 'nmae'", 1),
    ("len", "len is a helper function", 1),
    ("len(1, 2)", "len() takes 1 argument (2 given)", 1),
    ("get(obj)", "get() takes 2 to 3 arguments (1 given)", 1),
    ("name.lower(1)", ".lower() takes 0 arguments (1 given)", 1),
    ("len(x=1)", "keyword arguments are not supported", 5),
    ("~status", "operator ~ is not supported", 1),
    ("status | 1", "operator | is not supported", 1),
    ("1j", "complex literals are not supported", 1),
    ("[x for x.a in obj]", "a comprehension target must be a name", 8),
    ("[x for x in obj for y in obj]", "only one 'for'", 21),
    ("", "the expression is empty", None),
    ("x" * (MAX_SOURCE_LENGTH + 1), "too long (2,001 characters; at most 2,000)", None),
    ("[" + ",".join(["1"] * 600) + "]", "too complex (more than 500 syntax nodes)", None),
]


@pytest.mark.parametrize(("source", "fragment", "column"), COMPILE_ERRORS)
def test_compile_errors(source: str, fragment: str, column: int | None) -> None:
    with pytest.raises(ConditionError) as info:
        compile_condition(source)
    message = str(info.value)
    assert fragment in message
    assert info.value.column == column
    prefix = "invalid condition" + (f" at column {column}" if column is not None else "") + ": "
    assert message.startswith(prefix)
    assert "\n" not in message
    assert isinstance(info.value, OpreplayError)


def test_non_text_is_refused() -> None:
    with pytest.raises(ConditionError):
        compile_condition(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Hostile input: refused at compile time or stopped during evaluation, never executed
# --------------------------------------------------------------------------------------------------

HOSTILE: list[tuple[str, str]] = [
    ("__import__('os')", "private and dunder names are not allowed"),
    ("().__class__.__mro__[1].__subclasses__()", "private and dunder names are not allowed"),
    ("obj.__class__", "private and dunder names are not allowed ('__class__')"),
    ("obj._private", "private and dunder names are not allowed ('_private')"),
    ("str.__dict__", "private and dunder names are not allowed"),
    ("name.__len__()", "private and dunder names are not allowed"),
    ("__builtins__", "private and dunder names are not allowed"),
    ("[x for _x in obj]", "private and dunder names are not allowed"),
    ("open('/etc/passwd')", "('open' is not one)"),
    ("eval('1')", "('eval' is not one)"),
    ("exec('import os')", "('exec' is not one)"),
    ("getattr(obj, '__dict__')", "('getattr' is not one)"),
    ("type(obj)", "('type' is not one)"),
    ("globals()", "('globals' is not one)"),
    ("vars(obj)", "('vars' is not one)"),
    ("print(obj)", "('print' is not one)"),
    ("name.format(obj)", "methods are limited to"),
    ("obj.metadata.labels.get('app')", "methods are limited to"),
    ("obj.spec['replicas']()", "calls are limited to"),
    ("[c for c in obj][0]()", "calls are limited to"),
    ("lambda: 1", "lambda is not allowed"),
    ("(lambda: 1)()", "lambda is not allowed"),
    ("[x for x in range(10**9)]", "('range' is not one)"),
    ("'a' * 10**9", "at most 100,000"),
    ("10 ** 10 ** 10", "exponent 10000000000 is too large"),
    ("2 ** 64 ** 2", "too large"),
    ("(1,) * 10**8", "at most 100,000"),
    ("[0] * 100001", "at most 100,000"),
    ("[[0] * 100000] * 100000", "repetition would nest more than 1,000,000 values"),
    ("(" * 10_000 + "1" + ")" * 10_000, "too long"),
    ("(" * 500 + "1" + ")" * 500, "nested parentheses"),
    ("-" * 100_000 + "1", "too long"),
    ("-" * 1_000 + "1", "too deeply nested"),
    ("not " * 100 + "name", "too deeply nested"),
    ("[" * 50 + "]" * 50, "too deeply nested"),
    ("'x' + 'y' * 100000", "at most 100,000"),
    ("matches(name, '(a+)+$')", "nests quantifiers"),
    ("matches(name, '(a*)*')", "nests quantifiers"),
    (r"matches(name, '^(\w+\s?)*$')", "nests quantifiers"),
    ("matches(name, '(a|a)*')", "alternatives that may overlap"),
    ("matches(name, '(a?a?)+b')", "nests quantifiers"),
    ("matches(name, '((a|a))+')", "alternatives that may overlap"),
    ("matches(name, '(?:ab|a)+c')", "alternatives that may overlap"),
    ("matches(name, 'a' * 201)", "regular expression is too long"),
    ("matches(name, '(')", "invalid regular expression"),
    ("f'{obj.__class__}'", "private and dunder names are not allowed"),
    ("f'{name:{10**9}}'", "format specifications in f-strings"),
    ("f'{name!r:>100000000}'", "format specifications in f-strings"),
    ("f'{open(\"/etc/passwd\")}'", "('open' is not one)"),
    ("f\"{'a' * 10**9}\"", "at most 100,000"),
    ("f\"{'a' * 60000}{'b' * 60000}\"", "at most 100,000"),
    ("[1][0:10**9]", "slice bound 1,000,000,000 is too large"),
    ("{**x}", "dict unpacking (**x) is not allowed"),
    ("{**obj}", "dict unpacking (**x) is not allowed"),
    ("[*obj]", "starred expressions"),
    ("x := 1", "invalid syntax"),
    ("(x := 1)", "assignment expressions (:=) are not allowed"),
    ("import os", "invalid syntax"),
    ("x = 1", "invalid syntax"),
    ("await obj", "await is not allowed"),
    ("(yield obj)", "yield is not allowed"),
    ("1 << 10**9", "operator << is not supported"),
    ("'%0999999999d' % 1", "% is not supported"),
    ("b'\\x00' * 10", "bytes literals are not supported"),
    ("str([[0] * 1000] * 1000)", "repetition would nest"),
]


class Audit:
    """Records dangerous audit events (opening files, running or compiling code, importing,
    starting processes, reaching into objects) while watching. Audit hooks cannot be removed, so
    the hook is installed once and does nothing outside `watching()`."""

    DANGEROUS = ("open", "exec", "compile", "import", "os.", "subprocess.", "ctypes.", "socket.", "object.__")

    def __init__(self) -> None:
        self.events: list[str] = []
        self.active = False
        self.installed = False

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.active and event.startswith(self.DANGEROUS):
            self.events.append(event)

    @contextmanager
    def watching(self) -> Iterator[None]:
        if not self.installed:
            sys.addaudithook(self.hook)
            self.installed = True
        self.active = True
        try:
            yield
        finally:
            self.active = False


AUDIT = Audit()


@pytest.mark.parametrize(("source", "fragment"), HOSTILE)
def test_hostile_expressions_are_refused_at_compile_time(source: str, fragment: str) -> None:
    with pytest.raises(ConditionError) as info:
        compile_condition(source)
    assert fragment in str(info.value)
    assert str(info.value).startswith("invalid condition")
    assert "\n" not in str(info.value)


HOSTILE_AT_RUNTIME: list[tuple[str, dict[str, Any], str]] = [
    ("[[y for y in 'b' * 2000] for x in 'a' * 2000]", {}, "evaluation budget exceeded"),
    ("sum(sum(1 for y in 'b' * 2000) for x in 'a' * 2000)", {}, "evaluation budget exceeded"),
    ("name * 100000", {"name": "web"}, "repetition would make 300,000 characters (at most 100,000)"),
    ("[name] * 100001", {"name": "web"}, "at most 100,000"),
    ("[x + x for x in [name * 60000]]", {"name": "w"}, "at most 100,000"),
    ("str([[v for i in 'a' * 1000] for v in [[x for x in 'a' * 1000]]])", {}, "evaluation budget exceeded"),
    (
        "[[v for i in 'a' * 1000] for v in [[x for x in 'a' * 1000]]] == "
        "[[v for i in 'a' * 1000] for v in [[x for x in 'a' * 1000]]]",
        {},
        "evaluation budget exceeded",
    ),
    (
        "[{str(w) for w in [v for i in 'a' * 1000]} for v in [[x for x in 'a' * 1000]]]",
        {},
        "evaluation budget exceeded",
    ),
    ("matches(name, message)", {"name": "a" * 30 + "!", "message": "(a+)+$"}, "nests quantifiers"),
    ("matches(name, message)", {"name": "a", "message": "a" * 300}, "regular expression is too long"),
    ("matches(name, message)", {"name": "a", "message": "["}, "invalid regular expression"),
    ("matches(message, 'x.*a.*b')", {"message": "xa" * 3000}, "backtrack too much"),
    ("obj.x ** 100", {"obj": {"x": 2}}, "exponent 100 is too large"),
    ("obj.x ** 60", {"obj": {"x": 10**10}}, "too large (at most 10**100"),
    ("obj.x[0:obj.y]", {"obj": {"x": [1], "y": 10**9}}, "slice bound"),
    ("message % obj", {"message": "%s", "obj": 1}, "% is not supported"),
]


@pytest.mark.parametrize(("source", "context", "fragment"), HOSTILE_AT_RUNTIME)
def test_hostile_expressions_are_stopped_during_evaluation(
    source: str, context: dict[str, Any], fragment: str
) -> None:
    condition = compile_condition(source)
    with AUDIT.watching():
        assert condition.test(context) is False
        with pytest.raises(ConditionError) as info:
            condition.evaluate(context)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)
    assert AUDIT.events == []


def test_the_audit_sees_dangerous_events() -> None:
    with AUDIT.watching():
        open(os.devnull).close()
    assert "open" in AUDIT.events
    AUDIT.events.clear()


def test_nothing_dangerous_happens_while_evaluating() -> None:
    conditions = [compile_condition(source) for source, _ in VALID + NULL_SAFE]
    with AUDIT.watching():
        for condition in conditions:
            condition.evaluate(CONTEXT)
    assert AUDIT.events == []


def test_regex_subject_is_truncated() -> None:
    assert evaluate("matches(message, 'b$')", {"message": "a" * 20_000 + "b"}) is False
    assert evaluate("matches(message, 'b$')", {"message": "a" * 9_999 + "b"}) is True


def test_redundant_leading_and_trailing_dot_star_are_free() -> None:
    message = {"message": "conflict " + "x" * 3_000 + " retry"}
    assert evaluate("matches(message, '.*conflict.*retry.*')", message) is True
    with pytest.raises(ConditionError, match="backtrack too much"):  # three overlapping repeats: cubic
        evaluate("matches(message, 'c.*conflict.*retry')", message)


REGEX_SUBJECTS: list[tuple[str, str, bool]] = [
    # (pattern, subject, allowed): the subject may be as long as the pattern's backtracking allows
    (r'"replicas":\s*\d+', '"replicas": 3' + " " * 9_000, True),  # guarded: linear
    (r"^[a-z0-9-]+$", "a" * 9_999, True),
    (r"^[a-z]+(?>-[a-z0-9]+)*$", "a" * 253, True),
    (r"a.*b", "a" * 3_000, True),  # quadratic
    (r"a.*b", "a" * 5_000, False),
    (r"\s+$", " " * 5_000 + "x", False),
    (r"x.*a.*b", "xa" * 100, True),  # cubic
    (r"x.*a.*b", "xa" * 200, False),
]


@pytest.mark.parametrize(("pattern", "subject", "allowed"), REGEX_SUBJECTS)
def test_regex_subject_length_follows_backtracking_degree(pattern: str, subject: str, allowed: bool) -> None:
    condition = compile_condition(f"matches(message, {pattern!r})")
    if allowed:
        assert condition.evaluate({"message": subject}) in (True, False)
    else:
        with pytest.raises(ConditionError, match="backtrack too much"):
            condition.evaluate({"message": subject})


def test_comparing_recorded_objects_is_not_charged_outside_loops() -> None:
    big = {"data": {f"key{i}": "v" * 100 for i in range(200_000)}}
    twin = {"data": {f"key{i}": "v" * 100 for i in range(200_000)}}
    assert evaluate("obj == old", {"obj": big, "old": twin}) is True
    assert evaluate("obj.data == old.data and str(obj) != ''", {"obj": big, "old": twin}) is True
