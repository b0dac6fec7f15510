"""A small strict schema checker: unknown fields and wrong shapes, with path and nearest name.

Istio validates its CRDs against OpenAPI schemas and rejects unknown fields; meshkit does the
same before anything is pushed, so a learner sees `spec.http[0].route[0].destnation: unknown
field (did you mean 'destination'?)` instead of a silent no-op.

A schema is a plain Python value:
- `Obj({...})` a mapping with known keys (each key → a schema), `Map(schema)` free keys,
- `[schema]` a list of items, a type (`str`, `int`, `float`, `bool`) or `Enum(...)` for leaves,
- `ANY` anything (left to a later, semantic check).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class SchemaError(ValueError):
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


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()

# Istio durations ("1s", "0.5s", "100ms") and numbers given as strings are strings in YAML.
Duration = str


def check(value: object, schema: object, path: str) -> list[str]:
    """Every problem found in `value` against `schema`, each prefixed by its path."""
    if schema is ANY:
        return []
    if isinstance(schema, Obj):
        if not isinstance(value, Mapping):
            return [f"{path}: expected a mapping, got {_kind(value)}"]
        problems = []
        for key, item in value.items():
            if key not in schema.fields:
                hint = nearest(str(key), schema.fields)
                problems.append(
                    f"{path}.{key}: unknown field" + (f" (did you mean {hint!r}?)" if hint else "")
                )
            else:
                problems += check(item, schema.fields[key], f"{path}.{key}")
        problems += [f"{path}.{key}: required field is missing" for key in schema.required if key not in value]
        return problems
    if isinstance(schema, Map):
        if not isinstance(value, Mapping):
            return [f"{path}: expected a mapping, got {_kind(value)}"]
        return [p for key, item in value.items() for p in check(item, schema.values, f"{path}.{key}")]
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {_kind(value)}"]
        return [p for i, item in enumerate(value) for p in check(item, schema[0], f"{path}[{i}]")]
    if isinstance(schema, Enum):
        if value not in schema.choices:
            hint = nearest(str(value), schema.choices)
            return [f"{path}: {value!r} is not one of {', '.join(schema.choices)}"
                    + (f" (did you mean {hint!r}?)" if hint else "")]
        return []
    return _check_leaf(value, schema, path)


def _check_leaf(value: object, kind: object, path: str) -> list[str]:
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return []
    if kind is int and isinstance(value, bool):
        return [f"{path}: expected an integer, got a boolean"]
    if kind is str and isinstance(value, int | float) and not isinstance(value, bool):
        return []  # YAML turns `timeout: 10` into a number; Istio's JSON parser is as lenient
    if isinstance(kind, type) and not isinstance(value, kind):
        return [f"{path}: expected {_names.get(kind, kind.__name__)}, got {_kind(value)}"]
    return []


_names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _kind(value: object) -> str:
    if value is None:
        return "nothing (null)"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt `word`, if any is close enough to be a likely typo."""
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None
