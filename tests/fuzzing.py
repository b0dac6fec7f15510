"""Mutated Istio and Envoy documents, for the property tests and the live `mesh.apply` fuzz.

Seeds are valid inputs already in the repository: Istio's Bookinfo samples, the focused golden
inputs, and the raw Envoy resources meshkit itself generates for Bookinfo. `mutate` damages
one seed in a few random ways (a value of the wrong type, an out-of-range number, a misspelt
key, a hostile name, a YAML bomb, cut text) with a `random.Random`, so the live fuzz is
reproducible from a seed and Hypothesis can drive it with `st.randoms()`.

`outcome` says how the parsers (as the daemon calls them) took a text: parsed, refused with the
model's own error, or failed some other way (a bug).
"""

from __future__ import annotations

import copy
import json
import random
import re
from functools import cache
from pathlib import Path

import yaml

from meshkit.model.schema import ModelError

TESTS = Path(__file__).resolve().parent
ISTIO_SEED_FILES = sorted((TESTS / "data" / "istio-bookinfo").glob("*.yaml")) + sorted(
    (TESTS / "golden" / "xds" / "istio").glob("*.yaml"))

# Words of Python's own error vocabulary that must never reach a learner.
PYTHON_NOISE = re.compile(
    r"\b\w+(Error|Exception)\b(?<!SchemaError)(?<!ResourceError)(?<!ModelError)|Traceback|NoneType|not iterable|"
    r"unhashable|not subscriptable|has no attribute|positional argument|object is not|invalid literal for")

HOSTILE_NAMES = ["../../etc/passwd", "0.0.0.0", "not a regex (", "", "*", "1s", "UPPER", "-dash", "dot.",
                 "a" * 300, "sp ace", "ünï", "a/b", "a_b", "..", "%2e%2e", "x\n", "\ud800"]
NASTY = [None, True, 0, -1, 2**31, 2**64, 10**30, 1.5, -0.5, float("nan"), float("inf"), 1e300, "", "x",
         "not a regex (", "(?=x)", "*", "-1s", "1x", "99999999999999h", "1h30m", "0.0.0.0/33", "::1",
         "a" * 2000, "\ud800", "\x00", "中文", [], [1, "a", None], {}, {"value": 1}, {"exact": [1]},
         {"nested": {"deeper": [{"deepest": [[[[1]]]]}]}}, "2001-13-45", "../../etc/passwd"]
BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))


@cache
def istio_seeds() -> tuple[tuple[dict, ...], ...]:
    """The documents of each seed file (a VirtualService with the DestinationRule it needs)."""
    return tuple(tuple(d for d in yaml.safe_load_all(path.read_text()) if d) for path in ISTIO_SEED_FILES)


@cache
def raw_seeds() -> tuple[dict, ...]:
    """A few of the Envoy resources meshkit generates for productpage, as `"@type"` documents."""
    from google.protobuf import json_format

    from meshkit.model import bookinfo
    from meshkit.xds.generate import generate

    mesh = bookinfo()
    docs = []
    for type_url, messages in generate(mesh, mesh.workload("productpage-v1")).items():
        for message in messages[:3]:
            docs.append({"@type": type_url, **json_format.MessageToDict(message, preserving_proto_field_name=True)})
    return tuple(docs)


def _paths(value: object, path: tuple = ()) -> list[tuple]:
    """Every path to a value inside a document (keys and list indexes)."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*path, i))
    return found


def _get(doc: object, path: tuple) -> object:
    for step in path:
        doc = doc[step]  # type: ignore[index]
    return doc


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 2:
        return word + "x"
    i = rng.randrange(len(word) - 1)
    return rng.choice([word[:i] + word[i + 1:], word[:i] + word[i + 1] + word[i] + word[i + 2:], word + "s"])


def mutate_doc(doc: dict, rng: random.Random) -> dict:
    """`doc` with one structural change somewhere."""
    doc = copy.deepcopy(doc)
    paths = _paths(doc)
    path = rng.choice(paths[1:] or paths)
    parent, last = (_get(doc, path[:-1]), path[-1]) if path else (None, None)
    how = rng.randrange(12)
    if how >= 9 and parent is not None:  # a value of the same type at an edge: it may well parse
        parent[last] = _edge_like(parent[last], rng)
    elif parent is None or how == 0:  # a hostile name or namespace
        metadata = doc.setdefault("metadata", {}) if isinstance(doc.get("metadata", {}), dict) else {}
        metadata[rng.choice(["name", "namespace", "name"])] = rng.choice(HOSTILE_NAMES)
        if "@type" in doc:
            doc["name"] = rng.choice(HOSTILE_NAMES)
    elif how in (1, 2, 3):  # a value of the wrong type or range
        parent[last] = copy.deepcopy(rng.choice(NASTY))
    elif how == 4:  # a value from elsewhere in the document (type confusion)
        parent[last] = copy.deepcopy(_get(doc, rng.choice(paths)))
    elif how == 5 and isinstance(parent, dict):  # a misspelt key
        parent[_typo(str(last), rng)] = parent.pop(last)
    elif how == 6:  # a missing field
        parent.pop(last)
    elif how == 7 and isinstance(parent, dict):  # an unknown field
        parent[rng.choice(["extra", "hosts ", "Spec", 7, "weigth"])] = rng.choice(NASTY[:14])
    else:  # a top-level change: kind, apiVersion, @type
        key = rng.choice(["kind", "apiVersion", "@type", "spec", "metadata"])
        doc[key] = copy.deepcopy(rng.choice([*NASTY[:20], "VirtualServices", "networking.istio.io/v2",
                                             "type.googleapis.com/", "type.googleapis.com/os.path",
                                             "type.googleapis.com/envoy.config.cluster.v3.Clusters"]))
    return doc


EDGES = {
    int: [0, 1, 2, 99, 100, 101, 443, 65535, 65536, 2**31 - 1, 2**31, -1],
    float: [0.0, 0.0001, 50.5, 100.0, 100.1, -0.1],
    str: ["", "*", ".*", "*.example.com", "0s", "1h30m", "315576000000s", "315576000001s", "1ms", "v1", "v9",
          "reviews", "nowhere", "10.0.0.0/8", "2001:db8::/32", "unix:///tmp/x", "(a|b)+", "[", "\\1", "x" * 300,
          "/", "GET", "ISTIO_MUTUAL", "UPGRADE", "FROM_REQUEST_PORT", "8080", "request.headers[x]", "source.ip"],
}


def _edge_like(value: object, rng: random.Random) -> object:
    """Another value of the same type, chosen from edge cases."""
    for kind, values in EDGES.items():
        if type(value) is kind:
            return rng.choice(values)
    if isinstance(value, list) and value:
        return [*value, copy.deepcopy(rng.choice(value))]  # one more item
    if isinstance(value, dict) and value:
        return {k: v for k, v in value.items() if rng.random() < 0.7}  # fewer fields
    return value


def dump(docs: list[dict], rng: random.Random) -> str:
    """Documents as YAML or JSON text (JSON carries what YAML cannot, e.g. lone surrogates)."""
    if rng.random() < 0.5:
        try:
            return yaml.safe_dump_all(docs, allow_unicode=False)
        except yaml.YAMLError:
            pass
    return json.dumps(docs if len(docs) > 1 else docs[0])


def mutate_text(text: str, rng: random.Random) -> str:
    """Text-level damage: cut, stray characters, bombs, deep nesting, size."""
    how = rng.randrange(8)
    if how == 0:
        return text[: rng.randrange(len(text) + 1)]
    if how == 1:
        i = rng.randrange(len(text) + 1)
        return text[:i] + rng.choice(["\t", ":", "- ", "{", "]", "&a", "*a", "!!python/object:os.system", "\x00",
                                      "%", "@", "'", '"', "\n  ", "<<: *a"]) + text[i:]
    if how == 2:
        return BOMB
    if how == 3:
        return "a: " + "[" * rng.choice([70, 500, 5000]) + "]" * 3
    if how == 4:
        return "---\n".join([text] * rng.choice([2, 101, 150]))
    if how == 5:
        return text + "\n# " + "x" * (1024 * 1024)
    if how == 6:
        return rng.choice(["", "---", "null", "42", "[1, 2]", "- - -", "{a: 1}", "!!binary AAAA", "a: !!int x",
                           "a: 2001-13-45", "? [a]\n: b", "kind: VirtualService\nkind: VirtualService"])
    return text


def mutated_text(rng: random.Random, raw: bool | None = None) -> str:
    """One to three mutated documents from the seeds, sometimes with text-level damage too."""
    return mutated(rng, raw)[0]


def mutated(rng: random.Random, raw: bool | None = None) -> tuple[str, int]:
    """`mutated_text` and how many documents went into it."""
    raw = rng.random() < 0.3 if raw is None else raw
    if raw:
        docs = [copy.deepcopy(rng.choice(raw_seeds())) for _ in range(rng.choice([1, 1, 2, 3]))]
    else:
        docs = [copy.deepcopy(d) for d in rng.choice(istio_seeds())]
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        i = rng.randrange(len(docs))
        docs[i] = mutate_doc(docs[i], rng)
    text = dump(docs, rng)
    return (mutate_text(text, rng) if rng.random() < 0.15 else text), len(docs)


def gently_mutated(rng: random.Random) -> str:
    """A seed file with one to four values swapped for edge cases of the same type: most of these
    parse, so they reach analysis and the translators."""
    docs = [copy.deepcopy(d) for d in rng.choice(istio_seeds())]
    for _ in range(rng.randint(1, 4)):
        doc = rng.choice(docs)
        path = rng.choice(_paths(doc)[1:])
        if path[0] not in ("apiVersion", "kind"):
            parent = _get(doc, path[:-1])
            parent[path[-1]] = _edge_like(parent[path[-1]], rng)
    return json.dumps(docs)


def outcome(text: str) -> tuple[str, object]:
    """('parsed', (raws, istio)) or ('refused', message), as the daemon reads an apply.

    Anything else raises: that is the bug these tests look for."""
    from meshkit.model.istio import parse_istio_document
    from meshkit.model.raw import is_raw_document, load_documents, parse_document

    try:
        docs = load_documents(text)
        raws = [parse_document(doc, i) for i, doc in enumerate(docs) if is_raw_document(doc)]
        istio = [parse_istio_document(doc, i) for i, doc in enumerate(docs) if not is_raw_document(doc)]
    except ModelError as exc:
        return "refused", str(exc)
    return "parsed", (raws, istio)


def translate(istio: list) -> int:
    """Apply parsed Istio resources to Bookinfo as the boss does (`service.documents.with_istio`: analysis
    errors refuse the apply) and generate three sidecars' xDS; the number of resources generated."""
    from meshkit.errors import InvalidInput
    from meshkit.model import bookinfo
    from meshkit.service.documents import with_istio
    from meshkit.xds.generate import generate

    try:
        candidate, _ = with_istio(bookinfo(), tuple(istio))
    except InvalidInput:
        return 0
    return sum(len(m) for pod in ("productpage-v1", "reviews-v2", "tcp-echo-v1")
               for m in generate(candidate, candidate.workload(pod)).values())


NAMED_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %s, namespace: %s}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
"""
