"""`istioctl proxy-config` over Envoy's own JSON: listeners, routes, clusters, endpoints.

Each table function takes what Envoy's admin API returned (`/config_dump` for listeners,
routes and clusters; `/clusters?format=json` for endpoints) and returns a DataFrame with
istioctl's columns, rows, sort order and filters (istioctl 1.23–1.26,
`istioctl/pkg/writer/envoy/configdump/*.go`). Cells are the strings istioctl prints;
`render(df)` prints them the way istioctl does. Filters left at None (or 0/"") match all.

    >>> print(render(listeners(dump, port=15001)))
    ADDRESSES PORT  MATCH         DESTINATION
    0.0.0.0   15001 ALL           PassthroughCluster
    0.0.0.0   15001 Addr: *:15001 Non-HTTP/Non-TCP

`resources(data, kind, **filters)` returns the same selection as full resources, in
protojson lowerCamelCase like `istioctl proxy-config <kind> -o json`.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from . import dump as config_dump
from .tables import istioctl_table, render

__all__ = ["clusters", "endpoints", "listeners", "render", "resources", "routes"]

HCM = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
BLACKHOLE = "BlackHoleCluster"
PASSTHROUGH = "PassthroughCluster"

# ALPN lists istioctl abbreviates in MATCH (listener.go `protDescrs`); others are listed verbatim.
_ALPN_NAMES = {
    ("http/1.0", "http/1.1", "h2c", "istio-http/1.0", "istio-http/1.1", "istio-h2"): "App: HTTP TLS",
    ("istio", "istio-http/1.0", "istio-http/1.1", "istio-h2"): "App: Istio HTTP Plain",
    ("istio-peer-exchange", "istio"): "App: TCP TLS",
    ("http/1.0", "http/1.1", "h2c"): "App: HTTP",
}


# --- listeners ----------------------------------------------------------------------------------

def listeners(dump: dict[str, Any], *, address: str | None = None, port: int | None = None,
              type: str | None = None) -> pd.DataFrame:
    """`istioctl pc listener`: `ADDRESSES PORT MATCH DESTINATION`, one row per filter chain.

    Listeners sort by port, address, then type (HTTP/TCP/HTTP+TCP/UNKNOWN); a listener's rows by
    DESTINATION, descending. `address` matches exactly (also additional addresses), `type` is
    one of those types (case-insensitive).
    """
    rows = []
    for listener in _sorted_listeners(_select_listeners(dump, address, port, type)):
        addresses = ",".join([_listener_address(listener), *_additional_addresses(listener)])
        chains = [(_describe_match(c.get("filter_chain_match")), _destination(c.get("filters", [])))
                  for c in _chains(listener)]
        chains.sort(key=lambda chain: chain[1], reverse=True)
        rows += [[addresses, str(_listener_port(listener)), match, dest] for match, dest in chains]
    return istioctl_table(rows, ["ADDRESSES", "PORT", "MATCH", "DESTINATION"], padding=1)


def _select_listeners(dump: dict[str, Any], address: str | None, port: int | None,
                      type: str | None) -> list[dict[str, Any]]:
    def keep(listener: dict[str, Any]) -> bool:
        if address and address.lower() not in (
                a.lower() for a in [_listener_address(listener), *_additional_addresses(listener)]):
            return False
        if port and _listener_port(listener) != int(port):
            return False
        return not type or _listener_type(listener).lower() == type.lower()

    return [listener for listener in config_dump.listeners(dump) if keep(listener)]


def _sorted_listeners(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(found, key=lambda x: (_listener_port(x), _listener_address(x), _listener_type(x)))


def _chains(listener: dict[str, Any]) -> list[dict[str, Any]]:
    default = listener.get("default_filter_chain")
    return [*listener.get("filter_chains", []), *([default] if default else [])]


def _listener_address(listener: dict[str, Any]) -> str:
    address = listener.get("address", {})
    return address.get("socket_address", {}).get("address") or address.get("pipe", {}).get("path", "")


def _additional_addresses(listener: dict[str, Any]) -> list[str]:
    return [extra.get("address", {}).get("socket_address", {}).get("address", "")
            for extra in listener.get("additional_addresses", [])]


def _listener_port(listener: dict[str, Any]) -> int:
    return int(listener.get("address", {}).get("socket_address", {}).get("port_value", 0))


def _is_blackhole_proxy(filter_: dict[str, Any]) -> bool:
    # istioctl looks for the name anywhere in the tcp_proxy's bytes (cluster or stat_prefix).
    return BLACKHOLE in json.dumps(filter_.get("typed_config", {}))


def _listener_type(listener: dict[str, Any]) -> str:
    """HTTP, TCP, HTTP+TCP or UNKNOWN, by HCM and (non-blackhole) tcp_proxy filters."""
    filters = [f for chain in _chains(listener) for f in chain.get("filters", [])]
    http = any(f.get("name") == HCM for f in filters)
    tcp = any(f.get("name") == TCP_PROXY and not _is_blackhole_proxy(f) for f in filters)
    return {(True, False): "HTTP", (True, True): "HTTP+TCP", (False, True): "TCP"}.get((http, tcp), "UNKNOWN")


def _describe_match(match: dict[str, Any] | None) -> str:
    """MATCH: `SNI: …; Trans: …; App: …; Addr: …`, or `ALL` for a chain that matches everything."""
    match = match or {}
    parts = []
    if match.get("server_names"):
        parts.append("SNI: " + ",".join(match["server_names"]))
    if match.get("transport_protocol"):
        parts.append("Trans: " + match["transport_protocol"])
    alpns = tuple(match.get("application_protocols", []))
    if alpns:
        parts.append(_ALPN_NAMES.get(alpns, "App: " + ",".join(alpns)))
    port = f":{match['destination_port']}" if "destination_port" in match else ""
    ranges = [f"{r.get('address_prefix', '')}/{r.get('prefix_len', 0)}" for r in match.get("prefix_ranges", [])]
    if ranges:
        parts.append(f"Addr: {','.join(ranges)}{port}")
    elif port:
        parts.append(f"Addr: *{port}")
    return "; ".join(parts) or "ALL"


def _destination(filters: list[dict[str, Any]]) -> str:
    """DESTINATION: what the first HCM or non-blackhole tcp_proxy of a chain sends traffic to."""
    for filter_ in filters:
        config = filter_.get("typed_config", {})
        if filter_.get("name") == HCM:
            if "route_config" in config:
                return _describe_inline_routes(config["route_config"])
            name = config.get("rds", {}).get("route_config_name", "")
            return f"Route: {name}" if name else "HTTP"
        if filter_.get("name") == TCP_PROXY and not _is_blackhole_proxy(filter_):
            return _cluster_label(config.get("cluster", ""))
    return "Non-HTTP/Non-TCP"


def _cluster_label(cluster: str) -> str:
    # Catch-all clusters (PassthroughCluster, InboundPassthroughCluster…) print bare.
    return cluster if "Cluster" in cluster else f"Cluster: {cluster}"


def _describe_inline_routes(config: dict[str, Any]) -> str:
    vhosts = config.get("virtual_hosts", [])
    if len(vhosts) == 1 and vhosts[0].get("domains") == ["*"] and len(vhosts[0].get("routes", [])) == 1:
        only = vhosts[0]["routes"][0]
        cluster = only.get("route", {}).get("cluster")
        if only.get("match", {}).get("prefix") == "/" and cluster:
            return _cluster_label(cluster)
    described = []
    for vhost in vhosts:
        domains = vhost.get("domains", [])
        matches = ", ".join(_describe_route_match(r.get("match", {})) for r in vhost.get("routes", []))
        described.append(matches if domains == ["*"] else f"{'/'.join(domains)} {matches}")
    return "Inline Route: " + "; ".join(described)


def _describe_route_match(match: dict[str, Any]) -> str:
    """`/api*` for a prefix, the path itself, `regex <re>`, `PathPrefix:<p>`; headers ignored."""
    parts = []
    if match.get("prefix"):
        parts.append(match["prefix"] + "*")
    if match.get("path_separated_prefix"):
        parts.append("PathPrefix:" + match["path_separated_prefix"])
    if match.get("path"):
        parts.append(match["path"])
    if "safe_regex" in match:
        parts.append("regex " + match["safe_regex"].get("regex", ""))
    return " ".join(parts)


# --- routes -------------------------------------------------------------------------------------

def routes(dump: dict[str, Any], *, name: str | None = None) -> pd.DataFrame:
    """`istioctl pc route`: `NAME VHOST NAME DOMAINS MATCH VIRTUAL SERVICE`, one row per route.

    Covers RDS route configs and the inline ones Envoy lists from listeners (`inbound|9080||`,
    `InboundPassthroughCluster`, the bootstrap's `backend`). Routes to PassthroughCluster (the
    `allow_any` catch-all) are hidden; a virtual host without routes shows `/*` and `404`.
    `name` selects one route configuration.
    """
    rows = []
    for config in _route_configs(dump, name):
        for vhost in config.get("virtual_hosts", []):
            domains = _describe_domains(vhost.get("domains", []))
            rows += [[config.get("name", ""), vhost.get("name", ""), domains,
                      _describe_route_match(r.get("match", {})), _istio_config(r)]
                     for r in vhost.get("routes", []) if r.get("route", {}).get("cluster") != PASSTHROUGH]
            if not vhost.get("routes"):
                rows.append([config.get("name", ""), vhost.get("name", ""), domains, "/*", "404"])
    return istioctl_table(rows, ["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"], padding=5)


def _route_configs(dump: dict[str, Any], name: str | None) -> list[dict[str, Any]]:
    """Route configs in istioctl's order: numeric names ascend past their numeric neighbours.

    istioctl sorts with a comparator that is false whenever a name is not a number; for the
    small lists a sidecar has, Go's insertion sort then moves a numeric name back only while
    the name before it is a larger number. This reproduces that.
    """
    ordered: list[dict[str, Any]] = []
    for config in config_dump.route_configs(dump):
        at = len(ordered)
        while at and _numeric_less(config, ordered[at - 1]):
            at -= 1
        ordered.insert(at, config)
    return [c for c in ordered if not name or c.get("name") == name]


def _numeric_less(a: dict[str, Any], b: dict[str, Any]) -> bool:
    x, y = a.get("name", ""), b.get("name", "")
    return x.isdigit() and y.isdigit() and int(x) < int(y)


def _describe_domains(domains: list[str]) -> str:
    """At most two port-less domains, dropping `X.svc.cluster.local`/`X.svc` when `X` is listed."""
    if len(domains) <= 1:
        return domains[0] if domains else ""
    portless = [d for d in domains if ":" not in d or (d.count(":") > 2 and d.endswith("]"))]
    present = set(portless)
    kept = [d for d in portless
            if not any(d != short and short in present
                       for short in (d.removesuffix(".svc.cluster.local"), d.removesuffix(".svc")))]
    if len(kept) > 2:
        return f"{', '.join(kept[:2])} + {len(kept) - 2} more..."
    return ", ".join(kept)


def _istio_config(resource: dict[str, Any]) -> str:
    """`<name>.<namespace>` of the Istio config (VirtualService, DestinationRule) that made it."""
    istio = resource.get("metadata", {}).get("filter_metadata", {}).get("istio", {})
    path = istio.get("config")
    if path is None:
        return ""
    if not isinstance(path, str) or not path.startswith("/apis/networking.istio.io/"):
        return "<unknown>"
    pieces = path.split("/")
    return f"{pieces[7]}.{pieces[5]}" if len(pieces) == 8 else ""


# --- clusters -----------------------------------------------------------------------------------

def clusters(dump: dict[str, Any], *, fqdn: str | None = None, port: int | None = None,
             subset: str | None = None, direction: str | None = None) -> pd.DataFrame:
    """`istioctl pc cluster`: `SERVICE FQDN PORT SUBSET DIRECTION TYPE DESTINATION RULE`.

    Names `direction|port|subset|fqdn` are split into columns (`-` for no subset); other names
    print as `<name> - - -`. Sorted by FQDN, subset, port, direction. `fqdn`, `subset` and
    `direction` match substrings of the cluster name, `port` matches `|<port>|`.
    """
    rows = []
    for cluster in _select_clusters(dump, fqdn, port, subset, direction):
        key = _subset_key(cluster.get("name", ""))
        kind, rule = cluster.get("type", "STATIC"), _istio_config(cluster)
        if key:
            direction_, port_, subset_, host = key
            rows.append([host, str(port_), subset_ or "-", direction_, kind, rule])
        else:
            rows.append([cluster.get("name", ""), "-", "-", "-", kind, rule])
    columns = ["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"]
    return istioctl_table(rows, columns, padding=5)


def _select_clusters(dump: dict[str, Any], fqdn: str | None, port: int | None, subset: str | None,
                     direction: str | None) -> list[dict[str, Any]]:
    def keep(name: str) -> bool:
        needles = [fqdn, direction, subset, f"|{port}|" if port else None]
        return all(needle in name for needle in needles if needle)

    found = [c for c in config_dump.clusters(dump) if keep(c.get("name", ""))]
    return sorted(found, key=lambda c: _cluster_sort_key(c.get("name", "")))


def _subset_key(name: str) -> tuple[str, int, str, str] | None:
    """(direction, port, subset, fqdn) of an Istio cluster name; None for other names."""
    parts = name.split("|", 3)
    if len(parts) < 4:
        return None
    direction, port, subset, host = parts
    return direction, int(port) if port.isdigit() else 0, subset, "" if "|" in host else host


def _cluster_sort_key(name: str) -> tuple[str, str, int, str]:
    direction, port, subset, host = _subset_key(name) or ("", 0, "", name)
    return host, subset, port, direction


# --- endpoints ----------------------------------------------------------------------------------

def endpoints(clusters_json: dict[str, Any], *, address: str | None = None, port: int | None = None,
              cluster: str | None = None, status: str | None = None) -> pd.DataFrame:
    """`istioctl pc endpoint`: `ENDPOINT STATUS OUTLIER CHECK CLUSTER` from `/clusters?format=json`.

    STATUS is the EDS health (`HEALTHY`, `UNHEALTHY`, `DRAINING`…), OUTLIER CHECK `OK`/`FAILED`.
    Sorted by address, port, cluster. `address`, `cluster` and `status` match whole values
    (case-insensitive).
    """
    found = sorted(_select_hosts(clusters_json, address, port, cluster, status),
                   key=lambda hit: (_host_address(hit[1]), _host_port(hit[1]), hit[0]))
    rows = []
    for name, host in found:
        port_ = _host_port(host)
        endpoint = f"{_host_address(host)}:{port_}" if port_ else _host_address(host)
        failed = host.get("health_status", {}).get("failed_outlier_check", False)
        rows.append([endpoint, _host_status(host), "FAILED" if failed else "OK", name])
    return istioctl_table(rows, ["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"], padding=5)


def _select_hosts(clusters_json: dict[str, Any], address: str | None, port: int | None, cluster: str | None,
                  status: str | None) -> list[tuple[str, dict[str, Any]]]:
    def keep(name: str, host: dict[str, Any]) -> bool:
        return ((not address or _host_address(host).lower() == address.lower())
                and (not port or _host_port(host) == int(port))
                and (not cluster or name.lower() == cluster.lower())
                and (not status or _host_status(host).lower() == status.lower()))

    return [(c.get("name", ""), host) for c in clusters_json.get("cluster_statuses", [])
            for host in c.get("host_statuses", []) if keep(c.get("name", ""), host)]


def _host_address(host: dict[str, Any]) -> str:
    address = host.get("address", {})
    if "socket_address" in address:
        return address["socket_address"].get("address", "")
    if "pipe" in address:
        return "unix://" + address["pipe"].get("path", "")
    internal = address.get("envoy_internal_address", {})
    if "server_listener_name" in internal:
        return f"envoy://{internal['server_listener_name']}/{internal.get('endpoint_id', '')}"
    return "unknown"


def _host_port(host: dict[str, Any]) -> int:
    return int(host.get("address", {}).get("socket_address", {}).get("port_value", 0))


def _host_status(host: dict[str, Any]) -> str:
    return host.get("health_status", {}).get("eds_health_status", "UNKNOWN")


# --- -o json / -o yaml --------------------------------------------------------------------------

def resources(data: dict[str, Any], kind: str, **filters: Any) -> list[dict[str, Any]]:
    """The resources a table shows, as `istioctl proxy-config <kind> -o json` prints them.

    `kind` is `listeners`, `routes`, `clusters` (from a config dump) or `endpoints` (from
    `/clusters?format=json`: every cluster status with at least one matching host). Filters are
    the table's; names are protojson lowerCamelCase (see `dump.to_camel`), without the
    top-level `@type` of the dump's Any wrapper.

    >>> [cluster["name"].split("|")[2] for cluster in resources(dump, "clusters", fqdn="reviews")]
    ['', 'v1', 'v2', 'v3']
    """
    if kind == "listeners":
        found = _select_listeners(data, **_only(filters, "address", "port", "type"))
    elif kind == "routes":
        found = _route_configs(data, **_only(filters, "name"))
    elif kind == "clusters":
        found = _select_clusters(data, **_only(filters, "fqdn", "port", "subset", "direction"))
    elif kind == "endpoints":
        hits = {name for name, _ in _select_hosts(data, **_only(filters, "address", "port", "cluster", "status"))}
        found = [c for c in data.get("cluster_statuses", []) if c.get("name") in hits]
    else:
        raise ValueError(f"unknown kind {kind!r}: expected listeners, routes, clusters or endpoints")
    return [config_dump.to_camel({k: v for k, v in r.items() if k != "@type"}) for r in found]


def _only(filters: dict[str, Any], *names: str) -> dict[str, Any]:
    unknown = set(filters) - set(names)
    if unknown:
        raise TypeError(f"unexpected filter(s) {sorted(unknown)}; this kind takes {list(names)}")
    return {name: filters.get(name) for name in names}
