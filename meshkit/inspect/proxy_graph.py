"""One sidecar's Envoy as a request meets it, left to right, from its own `/config_dump`.

Downstream (the caller) → listener → filter chain (its match, as `istioctl pc listener` prints
it) → network filter (tcp_proxy or the HTTP connection manager) → route configuration → virtual
host → route (its match, headers included) → cluster (with route weights) → endpoints, framed as
the Upstream. A whole sidecar is too much for one picture, so `proxy_graph` focuses: one
direction (`outbound`: 15001 and the per-port listeners; `inbound`: 15006), some listeners or a
port, one host; the 15006 chains fold into one node unless `expand_inbound`. Resources Envoy
rejected carry its NACK text; `request_path(graph, row)` lights up the way one request went.

    >>> from meshkit.inspect.graph import to_text
    >>> graph = proxy_graph(dump, port=9080)
    >>> print(to_text(graph))
    downstream Downstream (the app (out), pods (in))
      -> listener 0.0.0.0_9080
        -[Trans: raw_buffer; App: http/1.1,h2c]-> chain #0
          -> filter HCM
            -[RDS]-> route config 9080 (from RDS)
    ...
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from . import dump, traffic
from .graph import Graph, Node, Subgraph, ancestors, descendants, highlight
from .proxy_config import HCM, TCP_PROXY, _describe_match, _describe_route_match

__all__ = ["DIRECTIONS", "INBOUND_LISTENER", "listener_ports", "proxy_graph", "request_path"]

DIRECTIONS = ("outbound", "inbound", "all")
INBOUND_LISTENER = "virtualInbound"
_FILTER_NAMES = {HCM: "HCM", TCP_PROXY: "tcp_proxy"}
_TERMINAL = (HCM, TCP_PROXY)
_HEADINGS = (("listener", "listener"), ("chain", "filter chain"), ("filter", "network filter"),
             ("route_config", "route config"), ("virtual_host", "virtual host"), ("route", "route"),
             ("cluster", "cluster"), ("endpoint", "endpoint"))
_ORDER = ("downstream", "listener", "chain", "collapsed", "filter", "route_config", "virtual_host", "route", "cluster",
          "endpoint")


def proxy_graph(config_dump: Mapping[str, Any], clusters_json: Mapping[str, Any] | None = None, *,
                listeners: Iterable[str] | None = None, direction: str = "all", port: int | None = None,
                host: str = "", expand_inbound: bool = False, title: str = "") -> Graph:
    """One sidecar's config as a graph, from `/config_dump?include_eds` (and `/clusters?format=json`).

    With `clusters_json`, endpoints show Envoy's live health (outlier ejections included) and
    the requests each one got; otherwise they come from the dump's EDS section. The focus:
    `listeners` (names) or `port` keep only those listeners; `direction` keeps outbound or
    inbound ones; `host` keeps the virtual hosts and clusters whose names contain it. Resources
    Envoy rejected (NACK) are `error` with Envoy's text; routes to clusters it lacks are `missing`.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    graph = Graph(title)
    versions = _last_updated(config_dump)
    for cluster in dump.clusters(config_dump):
        graph.add(_cluster_node(cluster["name"], cluster.get("type", ""), versions.get(("CDS", cluster["name"]), "")))
    route_configs = {}
    for config in dump.route_configs(config_dump):
        route_configs.setdefault(config.get("name"), config)
    chosen = []
    for listener in dump.listeners(config_dump):
        if _in_focus(listener, listeners, direction, port):
            chosen.append(_add_listener(graph, listener, route_configs, expand_inbound, versions))
    _mark_rejected(graph, config_dump, chosen, listeners)
    if clusters_json is None:
        _add_eds_endpoints(graph, config_dump)
    else:
        _add_live_endpoints(graph, clusters_json)
    graph = graph.reachable_from(chosen)
    if host:
        graph = _only_host(graph, host, chosen)
    return _frame(graph, chosen, direction)


def listener_ports(config_dump: Mapping[str, Any]) -> dict[str, list[int]]:
    """The ports of the listeners a sidecar holds, by direction (for the widget's focus menus)."""
    ports: dict[str, list[int]] = {"outbound": [], "inbound": []}
    for listener in dump.listeners(config_dump):
        number = listener.get("address", {}).get("socket_address", {}).get("port_value")
        if number is not None and listener.get("traffic_direction") is not None:  # not Istio's 15090/15021
            ports[_direction(listener)].append(int(number))
    return {k: sorted(set(v)) for k, v in ports.items()}


def _direction(listener: Mapping[str, Any]) -> str:
    return "inbound" if listener.get("traffic_direction") == "INBOUND" or listener.get("name") == INBOUND_LISTENER \
        else "outbound"


def _in_focus(listener: Mapping[str, Any], names: Iterable[str] | None, direction: str, port: int | None) -> bool:
    if listener.get("traffic_direction") is None and names is None and port is None:
        return False  # Istio's own ports (15090 Prometheus, 15021 health): not a request's way through
    if names is not None and listener.get("name") not in set(names):
        return False
    number = listener.get("address", {}).get("socket_address", {}).get("port_value")
    if port is not None and number != port:
        return False
    return direction == "all" or _direction(listener) == direction


def _frame(graph: Graph, chosen: list[str], direction: str) -> Graph:
    """Downstream on the left (pointing at the listeners shown), the endpoints framed as Upstream."""
    shown = [lid for lid in chosen if lid in graph.nodes]
    who = {"outbound": "the app calling out", "inbound": "pods calling in"}.get(
        direction, "the app (out), pods (in)")
    nodes = {"downstream": Node("downstream", "Downstream", "downstream", who), **graph.nodes}
    nodes = dict(sorted(nodes.items(), key=lambda item: _ORDER.index(item[1].kind) if item[1].kind in _ORDER
                        else len(_ORDER)))  # the way a request goes: the text view reads in that order
    graph = replace(graph, nodes=nodes, first=("downstream",), columns=_HEADINGS)
    for lid in shown:
        graph.link("downstream", lid)
    endpoints = tuple(nid for nid, n in graph.nodes.items() if n.kind == "endpoint")  # a 418 is Envoy's own
    if endpoints:
        graph.subgraphs.append(Subgraph("upstream", "Upstream", endpoints, "side"))
    return graph


def _only_host(graph: Graph, host: str, roots: list[str]) -> Graph:
    """Only virtual hosts and clusters naming `host`, and the chains that still lead somewhere."""
    def matches(node: Node) -> bool:
        return host in node.label or host in node.detail
    drop = {nid for nid, n in graph.nodes.items() if n.kind in ("virtual_host", "cluster") and not matches(n)}
    pruned = graph.keep(nid for nid in graph.nodes if nid not in drop).reachable_from(roots)
    ends = {nid for nid, n in pruned.nodes.items() if n.kind in ("cluster", "endpoint", "direct_response", "redirect")}
    return pruned.keep(ancestors(pruned, ends) | set(descendants(pruned, ends)))


def _last_updated(config_dump: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    return {(row.TYPE, row.NAME): row[3] for row in dump.versions(config_dump).itertuples(index=False)}


def _add_listener(graph: Graph, listener: Mapping[str, Any], route_configs: Mapping[str, Any],
                  expand_inbound: bool, versions: Mapping[tuple[str, str], str]) -> str:
    name = listener.get("name", "")
    socket_address = listener.get("address", {}).get("socket_address", {})
    where = f"{socket_address.get('address', '')}:{socket_address.get('port_value', '')}"
    shown = "" if name.replace("_", ":") == where else where  # 0.0.0.0_9080 says its address already
    lid = graph.add(Node(f"listener:{name}", name, "listener", shown, version=versions.get(("LDS", name), ""),
                         tooltip=f"listener {name} on {where}"))
    chains = [(c, _describe_match(c.get("filter_chain_match"))) for c in listener.get("filter_chains", [])]
    if listener.get("default_filter_chain"):
        chains.append((listener["default_filter_chain"], "no chain matched (default)"))
    if name == INBOUND_LISTENER and not expand_inbound:
        graph.link(lid, graph.add(Node(f"{lid}#*", f"{len(chains)} filter chains", "collapsed",
                                       "one per port and TLS mode;\nexpand to see them")))
        return lid
    for index, (chain, match) in enumerate(chains):
        cid = graph.add(Node(f"{lid}#{index}", chain.get("name") or f"#{index}", "chain", match))
        graph.link(lid, cid, match)
        filters = chain.get("filters", [])
        others = [f.get("name", "").rsplit(".", 1)[-1] for f in filters if f.get("name") not in _TERMINAL]
        for position, filter_ in enumerate(filters):
            if filter_.get("name") in _TERMINAL:
                _add_filter(graph, cid, f"{cid}/f{position}", filter_, route_configs, others, versions)
    return lid


def _add_filter(graph: Graph, cid: str, fid: str, filter_: Mapping[str, Any], route_configs: Mapping[str, Any],
                before: list[str], versions: Mapping[tuple[str, str], str]) -> None:
    config = filter_.get("typed_config", {})
    detail = f"after {', '.join(before)}" if before else ""
    graph.link(cid, graph.add(Node(fid, _FILTER_NAMES[filter_["name"]], "filter", detail,
                                   tooltip=f"network filter {filter_.get('name', '')}\n{detail}")))
    if filter_.get("name") == TCP_PROXY:
        _link_destinations(graph, fid, config, "tcp_proxy")
    elif "route_config" in config:
        _add_route_config(graph, fid, f"rc:{fid}", config["route_config"], "inline", "")
    else:
        name = config.get("rds", {}).get("route_config_name", "")
        if name in route_configs:
            _add_route_config(graph, fid, f"rc:{name}", route_configs[name], "RDS", versions.get(("RDS", name), ""))
        else:
            graph.link(fid, graph.add(Node(f"rc:{name}", name, "route_config", "not received (RDS)", "missing")),
                       "RDS")


def _add_route_config(graph: Graph, parent: str, rid: str, config: Mapping[str, Any], how: str, version: str) -> None:
    graph.link(parent, rid, how)
    if rid in graph.nodes:
        return
    graph.add(Node(rid, config.get("name") or "(unnamed)", "route_config",
                   "from RDS" if how == "RDS" else "inline in the listener", version=version))
    for vhost in config.get("virtual_hosts", []):
        domains = _domains(vhost.get("domains", []))
        vid = graph.add(Node(f"{rid}/{vhost.get('name', '')}", vhost.get("name", ""), "virtual_host",
                             tooltip=f"virtual host {vhost.get('name', '')}\n"
                                     f"domains: {', '.join(vhost.get('domains', []))}"))
        graph.link(rid, vid, domains)
        for index, route in enumerate(vhost.get("routes", [])):
            action = route.get("route", {})
            match = f"{index + 1}. {_route_match(route.get('match', {}))}"
            policies = _route_policies(route)
            tid = graph.add(Node(f"{vid}/{index}", route.get("name") or f"#{index + 1}", "route",
                                 match + (f"\n{policies}" if policies else "")))
            graph.link(vid, tid, match)
            if action:
                _link_destinations(graph, tid, action, "")
            elif "direct_response" in route:
                status = route["direct_response"].get("status", "")
                graph.link(tid, graph.add(Node(f"direct:{status}", str(status), "direct_response")))
            elif "redirect" in route:
                target = route["redirect"].get("host_redirect", "") + route["redirect"].get("path_redirect", "")
                graph.link(tid, graph.add(Node(f"redirect:{target}", target, "redirect")))
def _link_destinations(graph: Graph, src: str, action: Mapping[str, Any], label: str) -> None:
    """Edges to the cluster (or weighted clusters) a route or tcp_proxy sends to."""
    weighted = action.get("weighted_clusters", {}).get("clusters", [])
    total = sum(int(c.get("weight", 0)) for c in weighted) or 1
    for target in weighted:
        share = int(target.get("weight", 0)) / total
        graph.link(src, _cluster_ref(graph, target.get("name", "")), f"{share:.0%}", share=share)
    if action.get("cluster"):
        graph.link(src, _cluster_ref(graph, action["cluster"]), label)


def _cluster_ref(graph: Graph, name: str) -> str:
    cid = f"cluster:{name}"
    if cid not in graph.nodes:  # routed to, but Envoy has no such cluster: requests get 503 NC
        graph.add(Node(cid, name, "cluster", "not in CDS", "missing"))
    return cid


def _cluster_node(name: str, kind: str, version: str = "") -> Node:
    return Node(f"cluster:{name}", name, "cluster", kind, "blackhole" if name == "BlackHoleCluster" else "",
                version=version)


def _domains(domains: list[str]) -> str:
    short = sorted((d for d in domains if ":" not in d), key=lambda d: (d[:1].isdigit(), len(d)))[:2] or domains[:1]
    more = len([d for d in domains if ":" not in d]) - len(short)
    return ", ".join(short) + (f" +{more}" if more > 0 else "")


def _route_match(match: Mapping[str, Any]) -> str:
    """Path part as `istioctl pc route` prints it, plus header and query conditions."""
    parts = [_describe_route_match(match) or "*"]
    for header in match.get("headers", []):
        parts.append(f"{header.get('name', '')}{_string_match(header)}")
    for param in match.get("query_parameters", []):
        parts.append(f"?{param.get('name', '')}{_string_match(param)}")
    return " & ".join(parts)


def _string_match(matcher: Mapping[str, Any]) -> str:
    spec = matcher.get("string_match") or {k: v for k, v in matcher.items() if k != "name"}
    if "exact" in spec:
        return f"={spec['exact']}"
    if "prefix" in spec:
        return f"^={spec['prefix']}"
    if "safe_regex" in spec:
        return f"~{spec['safe_regex'].get('regex', '')}"
    if "present_match" in spec:
        return " present"
    return " " + json.dumps(spec, separators=(",", ":"))


def _route_policies(route: Mapping[str, Any]) -> str:
    """Timeout, retries and fault injection of a route: the knobs a VirtualService sets."""
    action = route.get("route", {})
    parts = []
    if action.get("timeout") not in (None, "0s"):
        parts.append(f"timeout {action['timeout']}")
    retries = action.get("retry_policy", {})
    if retries:
        parts.append(f"retries {retries.get('num_retries', 1)}")
    fault = route.get("typed_per_filter_config", {}).get("envoy.filters.http.fault", {})
    if "delay" in fault:
        parts.append(f"delay {fault['delay'].get('fixed_delay', '')}")
    if "abort" in fault:
        parts.append(f"abort {fault['abort'].get('http_status', '')}")
    return ", ".join(parts)


def _add_eds_endpoints(graph: Graph, config_dump: Mapping[str, Any]) -> None:
    for assignment in dump.endpoint_configs(config_dump):
        for locality in assignment.get("endpoints", []):
            for endpoint in locality.get("lb_endpoints", []):
                address = endpoint.get("endpoint", {}).get("address", {})
                socket_address = address.get("socket_address", {})
                where = socket_address.get("address") or "unix://" + address.get("pipe", {}).get("path", "")
                health = endpoint.get("health_status", "UNKNOWN")
                _add_endpoint(graph, assignment.get("cluster_name", ""), where,
                              int(socket_address.get("port_value", 0)), health, health in ("HEALTHY", "UNKNOWN"))


def _add_live_endpoints(graph: Graph, clusters_json: Mapping[str, Any]) -> None:
    for host in traffic.hosts(clusters_json):
        counts = host.counts
        label = f"{counts.total} rq" + (f", {counts.error} err" if counts.error else "") if counts.total else ""
        _add_endpoint(graph, host.cluster, host.address, host.port, host.health, host.healthy, label,
                      "error" if counts.error else "")


def _add_endpoint(graph: Graph, cluster: str, address: str, port: int, health: str, healthy: bool,
                  label: str = "", state: str = "") -> None:
    where = f"{address}:{port}" if port else address
    node = Node(f"endpoint:{where}", where, "endpoint", health, "ok" if healthy else "bad")
    known = graph.nodes.get(node.id)
    if known is None or (known.state == "ok" and not healthy):  # an endpoint is as sick as its sickest cluster says
        graph.nodes[node.id] = node
    graph.link(_cluster_ref(graph, cluster), node.id, label, state)


_REJECTABLE = {"LDS": ("listener:", "listener"), "CDS": ("cluster:", "cluster"), "EDS": ("cluster:", "cluster"),
               "RDS": ("rc:", "route_config")}


def _mark_rejected(graph: Graph, config_dump: Mapping[str, Any], chosen: list[str], names: Iterable[str] | None
                   ) -> None:
    """Resources whose last update Envoy NACKed: state `error`, Envoy's text as the detail.

    A rejected listener is drawn too, whatever the direction or port (Envoy does not say which its
    failed version had), unless the focus names other listeners: a NACK is never out of sight.
    """
    wanted = None if names is None else set(names)
    for row in dump.versions(config_dump).itertuples(index=False):
        error = row.ERROR
        if not error or row.TYPE not in _REJECTABLE:
            continue
        prefix, kind = _REJECTABLE[row.TYPE]
        nid = prefix + row.NAME
        held = graph.nodes.get(nid, Node(nid, row.NAME, kind))
        graph.nodes[nid] = replace(held, state="error", detail=f"NACK: {error}", tooltip=f"Envoy rejected {row.TYPE} "
                                   f"{row.NAME}:\n{error}\n(the last good version keeps serving)")
        if kind == "listener" and nid not in chosen and (wanted is None or row.NAME in wanted):
            chosen.append(nid)


def request_path(graph: Graph, row: Mapping[str, Any]) -> Graph:
    """`graph` with the path one request took lit up: listener, chain, route, cluster, endpoint.

    `row` is one of `Mesh.curl_rows()`: Envoy's access log says which route matched
    (`route_name`), the cluster (`upstream_cluster`) and host (`upstream_host`) it went to, its
    `status` and response `flags`. The route is found by name among those that send to that
    cluster (the first if several do); everything upstream of the route is lit back to Downstream.
    """
    cluster = f"cluster:{row.get('upstream_cluster') or ''}"
    endpoint = f"endpoint:{row.get('upstream_host') or ''}"
    route_name = str(row.get("route_name") or "")
    children = graph.children()
    to_cluster = [e.src for e in graph.edges if e.dst == cluster]
    routes = [n for n in to_cluster if graph.nodes[n].kind == "route"]
    named = [n for n in routes if graph.nodes[n].label == route_name] or routes
    start = named[:1] or [n for n in to_cluster if graph.nodes[n].kind == "filter"][:1]
    lit = ancestors(graph, start) | ({cluster} if cluster in graph.nodes else set())
    if endpoint in graph.nodes and any(e.dst == endpoint for e in children.get(cluster, [])):
        lit.add(endpoint)
    lit = _one_way(graph, lit, [*start, cluster, endpoint])
    pairs = [(e.src, e.dst) for e in graph.edges if e.src in lit and e.dst in lit]
    flags = str(row.get("flags") or "-")
    answer = f"▶ {row.get('status', '?')} {flags}".strip()
    target = endpoint if endpoint in lit else cluster if cluster in lit else "downstream"
    return highlight(graph, lit, pairs, labels={target: answer, "downstream": f"sent: {answer}"})


def _one_way(graph: Graph, lit: set[str], path_end: list[str]) -> set[str]:
    """Keep the lit nodes that lie on a path Downstream → … → the end of the request's path."""
    sub = graph.keep(lit)
    reach = set(descendants(sub, ["downstream"]))
    return reach & ancestors(sub, [n for n in path_end if n in lit]) | {n for n in path_end if n in reach}
