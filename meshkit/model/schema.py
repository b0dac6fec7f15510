"""A small strict schema checker: unknown fields, wrong shapes and bad values, with path and nearest name.

Istio validates its CRDs against OpenAPI schemas and rejects unknown fields; meshkit does the
same before anything is pushed, so a learner sees `spec.http[0].route[0].destnation: unknown
field (did you mean 'destination'?)` instead of a silent no-op.

A schema is a plain Python value:
- `Obj({...})` a mapping with known keys (each key → a schema), `Map(schema)` free (string) keys,
- `[schema]` a list of items, `Enum(...)` one of some words,
- leaves: `str`, `bool`, `int` (0 to 2³¹-1), `float` (finite), `Int(low, high)` and
  `Num(low, high)` for narrower ranges, `Duration` (`2s`, `100ms`, `1h30m`; `DurationOf(high)`), `Text(test, what)`
  for a string a function checks (a regex, a CIDR),
- `ANY` anything (left to a later, semantic check).

`conform` checks and also returns the value as the translators want it: numbers where a string
is expected become strings (YAML reads `version: 1` as a number; Kubernetes' JSON decoder would
refuse it, meshkit is lenient) and mapping keys become strings.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

INT32_MAX = 2**31 - 1
# protobuf's Duration holds at most 10,000 years.
MAX_DURATION_S = 315_576_000_000


class ModelError(ValueError):
    """Any document meshkit refuses to read; the message names the document, the field and the fix."""


class SchemaError(ModelError):
    """A document does not fit its schema; the message names the path."""


@dataclass(frozen=True)
class Obj:
    fields: Mapping[str, object]
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class Map:
    values: object


@dataclass(frozen=True)
class Enum:
    choices: tuple[str, ...]


@dataclass(frozen=True)
class Int:
    low: int = 0
    high: int = INT32_MAX


@dataclass(frozen=True)
class Num:
    low: float = -math.inf
    high: float = math.inf


@dataclass(frozen=True)
class Text:
    """A string `test` checks: it returns what is wrong (None when the value is fine)."""

    test: Callable[[str], str | None]
    what: str


class _Any:
    def __repr__(self) -> str:
        return "ANY"


@dataclass(frozen=True)
class DurationOf:
    """An Istio duration ("1s", "0.5s", "100ms", "1h30m"; a bare number is seconds) up to `high` seconds."""

    high: float = MAX_DURATION_S


ANY = _Any()
Duration = DurationOf()
PORT = Int(1, 65535)
PERCENTAGE = Num(0, 100)

_UNITS = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")


def duration_seconds(text: str) -> float | None:
    """Seconds in an Istio duration string, or None when it is not one."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def check(value: object, schema: object, path: str) -> list[str]:
    """Every problem found in `value` against `schema`, each prefixed by its path."""
    return conform(value, schema, path)[1]


def conform(value: object, schema: object, path: str) -> tuple[object, list[str]]:
    """`value` as the translators want it (see the module docstring), and every problem found."""
    problems: list[str] = []
    return _walk(value, schema, path, problems), problems


def _walk(value: object, schema: object, path: str, problems: list[str]) -> object:
    if schema is ANY:
        return value
    if isinstance(schema, Obj | Map):
        if not isinstance(value, Mapping):
            problems.append(f"{path}: expected a mapping, got {describe(value)}")
            return value
        if isinstance(schema, Map):
            return {str(key): _walk(item, schema.values, f"{path}.{key}", problems) for key, item in value.items()}
        out = {}
        for key, item in value.items():
            if key not in schema.fields:
                hint = nearest(str(key), schema.fields)
                problems.append(f"{path}.{key}: unknown field" + (f" (did you mean {hint!r}?)" if hint else ""))
            else:
                out[key] = _walk(item, schema.fields[key], f"{path}.{key}", problems)
        problems += [f"{path}.{key}: required field is missing" for key in schema.required if key not in value]
        return out
    if isinstance(schema, list):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {describe(value)}")
            return value
        return [_walk(item, schema[0], f"{path}[{i}]", problems) for i, item in enumerate(value)]
    problem = _leaf_problem(value, schema)
    if problem:
        problems.append(f"{path}: {problem}")
        return value
    if (schema is str or isinstance(schema, Text)) and not isinstance(value, str):
        return str(value)
    return value


def _leaf_problem(value: object, kind: object) -> str | None:
    """What is wrong with a leaf value (None when nothing is)."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(kind, Enum):
        if isinstance(value, str) and value in kind.choices:
            return None
        hint = nearest(str(value), kind.choices)
        return (f"{shown(value)} is not one of {', '.join(kind.choices)}"
                + (f" (did you mean {hint!r}?)" if hint else ""))
    if isinstance(kind, DurationOf):
        return _duration_problem(value, kind.high)
    if kind is bool:
        return None if isinstance(value, bool) else f"expected true or false, got {describe(value)}"
    if kind is str or isinstance(kind, Text):
        if not (isinstance(value, str) or number):
            return f"expected a string, got {describe(value)}"
        return kind.test(str(value)) if isinstance(kind, Text) else None
    if kind is int or isinstance(kind, Int):
        low, high = (kind.low, kind.high) if isinstance(kind, Int) else (0, INT32_MAX)
        if not isinstance(value, int) or isinstance(value, bool):
            return f"expected an integer, got {describe(value)}"
        return None if low <= value <= high else f"{value} is out of range: use a whole number from {low} to {high}"
    if kind is float or isinstance(kind, Num):
        low, high = (kind.low, kind.high) if isinstance(kind, Num) else (-math.inf, math.inf)
        if not number:
            return f"expected a number, got {describe(value)}"
        if not math.isfinite(value):  # type: ignore[arg-type]
            return f"{value} is not a finite number"
        return None if low <= value <= high else f"{value} is out of range: use a number from {low:g} to {high:g}"
    return f"expected {kind!r}, got {describe(value)}"


def _duration_problem(value: object, high: float) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return f"expected a duration like '2s' or '500ms', got {describe(value)}"
    seconds = float(value) if not isinstance(value, str) else duration_seconds(value)
    if seconds is None:
        return f"{shown(value)} is not a duration like '2s' or '500ms' (units: h, m, s, ms, us, ns)"
    if not math.isfinite(seconds) or not 0 <= seconds <= high:
        years = " (10,000 years)" if high == MAX_DURATION_S else ""
        return f"{shown(value)} is out of range: this duration is from 0s to {high:.0f}s{years}"
    return None


def shown(value: object, limit: int = 60, quote: bool = True) -> str:
    """A value as a message quotes it: repr (or the bare string), cut to `limit` characters."""
    text = repr(value) if quote or not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


_KINDS = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
          float: "a number"}


def describe(value: object) -> str:
    """How a value reads to a learner: "a mapping", "an integer", "nothing (null)"."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    return _KINDS.get(type(value), f"a YAML {_yaml_kind(value)} value")


def _yaml_kind(value: object) -> str:
    """How YAML names the odd scalar types it can produce (timestamps, binary, sets)."""
    name = type(value).__name__
    return {"date": "date", "datetime": "timestamp", "bytes": "binary", "set": "set"}.get(name, "non-JSON")


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt `word`, if any is close enough to be a likely typo."""
    found = difflib.get_close_matches(word[:200], list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None
