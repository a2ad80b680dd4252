"""The condition language: safe, bounded expressions over a recorded operation.

Breakpoint conditions, watches, hovers, log messages and `find` all speak one small language: Python
expression syntax over the current operation (`kind == "Deployment" and obj.spec.replicas > 3`).
The text comes from people and the data from recordings, and neither is trusted, so the language is
built so that nothing in either can run code, reach Python objects, or make the debugger hang:

* **No eval, exec or compile of user code.** The text is parsed with `ast.parse(mode="eval")`,
  checked against a whitelist of node types, and turned once into a tree of Python closures (one
  closure per syntax node, constant sub-expressions folded at compile time). Evaluating a condition
  is calling the root closure with the context: a few closure calls, no interpreter start-up, a few
  microseconds for a typical condition, which is what lets the engine scan a million operations.
* **No Python attribute access.** `a.b` is a key lookup in a dict (`a["b"]`), null-safe: a missing
  key, or any step on `None`, gives `None`. On anything that is not a dict it gives `None`, except
  the few string/dict methods in `METHODS`, which are called through an explicit table, never through
  `getattr`. Names and attributes starting with `_` are refused outright, so `__class__`,
  `__globals__` and friends cannot even be spelled.
* **Calls only to the helpers in `HELPERS`** (and those methods); the compiler refuses anything
  else by name, so `open`, `eval`, `getattr`, `type`, `range` ... do not exist.
* **Bounded cost.** The source is at most 2,000 characters, 500 syntax nodes and 40 levels deep
  (checked iteratively, before the recursive compiler runs); `**`, repetition and concatenation have
  size limits; every operation whose cost grows with its operands (comprehension iterations, building
  strings and lists, comparing or printing containers that the expression itself built) spends from a
  step budget of 1,000,000 per evaluation. Limits that constant folding can see are reported at
  compile time; the others stop the evaluation with a `ConditionError`. Regular expressions (which
  the stdlib cannot time out) are length-limited, refused when they can backtrack exponentially
  (`(a+)+`, `(a|a)*`), compiled once, and run on at most 10,000 characters of the subject, fewer
  for patterns whose polynomial backtracking (`x.*a.*b` is cubic) would make that slow.

Null safety: `None.x`, `None[0]`, a missing key and an index out of range are None; `x in None` is
False; iterating None (in a comprehension, any(), all() ...) iterates nothing; `len(None)` is 0; the
string helpers give None (lower, upper) or False (startswith, matches ...) for None, and so does a
method call on None. Everything else keeps Python's meaning, so `None < 3` is an evaluation error.

Evaluation errors (comparing `None < 3`, a bound exceeded) make `Condition.test` return False and
`Condition.evaluate` raise `ConditionError`; an `OpreplayError` raised by the context mapping itself
(for example a body that cannot be loaded from the store) is not an evaluation error and propagates.
"""

from __future__ import annotations

import ast
import functools
import itertools
import operator
import re
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import GeneratorType, MappingProxyType
from typing import Any, NamedTuple, NoReturn, TypeVar

from opreplay.errors import OpreplayError

__all__ = [
    "CONTEXT_NAMES",
    "HELPERS",
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_NODES",
    "MAX_POWER",
    "MAX_REGEX_LENGTH",
    "MAX_REGEX_SUBJECT",
    "MAX_SEQUENCE",
    "MAX_SOURCE_LENGTH",
    "MAX_STEPS",
    "MAX_TEMPLATE_LENGTH",
    "METHODS",
    "Condition",
    "ConditionError",
    "FieldEquality",
    "Template",
    "compile_condition",
    "compile_template",
    "conjuncts",
    "field_equalities",
]

# ---------------------------------------------------------------------------------------------------
# Public constants
# ---------------------------------------------------------------------------------------------------

CONTEXT_NAMES: frozenset[str] = frozenset(
    {
        "seq", "verb", "kind", "namespace", "name", "group", "version", "resource", "subresource",
        "status", "reason", "message", "error", "duration_ms", "thread", "reconcile", "obj", "old",
        "req", "state", "event",
    }
)  # fmt: skip

MAX_SOURCE_LENGTH = 2_000  # characters of condition text
MAX_TEMPLATE_LENGTH = 10_000  # characters of template text
MAX_NODES = 500  # syntax nodes (operators and Load/Store markers are not counted)
MAX_DEPTH = 40  # nesting levels of syntax nodes
MAX_EXPONENT = 64  # |exponent| of **
MAX_POWER = 10**100  # |result| of **
MAX_SEQUENCE = 100_000  # characters/elements made by repetition, concatenation, f-strings; slice bounds
MAX_STEPS = 1_000_000  # evaluation budget per evaluate()/test()/render()
MAX_REGEX_LENGTH = 200  # characters of a matches() pattern
MAX_REGEX_SUBJECT = 10_000  # characters of the subject a pattern is run on
_MAX_INT_DIGITS = 4_300  # int("...") input, like CPython's default int_max_str_digits

HELPERS: Mapping[str, str] = MappingProxyType(
    {
        "len": "len(x): number of items in a list, dict or string (0 for None)",
        "any": 'any(xs): true if any item is true: any(c.type == "Ready" for c in obj.status.conditions)',
        "all": "all(xs): true if every item is true (also when there are none)",
        "min": "min(xs) or min(a, b, ...): the smallest item",
        "max": "max(xs) or max(a, b, ...): the largest item",
        "sum": "sum(xs): the total of a list of numbers",
        "abs": "abs(x): the absolute value of a number",
        "int": "int(x) or int(s, base): convert to an integer",
        "float": "float(x): convert to a floating-point number",
        "str": "str(x): the text of a value (None gives 'None')",
        "bool": "bool(x): true or false",
        "lower": "lower(s): the string in lower case (None stays None)",
        "upper": "upper(s): the string in upper case (None stays None)",
        "startswith": "startswith(s, prefix): true if s starts with prefix (a string or tuple of strings)",
        "endswith": "endswith(s, suffix): true if s ends with suffix (a string or tuple of strings)",
        "contains": "contains(container, item): item in container (false when container is None)",
        "matches": "matches(s, regex): true if the regular expression is found in s (re.search)",
        "changed": 'changed("spec.replicas"): true if the field differs between old and obj',
        "has": 'has("spec.replicas"): true if the field exists in obj',
        "get": 'get(x, "a.b.c", default): the field at a dotted path in x, or default when missing',
    }
)

METHODS: Mapping[str, str] = MappingProxyType(
    {
        "startswith": "s.startswith(prefix): true if the string starts with prefix",
        "endswith": "s.endswith(suffix): true if the string ends with suffix",
        "lower": "s.lower(): the string in lower case",
        "upper": "s.upper(): the string in upper case",
        "split": "s.split(sep): the string split into a list (on whitespace without sep)",
        "strip": "s.strip(): the string without surrounding whitespace",
        "keys": "d.keys(): the keys of a dict, as a list",
        "values": "d.values(): the values of a dict, as a list",
        "items": "d.items(): the (key, value) pairs of a dict, as a list",
    }
)


# ---------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------


class ConditionError(OpreplayError):
    """An expression that cannot be compiled, or an evaluation that failed or went over a bound.

    `column` is the 1-based character position in the source that the message points at (None when
    the problem is not at one place, e.g. the whole text is too long, or the evaluation failed).
    """

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column


class _CompileError(Exception):
    """Raised inside the compiler; turned into a ConditionError with the right prefix by the caller."""

    def __init__(self, detail: str, column: int | None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.column = column


class _Refusal(Exception):
    """A bound was exceeded or an operation is not supported; reported at compile time if folding sees it."""


class _Unsupported(_Refusal):
    """An operation the language does not offer (e.g. % formatting); also reported when folding sees it."""


class _RegexError(ValueError):
    """A matches() pattern that is refused or does not compile."""


# ---------------------------------------------------------------------------------------------------
# Evaluation state
# ---------------------------------------------------------------------------------------------------


_T = TypeVar("_T")


class _Env:
    """Per-evaluation state: the context, comprehension variables and the step budget.

    `built` holds the ids of containers made during this evaluation; `loops` is the number of
    comprehensions running. Comparing, hashing or printing containers is charged to the budget by
    size only when one of them was built by the expression or when it happens inside a loop: that
    is where an expression can multiply work (`[big for x in s] == [big for x in s]`), while a
    one-off comparison of two recorded objects costs no more than loading them did.
    """

    __slots__ = ("budget", "built", "ctx", "loops", "slots")

    def __init__(self, ctx: Mapping[str, Any], slots: list[Any]) -> None:
        self.ctx = ctx
        self.slots = slots
        self.budget = MAX_STEPS
        self.built: set[int] | None = None
        self.loops = 0

    def charge(self, steps: int) -> None:
        self.budget -= steps
        if self.budget < 0:
            _exhausted()

    def made(self, value: _T) -> _T:
        if self.built is None:
            self.built = set()
        self.built.add(id(value))
        return value

    def costly(self, a: Any, b: Any = None) -> bool:
        built = self.built
        if self.loops:
            return True
        return built is not None and (id(a) in built or (b is not None and id(b) in built))


_Fn = Callable[[_Env], Any]
_NO_SLOTS: list[Any] = []  # shared by evaluations of expressions without comprehensions (never written)


def _new_env(ctx: Mapping[str, Any], nslots: int) -> _Env:
    return _Env(ctx, [None] * nslots if nslots else _NO_SLOTS)


def _exhausted() -> NoReturn:
    raise _Refusal(f"evaluation budget exceeded (more than {MAX_STEPS:,} steps)")


_NoneType = type(None)
_CHEAP: frozenset[type] = frozenset({str, int, float, bool, _NoneType})
_MISSING: Any = object()


def _tname(value: Any) -> str:
    return "None" if value is None else type(value).__name__


_ATOMS: frozenset[type] = frozenset({float, bool, _NoneType})


def _weight(value: Any, cap: int) -> int:
    """Size of a value for the budget: one per node, strings and big ints by length; stops past cap.

    Iterative (data may be deeply nested) and counts shared sub-containers every time they appear,
    because that is what comparing or printing them costs.
    """
    total = 0
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is str:
            total += 1 + (len(v) >> 4)
        elif t is int:
            total += 1 + (v.bit_length() >> 6)
        elif t is list or t is tuple or t is set or t is frozenset:
            total += 1 + len(v)
            if total > cap:
                return total
            total += _extra_weight(v, stack)
        elif t is dict:
            total += 1 + 2 * len(v)
            if total > cap:
                return total
            total += _extra_weight(v, stack) + _extra_weight(v.values(), stack)
        else:
            total += 1
        if total > cap:
            return total
    return total


def _extra_weight(items: Collection[Any], stack: list[Any]) -> int:
    """Weight of the items beyond one each, at C speed when they are all of one scalar type;
    mixed or nested items are pushed for _weight to visit."""
    kinds = set(map(type, items))
    if kinds <= _ATOMS:
        return 0
    if kinds == {str}:
        return sum(map(len, items)) >> 4
    if kinds == {int}:
        return sum(map(int.bit_length, items)) >> 6
    stack.extend(items)
    return 0


def _charge_size(env: _Env, value: Any) -> None:
    env.charge(_weight(value, env.budget + 1))


def _charge_compare(env: _Env, a: Any, b: Any) -> None:
    cap = env.budget + 1
    wa = _weight(a, cap)
    wb = _weight(b, min(cap, wa))
    env.charge(min(wa, wb))


# ---------------------------------------------------------------------------------------------------
# Operations (all take the env so they can charge the budget; compile-time folding runs them too)
# ---------------------------------------------------------------------------------------------------


def _eq(env: _Env, a: Any, b: Any) -> Any:
    if type(a) not in _CHEAP and type(b) not in _CHEAP and env.costly(a, b):
        _charge_compare(env, a, b)
    return a == b


def _ne(env: _Env, a: Any, b: Any) -> Any:
    if type(a) not in _CHEAP and type(b) not in _CHEAP and env.costly(a, b):
        _charge_compare(env, a, b)
    return a != b


def _lt(env: _Env, a: Any, b: Any) -> Any:
    if type(a) not in _CHEAP and type(b) not in _CHEAP and env.costly(a, b):
        _charge_compare(env, a, b)
    return a < b


def _le(env: _Env, a: Any, b: Any) -> Any:
    if type(a) not in _CHEAP and type(b) not in _CHEAP and env.costly(a, b):
        _charge_compare(env, a, b)
    return a <= b


def _gt(env: _Env, a: Any, b: Any) -> Any:
    if type(a) not in _CHEAP and type(b) not in _CHEAP and env.costly(a, b):
        _charge_compare(env, a, b)
    return a > b


def _ge(env: _Env, a: Any, b: Any) -> Any:
    if type(a) not in _CHEAP and type(b) not in _CHEAP and env.costly(a, b):
        _charge_compare(env, a, b)
    return a >= b


def _is(env: _Env, a: Any, b: Any) -> bool:
    return a is b


def _is_not(env: _Env, a: Any, b: Any) -> bool:
    return a is not b


def _in(env: _Env, a: Any, b: Any) -> bool:
    """`a in b`, null-safe: nothing is in None."""
    if b is None:
        return False
    tb = type(b)
    if tb is str:
        if env.loops:
            env.charge(len(b) >> 6)
        return a in b
    if tb is dict or tb is set or tb is frozenset:
        if type(a) not in _CHEAP and env.costly(a, b):
            _charge_size(env, a)
        return a in b
    if tb is list or tb is tuple:
        if env.costly(b):
            if type(a) in _CHEAP:
                env.charge(len(b))
            else:
                _charge_size(env, b)
        return a in b
    if isinstance(b, (str, Mapping, list, tuple, set, frozenset)):
        return a in b
    raise TypeError(f"'in' needs a string, list, dict or set on the right, not {_tname(b)}")


def _not_in(env: _Env, a: Any, b: Any) -> bool:
    return not _in(env, a, b)


def _check_size(n: int, what: str, unit: str = "elements") -> None:
    if n > MAX_SEQUENCE:
        raise _Refusal(f"{what} would make {n:,} {unit} (at most {MAX_SEQUENCE:,})")


def _add(env: _Env, a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, str):
        n = len(a) + len(b)
        _check_size(n, "string concatenation", "characters")
        env.charge(n >> 4)
        return a + b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        n = len(a) + len(b)
        _check_size(n, "concatenation")
        env.charge(n)
        left: Any = a
        return env.made(left + b)
    return a + b


def _sub(env: _Env, a: Any, b: Any) -> Any:
    result = a - b
    if isinstance(result, (set, frozenset)):
        env.charge(len(a))
        env.made(result)
    return result


def _mul(env: _Env, a: Any, b: Any) -> Any:
    if isinstance(a, (str, list, tuple)) and isinstance(b, int):
        seq, times = a, b
    elif isinstance(b, (str, list, tuple)) and isinstance(a, int):
        seq, times = b, a
    else:
        return a * b
    n = len(seq) * times if times > 0 else 0
    _check_size(n, "repetition", "characters" if isinstance(seq, str) else "elements")
    if isinstance(seq, str):
        env.charge(n >> 4)
        return seq * times
    if times > 0 and _weight(seq, MAX_STEPS // times + 1) * times > MAX_STEPS:
        raise _Refusal(f"repetition would nest more than {MAX_STEPS:,} values")
    env.charge(n)
    return env.made(seq * times)


def _div(env: _Env, a: Any, b: Any) -> Any:
    return a / b


def _floordiv(env: _Env, a: Any, b: Any) -> Any:
    return a // b


def _mod(env: _Env, a: Any, b: Any) -> Any:
    if isinstance(a, (str, bytes)):
        raise _Unsupported("string formatting with % is not supported (use an f-string)")
    return a % b


def _pow(env: _Env, a: Any, b: Any) -> Any:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        raise TypeError(f"** needs numbers, not {_tname(a)} and {_tname(b)}")
    if not abs(b) <= MAX_EXPONENT:
        raise _Refusal(f"exponent {b!r} is too large (at most {MAX_EXPONENT} in magnitude)")
    if isinstance(a, int) and isinstance(b, int) and b > 0 and (abs(a).bit_length() - 1) * b > 333:
        raise _Refusal(f"{a!r} ** {b!r} is too large (at most 10**100 in magnitude)")
    result = a**b
    if abs(result) > MAX_POWER:
        raise _Refusal(f"{a!r} ** {b!r} is too large (at most 10**100 in magnitude)")
    return result


def _neg(env: _Env, a: Any) -> Any:
    return -a


def _pos(env: _Env, a: Any) -> Any:
    return +a


def _not(env: _Env, a: Any) -> bool:
    return not a


def _index(value: Any, key: Any) -> Any:
    """`value[key]`, null-safe: None, a missing key or an index out of range give None."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        try:
            return value[key]
        except KeyError:
            return None
    if isinstance(value, (list, tuple, str)):
        if not isinstance(key, int):
            raise TypeError(f"a {_tname(value)} index must be an integer, not {_tname(key)}")
        try:
            return value[key]
        except IndexError:
            return None
    raise TypeError(f"cannot index {_tname(value)}")


def _field(value: Any, key: str) -> Any:
    """`value.key`: a key of a dict, None for anything else."""
    if isinstance(value, Mapping):
        try:
            return value[key]
        except KeyError:
            return None
    return None


def _slice(env: _Env, value: Any, lower: Any, upper: Any, step: Any) -> Any:
    for bound in (lower, upper, step):
        if isinstance(bound, int) and abs(bound) > MAX_SEQUENCE:
            raise _Refusal(f"slice bound {bound:,} is too large (at most {MAX_SEQUENCE:,})")
    if value is None:
        return None
    if not isinstance(value, (list, tuple, str)):
        raise TypeError(f"cannot slice {_tname(value)}")
    result = value[lower:upper:step]
    if isinstance(result, str):
        env.charge(len(result) >> 4)
        return result
    env.charge(len(result))
    return env.made(result)


def _to_str(env: _Env, value: Any) -> str:
    t = type(value)
    if t is str:
        return value  # type: ignore[no-any-return]
    if t in _CHEAP:
        return str(value)
    if env.costly(value):
        _charge_size(env, value)
    return str(value)


def _to_repr(env: _Env, value: Any) -> str:
    if type(value) not in _CHEAP and env.costly(value):
        _charge_size(env, value)
    return repr(value)


def _to_ascii(env: _Env, value: Any) -> str:
    if type(value) not in _CHEAP and env.costly(value):
        _charge_size(env, value)
    return ascii(value)


def _hashable(env: _Env, value: Any) -> Any:
    """Charge hashing a container key/element that the expression built or that is hashed in a loop."""
    if type(value) not in _CHEAP and env.costly(value):
        _charge_size(env, value)
    return value


def _iteration_source(value: Any) -> Iterable[Any]:
    """What `for x in value` iterates: None is empty (null-safe), dicts give their keys."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple, str, Mapping, set, frozenset, GeneratorType)):
        return value
    raise TypeError(f"cannot iterate over {_tname(value)}")


def _items(env: _Env, value: Any) -> Iterable[Any]:
    """The items a helper such as any() or max() consumes; lists are charged by length."""
    source = _iteration_source(value)
    if isinstance(source, (list, tuple, str, dict, set, frozenset)):
        env.charge(len(source))
    return source


def _unpack(item: Any, n: int) -> tuple[Any, ...]:
    values = tuple(itertools.islice(_iteration_source(item), n + 1))
    if len(values) != n:
        raise ValueError(f"cannot unpack {len(values)}{'+' if len(values) > n else ''} values into {n} names")
    return values


# Paths for changed(), has() and get(): "spec.containers.0.image" or ["metadata", "labels", "a.b/c"].


def _path_parts(path: Any) -> tuple[Any, ...]:
    if isinstance(path, str):
        return tuple(path.split(".")) if path else ()
    if isinstance(path, (list, tuple)):
        return tuple(path)
    raise TypeError(f"a path must be a dotted string or a list of keys, not {_tname(path)}")


def _walk(env: _Env, value: Any, parts: tuple[Any, ...]) -> Any:
    env.charge(len(parts))
    for part in parts:
        if isinstance(value, Mapping):
            try:
                value = value[part]
            except (KeyError, TypeError):
                return _MISSING
        elif isinstance(value, (list, tuple)):
            index = part
            if isinstance(part, str):
                try:
                    index = int(part)
                except ValueError:
                    return _MISSING
            if not isinstance(index, int) or not -len(value) <= index < len(value):
                return _MISSING
            value = value[index]
        else:
            return _MISSING
    return value


def _lookup(env: _Env, name: str) -> Any:
    try:
        return env.ctx[name]
    except KeyError:
        return None


# ---------------------------------------------------------------------------------------------------
# Regular expressions
# ---------------------------------------------------------------------------------------------------

_BRACE_QUANTIFIER = re.compile(r"\{(\d*)(,?)(\d*)\}")
_GLOBAL_FLAGS = re.compile(r"\(\?[aiLmsux]+\)")
_SCOPED_FLAGS = re.compile(r"\(\?[aiLmsux]*(?:-[imsx]+)?:")
_UNBOUNDED = 1 << 30
_WIDE_REPEAT = 10  # a quantifier allowing more repeats than this counts as a factor of the subject length
_REGEX_WORK = 10_000_000  # backtracking steps a pattern may take in the worst case (~0.5 s)
_ZERO_WIDTH_ESCAPES = frozenset({"\\A", "\\Z", "\\b", "\\B"})
# Characters an atom is tried on to learn which characters it matches (for the overlap analysis).
_PROBES = "".join(map(chr, range(128))) + "\xa0\xe9\xdf\xc6\u03a9\u0436\u0905\u4e2d\U0001f600\u2028"


@functools.lru_cache(maxsize=2048)
def _probe_set(atom: str, flags: int) -> frozenset[str] | None:
    """The probe characters a single-character atom matches; None for "unknown, assume anything"."""
    try:
        compiled = re.compile(atom, flags)
    except (re.error, RecursionError, OverflowError):
        return None
    matched = frozenset(c for c in _PROBES if compiled.fullmatch(c))
    return matched or None


class _Item:
    """A piece of a pattern for the backtracking analysis: the characters it matches (None: any),
    how many repeats multiplying backtracking it holds, whether it must consume a character, and
    for a group whose repetitions cannot trade characters, the longest run in its body (else -1)."""

    __slots__ = ("chars", "mandatory", "separated", "wide")

    def __init__(self, chars: frozenset[str] | None, wide: int = 0, separated: int = -1) -> None:
        self.chars = chars
        self.wide = wide
        self.mandatory = True
        self.separated = separated


def _degree(items: list[_Item], anchored: bool) -> int:
    """Degree of the polynomial backtracking of one alternative.

    Repeats form runs: a mandatory piece that none of the repeats of the current run can match ends
    the run (they must stop exactly in front of it, so later runs do not multiply with it). A run of
    k repeats costs n**k per start position; an unanchored search adds a factor n to the first run,
    unless the first run is guarded by a mandatory piece before it that the run cannot match (then
    the regions explored from different start positions do not overlap).
    """
    runs: list[tuple[int, frozenset[str] | None]] = []  # (repeats, characters they match)
    guards: list[frozenset[str] | None] = []  # mandatory pieces before the first repeat
    run = 0
    union: frozenset[str] | None = frozenset()  # None: any character
    for item in items:
        if item.mandatory and item.chars is not None and union is not None and not item.chars & union:
            if run:
                runs.append((run, union))
            run, union = 0, frozenset()
        if item.wide:
            run += item.wide
            union = None if item.chars is None or union is None else union | item.chars
        elif not runs and not run and item.mandatory:
            guards.append(item.chars)
    if run:
        runs.append((run, union))
    if not runs:
        return 0 if anchored else 1
    first, first_chars = runs[0]
    guarded = anchored or any(
        g is not None and first_chars is not None and not g & first_chars for g in guards
    )
    return max([first + (0 if guarded else 1), *(k for k, _ in runs[1:])])


class _Group:
    __slots__ = ("alternatives", "ambiguous", "atomic", "current", "firsts", "items", "quantified")

    def __init__(self, atomic: bool) -> None:
        self.atomic = atomic
        self.quantified = False  # contains a quantifier (even ?): repeating the group is ambiguous
        self.ambiguous = False  # contains alternatives that may overlap (at any depth)
        self.firsts: list[str | None] = []  # first atom of each finished alternative
        self.current: str | None = None  # first atom of the alternative being read
        self.alternatives: list[list[_Item]] = []  # pieces of each finished alternative
        self.items: list[_Item] = []  # pieces of the alternative being read

    def atom(self, text: str) -> None:
        if self.current is None:
            self.current = text

    def alternatives_overlap(self) -> bool:
        firsts = [*self.firsts, self.current]
        if len(firsts) < 2:
            return False
        seen: set[str] = set()
        for first in firsts:
            if first is None or first in {".", "^", "$"} or first[0] in "[(":
                return True
            if first[0] == "\\" and (len(first) < 2 or first[1].isalnum()):
                return True
            key = first.lower()
            if key in seen:
                return True
            seen.add(key)
        return False

    def summary(self) -> _Item:
        """This group as one piece of its parent (never a separator: it may match nothing)."""
        alternatives = [*self.alternatives, self.items]
        pieces = [item for alternative in alternatives for item in alternative]
        chars: frozenset[str] | None = frozenset()
        for item in pieces:
            chars = None if item.chars is None or chars is None else chars | item.chars
        separated = -1
        body = alternatives[0]
        if self.atomic and len(alternatives) == 1 and body:
            # (?>-[a-z]+)*: every repetition starts with a character no repeat inside can match and
            # commits to its first match, so repetitions split the subject instead of multiplying.
            head = body[0]
            if head.mandatory and not head.wide and head.chars is not None:
                inner = [item.chars for item in body if item.wide]
                if all(c is not None and not c & head.chars for c in inner):
                    separated = max(1, _degree(body, anchored=True))
        item = _Item(chars, sum(item.wide for item in pieces), separated)
        item.mandatory = False
        return item


def _quantifier(pattern: str, i: int) -> tuple[int, int, int] | None:
    """(minimum, maximum repeats, length) of a quantifier at pattern[i], or None when there is none."""
    c = pattern[i]
    if c == "*":
        return 0, _UNBOUNDED, 1
    if c == "+":
        return 1, _UNBOUNDED, 1
    if c == "?":
        return 0, 1, 1
    if c == "{":
        m = _BRACE_QUANTIFIER.match(pattern, i)
        if m is None or not (m.group(1) or m.group(3)):
            return None
        low, comma, high = m.groups()
        if not comma:
            return int(low), int(low), m.end() - i
        return int(low or 0), (int(high) if high else _UNBOUNDED), m.end() - i
    return None


def _escape_length(pattern: str, i: int) -> int:
    """Length of the escape sequence starting with the backslash at pattern[i]."""
    kind = pattern[i + 1 : i + 2]
    if kind in ("x", "u", "U"):
        return 2 + {"x": 2, "u": 4, "U": 8}[kind]
    if kind == "N" and pattern.startswith("{", i + 2):
        end = pattern.find("}", i)
        return (end - i + 1) if end > 0 else len(pattern) - i
    if kind == "0":
        j = i + 2
        while j < min(i + 4, len(pattern)) and pattern[j] in "01234567":
            j += 1
        return j - i
    if kind.isdigit():
        return 3 if pattern[i + 2 : i + 3].isdigit() else 2
    return 2


class _Regex(NamedTuple):
    compiled: re.Pattern[str]
    max_subject: int  # longest subject it may run on (shorter than MAX_REGEX_SUBJECT for complex patterns)
    degree: int


def _check_regex(pattern: str, flags: int) -> int:
    """Refuse patterns that can backtrack exponentially; return the degree of the polynomial (in
    the subject length) that the rest can still take.

    Refused: a repeated group that itself contains a repeat (`(a+)+`, `(a*)*`, `(\\w+\\s?)*`) or
    overlapping alternatives (`(a|a)*`). Atomic groups `(?>...)` and possessive quantifiers (`*+`,
    `++`) do not backtrack and are allowed. What remains backtracks polynomially: an unanchored
    search is a factor n, and so is each open-ended repeat that can trade characters with the
    previous ones (`a.*b.*c` is cubic; in `\\d+\\.\\d+` the dot separates the repeats, so it is not).
    """
    if len(pattern) > MAX_REGEX_LENGTH:
        raise _RegexError(
            f"regular expression is too long ({len(pattern):,} characters; at most {MAX_REGEX_LENGTH})"
        )
    atom_flags = flags & (re.IGNORECASE | re.DOTALL | re.ASCII)
    stack = [_Group(atomic=False)]
    closed: _Group | None = None  # the group a following quantifier applies to
    last: _Item | None = None  # the piece a following quantifier applies to
    anchored = [False]  # per top-level alternative
    i, n = 0, len(pattern)

    def piece(item: _Item) -> _Item:
        stack[-1].items.append(item)
        return item

    while i < n:
        c = pattern[i]
        top = stack[-1]
        at_start = len(stack) == 1 and not top.items
        if c == "\\":
            text = pattern[i : i + _escape_length(pattern, i)]
            top.atom(text)
            if text in _ZERO_WIDTH_ESCAPES:
                anchored[-1] |= at_start and text == "\\A"
                last = None
            else:
                last = piece(_Item(_probe_set(text, atom_flags) if not text[1:].isdigit() else None))
            closed, i = None, i + len(text)
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            text = pattern[i : j + 1]
            top.atom(text)
            last = piece(_Item(_probe_set(text, atom_flags)))
            closed, i = None, j + 1
        elif c == "(":
            closed, last = None, None
            if pattern.startswith("(?#", i):
                end = pattern.find(")", i)
                i = n if end < 0 else end + 1
                continue
            global_flags = _GLOBAL_FLAGS.match(pattern, i)
            if global_flags:
                i = global_flags.end()
                continue
            top.atom("(")
            stack.append(_Group(atomic=pattern.startswith("(?>", i)))
            scoped = _SCOPED_FLAGS.match(pattern, i)
            if scoped:
                i = scoped.end()
            elif pattern.startswith(("(?P<", "(?<=", "(?<!"), i):
                end = pattern.find(">", i) if pattern.startswith("(?P<", i) else i + 3
                i = (end if end >= 0 else n) + 1
            elif pattern.startswith("(?", i):
                i += 3
            else:
                i += 1
        elif c == ")":
            closed, last = None, None
            if len(stack) > 1:
                closed = stack.pop()
                closed.ambiguous |= closed.alternatives_overlap()
                stack[-1].quantified |= closed.quantified
                stack[-1].ambiguous |= closed.ambiguous
                last = piece(closed.summary())
            i += 1
        elif c == "|":
            top.firsts.append(top.current)
            top.current = None
            top.alternatives.append(top.items)
            top.items = []
            if len(stack) == 1:
                anchored.append(False)
            closed, last, i = None, None, i + 1
        elif c in "^$":
            anchored[-1] |= at_start and c == "^"
            top.atom(c)
            closed, last, i = None, None, i + 1
        else:
            quantifier = _quantifier(pattern, i)
            if quantifier is None:
                top.atom(c)
                last = piece(_Item(_probe_set(c if c == "." else re.escape(c), atom_flags)))
                closed, i = None, i + 1
                continue
            low, high, length = quantifier
            i += length
            possessive = i < n and pattern[i] == "+"
            if i < n and pattern[i] in "?+":
                i += 1
            if high > 1 and closed is not None and not closed.atomic and not possessive:
                if closed.quantified:
                    raise _RegexError(
                        "regular expression nests quantifiers, as in (a+)+, which can take exponential "
                        "time; use an atomic group (?>...) or a possessive quantifier"
                    )
                if closed.ambiguous:
                    raise _RegexError(
                        "regular expression repeats alternatives that may overlap, as in (a|a)*, which "
                        "can take exponential time; use an atomic group (?>...)"
                    )
            top.quantified = True
            if last is not None:
                # Possessive repeats count too: they do not backtrack, but each entry costs O(n).
                if high > _WIDE_REPEAT:
                    last.wide = last.separated if last.separated >= 0 else last.wide + 1
                if low == 0:
                    last.mandatory = False
            closed, last = None, None
    top_level = [*stack[0].alternatives, stack[0].items]
    multiline = bool(flags & re.MULTILINE)
    return max(
        _degree(alt, anchor and not multiline) for anchor, alt in zip(anchored, top_level, strict=True)
    )


def _search_form(pattern: str) -> str:
    """The pattern without a leading or trailing ".*": re.search finds a match with them exactly
    when it finds one without, and each costs a factor of the subject length."""
    while pattern.startswith((".*?", ".*")) and not pattern.startswith((".**", ".*+", ".*?+")):
        pattern = pattern[3:] if pattern.startswith(".*?") else pattern[2:]
    while pattern.endswith((".*", ".*?")):
        head = pattern[:-3] if pattern.endswith(".*?") else pattern[:-2]
        escapes = len(head) - len(head.rstrip("\\"))
        if escapes % 2 or head.endswith(("*", "+", "?", "}")):
            break
        pattern = head
    return pattern


@functools.lru_cache(maxsize=512)
def _regex(pattern: str) -> _Regex:
    if len(pattern) > MAX_REGEX_LENGTH:
        raise _RegexError(
            f"regular expression is too long ({len(pattern):,} characters; at most {MAX_REGEX_LENGTH})"
        )
    searched = _search_form(pattern)
    _check_regex(searched, 0)  # the exponential shapes, before re.compile sees the pattern
    try:
        compiled = re.compile(searched)
    except re.error as exc:
        raise _RegexError(f"invalid regular expression: {exc}") from None
    except (RecursionError, OverflowError, ValueError):
        raise _RegexError("invalid regular expression: too complex") from None
    degree = _check_regex(searched, compiled.flags)
    # A degree-d pattern can take about n**d steps on n characters.
    limit = MAX_REGEX_SUBJECT if degree <= 1 else int(_REGEX_WORK ** (1 / degree))
    return _Regex(compiled, min(limit, MAX_REGEX_SUBJECT), degree)


def _search(env: _Env, regex: _Regex, subject: Any) -> bool:
    if subject is None:
        return False
    if isinstance(subject, (int, float)) and not isinstance(subject, bool):
        subject = str(subject)
    if not isinstance(subject, str):
        raise TypeError(f"matches() needs a string to search, not {_tname(subject)}")
    subject = subject[:MAX_REGEX_SUBJECT]
    if len(subject) > regex.max_subject:
        raise _Refusal(
            f"matches(): this pattern can backtrack too much on {len(subject):,} characters (at most "
            f"{regex.max_subject:,} for it); anchor it with ^, or use fewer overlapping * and + repeats"
        )
    env.charge(len(subject) >> 4)
    return regex.compiled.search(subject) is not None


# ---------------------------------------------------------------------------------------------------
# Helpers and methods
# ---------------------------------------------------------------------------------------------------


def _h_len(env: _Env, x: Any) -> int:
    return 0 if x is None else len(x)


def _h_any(env: _Env, xs: Any) -> bool:
    return any(_items(env, xs))


def _h_all(env: _Env, xs: Any) -> bool:
    return all(_items(env, xs))


def _ordered(env: _Env, args: tuple[Any, ...], name: str) -> list[Any]:
    items = list(_items(env, args[0])) if len(args) == 1 else list(args)
    if any(type(x) not in _CHEAP for x in items):
        _charge_size(env, items)
    if not items:
        raise ValueError(f"{name}() of an empty list")
    return items


def _h_min(env: _Env, *args: Any) -> Any:
    return min(_ordered(env, args, "min"))


def _h_max(env: _Env, *args: Any) -> Any:
    return max(_ordered(env, args, "max"))


def _h_sum(env: _Env, xs: Any) -> Any:
    total: Any = 0
    for x in _items(env, xs):
        if not isinstance(x, (int, float)):
            raise TypeError(f"sum() adds numbers, not {_tname(x)}")
        total += x
    return total


def _h_abs(env: _Env, x: Any) -> Any:
    if not isinstance(x, (int, float)):
        raise TypeError(f"abs() needs a number, not {_tname(x)}")
    return abs(x)


def _h_int(env: _Env, x: Any, base: Any = _MISSING) -> int:
    if isinstance(x, str) and len(x) > _MAX_INT_DIGITS:
        raise ValueError(f"int() of a string longer than {_MAX_INT_DIGITS:,} characters")
    if base is _MISSING:
        if not isinstance(x, (str, int, float)):
            raise TypeError(f"int() needs a number or a string, not {_tname(x)}")
        return int(x)
    if not isinstance(x, str):
        raise TypeError("int() with a base needs a string")
    return int(x, base)


def _h_float(env: _Env, x: Any) -> float:
    if isinstance(x, str) and len(x) > _MAX_INT_DIGITS:
        raise ValueError(f"float() of a string longer than {_MAX_INT_DIGITS:,} characters")
    if not isinstance(x, (str, int, float)):
        raise TypeError(f"float() needs a number or a string, not {_tname(x)}")
    return float(x)


def _h_str(env: _Env, x: Any) -> str:
    return _to_str(env, x)


def _h_bool(env: _Env, x: Any) -> bool:
    return bool(x)


def _need_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} needs a string, not {_tname(value)}")
    return value


def _h_lower(env: _Env, s: Any) -> Any:
    if s is None:
        return None
    s = _need_str(s, "lower()")
    env.charge(len(s) >> 4)
    return str.lower(s)


def _h_upper(env: _Env, s: Any) -> Any:
    if s is None:
        return None
    s = _need_str(s, "upper()")
    env.charge(len(s) >> 4)
    return str.upper(s)


def _affix(value: Any, what: str) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return value
    if isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise TypeError(f"{what} needs a string or a tuple of strings, not {_tname(value)}")


def _h_startswith(env: _Env, s: Any, prefix: Any) -> bool:
    if s is None:
        return False
    return str.startswith(_need_str(s, "startswith()"), _affix(prefix, "startswith()"))


def _h_endswith(env: _Env, s: Any, suffix: Any) -> bool:
    if s is None:
        return False
    return str.endswith(_need_str(s, "endswith()"), _affix(suffix, "endswith()"))


def _h_contains(env: _Env, container: Any, item: Any) -> bool:
    return _in(env, item, container)


def _h_matches(env: _Env, s: Any, pattern: Any) -> bool:
    return _search(env, _regex(_need_str(pattern, "matches()")), s)


def _h_changed(env: _Env, path: Any) -> bool:
    return _changed(env, _path_parts(path))


def _changed(env: _Env, parts: tuple[Any, ...]) -> bool:
    before = _walk(env, _lookup(env, "old"), parts)
    after = _walk(env, _lookup(env, "obj"), parts)
    return bool(_ne(env, None if before is _MISSING else before, None if after is _MISSING else after))


def _h_has(env: _Env, path: Any) -> bool:
    return _has(env, _path_parts(path))


def _has(env: _Env, parts: tuple[Any, ...]) -> bool:
    return _walk(env, _lookup(env, "obj"), parts) is not _MISSING


def _h_get(env: _Env, value: Any, path: Any, default: Any = None) -> Any:
    found = _walk(env, value, _path_parts(path))
    return default if found is _MISSING else found


class _Helper(NamedTuple):
    impl: Callable[..., Any]
    min_args: int
    max_args: int
    pure: bool = True  # result depends only on the arguments (so constant calls can be folded)
    reads: tuple[str, ...] = ()  # context names the helper reads by itself


_HELPER_IMPLS: Mapping[str, _Helper] = {
    "len": _Helper(_h_len, 1, 1),
    "any": _Helper(_h_any, 1, 1),
    "all": _Helper(_h_all, 1, 1),
    "min": _Helper(_h_min, 1, MAX_NODES),
    "max": _Helper(_h_max, 1, MAX_NODES),
    "sum": _Helper(_h_sum, 1, 1),
    "abs": _Helper(_h_abs, 1, 1),
    "int": _Helper(_h_int, 1, 2),
    "float": _Helper(_h_float, 1, 1),
    "str": _Helper(_h_str, 1, 1),
    "bool": _Helper(_h_bool, 1, 1),
    "lower": _Helper(_h_lower, 1, 1),
    "upper": _Helper(_h_upper, 1, 1),
    "startswith": _Helper(_h_startswith, 2, 2),
    "endswith": _Helper(_h_endswith, 2, 2),
    "contains": _Helper(_h_contains, 2, 2),
    "matches": _Helper(_h_matches, 2, 2),
    "changed": _Helper(_h_changed, 1, 1, pure=False, reads=("obj", "old")),
    "has": _Helper(_h_has, 1, 1, pure=False, reads=("obj",)),
    "get": _Helper(_h_get, 2, 3),
}
assert set(_HELPER_IMPLS) == set(HELPERS)

# Helpers whose single generator-expression argument is consumed lazily (any() stops at the first hit).
_LAZY_HELPERS = frozenset({"any", "all", "min", "max", "sum"})


def _m_lower(env: _Env, s: Any) -> str:
    return _h_lower(env, _need_str(s, ".lower()"))  # type: ignore[no-any-return]


def _m_upper(env: _Env, s: Any) -> str:
    return _h_upper(env, _need_str(s, ".upper()"))  # type: ignore[no-any-return]


def _m_startswith(env: _Env, s: Any, prefix: Any) -> bool:
    return str.startswith(_need_str(s, ".startswith()"), _affix(prefix, ".startswith()"))


def _m_endswith(env: _Env, s: Any, suffix: Any) -> bool:
    return str.endswith(_need_str(s, ".endswith()"), _affix(suffix, ".endswith()"))


def _m_split(env: _Env, s: Any, sep: Any = None, maxsplit: Any = -1) -> list[str]:
    s = _need_str(s, ".split()")
    if sep is not None:
        sep = _need_str(sep, ".split() separator")
    if not isinstance(maxsplit, int):
        raise TypeError(f".split() maxsplit must be an integer, not {_tname(maxsplit)}")
    env.charge(len(s) >> 4)
    parts = str.split(s, sep, maxsplit)
    env.charge(len(parts))
    return env.made(parts)


def _m_strip(env: _Env, s: Any, chars: Any = None) -> str:
    s = _need_str(s, ".strip()")
    if chars is not None:
        chars = _need_str(chars, ".strip() characters")
    env.charge(len(s) >> 4)
    return str.strip(s, chars)


def _need_mapping(value: Any, what: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} needs a dict, not {_tname(value)}")
    return value


def _m_keys(env: _Env, d: Any) -> list[Any]:
    d = _need_mapping(d, ".keys()")
    env.charge(len(d))
    return env.made(list(d.keys()))


def _m_values(env: _Env, d: Any) -> list[Any]:
    d = _need_mapping(d, ".values()")
    env.charge(len(d))
    return env.made(list(d.values()))


def _m_items(env: _Env, d: Any) -> list[tuple[Any, Any]]:
    d = _need_mapping(d, ".items()")
    env.charge(2 * len(d))
    return env.made([env.made(pair) for pair in d.items()])


_METHOD_IMPLS: Mapping[str, _Helper] = {
    "startswith": _Helper(_m_startswith, 1, 1),
    "endswith": _Helper(_m_endswith, 1, 1),
    "lower": _Helper(_m_lower, 0, 0),
    "upper": _Helper(_m_upper, 0, 0),
    "split": _Helper(_m_split, 0, 2),
    "strip": _Helper(_m_strip, 0, 1),
    "keys": _Helper(_m_keys, 0, 0),
    "values": _Helper(_m_values, 0, 0),
    "items": _Helper(_m_items, 0, 0),
}
assert set(_METHOD_IMPLS) == set(METHODS)


# ---------------------------------------------------------------------------------------------------
# Compiler
# ---------------------------------------------------------------------------------------------------

_UNCOUNTED = (ast.expr_context, ast.boolop, ast.operator, ast.unaryop, ast.cmpop)

_FORBIDDEN: Mapping[type[ast.AST], str] = {
    ast.Lambda: "lambda is not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.Starred: "starred expressions (*x) are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}

_BINOPS: Mapping[type[ast.operator], Callable[[_Env, Any, Any], Any]] = {
    ast.Add: _add,
    ast.Sub: _sub,
    ast.Mult: _mul,
    ast.Div: _div,
    ast.FloorDiv: _floordiv,
    ast.Mod: _mod,
    ast.Pow: _pow,
}
_OPERATOR_SYMBOLS: Mapping[type[ast.AST], str] = {
    ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^",
    ast.BitAnd: "&", ast.Invert: "~",
}  # fmt: skip
_UNARYOPS: Mapping[type[ast.unaryop], Callable[[_Env, Any], Any]] = {
    ast.USub: _neg,
    ast.UAdd: _pos,
    ast.Not: _not,
}
_CMPOPS: Mapping[type[ast.cmpop], Callable[[_Env, Any, Any], Any]] = {
    ast.Eq: _eq,
    ast.NotEq: _ne,
    ast.Lt: _lt,
    ast.LtE: _le,
    ast.Gt: _gt,
    ast.GtE: _ge,
    ast.Is: _is,
    ast.IsNot: _is_not,
    ast.In: _in,
    ast.NotIn: _not_in,
}


def _fast_compare(op: type[ast.cmpop], fn: _Fn, k: Any, const_right: bool) -> _Fn | None:
    """A closure for `x OP k` / `k OP x` with a constant scalar k: no budget can be involved."""
    if const_right:
        if op is ast.Eq:
            return lambda env: fn(env) == k
        if op is ast.NotEq:
            return lambda env: fn(env) != k
        if op is ast.Lt:
            return lambda env: fn(env) < k
        if op is ast.LtE:
            return lambda env: fn(env) <= k
        if op is ast.Gt:
            return lambda env: fn(env) > k
        if op is ast.GtE:
            return lambda env: fn(env) >= k
        if op is ast.Is:
            return lambda env: fn(env) is k
        if op is ast.IsNot:
            return lambda env: fn(env) is not k
        return None
    if op is ast.Eq:
        return lambda env: k == fn(env)
    if op is ast.NotEq:
        return lambda env: k != fn(env)
    if op is ast.Is:
        return lambda env: k is fn(env)
    if op is ast.IsNot:
        return lambda env: k is not fn(env)
    return None


_PLAIN_CMP: Mapping[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}


def _fused_compare(
    name: str, steps: tuple[tuple[Any, bool], ...], op: Callable[[Any, Any], Any], k: Any
) -> _Fn:
    """`name.a.b OP k` for a constant scalar k as one closure (the typical breakpoint condition)."""

    def compare(env: _Env) -> Any:
        try:
            v = env.ctx[name]
        except KeyError:
            v = None
        for key, is_attr in steps:
            if type(v) is dict:
                v = v.get(key)
            elif v is None:
                break
            else:
                v = _field(v, key) if is_attr else _index(v, key)
        return op(v, k)

    return compare


def _frozen(value: Any) -> bool:
    """Deeply immutable, so one folded object can be shared by every evaluation."""
    if type(value) in _CHEAP:
        return True
    if type(value) is tuple or type(value) is frozenset:
        return all(_frozen(v) for v in value)
    return False


class _Code(NamedTuple):
    fn: _Fn
    const: Any = _MISSING  # the value when known at compile time
    root: str | None = None  # for access chains rooted at a context name: that name
    base: _Fn | None = None  # for other access chains: the root's closure
    steps: tuple[tuple[Any, bool], ...] = ()  # access chain: (key, is_attribute) from the root


def _constant(value: Any) -> _Code:
    return _Code(lambda env: value, value)


def _chain_fn(root: str | None, base: _Fn | None, steps: tuple[tuple[Any, bool], ...]) -> _Fn:
    """One closure for `name.a.b["c"][0]`: a loop over the steps instead of a closure per step."""

    def walk(v: Any) -> Any:
        for key, is_attr in steps:
            if type(v) is dict:
                v = v.get(key)
            elif v is None:
                return None
            else:
                v = _field(v, key) if is_attr else _index(v, key)
        return v

    if root is not None:
        name = root
        if not steps:

            def lookup(env: _Env) -> Any:
                try:
                    return env.ctx[name]
                except KeyError:
                    return None

            return lookup
        if len(steps) == 1 and steps[0][1]:
            key0 = steps[0][0]

            def one(env: _Env) -> Any:
                try:
                    v = env.ctx[name]
                except KeyError:
                    return None
                if type(v) is dict:
                    return v.get(key0)
                return None if v is None else _field(v, key0)

            return one

        def rooted(env: _Env) -> Any:
            try:
                v = env.ctx[name]
            except KeyError:
                return None
            for key, is_attr in steps:  # walk(), inlined: this is the hottest path
                if type(v) is dict:
                    v = v.get(key)
                elif v is None:
                    return None
                else:
                    v = _field(v, key) if is_attr else _index(v, key)
            return v

        return rooted
    assert base is not None
    start = base
    return lambda env: walk(start(env))


class _Compiler:
    def __init__(self, text: str, offset: int, allowed: frozenset[str]) -> None:
        self.offset = offset
        self.lines = re.split(r"(?<=\n)|(?<=\r)(?!\n)", text)
        self.allowed = allowed
        self.scopes: list[dict[str, int]] = []
        self.nslots = 0
        self.reads: set[str] = set()
        self.fold_env = _new_env({}, 0)  # one budget for all folding in this compile

    # -- positions and errors ---------------------------------------------------------------------

    def column(self, lineno: int, char_col: int) -> int:
        """1-based character position in the original source of a (line, 0-based char column)."""
        before = sum(len(line) for line in self.lines[: max(lineno - 1, 0)])
        return self.offset + before + char_col + 1

    def node_column(self, node: ast.AST) -> int | None:
        lineno = getattr(node, "lineno", None)
        col = getattr(node, "col_offset", None)
        if lineno is None or col is None:
            return None
        line = self.lines[lineno - 1] if 0 < lineno <= len(self.lines) else ""
        chars = len(line.encode("utf-8")[:col].decode("utf-8", "replace"))
        return self.column(lineno, chars)

    def fail(self, node: ast.AST, detail: str) -> NoReturn:
        raise _CompileError(detail, self.node_column(node))

    # -- whole-tree checks (iterative: they run before the recursive compiler) --------------------

    def check_shape(self, tree: ast.Expression) -> None:
        count = 0
        stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
        offenders: list[tuple[int, int, str, ast.AST]] = []
        while stack:
            node, depth = stack.pop()
            if isinstance(node, _UNCOUNTED):
                continue
            count += 1
            if count > MAX_NODES:
                raise _CompileError(f"too complex (more than {MAX_NODES} syntax nodes)", None)
            if depth > MAX_DEPTH:
                self.fail(node, f"too deeply nested (at most {MAX_DEPTH} levels)")
            problem = self.forbidden(node)
            if problem is not None:
                offenders.append((getattr(node, "lineno", 0), getattr(node, "col_offset", 0), problem, node))
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
        if offenders:
            _, _, problem, node = min(offenders, key=lambda o: (o[0], o[1]))
            self.fail(node, problem)

    @staticmethod
    def forbidden(node: ast.AST) -> str | None:
        """Things refused wherever they are, reported before anything else (in source order)."""
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            return f"private and dunder names are not allowed ({node.id!r})"
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            return f"private and dunder names are not allowed ({node.attr!r})"
        if isinstance(node, ast.keyword) and node.arg is not None and node.arg.startswith("_"):
            return f"private and dunder names are not allowed ({node.arg!r})"
        if isinstance(node, ast.Dict) and any(key is None for key in node.keys):
            return "dict unpacking (**x) is not allowed"
        message = _FORBIDDEN.get(type(node))
        return message

    # -- folding ----------------------------------------------------------------------------------

    def fold(self, node: ast.AST, fn: _Fn, *parts: _Code) -> _Code:
        """Compute fn now when every part is constant; a bound exceeded is a compile error."""
        if any(p.const is _MISSING for p in parts):
            return _Code(fn)
        try:
            value = fn(self.fold_env)
        except _Refusal as exc:
            self.fail(node, str(exc))
        except _RegexError as exc:
            self.fail(node, str(exc))
        except Exception:
            return _Code(fn)  # let it fail (or not be reached) at evaluation time
        if not _frozen(value):
            if _weight(value, MAX_STEPS + 1) > MAX_STEPS:
                self.fail(node, f"constant value is too large (more than {MAX_STEPS:,} values)")
            return _Code(fn, value)  # mutable: rebuilt on each evaluation so results never share it
        return _constant(value)

    # -- dispatch ---------------------------------------------------------------------------------

    def expr(self, node: ast.expr) -> _Code:
        method = getattr(self, "c_" + type(node).__name__, None)
        if method is None:
            self.fail(node, self.describe_unsupported(node))
        code: _Code = method(node)
        return code

    def describe_unsupported(self, node: ast.AST) -> str:
        message = self.forbidden(node)
        if message:
            return message
        if isinstance(node, ast.FormattedValue):
            return "format values are only allowed inside f-strings"
        return f"{type(node).__name__} expressions are not supported"

    def fns(self, nodes: Iterable[ast.expr]) -> list[_Code]:
        return [self.expr(n) for n in nodes]

    # -- leaves -----------------------------------------------------------------------------------

    def c_Constant(self, node: ast.Constant) -> _Code:
        value = node.value
        if type(value) not in _CHEAP:
            kind = "..." if value is Ellipsis else type(value).__name__
            self.fail(node, f"{kind} literals are not supported (use strings, numbers, True, False, None)")
        return _constant(value)

    def c_Name(self, node: ast.Name) -> _Code:
        name = node.id
        for scope in reversed(self.scopes):
            if name in scope:
                return _Code(_slot_fn(scope[name]))
        if name in self.allowed:
            self.reads.add(name)
            return _Code(_chain_fn(name, None, ()), root=name)
        if name in _HELPER_IMPLS:
            self.fail(node, f"{name} is a helper function; call it, e.g. {name}(...)")
        self.fail(node, f"unknown name {name!r} (names are: {', '.join(sorted(self.allowed))})")

    # -- access -----------------------------------------------------------------------------------

    def extend_chain(self, base: _Code, step: tuple[Any, bool]) -> _Code:
        if base.root is not None or base.base is not None:
            root, start, steps = base.root, base.base, (*base.steps, step)
        else:
            root, start, steps = None, base.fn, (step,)
        return _Code(_chain_fn(root, start, steps), root=root, base=start, steps=steps)

    def c_Attribute(self, node: ast.Attribute) -> _Code:
        base = self.expr(node.value)
        if base.const is not _MISSING:
            key = node.attr
            return self.fold(node, lambda env: _field(base.fn(env), key), base)
        return self.extend_chain(base, (node.attr, True))

    def c_Subscript(self, node: ast.Subscript) -> _Code:
        base = self.expr(node.value)
        if isinstance(node.slice, ast.Slice):
            return self.slice(node, base, node.slice)
        key = self.expr(node.slice)
        if key.const is not _MISSING and base.const is _MISSING and type(key.const) in _CHEAP:
            return self.extend_chain(base, (key.const, False))
        bf, kf = base.fn, key.fn
        return self.fold(node, lambda env: _index(bf(env), kf(env)), base, key)

    def slice(self, node: ast.Subscript, base: _Code, sl: ast.Slice) -> _Code:
        parts = [self.expr(p) if p is not None else _constant(None) for p in (sl.lower, sl.upper, sl.step)]
        for part, sub in zip(parts, (sl.lower, sl.upper, sl.step), strict=True):
            if sub is not None and isinstance(part.const, int) and abs(part.const) > MAX_SEQUENCE:
                self.fail(sub, f"slice bound {part.const:,} is too large (at most {MAX_SEQUENCE:,})")
        bf, lf, uf, sf = base.fn, parts[0].fn, parts[1].fn, parts[2].fn
        return self.fold(node, lambda env: _slice(env, bf(env), lf(env), uf(env), sf(env)), base, *parts)

    # -- operators --------------------------------------------------------------------------------

    def c_BinOp(self, node: ast.BinOp) -> _Code:
        op = _BINOPS.get(type(node.op))
        if op is None:
            self.fail(node, f"operator {_OPERATOR_SYMBOLS.get(type(node.op), '?')} is not supported")
        left, right = self.expr(node.left), self.expr(node.right)
        lf, rf = left.fn, right.fn
        if right.const is not _MISSING and _frozen(right.const):
            k = right.const
            fn: _Fn = lambda env: op(env, lf(env), k)  # noqa: E731
        else:
            fn = lambda env: op(env, lf(env), rf(env))  # noqa: E731
        return self.fold(node, fn, left, right)

    def c_UnaryOp(self, node: ast.UnaryOp) -> _Code:
        op = _UNARYOPS.get(type(node.op))
        if op is None:
            self.fail(node, f"operator {_OPERATOR_SYMBOLS.get(type(node.op), '?')} is not supported")
        operand = self.expr(node.operand)
        of = operand.fn
        if op is _not:
            return self.fold(node, lambda env: not of(env), operand)
        return self.fold(node, lambda env: op(env, of(env)), operand)

    def c_BoolOp(self, node: ast.BoolOp) -> _Code:
        values = self.fns(node.values)
        fs = [v.fn for v in values]
        is_and = isinstance(node.op, ast.And)
        if len(fs) == 2:
            a, b = fs
            fn: _Fn = (lambda env: a(env) and b(env)) if is_and else (lambda env: a(env) or b(env))
        elif is_and:

            def fn(env: _Env) -> Any:
                value: Any = True
                for f in fs:
                    value = f(env)
                    if not value:
                        return value
                return value

        else:

            def fn(env: _Env) -> Any:
                value: Any = False
                for f in fs:
                    value = f(env)
                    if value:
                        return value
                return value

        return self.fold(node, fn, *values)

    def c_Compare(self, node: ast.Compare) -> _Code:
        left = self.expr(node.left)
        rights = self.fns(node.comparators)
        ops = [_CMPOPS[type(op)] for op in node.ops]
        if len(ops) == 1:
            right, op_type = rights[0], type(node.ops[0])
            fast: _Fn | None = None
            if op_type is ast.In or op_type is ast.NotIn:
                if left.const is _MISSING:
                    fast = self.fast_membership(left.fn, right.const, op_type is ast.In)
            elif type(right.const) in _CHEAP and left.root is not None and op_type in _PLAIN_CMP:
                fast = _fused_compare(left.root, left.steps, _PLAIN_CMP[op_type], right.const)
            elif type(right.const) in _CHEAP and left.const is _MISSING:
                fast = _fast_compare(op_type, left.fn, right.const, const_right=True)
            elif type(left.const) in _CHEAP and right.const is _MISSING:
                fast = _fast_compare(op_type, right.fn, left.const, const_right=False)
            if fast is not None:
                return _Code(fast)
            op, lf, rf = ops[0], left.fn, right.fn
            return self.fold(node, lambda env: op(env, lf(env), rf(env)), left, right)
        first = left.fn
        pairs = [(op, r.fn) for op, r in zip(ops, rights, strict=True)]

        def chain(env: _Env) -> Any:
            a = first(env)
            for op, f in pairs:
                b = f(env)
                if not op(env, a, b):
                    return False
                a = b
            return True

        return self.fold(node, chain, left, *rights)

    @staticmethod
    def fast_membership(lf: _Fn, container: Any, positive: bool) -> _Fn | None:
        """`x in ("a", "b")` against a constant string or collection of scalars: plain `in`."""
        if container is _MISSING:
            return None
        if isinstance(container, (list, tuple)) and all(type(v) in _CHEAP for v in container):
            k: Any = tuple(container)
        elif isinstance(container, (set, frozenset)) and all(type(v) in _CHEAP for v in container):
            k = frozenset(container)
        elif type(container) is str:
            k = container
        else:
            return None
        if positive:
            return lambda env: lf(env) in k
        return lambda env: lf(env) not in k

    def c_IfExp(self, node: ast.IfExp) -> _Code:
        test, body, orelse = self.expr(node.test), self.expr(node.body), self.expr(node.orelse)
        if test.const is not _MISSING:
            return body if test.const else orelse
        tf, bf, of = test.fn, body.fn, orelse.fn
        return _Code(lambda env: bf(env) if tf(env) else of(env))

    # -- displays ---------------------------------------------------------------------------------

    def c_Tuple(self, node: ast.Tuple) -> _Code:
        items = self.fns(node.elts)
        fs = [i.fn for i in items]
        return self.fold(node, lambda env: env.made(tuple([f(env) for f in fs])), *items)

    def c_List(self, node: ast.List) -> _Code:
        items = self.fns(node.elts)
        fs = [i.fn for i in items]
        return self.fold(node, lambda env: env.made([f(env) for f in fs]), *items)

    def c_Set(self, node: ast.Set) -> _Code:
        items = self.fns(node.elts)
        fs = [i.fn for i in items]
        return self.fold(node, lambda env: env.made({_hashable(env, f(env)) for f in fs}), *items)

    def c_Dict(self, node: ast.Dict) -> _Code:
        keys = self.fns([k for k in node.keys if k is not None])
        values = self.fns(node.values)
        pairs = [(k.fn, v.fn) for k, v in zip(keys, values, strict=True)]

        def build(env: _Env) -> dict[Any, Any]:
            return env.made({_hashable(env, k(env)): v(env) for k, v in pairs})

        return self.fold(node, build, *keys, *values)

    # -- f-strings --------------------------------------------------------------------------------

    def c_JoinedStr(self, node: ast.JoinedStr) -> _Code:
        parts: list[_Code] = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(self.c_Constant(value))
                continue
            assert isinstance(value, ast.FormattedValue)
            if value.format_spec is not None:
                self.fail(value, "format specifications in f-strings (f'{x:...}') are not supported")
            inner = self.expr(value.value)
            convert = {ord("r"): _to_repr, ord("a"): _to_ascii}.get(value.conversion, _to_str)
            parts.append(self.fold(value, _converted(convert, inner.fn), inner))
        fs = [p.fn for p in parts]

        def join(env: _Env) -> str:
            pieces = [f(env) for f in fs]
            n = sum(len(p) for p in pieces)
            _check_size(n, "f-string", "characters")
            env.charge(n >> 4)
            return "".join(pieces)

        return self.fold(node, join, *parts)

    # -- comprehensions ---------------------------------------------------------------------------

    def comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp
    ) -> tuple[_Fn, list[int], _Fn | None]:
        """Compile the `for` part: (iterable, target slots, filter) and push the loop scope."""
        if len(node.generators) != 1:
            self.fail(node.generators[1].target, "comprehensions may have only one 'for'")
        gen = node.generators[0]
        if gen.is_async:
            self.fail(node, "async comprehensions are not allowed")
        source = self.expr(gen.iter).fn  # evaluated in the enclosing scope
        elts = gen.target.elts if isinstance(gen.target, (ast.Tuple, ast.List)) else [gen.target]
        targets = [t for t in elts if isinstance(t, ast.Name)]
        if not targets or len(targets) != len(elts):
            self.fail(gen.target, "a comprehension target must be a name or a tuple of names")
        scope: dict[str, int] = {}
        slots: list[int] = []
        for target in targets:
            if target.id not in scope:
                scope[target.id] = self.nslots
                self.nslots += 1
            slots.append(scope[target.id])
        if isinstance(gen.target, (ast.Tuple, ast.List)):
            slots.append(-1)  # marker: unpack
        self.scopes.append(scope)
        conditions = [self.expr(c).fn for c in gen.ifs]
        condition: _Fn | None = None
        if len(conditions) == 1:
            condition = conditions[0]
        elif conditions:

            def condition(env: _Env) -> bool:
                return all(c(env) for c in conditions)

        return source, slots, condition

    def c_ListComp(self, node: ast.ListComp) -> _Code:
        source, slots, condition = self.comprehension(node)
        elt = self.expr(node.elt).fn
        self.scopes.pop()
        loop = _loop(source, slots, condition)

        def run(env: _Env) -> list[Any]:
            return env.made([elt(env) for _ in loop(env)])

        return _Code(run)

    def c_SetComp(self, node: ast.SetComp) -> _Code:
        source, slots, condition = self.comprehension(node)
        elt = self.expr(node.elt).fn
        self.scopes.pop()
        loop = _loop(source, slots, condition)
        return _Code(lambda env: env.made({_hashable(env, elt(env)) for _ in loop(env)}))

    def c_DictComp(self, node: ast.DictComp) -> _Code:
        source, slots, condition = self.comprehension(node)
        key, value = self.expr(node.key).fn, self.expr(node.value).fn
        self.scopes.pop()
        loop = _loop(source, slots, condition)
        return _Code(lambda env: env.made({_hashable(env, key(env)): value(env) for _ in loop(env)}))

    def c_GeneratorExp(self, node: ast.GeneratorExp, lazy: bool = False) -> _Code:
        source, slots, condition = self.comprehension(node)
        elt = self.expr(node.elt).fn
        self.scopes.pop()
        loop = _loop(source, slots, condition)
        if lazy:
            return _Code(lambda env: (elt(env) for _ in loop(env)))
        return _Code(lambda env: env.made([elt(env) for _ in loop(env)]))

    # -- calls ------------------------------------------------------------------------------------

    def c_Call(self, node: ast.Call) -> _Code:
        if node.keywords:
            self.fail(node.keywords[0], "keyword arguments are not supported")
        func = node.func
        if isinstance(func, ast.Attribute):
            return self.method_call(node, func)
        shadowed = isinstance(func, ast.Name) and any(func.id in scope for scope in self.scopes)
        if not isinstance(func, ast.Name) or func.id not in _HELPER_IMPLS or shadowed:
            what = f" ({func.id!r} is not one)" if isinstance(func, ast.Name) else ""
            self.fail(func, f"calls are limited to {', '.join(HELPERS)}{what}")
        name = func.id
        helper = _HELPER_IMPLS[name]
        self.check_arity(node, name + "()", helper, len(node.args))
        for needed in helper.reads:
            if needed not in self.allowed:
                self.fail(func, f"{name}() reads {needed!r}, which is not available here")
            self.reads.add(needed)
        if name in _LAZY_HELPERS and len(node.args) == 1 and isinstance(node.args[0], ast.GeneratorExp):
            args = [self.c_GeneratorExp(node.args[0], lazy=True)]
        else:
            args = self.fns(node.args)
        impl = helper.impl
        special = self.special_call(node, name, args)
        if special is not None:
            return special
        fs = [a.fn for a in args]
        fn: _Fn
        if len(fs) == 1:
            f0 = fs[0]
            fn = lambda env: impl(env, f0(env))  # noqa: E731
        elif len(fs) == 2:
            f0, f1 = fs
            fn = lambda env: impl(env, f0(env), f1(env))  # noqa: E731
        else:
            fn = lambda env: impl(env, *[f(env) for f in fs])  # noqa: E731
        if not helper.pure:
            return _Code(fn)
        return self.fold(node, fn, *args)

    def special_call(self, node: ast.Call, name: str, args: list[_Code]) -> _Code | None:
        """Calls whose constant argument can be prepared once: a regex, a path."""
        if name == "matches" and args[1].const is not _MISSING:
            pattern = args[1].const
            if not isinstance(pattern, str):
                self.fail(node.args[1], f"matches() needs a string pattern, not {_tname(pattern)}")
            try:
                compiled = _regex(pattern)
            except _RegexError as exc:
                self.fail(node.args[1], str(exc))
            subject = args[0].fn
            return self.fold(node, lambda env: _search(env, compiled, subject(env)), args[0])
        if name in ("changed", "has") and args[0].const is not _MISSING:
            try:
                parts = _path_parts(args[0].const)
            except TypeError as exc:
                self.fail(node.args[0], str(exc))
            if name == "changed":
                return _Code(lambda env: _changed(env, parts))
            return _Code(lambda env: _has(env, parts))
        return None

    def method_call(self, node: ast.Call, func: ast.Attribute) -> _Code:
        method = _METHOD_IMPLS.get(func.attr)
        if method is None:
            allowed = ", ".join(f".{m}()" for m in METHODS)
            hint = ' (for a dict field use get(x, "path", default))' if func.attr == "get" else ""
            self.fail(func, f"methods are limited to {allowed} ('.{func.attr}' is not one){hint}")
        self.check_arity(node, f".{func.attr}()", method, len(node.args))
        receiver = self.expr(func.value)
        args = self.fns(node.args)
        impl, rf, fs = method.impl, receiver.fn, [a.fn for a in args]

        def call(env: _Env) -> Any:
            value = rf(env)
            if value is None:
                return None  # null-safe, like field access
            return impl(env, value, *[f(env) for f in fs])

        return self.fold(node, call, receiver, *args)

    def check_arity(self, node: ast.Call, label: str, helper: _Helper, n: int) -> None:
        low, high = helper.min_args, helper.max_args
        if low <= n <= high:
            return
        if low == high:
            expected = f"{low} argument{'s' if low != 1 else ''}"
        elif high >= MAX_NODES:
            expected = f"at least {low} argument{'s' if low != 1 else ''}"
        else:
            expected = f"{low} to {high} arguments"
        self.fail(node, f"{label} takes {expected} ({n} given)")


def _slot_fn(index: int) -> _Fn:
    return lambda env: env.slots[index]


def _converted(convert: Callable[[_Env, Any], str], fn: _Fn) -> _Fn:
    return lambda env: convert(env, fn(env))


def _loop(source: _Fn, slots: list[int], condition: _Fn | None) -> Callable[[_Env], Iterable[None]]:
    """The iteration of a comprehension: binds the loop variables, charges one step per item, and
    yields once per item that passes the filter (the caller evaluates the element then)."""
    unpack = bool(slots) and slots[-1] == -1
    indices = slots[:-1] if unpack else slots
    n = len(indices)
    single = indices[0] if n == 1 and not unpack else -1

    def run(env: _Env) -> Iterable[None]:
        items = _iteration_source(source(env))
        env.loops += 1
        try:
            store = env.slots
            for item in items:
                env.budget -= 1
                if env.budget < 0:
                    _exhausted()
                if single >= 0:
                    store[single] = item
                else:
                    for index, value in zip(indices, _unpack(item, n), strict=True):
                        store[index] = value
                if condition is None or condition(env):
                    yield None
        finally:
            env.loops -= 1

    return run


# ---------------------------------------------------------------------------------------------------
# Public objects
# ---------------------------------------------------------------------------------------------------


def _evaluation_message(exc: BaseException) -> str:
    if isinstance(exc, _Refusal) and not isinstance(exc, _Unsupported):
        return f"condition stopped: {exc}"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ZeroDivisionError):
        text = "division by zero"
    elif isinstance(exc, RecursionError):
        text = "value too deeply nested"
    elif isinstance(exc, MemoryError):
        text = "out of memory"
    return f"error evaluating condition: {' '.join(text.split())}"


@dataclass(frozen=True)
class Condition:
    """A compiled condition; build with `compile_condition`. Immutable and safe to share between threads."""

    source: str
    names: frozenset[str]  # the context names the expression reads
    _fn: _Fn = field(repr=False, compare=False)
    _nslots: int = field(default=0, repr=False, compare=False)

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """The value of the expression; any evaluation error is a ConditionError."""
        env = _Env(context, [None] * self._nslots if self._nslots else _NO_SLOTS)
        try:
            return self._fn(env)
        except OpreplayError:
            raise  # from the context itself (e.g. a body that cannot be loaded)
        except Exception as exc:
            raise ConditionError(_evaluation_message(exc)) from None

    def test(self, context: Mapping[str, Any]) -> bool:
        """Truthiness of the expression; an evaluation error (e.g. None < 3, a bound exceeded) is False."""
        env = _Env(context, [None] * self._nslots if self._nslots else _NO_SLOTS)
        try:
            return bool(self._fn(env))
        except OpreplayError:
            raise
        except Exception:
            return False

    def _render(self, env: _Env) -> str:
        env.slots = [None] * self._nslots if self._nslots else _NO_SLOTS
        try:
            return _to_str(env, self._fn(env))
        except OpreplayError:
            raise
        except Exception as exc:
            message = _evaluation_message(exc).split(": ", 1)[-1]
            return f"<error: {message}>"


def _parse(text: str, compiler: _Compiler) -> ast.Expression:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for `x is 1`, "\d" escapes
            return ast.parse(text, mode="eval")
    except SyntaxError as exc:
        lineno = exc.lineno or 1
        line = compiler.lines[lineno - 1] if 0 < lineno <= len(compiler.lines) else ""
        offset = exc.offset if exc.offset and exc.offset > 0 else len(line.rstrip("\r\n")) + 1
        raise _CompileError(exc.msg, compiler.column(lineno, offset - 1)) from None
    except (RecursionError, MemoryError):
        raise _CompileError("too deeply nested", None) from None
    except ValueError as exc:  # e.g. NUL characters
        raise _CompileError(str(exc), None) from None


@functools.lru_cache(maxsize=4096)
def _compile(source: str, allowed: frozenset[str]) -> Condition:
    if len(source) > MAX_SOURCE_LENGTH:
        raise _CompileError(f"too long ({len(source):,} characters; at most {MAX_SOURCE_LENGTH:,})", None)
    text = source.lstrip()
    if not text.strip():
        raise _CompileError("the expression is empty", None)
    compiler = _Compiler(text, len(source) - len(text), allowed)
    tree = _parse(text, compiler)
    compiler.check_shape(tree)
    code = compiler.expr(tree.body)
    return Condition(source, frozenset(compiler.reads), code.fn, compiler.nslots)


def _top_level_operands(condition: Condition) -> tuple[str, int, list[ast.expr]] | None:
    """(text, offset, top-level `and` operands) of a compiled condition; None if it cannot be re-read."""
    text = condition.source.lstrip()
    try:
        compiler = _Compiler(text, len(condition.source) - len(text), CONTEXT_NAMES | condition.names)
        body = _parse(text, compiler).body
    except (_CompileError, RecursionError, MemoryError):
        return None
    operands: list[ast.expr] = []
    pending: list[ast.expr] = [body]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
            pending.extend(reversed(node.values))
        else:
            operands.append(node)
    return text, compiler.offset, operands


@functools.lru_cache(maxsize=1024)
def conjuncts(condition: Condition) -> tuple[Condition, ...]:
    """The operands of the condition's top-level `and` (nested ones flattened), each compiled alone.

    For analysis: `condition.test(ctx)` is true only where every conjunct's `test(ctx)` is true (an
    `and` is truthy only when each operand is, and an operand evaluated alone spends less of the
    budget than inside the whole), so a reader that can tell where a conjunct is false, say from
    the few values of the names it reads, may skip those operations without evaluating the
    whole. The converse does not hold: the whole must still be evaluated where all are true.
    A condition that is not an `and` is its own single conjunct.
    """
    found_operands = _top_level_operands(condition)
    if found_operands is None or len(found_operands[2]) < 2:
        return (condition,)
    text, offset, operands = found_operands
    allowed = CONTEXT_NAMES | condition.names
    found: list[Condition] = []
    try:
        for node in operands:
            part = _Compiler(text, offset, allowed)
            code = part.expr(node)
            source = ast.get_source_segment(text, node) or ast.unparse(node)
            found.append(Condition(source, frozenset(part.reads), code.fn, part.nslots))
    except (_CompileError, RecursionError, MemoryError):
        return (condition,)
    return tuple(found)


@dataclass(frozen=True, slots=True)
class FieldEquality:
    """A conjunct `root<...>.key == value`: true only where some dict under `root` maps `key` to `value`.

    `root` is a context name (`obj`, `old`, `req`...); the steps between it and `key` are not kept,
    since what this tells a reader is only a necessary condition on the document's text (see
    `replay.prefilter.BodyScreen`).
    """

    root: str
    key: str
    value: str | int | float | bool


def _literal(node: ast.expr) -> str | int | float | bool | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _literal(node.operand)
        return -inner if isinstance(inner, (int, float)) and not isinstance(inner, bool) else None
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool)):
        return node.value
    return None


def _last_key(node: ast.expr) -> tuple[str, str] | None:
    """(root name, last key) of `name.a[0]["b"].key` or `...["key"]`; None for anything else."""
    if isinstance(node, ast.Attribute):
        key: object = node.attr
    elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        key = node.slice.value
    else:
        return None
    if not isinstance(key, str):
        return None
    base: ast.expr = node.value
    while True:
        if isinstance(base, ast.Attribute) or (
            isinstance(base, ast.Subscript) and isinstance(base.slice, ast.Constant)
        ):
            base = base.value
        elif isinstance(base, ast.Name):
            return base.id, key
        else:
            return None


@functools.lru_cache(maxsize=1024)
def field_equalities(condition: Condition) -> tuple[FieldEquality, ...]:
    """The conjuncts (see `conjuncts`) of the form `root.path.key == literal` (either way round).

    A literal None is left out: a missing key equals it. Null safety makes every step a key lookup
    in a dict or a list index, so where such a conjunct is true, the decoded document under `root`
    holds a dict whose `key` is equal to the literal.
    """
    found_operands = _top_level_operands(condition)
    if found_operands is None:
        return ()
    found: list[FieldEquality] = []
    for node in found_operands[2]:
        if not (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq)):
            continue
        for path, other in ((node.left, node.comparators[0]), (node.comparators[0], node.left)):
            value, reached = _literal(other), _last_key(path)
            if value is not None and reached is not None:
                found.append(FieldEquality(reached[0], reached[1], value))
                break
    return tuple(found)


def _invalid(kind: str, exc: _CompileError) -> ConditionError:
    where = f" at column {exc.column}" if exc.column is not None else ""
    return ConditionError(f"invalid {kind}{where}: {exc.detail}", exc.column)


def compile_condition(source: str, *, names: Collection[str] = CONTEXT_NAMES) -> Condition:
    """Compile an expression once (cached by its text and names); invalid text is a ConditionError.

    `names` are the context names the expression may read (by default `CONTEXT_NAMES`).
    """
    if not isinstance(source, str):
        raise ConditionError(f"invalid condition: expected text, not {_tname(source)}")
    allowed = names if isinstance(names, frozenset) else frozenset(names)
    try:
        return _compile(source, allowed)
    except _CompileError as exc:
        raise _invalid("condition", exc) from None


@dataclass(frozen=True)
class Template:
    """A compiled log-message template, e.g. "{obj.metadata.name} is {obj.status.phase}"."""

    source: str
    names: frozenset[str]
    _pieces: tuple[str | Condition, ...] = field(repr=False, compare=False)

    def render(self, context: Mapping[str, Any]) -> str:
        """The text with each field evaluated; a field that fails renders as "<error: ...>".

        All fields share one evaluation budget.
        """
        env = _new_env(context, 0)
        return "".join(p if isinstance(p, str) else p._render(env) for p in self._pieces)


def _field_end(source: str, start: int) -> int:
    """Index of the "}" closing a template field whose expression starts at `start`, or -1."""
    depth = 0
    i, n = start, len(source)
    while i < n:
        c = source[i]
        if c in "'\"":
            quote = c * 3 if source.startswith(c * 3, i) else c
            i += len(quote)
            while i < n and not source.startswith(quote, i):
                i += 2 if source[i] == "\\" else 1
            i += len(quote)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                return i if c == "}" else -1
            depth -= 1
        i += 1
    return -1


@functools.lru_cache(maxsize=1024)
def _compile_template(source: str, allowed: frozenset[str]) -> Template:
    if len(source) > MAX_TEMPLATE_LENGTH:
        raise _CompileError(f"too long ({len(source):,} characters; at most {MAX_TEMPLATE_LENGTH:,})", None)
    pieces: list[str | Condition] = []
    text: list[str] = []
    names: set[str] = set()
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c == "{" and source.startswith("{{", i):
            text.append("{")
            i += 2
        elif c == "}" and source.startswith("}}", i):
            text.append("}")
            i += 2
        elif c == "}":
            raise _CompileError("single '}' (write '}}' for a literal brace)", i + 1)
        elif c == "{":
            end = _field_end(source, i + 1)
            if end < 0:
                raise _CompileError("'{' is not closed (write '{{' for a literal brace)", i + 1)
            expression = source[i + 1 : end]
            if not expression.strip():
                raise _CompileError("empty field '{}' (write '{{}}' for literal braces)", i + 1)
            try:
                condition = _compile(expression, allowed)
            except _CompileError as exc:
                column = exc.column + i + 1 if exc.column is not None else i + 2
                raise _CompileError(exc.detail, column) from None
            if text:
                pieces.append("".join(text))
                text = []
            pieces.append(condition)
            names |= condition.names
            i = end + 1
        else:
            text.append(c)
            i += 1
    if text:
        pieces.append("".join(text))
    return Template(source, frozenset(names), tuple(pieces))


def compile_template(source: str, *, names: Collection[str] = CONTEXT_NAMES) -> Template:
    """Compile a log-message template: text with {expression} fields; "{{" and "}}" are literal braces."""
    if not isinstance(source, str):
        raise ConditionError(f"invalid template: expected text, not {_tname(source)}")
    allowed = names if isinstance(names, frozenset) else frozenset(names)
    try:
        return _compile_template(source, allowed)
    except _CompileError as exc:
        raise _invalid("template", exc) from None
