"""Graphs of what Envoy holds and where requests went, as plain data, DOT and text.

`proxy_graph(config_dump)` draws one sidecar the way a request meets it: listener → filter
chain (edge: the chain's match, as `istioctl pc listener` prints it) → route configuration →
virtual host → route (edge: its match, headers included) → cluster → endpoints (with health).
`mesh_graph(topology, per_pod_clusters)` draws the mesh: pods grouped by Service, an edge
pod → pod per upstream with the requests its sidecar counted and their share of that Service.
Both read Envoy's own JSON only. `to_dot(graph)` is for Graphviz, `to_text(graph)` is the
plain-text fallback (an indented tree).

    >>> graph = proxy_graph(dump, listeners=["0.0.0.0_9080"])
    >>> print(to_text(graph))
    listener 0.0.0.0_9080 (0.0.0.0:9080)
      -[Trans: raw_buffer; App: http/1.1,h2c]-> chain 0 (HCM)
        -[RDS]-> route config 9080
          -[details, details.default +3]-> virtual host details.default.svc.cluster.local:9080
    ...
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from . import dump, traffic
from .proxy_config import HCM, TCP_PROXY, _describe_match, _describe_route_match

__all__ = ["Edge", "Graph", "Node", "Subgraph", "mesh_graph", "proxy_graph", "to_dot", "to_text"]

# Node states a view colours: ok (healthy, taking traffic), bad (unhealthy endpoint),
# error (Envoy rejected an update: NACK), missing (referenced but not received), idle, blackhole.
STATES = ("ok", "bad", "error", "missing", "idle", "blackhole")


@dataclass(frozen=True)
class Node:
    """A thing in the picture; `kind` picks its shape, `state` its colour, `detail` a second line."""

    id: str
    label: str
    kind: str
    detail: str = ""
    state: str = ""


@dataclass(frozen=True)
class Edge:
    """An arrow; `share` (0–1) thickens it, `state` colours it (`error`, `idle`)."""

    src: str
    dst: str
    label: str = ""
    state: str = ""
    share: float = 0.0


@dataclass(frozen=True)
class Subgraph:
    """A labelled box around some nodes (a Service around its pods)."""

    id: str
    label: str
    members: tuple[str, ...]


@dataclass
class Graph:
    """Nodes (by id, in insertion order), edges and subgraphs."""

    title: str = ""
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    subgraphs: list[Subgraph] = field(default_factory=list)

    def add(self, node: Node) -> str:
        """Add `node` unless one with its id exists; returns the id."""
        self.nodes.setdefault(node.id, node)
        return node.id

    def link(self, src: str, dst: str, label: str = "", state: str = "", share: float = 0.0) -> None:
        edge = Edge(src, dst, label, state, share)
        if edge not in self.edges:
            self.edges.append(edge)

    def reachable_from(self, roots: Iterable[str]) -> Graph:
        """The part of the graph reachable from `roots` (following edges forward)."""
        children = _children(self)
        seen: list[str] = []
        todo = [r for r in roots if r in self.nodes]
        while todo:
            node = todo.pop(0)
            if node not in seen:
                seen.append(node)
                todo += [e.dst for e in children.get(node, [])]
        keep = set(seen)
        return Graph(self.title, {k: v for k, v in self.nodes.items() if k in keep},
                     [e for e in self.edges if e.src in keep and e.dst in keep],
                     [replace(s, members=tuple(m for m in s.members if m in keep)) for s in self.subgraphs
                      if any(m in keep for m in s.members)])


# --- one proxy ----------------------------------------------------------------------------------

def proxy_graph(config_dump: Mapping[str, Any], clusters_json: Mapping[str, Any] | None = None, *,
                listeners: Iterable[str] | None = None, title: str = "") -> Graph:
    """One sidecar's config as a graph, from `/config_dump?include_eds` (and `/clusters?format=json`).

    With `clusters_json`, endpoints show Envoy's live health (outlier ejections included) and
    the requests each one got; otherwise they come from the dump's EDS section. `listeners`
    keeps only those listeners (by name) and what they lead to. Resources Envoy rejected (NACK)
    are marked `error` with Envoy's text; routes to clusters Envoy does not have are `missing`.
    """
    graph = Graph(title)
    for cluster in dump.clusters(config_dump):
        graph.add(_cluster_node(cluster["name"], cluster.get("type", "")))
    route_configs = {}
    for config in dump.route_configs(config_dump):
        route_configs.setdefault(config.get("name"), config)
    for listener in dump.listeners(config_dump):
        _add_listener(graph, listener, route_configs)
    if clusters_json is None:
        _add_eds_endpoints(graph, config_dump)
    else:
        _add_live_endpoints(graph, clusters_json)
    _mark_rejected(graph, config_dump)
    graph.nodes = dict(sorted(graph.nodes.items(), key=lambda item: item[1].kind != "listener"))  # read from the door
    if listeners is not None:
        graph = graph.reachable_from(f"listener:{name}" for name in listeners)
    return graph


def _add_listener(graph: Graph, listener: Mapping[str, Any], route_configs: Mapping[str, Any]) -> None:
    name = listener.get("name", "")
    socket_address = listener.get("address", {}).get("socket_address", {})
    where = f"{socket_address.get('address', '')}:{socket_address.get('port_value', '')}"
    lid = graph.add(Node(f"listener:{name}", name, "listener", where))
    chains = [(c, _describe_match(c.get("filter_chain_match"))) for c in listener.get("filter_chains", [])]
    if listener.get("default_filter_chain"):
        chains.append((listener["default_filter_chain"], "no chain matched (default)"))
    for index, (chain, match) in enumerate(chains):
        filters = chain.get("filters", [])
        kinds = ", ".join(_FILTER_NAMES.get(f.get("name", ""), f.get("name", "")) for f in filters)
        cid = graph.add(Node(f"{lid}#{index}", chain.get("name") or f"#{index}", "chain", kinds))
        graph.link(lid, cid, match)
        for filter_ in filters:
            _add_filter(graph, cid, filter_, route_configs)


_FILTER_NAMES = {HCM: "HCM", TCP_PROXY: "tcp_proxy"}


def _add_filter(graph: Graph, cid: str, filter_: Mapping[str, Any], route_configs: Mapping[str, Any]) -> None:
    config = filter_.get("typed_config", {})
    if filter_.get("name") == TCP_PROXY:
        _link_destinations(graph, cid, config, "tcp_proxy")
    elif filter_.get("name") == HCM and "route_config" in config:
        _add_route_config(graph, cid, f"rc:{cid}", config["route_config"], "inline")
    elif filter_.get("name") == HCM:
        name = config.get("rds", {}).get("route_config_name", "")
        if name in route_configs:
            _add_route_config(graph, cid, f"rc:{name}", route_configs[name], "RDS")
        else:
            graph.link(cid, graph.add(Node(f"rc:{name}", name, "route_config", "not received (RDS)", "missing")),
                       "RDS")


def _add_route_config(graph: Graph, parent: str, rid: str, config: Mapping[str, Any], how: str) -> None:
    graph.link(parent, rid, how)
    if rid in graph.nodes:
        return
    graph.add(Node(rid, config.get("name") or "(unnamed)", "route_config",
                   "from RDS" if how == "RDS" else "inline in the listener"))
    for vhost in config.get("virtual_hosts", []):
        vid = graph.add(Node(f"{rid}/{vhost.get('name', '')}", vhost.get("name", ""), "virtual_host"))
        graph.link(rid, vid, _domains(vhost.get("domains", [])))
        for index, route in enumerate(vhost.get("routes", [])):
            action = route.get("route", {})
            tid = graph.add(Node(f"{vid}/{index}", route.get("name") or f"#{index + 1}", "route",
                                 _route_policies(route)))
            graph.link(vid, tid, f"{index + 1}. {_route_match(route.get('match', {}))}")
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


def _cluster_node(name: str, kind: str) -> Node:
    return Node(f"cluster:{name}", name, "cluster", kind, "blackhole" if name == "BlackHoleCluster" else "")


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


def _mark_rejected(graph: Graph, config_dump: Mapping[str, Any]) -> None:
    """Resources whose last update Envoy NACKed: state `error`, Envoy's text as the detail."""
    for row in dump.versions(config_dump).itertuples(index=False):
        error = row.ERROR
        if not error or row.TYPE not in _REJECTABLE:
            continue
        prefix, kind = _REJECTABLE[row.TYPE]
        nid = prefix + row.NAME
        held = graph.nodes.get(nid, Node(nid, row.NAME, kind))
        graph.nodes[nid] = replace(held, state="error", detail=f"NACK: {error}")


# --- the mesh -----------------------------------------------------------------------------------

def mesh_graph(topology: Mapping[str, Any], per_pod_clusters: Mapping[str, Mapping[str, Any]], *,
               since: Mapping[str, Mapping[str, Any]] | None = None, idle: bool = False) -> Graph:
    """Pods (boxed by Service) and the requests between them, counted by each client's sidecar.

    `topology` is `Mesh.topology()`; `per_pod_clusters` maps a pod to its sidecar's
    `/clusters?format=json`. An edge pod → pod carries the requests to that upstream host
    (summed over the Service's clusters: default and subsets), its share of all the client's
    requests to that Service, and the errors. With `since` (earlier samples) the numbers are
    the difference: what happened in between. Edges without requests are left out unless `idle`.
    Upstream hosts that are no pod of the topology appear as `external` nodes.
    """
    graph = Graph("mesh")
    pods_by_ip = {w["ip"]: w["name"] for w in topology.get("workloads", [])}
    for workload in topology.get("workloads", []):
        detail = workload.get("ip", "") + ("" if workload.get("sidecar", True) else " (no sidecar)")
        graph.add(Node(f"pod:{workload['name']}", workload["name"], "pod", detail))
    for service in topology.get("services", []):
        selector = service.get("selector", {}).items()
        members = tuple(f"pod:{w['name']}" for w in topology.get("workloads", [])
                        if selector and selector <= w.get("labels", {}).items())
        graph.subgraphs.append(Subgraph(f"service:{service['name']}", f"{service['name']} ({service.get('vip', '')})",
                                        members))
    for pod, clusters_json in per_pod_clusters.items():
        counted = traffic.delta((since or {}).get(pod), clusters_json)
        _add_requests(graph, f"pod:{pod}", counted, pods_by_ip, idle)
    return graph


def _add_requests(graph: Graph, src: str, counted: Mapping[traffic.HostKey, traffic.Counts],
                  pods_by_ip: Mapping[str, str], idle: bool) -> None:
    by_service: dict[str, dict[str, traffic.Counts]] = {}
    for (cluster, address, port), counts in counted.items():
        parts = cluster.split("|")
        if len(parts) != 4 or parts[0] != "outbound":
            continue
        pod = pods_by_ip.get(address)
        dst = f"pod:{pod}" if pod else f"external:{address}:{port}"
        if not pod:
            graph.add(Node(dst, f"{address}:{port}", "external", parts[3]))
        per_dst = by_service.setdefault(parts[3], {})
        per_dst[dst] = per_dst.get(dst, traffic.Counts()) + counts
    for per_dst in by_service.values():
        everything = traffic.total(per_dst.values()).total
        for dst, counts in per_dst.items():
            if counts.total or idle:
                share = counts.total / everything if everything else 0.0
                label = f"{counts.total} rq · {share:.0%}" + (f" · {counts.error} err" if counts.error else "")
                state = "error" if counts.error else "" if counts.total else "idle"
                graph.link(src, dst, label, state, share)


# --- output -------------------------------------------------------------------------------------

_SHAPES = {  # kind: (shape, fill)
    "listener": ("box", "#cfe2f3"), "chain": ("box", "#e8f0fa"), "route_config": ("folder", "#fff2cc"),
    "virtual_host": ("box", "#fff8e1"), "route": ("box", "#fffbee"), "direct_response": ("octagon", "#f3f3f3"),
    "redirect": ("octagon", "#f3f3f3"),
    "cluster": ("box3d", "#d9ead3"), "endpoint": ("ellipse", "#ffffff"), "pod": ("box", "#cfe2f3"),
    "external": ("ellipse", "#f3f3f3"),
}
_STATE_STYLE = {  # state: extra DOT attributes
    "ok": {"color": "#38761d"}, "bad": {"fillcolor": "#f4cccc", "color": "#cc0000"},
    "error": {"fillcolor": "#f4cccc", "color": "#cc0000", "penwidth": "2"},
    "missing": {"fillcolor": "#ffffff", "color": "#999999", "style": "dashed,filled"},
    "idle": {"fontcolor": "#999999", "color": "#bbbbbb"},
    "blackhole": {"fillcolor": "#333333", "fontcolor": "#ffffff"},
}
_EDGE_STYLE = {"error": {"color": "#cc0000", "fontcolor": "#cc0000"},
               "idle": {"color": "#bbbbbb", "style": "dashed", "fontcolor": "#999999"}}


def to_dot(graph: Graph) -> str:
    """Graphviz DOT source, left to right, coloured by state, Services as boxes around pods."""
    lines = ["digraph meshkit {",
             f'  graph [rankdir=LR, fontname="Helvetica", fontsize=12, labelloc=t, label={_quote(graph.title)}];',
             '  node [fontname="Helvetica", fontsize=10, style="rounded,filled"];',
             '  edge [fontname="Helvetica", fontsize=9, color="#555555"];']
    for index, subgraph in enumerate(graph.subgraphs):
        members = " ".join(_quote(m) for m in subgraph.members)
        lines.append(f'  subgraph cluster_{index} {{ label={_quote(subgraph.label)}; style="rounded,dashed"; '
                     f'color="#888888"; {members} }}')
    for node in graph.nodes.values():
        shape, fill = _SHAPES.get(node.kind, ("box", "#ffffff"))
        attrs = {"label": node.label + (f"\n{_clip(node.detail)}" if node.detail else ""),
                 "shape": shape, "fillcolor": fill, "tooltip": f"{node.kind}: {node.label}\n{node.detail}",
                 **_STATE_STYLE.get(node.state, {})}
        lines.append(f"  {_quote(node.id)} [{_attrs(attrs)}];")
    for edge in graph.edges:
        attrs = {"label": edge.label, **_EDGE_STYLE.get(edge.state, {})}
        if edge.share:
            attrs["penwidth"] = f"{1 + 3 * edge.share:.2f}"
        lines.append(f"  {_quote(edge.src)} -> {_quote(edge.dst)} [{_attrs(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_text(graph: Graph) -> str:
    """The plain-text view: each root (a node nothing points to) and the tree below it.

    A node reached a second time prints once more with `(see above)` instead of its subtree.
    """
    children = _children(graph)
    pointed_at = {e.dst for e in graph.edges}
    shown: set[str] = set()
    lines = [graph.title] if graph.title else []

    def walk(nid: str, depth: int, via: Edge | None) -> None:
        node = graph.nodes[nid]
        arrow = f"-[{via.label}]-> " if via is not None and via.label else "-> " if via is not None else ""
        detail = f" ({node.detail})" if node.detail else ""
        state = f" [{node.state}]" if node.state and node.state != "ok" else ""
        again = " (see above)" if nid in shown and children.get(nid) else ""
        lines.append(f"{'  ' * depth}{arrow}{node.kind.replace('_', ' ')} {node.label}{detail}{state}{again}")
        if nid in shown:
            return
        shown.add(nid)
        for edge in children.get(nid, []):
            walk(edge.dst, depth + 1, edge)

    roots = [n for n in graph.nodes if n not in pointed_at]
    for nid in roots + [n for n in graph.nodes if n not in roots]:  # then whatever only cycles reach
        if nid not in shown:
            walk(nid, 0, None)
    return "\n".join(lines)


def _children(graph: Graph) -> dict[str, list[Edge]]:
    children: dict[str, list[Edge]] = {}
    for edge in graph.edges:
        children.setdefault(edge.src, []).append(edge)
    return children


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(attrs: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={_quote(value)}" for key, value in attrs.items())


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
