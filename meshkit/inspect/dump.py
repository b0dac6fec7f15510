"""Walking Envoy's `/config_dump`: the resources it holds, their versions, and what it rejected.

A config dump is `{"configs": [<one section per kind>]}`; each section is tagged with its
`@type` (`…ListenersConfigDump`, `…ClustersConfigDump`, `…RoutesConfigDump`,
`…EndpointsConfigDump`) and splits resources into *static* ones (from the bootstrap, and inline
route configs of listeners) and *dynamic* ones (from xDS, each with `version_info`,
`last_updated` and, after a NACK, an `error_state`). Envoy writes snake_case field names.

    >>> [listener["name"] for listener in listeners(dump)]
    ['virtualOutbound', 'virtualInbound', '0.0.0.0_9080', ..., '0.0.0.0_15090', '0.0.0.0_15021']
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

__all__ = ["clusters", "endpoint_configs", "listeners", "route_configs", "section", "to_camel", "versions"]

# kind -> (section, dynamic entries key, static entries key, resource key, xDS short name)
_KINDS = {
    "listeners": ("ListenersConfigDump", "dynamic_listeners", "static_listeners", "listener", "LDS"),
    "clusters": ("ClustersConfigDump", "dynamic_active_clusters", "static_clusters", "cluster", "CDS"),
    "routes": ("RoutesConfigDump", "dynamic_route_configs", "static_route_configs", "route_config", "RDS"),
    "endpoints": ("EndpointsConfigDump", "dynamic_endpoint_configs", "static_endpoint_configs",
                  "endpoint_config", "EDS"),
}


def section(dump: dict[str, Any], kind: str) -> dict[str, Any]:
    """The part of `dump` whose `@type` ends in `kind`, e.g. `"ListenersConfigDump"` ({} if absent)."""
    return next((c for c in dump.get("configs", []) if c.get("@type", "").endswith("." + kind)), {})


def _resources(dump: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Dynamic resources first, then static ones: the order istioctl reads them in."""
    name, dynamic, static, key, _ = _KINDS[kind]
    part = section(dump, name)
    found = [_active(entry, key) for entry in part.get(dynamic, [])]
    found += [entry.get(key) for entry in part.get(static, [])]
    return [resource for resource in found if resource]


def _active(entry: dict[str, Any], key: str) -> dict[str, Any] | None:
    # A dynamic listener nests the version it serves under active_state; other kinds hold it directly.
    return (entry.get("active_state") or {}).get(key) if key == "listener" else entry.get(key)


def listeners(dump: dict[str, Any]) -> list[dict[str, Any]]:
    """Every active listener (dynamic, then static); warming or rejected ones are not serving."""
    return _resources(dump, "listeners")


def clusters(dump: dict[str, Any]) -> list[dict[str, Any]]:
    """Every active cluster (dynamic, then static)."""
    return _resources(dump, "clusters")


def route_configs(dump: dict[str, Any]) -> list[dict[str, Any]]:
    """Every route configuration: from RDS, then inline ones (Envoy lists one per HTTP filter chain)."""
    return _resources(dump, "routes")


def endpoint_configs(dump: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ClusterLoadAssignment (needs a dump taken with `include_eds`)."""
    return _resources(dump, "endpoints")


def versions(dump: dict[str, Any]) -> pd.DataFrame:
    """One row per xDS-delivered resource: which version Envoy serves, and what it rejected.

    Columns `TYPE NAME VERSION LAST UPDATED STATE ERROR`. STATE is `ACTIVE`, `WARMING`
    (listeners and clusters waiting for their dependencies) or `REJECTED` (only a failed update
    is known); ERROR is Envoy's NACK text from `error_state.details`, kept even when an older
    version is still active. Static resources have no version and are left out.

    >>> versions(nacked_dump).query("ERROR != ''")[["TYPE", "NAME"]]
      TYPE          NAME
    5  LDS  bad-listener
    """
    rows = [row for kind in _KINDS for row in _version_rows(dump, kind)]
    table = pd.DataFrame(rows, columns=["TYPE", "NAME", "VERSION", "LAST UPDATED", "STATE", "ERROR"])
    table.attrs["padding"] = 5
    return table


def _version_rows(dump: dict[str, Any], kind: str) -> Iterator[list[str]]:
    name, dynamic, _, key, short = _KINDS[kind]
    part = section(dump, name)
    entries = [(entry, "ACTIVE") for entry in part.get(dynamic, [])]
    entries += [(entry, "WARMING") for entry in part.get("dynamic_warming_clusters", [])]
    rejected = set()
    for entry, state in entries:
        if kind == "listeners":
            held = [("ACTIVE", entry.get("active_state")), ("WARMING", entry.get("warming_state"))]
        else:
            held = [(state, entry)]
        held = [(label, h) for label, h in held if h and h.get(key)]
        error = entry.get("error_state", {})
        for label, h in held:
            yield [short, _name_of(h[key]), h.get("version_info", ""), h.get("last_updated", ""), label,
                   error.get("details", "")]
        # Envoy also lists a rejected update without a name; show each rejection once.
        failed = entry.get("name") or _name_of(error.get("failed_configuration", {}))
        if error and not held and (failed, error.get("details")) not in rejected:
            rejected.add((failed, error.get("details")))
            yield [short, failed, "", error.get("last_update_attempt", ""), "REJECTED", error.get("details", "")]


def _name_of(resource: dict[str, Any]) -> str:
    return resource.get("name") or resource.get("cluster_name", "")


# --- protojson names --------------------------------------------------------------------------

# Fields whose value is a map<string, …>: the keys are data (filter names, metadata namespaces,
# policy names, matcher values) and stay as they are; the values are still messages.
_MAP_FIELDS = frozenset({
    "typed_filter_metadata", "typed_per_filter_config", "typed_extension_protocol_options",
    "policies", "map", "named_endpoints", "source_codes", "dynamic_parameters",
})
# Fields whose value is (a map of) google.protobuf.Struct: free-form JSON, copied verbatim.
_STRUCT_FIELDS = frozenset({"filter_metadata", "extension_protocol_options"})
# Struct-valued fields that share a name with message-valued ones elsewhere: (parent, field).
_STRUCT_IN = frozenset({("node", "metadata"), ("transport_socket_matches", "match")})
# Any types whose JSON carries free-form Struct data.
_STRUCT_TYPES = ("google.protobuf.Struct", "google.protobuf.Value", "udpa.type.v1.TypedStruct",
                 "xds.type.v3.TypedStruct")


def to_camel(value: Any, parent: str = "") -> Any:
    """Envoy's snake_case JSON as protojson prints it (istioctl `-o json`): lowerCamelCase names.

    The rule: a field name loses each `_` and upper-cases the letter after it
    (`use_original_dst` → `useOriginalDst`, `http2_protocol_options` → `http2ProtocolOptions`),
    like protoc's json_name. Not renamed, because they are data rather than field names:
    `@type`; the keys of map fields (`typed_per_filter_config`, `typed_filter_metadata`, RBAC
    `policies`, matcher `map`, …); and everything inside google.protobuf.Struct values
    (`filter_metadata`, `node.metadata`, `transport_socket_matches[].match`, TypedStruct values).

    >>> to_camel({"filter_metadata": {"istio": {"config": "/apis/x"}}, "use_original_dst": True})
    {'filterMetadata': {'istio': {'config': '/apis/x'}}, 'useOriginalDst': True}
    """
    if isinstance(value, list):
        return [to_camel(item, parent) for item in value]
    if not isinstance(value, dict):
        return value
    if str(value.get("@type", "")).endswith(_STRUCT_TYPES):
        return {("@type" if k == "@type" else _camel(k)): v for k, v in value.items()}
    out = {}
    for key, item in value.items():
        if key == "@type" or key in _STRUCT_FIELDS or (parent, key) in _STRUCT_IN:
            out[_camel(key) if key != "@type" else key] = item
        elif key in _MAP_FIELDS and isinstance(item, dict):
            out[_camel(key)] = {k: to_camel(v, key) for k, v in item.items()}
        else:
            out[_camel(key)] = to_camel(item, key)
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
