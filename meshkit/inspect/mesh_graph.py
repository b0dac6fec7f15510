"""The whole mesh as one story, top to bottom, from what the boss and the Envoys report.

At the top the boss (istiod), with one xDS stream to each lieutenant (sidecar), coloured by its
sync state (`Mesh.status_rows()`: SYNCED, STALE, ERROR, NOT SENT, disconnected) and flashing
for a redraw after a SENT, ACK or NACK. Below, Services as frames around their pods, and the
call graph: an edge for every Service a pod's app calls (the topology's `calls`) that its
sidecar holds a cluster for, there before any request (grey), then carrying the requests Envoy
counted (rate, share, errors in red) and the route weights of the live RDS. The sidecar-less
`outsider` and the outside world appear as such; with mTLS the edges get a padlock and the pods
their SPIFFE identity.

    >>> from meshkit.inspect.graph import to_text
    >>> graph = mesh_graph(mesh.topology(), {"productpage-v1": clusters_json}, status_rows=mesh.status_rows())
    >>> print(to_text(graph))
    mesh
    boss the boss (istiod) (one xDS (ADS) stream; per sidecar)
      -[ERROR]-> pod productpage-v1 (10.244.0.12)
        -[no traffic]-> pod reviews-v1 (10.244.0.14)
    ...
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from . import dump, traffic
from .graph import Graph, Node, Subgraph

__all__ = ["BOSS", "mesh_graph", "route_weights", "stream_state", "tls_clusters"]

BOSS = "boss"
OUTSIDE = "outside"
_STREAM = {"SYNCED": "synced", "STALE": "stale", "ERROR": "error", "NOT SENT": "notsent"}
_FLASH = {"SENT": "flash-sent", "ACK": "flash-ack", "NACK": "flash-nack"}
LEGEND = ("xDS streams: green SYNCED, orange STALE, red ERROR, grey dotted NOT SENT/disconnected, bold: just SENT "
          "(blue), ACK (green), NACK (red). Calls: grey dashed = configured, no traffic yet; green ok, red 5xx")


def mesh_graph(topology: Mapping[str, Any], per_pod_clusters: Mapping[str, Mapping[str, Any]], *,
               since: Mapping[str, Mapping[str, Any]] | None = None, idle: bool = False,
               status_rows: Iterable[Mapping[str, Any]] | None = None, flashes: Mapping[str, str] | None = None,
               routes: Mapping[str, Mapping[str, Any]] | None = None, tls: Mapping[str, set[str]] | None = None,
               window_s: float | None = None) -> Graph:
    """The boss, its streams, pods boxed by Service, and the calls between them.

    `topology` is `Mesh.topology()` (workloads may list the Services their app `calls`);
    `per_pod_clusters` maps a pod to its sidecar's `/clusters?format=json`; `since` holds the
    earlier samples (numbers are then what happened in between, over `window_s` seconds).
    `status_rows` is `Mesh.status_rows()`; `flashes` maps a pod to its latest event (SENT, ACK,
    NACK) to flash its stream. `routes` maps a pod to its Envoy's route configs (for weights),
    `tls` to the clusters it sends to over mTLS. Edges without requests and without a configured
    call are left out unless `idle`; upstream hosts that are no pod are `external` nodes.
    """
    graph = Graph("mesh", rankdir="TB", note=LEGEND)
    rows = list(status_rows) if status_rows is not None else None
    # the front gate appears while a Gateway opens a port on it (until then it holds no listener)
    workloads = [w for w in topology.get("workloads", [])
                 if not str(w.get("node_id", "")).startswith("router~") or w.get("listens")]
    pods_by_ip = {w["ip"]: w["name"] for w in workloads}
    outside = topology.get("outside") or {}
    sidecars = [w for w in workloads if w.get("sidecar", True)]
    if rows is not None or sidecars:
        graph.add(Node(BOSS, "the boss (istiod)", "boss", "one xDS (ADS) stream\nper sidecar"))
        graph.first = (BOSS,)
    for workload in workloads:
        _add_pod(graph, workload)
    if outside.get("address"):
        graph.add(Node(OUTSIDE, "outside world", "outside", f"{outside.get('host', '')}\nnot in the mesh"))
    graph.last = tuple(n for n in graph.nodes if graph.nodes[n].kind in ("outsider", "outside"))
    for strange in graph.last if BOSS in graph.nodes else ():  # held low: strangers, not the boss's lieutenants
        graph.link(BOSS, strange, state="invisible")
    framed: set[str] = set()  # a pod sits in one frame: Graphviz cannot draw a node in two clusters
    for service in sorted(topology.get("services", []), key=lambda s: len(s.get("selector", {}))):
        selector = service.get("selector", {}).items()
        # the broadest Service frames a pod (reviews, not reviews-v1)
        members = tuple(f"pod:{w['name']}" for w in workloads
                        if selector and selector <= w.get("labels", {}).items() and f"pod:{w['name']}" not in framed)
        framed.update(members)
        if members:
            graph.subgraphs.append(Subgraph(f"service:{service['name']}",
                                            f"{service['name']} ({service.get('vip', '')})", members))
    _add_streams(graph, sidecars, rows, flashes or {})
    calls = _configured_calls(topology, per_pod_clusters)
    for pod, clusters_json in per_pod_clusters.items():
        counted = traffic.delta((since or {}).get(pod), clusters_json)
        _add_requests(graph, pod, counted, pods_by_ip, outside.get("address", ""), calls.get(pod, {}), idle,
                      route_weights((routes or {}).get(pod, {})), (tls or {}).get(pod, set()), window_s)
    return graph


def _add_pod(graph: Graph, workload: Mapping[str, Any]) -> None:
    name = workload["name"]
    if not workload.get("sidecar", True):
        graph.add(Node(f"pod:{name}", name, "outsider", f"{workload.get('ip', '')}\nno sidecar,\nno identity",
                       "outsider"))
        return
    graph.add(Node(f"pod:{name}", workload.get("deployment") or name, "pod", workload.get("ip", ""),
                   tooltip=f"pod {name} ({workload.get('ip', '')})\nspiffe://cluster.local/ns/"
                           f"{workload.get('namespace', 'default')}/sa/{workload.get('service_account', 'default')}"))


def stream_state(row: Mapping[str, Any] | None) -> tuple[str, str]:
    """(edge state, label) of one proxy's xDS stream from its `status_rows()` row (None: no stream)."""
    if row is None or not row.get("connected", True):
        return "disconnected", "disconnected"
    states = [t.get("state", "") for t in row.get("types", {}).values()]
    for worst in ("ERROR", "STALE", "NOT SENT"):
        if worst in states:
            return _STREAM[worst], worst
    return ("synced", "SYNCED") if states else ("notsent", "NOT SENT")


def _add_streams(graph: Graph, sidecars: list[Mapping[str, Any]], status_rows: Iterable[Mapping[str, Any]] | None,
                 flashes: Mapping[str, str]) -> None:
    rows = {}
    for row in status_rows or ():
        rows[row.get("pod") or str(row.get("name", "")).rsplit(".", 1)[0]] = row
    for workload in sidecars:
        name = workload["name"]
        state, label = stream_state(rows.get(name)) if status_rows is not None else ("notsent", "")
        flash = flashes.get(name, "")
        if flash in _FLASH:
            state, label = _FLASH[flash], f"{flash}!" if not label else f"{label} ({flash})"
        elif label == "SYNCED":
            label = ""  # the green says it; labels only where something is going on
        graph.link(BOSS, f"pod:{name}", label, state)


def _configured_calls(topology: Mapping[str, Any], per_pod_clusters: Mapping[str, Mapping[str, Any]]
                      ) -> dict[str, dict[str, str]]:
    """pod → {upstream pod: Service} for the Services its app calls and its sidecar holds hosts for.

    The edge exists because the config says the call can happen, before any request."""
    services = {s["name"]: s for s in topology.get("services", [])}
    pods_by_ip = {w["ip"]: w["name"] for w in topology.get("workloads", [])}
    found: dict[str, dict[str, str]] = {}
    for workload in topology.get("workloads", []):
        clusters_json = per_pod_clusters.get(workload["name"])
        if clusters_json is None:
            continue
        for called in workload.get("calls", []):
            service = services.get(called)
            if service is None:
                continue
            fqdn = service.get("fqdn") or f"{called}.{service.get('namespace', 'default')}.svc.cluster.local"
            for host in traffic.hosts(clusters_json):
                parts = host.cluster.split("|")
                if len(parts) == 4 and parts[0] == "outbound" and parts[3] == fqdn and host.address in pods_by_ip:
                    found.setdefault(workload["name"], {})[pods_by_ip[host.address]] = fqdn
    return found


def _add_requests(graph: Graph, pod: str, counted: Mapping[traffic.HostKey, traffic.Counts],
                  pods_by_ip: Mapping[str, str], outside_ip: str, calls: Mapping[str, str], idle: bool,
                  weights: Mapping[str, Mapping[str, float]], tls: set[str], window_s: float | None) -> None:
    by_service: dict[str, dict[str, traffic.Counts]] = {}
    secured: dict[str, bool] = {}
    subset_of: dict[str, str] = {}
    for (cluster, address, port), counts in counted.items():
        parts = cluster.split("|")
        if len(parts) != 4 or parts[0] != "outbound":
            continue
        target = pods_by_ip.get(address)
        if target:
            dst = f"pod:{target}"
        elif address == outside_ip:
            dst = OUTSIDE
        else:
            dst = f"external:{address}:{port}"
        per_dst = by_service.setdefault(parts[3], {})
        per_dst[dst] = per_dst.get(dst, traffic.Counts()) + counts
        secured[dst] = secured.get(dst, False) or cluster in tls
        if parts[2]:
            subset_of[dst] = parts[2]
    for service, per_dst in by_service.items():
        everything = traffic.total(per_dst.values()).total
        for dst, counts in per_dst.items():
            configured = dst.startswith("pod:") and calls.get(dst[4:]) == service
            if not (counts.total or idle or configured):
                continue
            if dst.startswith("external:"):  # a host no pod has: drawn only when there is an edge to it
                graph.add(Node(dst, dst.split(":", 1)[1], "external", service))
            share = counts.total / everything if everything else 0.0
            quiet = "no traffic" if configured else "0 rq"
            parts = [f"{counts.total} rq · {share:.0%}" if counts.total else quiet]
            if counts.total and window_s:
                parts.append(f"{counts.total / window_s:.1f}/s")
            if counts.error:
                parts.append(f"{counts.error} err")
            weight = weights.get(service, {}).get(subset_of.get(dst, ""))
            if weight is not None and weight < 1.0:
                parts.append(f"w {weight:.0%}")
            if secured.get(dst):
                _show_identity(graph, f"pod:{pod}")
                _show_identity(graph, dst)
            state = "idle" if not counts.total else "error" if counts.error == counts.total else \
                "mixed" if counts.error else "ok"
            graph.link(f"pod:{pod}", dst, ("mTLS · " if secured.get(dst) else "") + " · ".join(parts), state, share)


def _show_identity(graph: Graph, nid: str) -> None:
    node = graph.nodes.get(nid)
    if node is None or node.kind != "pod" or "mTLS" in node.detail:
        return
    account = node.tooltip.split("sa/")[-1] if "sa/" in node.tooltip else ""
    graph.nodes[nid] = Node(node.id, node.label, node.kind, f"{node.detail}\nmTLS: sa/{account}" if account else
                            node.detail, node.state, node.version, node.tooltip)


def route_weights(route_dump: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Service FQDN → {subset: weight 0–1} of the catch-all route, from the live RDS of one Envoy."""
    found: dict[str, dict[str, float]] = {}
    for config in _configs(route_dump, "route_config", dump.route_configs):
        for vhost in config.get("virtual_hosts", []):
            routes = vhost.get("routes", [])
            plain = [r for r in routes if not r.get("match", {}).get("headers")] or routes
            if not plain:
                continue
            weighted = plain[-1].get("route", {}).get("weighted_clusters", {}).get("clusters", [])
            total = sum(int(c.get("weight", 0)) for c in weighted) or 1
            for target in weighted:
                parts = target.get("name", "").split("|")
                if len(parts) == 4:
                    found.setdefault(parts[3], {})[parts[2]] = int(target.get("weight", 0)) / total
    return found


def tls_clusters(cluster_dump: Mapping[str, Any]) -> set[str]:
    """The clusters one Envoy reaches over TLS (a TLS transport socket, or Istio's auto-mTLS match)."""
    found = set()
    for cluster in _configs(cluster_dump, "cluster", dump.clusters):
        sockets = [cluster.get("transport_socket", {})] + [m.get("transport_socket", {})
                                                           for m in cluster.get("transport_socket_matches", [])]
        if any("tls" in str(s.get("name", "")) for s in sockets):
            found.add(cluster.get("name", ""))
    return found


def _configs(part: Mapping[str, Any], key: str, whole: Any) -> list[dict]:
    """Resources from a `/config_dump?resource=…` answer, or from a whole dump."""
    direct = [c[key] for c in part.get("configs", []) if isinstance(c, dict) and key in c]
    return direct or whole(part)
