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

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import json_format, symbol_database
from google.protobuf.message import Message

from .documents import ResourceError, load_documents, plain
from .envoy_types import CLUSTER, ENDPOINT, LISTENER, ROUTE, SHORT_NAMES
from .schema import nearest, shown

__all__ = ["TYPES", "RawResource", "ResourceError", "load_documents", "parse_document", "parse_resources"]

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


def is_raw_document(doc: dict) -> bool:
    return "@type" in doc


def parse_resources(text: str) -> list[RawResource]:
    """Parse every document; fail on the first that is not a valid Envoy v3 resource."""
    return [parse_document(doc, index) for index, doc in enumerate(load_documents(text))]


def parse_document(doc: dict, index: int = 0) -> RawResource:
    """One document as an Envoy v3 message, or ResourceError naming the document, the field and the fix."""
    type_url = doc.get("@type")
    where = f"document {index + 1}"
    if not isinstance(type_url, str) or type_url not in TYPES:
        known = ", ".join(TYPES)
        hint = nearest(str(type_url), TYPES)
        raise ResourceError(
            f"{where}: '@type' is {shown(type_url)}; expected one of {known}"
            + (f" (did you mean {hint}?)" if hint else "")
        )
    short, cls = TYPES[type_url]
    name = doc.get("cluster_name" if short == "EDS" else "name", doc.get("clusterName", ""))
    where = f"{where} ({short} {shown(name, quote=False) if name else 'without a name'})"
    body = {k: v for k, v in doc.items() if k != "@type"}
    message = cls()
    try:
        _import_any_types(body)
        json_format.ParseDict(json.loads(json.dumps(body, default=str)), message)
    except json_format.ParseError as exc:
        raise ResourceError(f"{where}: {_explain(exc, cls)}") from None
    except RecursionError:
        raise ResourceError(f"{where}: nested too deep for Envoy's schema; flatten it") from None
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError) as exc:
        # protobuf's JSON reader lets a few shapes through as plain exceptions (odd keys, huge numbers)
        raise ResourceError(f"{where}: Envoy's schema cannot read this document ({plain(str(exc))}); check the "
                            "field types against the Envoy API reference") from None
    name = message.cluster_name if short == "EDS" else message.name  # type: ignore[attr-defined]
    if not name:
        field = "cluster_name" if short == "EDS" else "name"
        raise ResourceError(f"{where}: the resource has no {field!r}; Envoy finds it by name")
    return RawResource(type_url, message, doc)



_NO_FIELD = re.compile(r'Message type "([\w.]+)" has no field named "([^"]*)" at "([^"]*)"')
_CHAIN = re.compile(r"Failed to parse (\S+) field: ")
def _explain(exc: json_format.ParseError, cls: type[Message]) -> str:
    """Turn protobuf's parse error into field path + nearest valid name, or path + what is wrong."""
    text = str(exc)
    match = _NO_FIELD.search(text)
    if not match:
        fields = _CHAIN.findall(text)
        location = ".".join([cls.DESCRIPTOR.name, *fields])
        return f"{location}: {plain(_CHAIN.sub('', text))}"
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


# Only Envoy's, xDS's and protobuf's own packages are imported on a document's say-so.
_PROTO_PACKAGES = ("envoy.", "xds.", "udpa.", "google.protobuf.", "validate.")


def _import_package_of(full_name: str) -> None:
    if not full_name.startswith(_PROTO_PACKAGES) or not all(part.isidentifier() for part in full_name.split(".")):
        return  # ParseDict then reports the unknown type by name
    try:
        symbol_database.Default().pool.FindMessageTypeByName(full_name)
        return
    except KeyError:
        pass
    package = full_name.rsplit(".", 1)[0]
    try:
        module = importlib.import_module(package)
    except (ImportError, ValueError):
        return  # ParseDict then reports the unknown type by name
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        if info.name.endswith("_pb2"):
            importlib.import_module(f"{package}.{info.name}")
