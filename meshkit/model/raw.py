"""Raw Envoy orders: v3 resources written in Envoy's own schema, as YAML or JSON.

A learner can bypass the Istio layer and hand the lieutenant a Listener, RouteConfiguration,
Cluster or ClusterLoadAssignment directly. Each document names its type the way Envoy's
`/config_dump` does, with `"@type"`:

>>> docs = parse_resources('''
... "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
... name: "9080"
... virtual_hosts: []
... ''')
>>> docs[0].name, docs[0].short_type
('9080', 'RDS')

Schema errors are caught here, before anything is pushed, with the field path and the nearest
valid field name. Whether Envoy accepts the values is Envoy's call (ACK or NACK).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from dataclasses import dataclass

import yaml
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import json_format, symbol_database
from google.protobuf.message import Message

from .envoy_types import CLUSTER, ENDPOINT, LISTENER, ROUTE, SHORT_NAMES
from .schema import nearest

# The types a learner may hand over raw (secrets come from the boss's CA, never from a file).
TYPES: dict[str, tuple[str, type[Message]]] = {
    url: (SHORT_NAMES[url], cls)
    for url, cls in (
        (CLUSTER, cluster_pb2.Cluster),
        (ENDPOINT, endpoint_pb2.ClusterLoadAssignment),
        (LISTENER, listener_pb2.Listener),
        (ROUTE, route_pb2.RouteConfiguration),
    )
}


class ResourceError(ValueError):
    """A raw resource that cannot become an Envoy v3 message; the text says where and why."""


@dataclass(frozen=True)
class RawResource:
    """One parsed Envoy resource and the document it came from."""

    type_url: str
    message: Message
    source: dict

    @property
    def short_type(self) -> str:
        return TYPES[self.type_url][0]

    @property
    def name(self) -> str:
        if self.short_type == "EDS":
            return self.message.cluster_name  # type: ignore[attr-defined]
        return self.message.name  # type: ignore[attr-defined]


def load_documents(text: str) -> list[dict]:
    """YAML (several `---` documents allowed) or JSON (an object or a list) into dicts."""
    try:
        loaded = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ResourceError(f"not valid YAML or JSON: {exc}") from exc
    docs: list[dict] = []
    for item in loaded:
        if item is None:
            continue
        for doc in item if isinstance(item, list) else [item]:
            if not isinstance(doc, dict):
                raise ResourceError(f"each document must be a mapping, got {type(doc).__name__}")
            docs.append(doc)
    if not docs:
        raise ResourceError("no documents found")
    return docs


def is_raw_document(doc: dict) -> bool:
    return "@type" in doc


def parse_resources(text: str) -> list[RawResource]:
    """Parse every document; fail on the first that is not a valid Envoy v3 resource."""
    return [parse_document(doc, index) for index, doc in enumerate(load_documents(text))]


def parse_document(doc: dict, index: int = 0) -> RawResource:
    where = f"document {index + 1}"
    type_url = doc.get("@type")
    if type_url not in TYPES:
        known = ", ".join(TYPES)
        hint = nearest(str(type_url), TYPES)
        raise ResourceError(
            f"{where}: '@type' is {type_url!r}; expected one of {known}"
            + (f" (did you mean {hint}?)" if hint else "")
        )
    short, cls = TYPES[type_url]
    body = {k: v for k, v in doc.items() if k != "@type"}
    message = cls()
    try:
        _import_any_types(body)
        json_format.ParseDict(json.loads(json.dumps(body, default=str)), message)
    except json_format.ParseError as exc:
        raise ResourceError(f"{where} ({short}): {_explain(exc, cls)}") from exc
    name = message.cluster_name if short == "EDS" else message.name  # type: ignore[attr-defined]
    if not name:
        field = "cluster_name" if short == "EDS" else "name"
        raise ResourceError(f"{where} ({short}): the resource has no {field!r}; Envoy finds it by name")
    return RawResource(type_url, message, doc)


_NO_FIELD = re.compile(r'Message type "([\w.]+)" has no field named "(\w+)" at "([^"]*)"')


def _explain(exc: json_format.ParseError, cls: type[Message]) -> str:
    """Turn protobuf's parse error into field path + nearest valid name."""
    text = str(exc)
    match = _NO_FIELD.search(text)
    if not match:
        return text
    full_name, field, path = match.groups()
    try:
        descriptor = symbol_database.Default().pool.FindMessageTypeByName(full_name)
        names = [f.name for f in descriptor.fields] + [f.json_name for f in descriptor.fields]
    except KeyError:
        names = []
    hint = nearest(field, names)
    location = path or cls.DESCRIPTOR.name
    suggestion = f"; did you mean {hint!r}?" if hint else ""
    return f"unknown field {field!r} at {location} ({full_name}){suggestion}"


def _import_any_types(value: object) -> None:
    """Load the proto modules behind every `@type` inside `value`, so typed_config parses."""
    if isinstance(value, dict):
        url = value.get("@type")
        if isinstance(url, str):
            _import_package_of(url.rsplit("/", 1)[-1])
        for item in value.values():
            _import_any_types(item)
    elif isinstance(value, list):
        for item in value:
            _import_any_types(item)


def _import_package_of(full_name: str) -> None:
    try:
        symbol_database.Default().pool.FindMessageTypeByName(full_name)
        return
    except KeyError:
        pass
    package = full_name.rsplit(".", 1)[0]
    try:
        module = importlib.import_module(package)
    except ImportError:
        return  # ParseDict then reports the unknown type by name
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        if info.name.endswith("_pb2"):
            importlib.import_module(f"{package}.{info.name}")
