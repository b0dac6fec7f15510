"""Reading a learner's file into documents, with limits so that no input can hang the boss.

YAML (several `---` documents) or JSON (an object or a list of them). What is refused, each with
a message that says the limit and what to do:
- more than `MAX_BYTES` of text or `MAX_DOCUMENTS` documents in one apply,
- nesting deeper than `MAX_DEPTH`,
- more than `MAX_ALIASES` YAML aliases (`*name`), or aliases that expand the data past
  `MAX_VALUES` values: a "billion laughs" file is a few hundred bytes that expand to gigabytes,
- strings that cannot be sent as UTF-8 (a lone `\\ud800` escape).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import yaml

from .schema import ModelError, describe

MAX_BYTES = 1024 * 1024
MAX_DOCUMENTS = 2_000  # a file of 1,000 ServiceEntries (benchmarks/scale.py, lab 12) fits twice over
MAX_DEPTH = 64
MAX_ALIASES = 100
MAX_VALUES = 250_000
PURE_PYTHON_MAX = 128 * 1024  # bytes: the longest text re-read for a clearer YAML error

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


class ResourceError(ModelError):
    """A document that cannot be read or cannot become an Envoy v3 message; the text says where and why."""


def load_documents(text: str) -> list[dict]:
    """YAML (several `---` documents allowed) or JSON (an object or a list) into dicts."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise ResourceError(f"the text is {size / 1024:.0f} KiB; meshkit takes at most {MAX_BYTES // 1024} KiB "
                            "per apply: split it into several files and apply them one by one")
    loaded = load_yaml_all(text)
    docs: list[dict] = []
    for item in loaded:
        if item is None:
            continue
        for doc in item if isinstance(item, list) else [item]:
            if not isinstance(doc, dict):
                raise ResourceError(f"document {len(docs) + 1}: each document must be a mapping "
                                    f"(apiVersion/kind/... or \"@type\"/...), got {describe(doc)}")
            docs.append(doc)
            if len(docs) > MAX_DOCUMENTS:
                raise ResourceError(f"more than {MAX_DOCUMENTS} documents; meshkit takes at most "
                                    f"{MAX_DOCUMENTS} per apply: split the file")
    if not docs:
        raise ResourceError("no documents found")
    return docs


def load_yaml_all(text: str) -> list[object]:
    """Every YAML document in `text`, screened for depth, aliases and expanded size."""
    try:
        _screen_events(text)
        loaded = list(yaml.load_all(text, Loader=_Loader))
    except ModelError:
        raise
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(exc):  # libyaml's own limit, met while looking ahead
            raise ResourceError(f"nested more than {MAX_DEPTH} levels deep; flatten it") from exc
        said = str(_pure_python_error(text) or exc)
        said = said.replace("found unhashable key", "found a list or mapping used as a key")
        raise ResourceError(f"not valid YAML or JSON: {said}") from exc
    except RecursionError as exc:  # the screen bounds depth; this is a last guard
        raise ResourceError(f"nesting too deep; meshkit reads at most {MAX_DEPTH} levels") from exc
    except (ValueError, TypeError, OverflowError) as exc:  # a tagged or date-like scalar that is not one
        raise ResourceError(f"not valid YAML or JSON: a value cannot be read as its type ({plain(str(exc))})") from exc
    budget = [MAX_VALUES]
    for index, item in enumerate(loaded):
        _screen_values(item, index, budget)
    return loaded


def _pure_python_error(text: str) -> yaml.YAMLError | None:
    """PyYAML's own parser quotes the line with a caret under the fault, where libyaml gives only a
    position; run it (events only: it does not recurse) on the error path to say it that way.
    Not on big texts: it is pure Python, and slower still on deep flow nesting."""
    if len(text) > PURE_PYTHON_MAX or text.count("[") + text.count("{") > MAX_DEPTH * 16:
        return None
    try:
        for _ in yaml.parse(text, Loader=yaml.SafeLoader):
            pass
    except yaml.YAMLError as exc:
        return exc
    return None


def _screen_events(text: str) -> None:
    """Refuse deep nesting and many aliases before anything is built (PyYAML's builder recurses)."""
    depth = aliases = document = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.DocumentStartEvent):
            document += 1
        elif isinstance(event, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                raise ResourceError(f"YAML document {document}: nested more than {MAX_DEPTH} levels deep "
                                    f"(line {event.start_mark.line + 1}); flatten it")
        elif isinstance(event, _CLOSE):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise ResourceError(f"YAML document {document}: more than {MAX_ALIASES} aliases (*name, line "
                                    f"{event.start_mark.line + 1}); meshkit refuses them so that a small file "
                                    "cannot expand into gigabytes: write the values out")


def _screen_values(root: object, index: int, budget: list[int]) -> None:
    """Walk the data as aliases expand it, counting values against `budget`, bounding depth and
    checking every string can be sent as UTF-8."""
    stack: list[tuple[object, int]] = [(root, 0)]
    while stack:
        value, depth = stack.pop()
        budget[0] -= 1
        if budget[0] < 0:
            raise ResourceError(f"YAML document {index + 1}: expands to more than {MAX_VALUES} values "
                                f"(aliases repeating data?); meshkit takes at most {MAX_VALUES} per apply")
        if depth > MAX_DEPTH:
            raise ResourceError(f"YAML document {index + 1}: nested more than {MAX_DEPTH} levels deep "
                                "once aliases are expanded; flatten it")
        if isinstance(value, str):
            _check_text(value, index)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(key, str):
                    _check_text(key, index)
                stack.append((item, depth + 1))
        elif isinstance(value, list | tuple | set):
            stack.extend((item, depth + 1) for item in value)


def _check_text(value: str, index: int) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ResourceError(f"YAML document {index + 1}: the string {value[:40]!r} holds a character UTF-8 "
                            f"cannot carry (a lone surrogate at position {exc.start}); remove it") from None


# What protobuf's JSON reader says in Python's words, and what it means for a YAML writer.
_PLAIN = (
    (re.compile(r"expected string or bytes-like object|has no attribute '(split|encode|strip)'"), "expected a string"),
    (re.compile(r"invalid literal for int\(\) with base \d+: (.*)"), r"\1 is not an integer"),
    (re.compile(r"int\(\) argument must be|could not convert|must be real number"), "expected a number"),
    (re.compile(r"unhashable type|string indices must be integers"),
     "expected a name or a number, not a list or mapping"),
    (re.compile(r"object is not (iterable|subscriptable)|is not a mapping|object has no attribute 'items'"),
     "expected a mapping or a list here"),
)
_PYTHON_WORDS = re.compile(r"\w+(Error|Exception)\b|<class |object has no attribute|NoneType|\bint\(\)")


def plain(text: str) -> str:
    """protobuf's or Python's wording of a bad value, as a learner writing YAML reads it."""
    for pattern, meaning in _PLAIN:
        match = pattern.search(text)
        if match:
            return match.expand(meaning) if match.groups() else meaning
    text = text.strip().rstrip(".")
    if _PYTHON_WORDS.search(text) or not text:
        return "a value of the wrong type for this field"
    return text[:300]
