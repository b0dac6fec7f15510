"""Graphs and edge counts from real Envoy 1.40 admin JSON (tests/fixtures/envoy, tests/fixtures/traffic)."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from meshkit.inspect import traffic
from meshkit.inspect.dump import section
from meshkit.inspect.graph import Graph, Node, changed, mark_changes, to_dot, to_text
from meshkit.inspect.mesh_graph import mesh_graph, route_weights, stream_state, tls_clusters
from meshkit.inspect.proxy_graph import listener_ports, proxy_graph, request_path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REVIEWS_V1 = "outbound|9080|v1|reviews.default.svc.cluster.local"


def load(relative: str) -> dict:
    return json.loads((FIXTURES / relative).read_text())


@pytest.fixture(scope="module")
def dump() -> dict:
    return load("envoy/config_dump.json")


def workload(name: str, ip: str, app: str) -> dict:
    return {"name": name, "ip": ip, "labels": {"app": app, "version": name.rsplit("-", 1)[1]}, "sidecar": True}


# The traffic fixture's stand-in pod IPs (see tests/fixtures/traffic/generate.py), shaped like Mesh.topology().
TOPOLOGY = {
    "services": [{"name": "productpage", "vip": "10.96.0.12", "selector": {"app": "productpage"}},
                 {"name": "reviews", "vip": "10.96.0.14", "selector": {"app": "reviews"}},
                 {"name": "ratings", "vip": "10.96.0.13", "selector": {"app": "ratings"}}],
    "workloads": [workload("productpage-v1", "127.0.0.12", "productpage"),
                  workload("reviews-v1", "127.0.0.14", "reviews"), workload("reviews-v2", "127.0.0.15", "reviews"),
                  workload("reviews-v3", "127.0.0.16", "reviews"), workload("ratings-v1", "127.0.0.13", "ratings")],
}


# --- traffic --------------------------------------------------------------------------------------

def test_host_counts_are_envoys_own_counters() -> None:
    counted = traffic.counts(load("traffic/clusters_2.json"))
    assert counted[(REVIEWS_V1, "127.0.0.14", 46569)] == traffic.Counts(45, 45, 0)
    ratings = next(c for (name, _, _), c in counted.items() if "ratings" in name)
    assert ratings == traffic.Counts(60, 0, 60)  # the stand-in ratings answers 503: Envoy counts rq_error


def test_delta_is_what_happened_between_samples() -> None:
    delta = traffic.delta(load("traffic/clusters_1.json"), load("traffic/clusters_2.json"))
    assert delta[(REVIEWS_V1, "127.0.0.14", 46569)] == traffic.Counts(31, 31, 0)
    assert traffic.delta(None, load("traffic/clusters_1.json")) == traffic.counts(load("traffic/clusters_1.json"))


def test_delta_after_a_restart_counts_from_zero() -> None:
    """Counters that went down (Envoy restarted) count from zero, like Prometheus' increase()."""
    assert traffic.delta(load("traffic/clusters_2.json"), load("traffic/clusters_1.json")) == \
        traffic.counts(load("traffic/clusters_1.json"))


def test_hosts_carry_health() -> None:
    health = {h.address: h.health for h in traffic.hosts(load("envoy/clusters.json"))}
    assert health["10.244.0.13"] == "UNHEALTHY"
    assert health["10.244.0.14"] == "HEALTHY"


# --- proxy graph ----------------------------------------------------------------------------------

def test_proxy_graph_follows_a_request_through_the_sidecar(dump: dict) -> None:
    graph = proxy_graph(dump, listeners=["0.0.0.0_9080"])
    edges = {(e.src, e.dst): e.label for e in graph.edges}
    listener, chain = "listener:0.0.0.0_9080", "listener:0.0.0.0_9080#0"
    assert edges[(listener, chain)] == "Trans: raw_buffer; App: http/1.1,h2c"  # istioctl's MATCH
    assert edges[(chain, f"{chain}/f0")] == "" and graph.nodes[f"{chain}/f0"].label == "HCM"  # the network filter
    assert edges[(f"{chain}/f0", "rc:9080")] == "RDS"
    vhost = "rc:9080/reviews.default.svc.cluster.local:9080"
    assert edges[("rc:9080", vhost)] == "reviews, reviews.default +3"
    assert edges[(vhost, f"{vhost}/0")] == "1. /* & end-user=jason"
    assert edges[(f"{vhost}/1", f"cluster:{REVIEWS_V1}")] == "80%"
    assert (f"cluster:{REVIEWS_V1}", "endpoint:10.244.0.14:9080") in edges
    assert edges[(listener, "listener:0.0.0.0_9080#1")] == "no chain matched (default)"
    assert "listener:virtualInbound" not in graph.nodes  # only what 0.0.0.0_9080 leads to
    passthrough = "listener:0.0.0.0_9080#1/f0"
    assert graph.nodes[passthrough].label == "tcp_proxy" and (passthrough, "cluster:PassthroughCluster") in edges


def test_proxy_graph_states(dump: dict) -> None:
    nodes = proxy_graph(dump, expand_inbound=True).nodes
    assert nodes["endpoint:10.244.0.13:9080"].state == "bad"  # EDS says UNHEALTHY
    assert nodes["endpoint:10.244.0.14:9080"].state == "ok"
    assert nodes["cluster:BlackHoleCluster"].state == "blackhole"
    assert nodes["direct:418"].kind == "direct_response"
    assert next(iter(nodes.values())).kind == "downstream"  # drawn from the caller inwards


def test_proxy_graph_with_live_cluster_stats_uses_envoys_health(dump: dict) -> None:
    graph = proxy_graph(dump, load("envoy/clusters.json"))
    assert graph.nodes["endpoint:10.244.0.13:9080"].detail == "UNHEALTHY"


def test_proxy_graph_marks_a_nack_with_envoys_text() -> None:
    node = proxy_graph(load("envoy/config_dump_nack.json")).nodes["listener:bad-listener"]
    assert node.state == "error"
    assert "Didn't find a registered implementation for 'not.a.filter'" in node.detail


def test_route_to_a_cluster_envoy_lacks_is_missing(dump: dict) -> None:
    """The real dump with the jason route pointed at a subset no cluster exists for (503 NC in Envoy)."""
    edited = json.loads(json.dumps(dump).replace("outbound|9080|v2|reviews", "outbound|9080|v9|reviews"))
    for entry in section(edited, "ClustersConfigDump")["dynamic_active_clusters"]:
        if "|v9|" in entry["cluster"]["name"]:
            entry["cluster"]["name"] = "outbound|9080|v2|reviews.default.svc.cluster.local"
    node = proxy_graph(edited).nodes["cluster:outbound|9080|v9|reviews.default.svc.cluster.local"]
    assert (node.state, node.detail) == ("missing", "not in CDS")


# --- mesh graph -----------------------------------------------------------------------------------

def test_mesh_graph_counts_and_shares_between_samples() -> None:
    graph = mesh_graph(TOPOLOGY, {"productpage-v1": load("traffic/clusters_2.json")},
                       since={"productpage-v1": load("traffic/clusters_1.json")})
    edges = {(e.src, e.dst): e for e in graph.edges}
    assert edges[("pod:productpage-v1", "pod:reviews-v1")].label == "31 rq · 78%"
    assert edges[("pod:productpage-v1", "pod:reviews-v3")].label == "9 rq · 22%"
    ratings = edges[("pod:productpage-v1", "pod:ratings-v1")]
    assert (ratings.label, ratings.state) == ("40 rq · 100% · 40 err", "error")
    assert ("pod:productpage-v1", "pod:reviews-v2") not in edges  # idle edges hidden by default
    reviews = next(s for s in graph.subgraphs if s.id == "service:reviews")
    assert reviews.members == ("pod:reviews-v1", "pod:reviews-v2", "pod:reviews-v3")


def test_mesh_graph_totals_without_an_earlier_sample() -> None:
    graph = mesh_graph(TOPOLOGY, {"productpage-v1": load("traffic/clusters_2.json")})
    labels = {e.dst: e.label for e in graph.edges if e.src != "boss"}
    assert labels["pod:reviews-v1"] == "45 rq · 75%"


def test_mesh_graph_idle_edges_and_hosts_outside_the_topology() -> None:
    """The inspect fixture's sidecar sees 10.244.0.x hosts, none of them pods of TOPOLOGY."""
    graph = mesh_graph(TOPOLOGY, {"productpage-v1": load("envoy/clusters.json")}, idle=True)
    external = graph.nodes["external:10.244.0.30:3306"]
    assert (external.kind, external.detail) == ("external", "mysqldb.default.svc.cluster.local")
    assert {e.state for e in graph.edges if e.src != "boss"} == {"idle"}
    assert all(not e.src.startswith("external") for e in graph.edges)


# --- proxy graph: the story as the seed article draws it -------------------------------------------

REVIEWS_ROUTE = "rc:9080/reviews.default.svc.cluster.local:9080"
REQUEST = {"status": 200, "flags": "-", "route_name": "default", "upstream_cluster": REVIEWS_V1,
           "upstream_host": "10.244.0.14:9080", "pod": "reviews-v1", "version": "v1"}


def test_proxy_graph_has_downstream_left_and_upstream_right(dump: dict) -> None:
    graph = proxy_graph(dump, direction="outbound", port=9080)
    assert graph.first == ("downstream",) and graph.nodes["downstream"].label == "Downstream"
    assert ("downstream", "listener:0.0.0.0_9080") in {(e.src, e.dst) for e in graph.edges}
    upstream = next(s for s in graph.subgraphs if s.id == "upstream")
    assert upstream.label == "Upstream" and "endpoint:10.244.0.14:9080" in upstream.members
    assert all(graph.nodes[m].kind == "endpoint" for m in upstream.members)


def test_proxy_graph_chain_order_is_the_requests_way(dump: dict) -> None:
    """Downstream → listener → chain → filter → route config → virtual host → route → cluster → endpoint."""
    graph = proxy_graph(dump, port=9080)
    kinds = {nid: n.kind for nid, n in graph.nodes.items()}
    order = ["downstream", "listener", "chain", "filter", "route_config", "virtual_host", "route", "cluster",
             "endpoint"]
    steps = {(kinds[e.src], kinds[e.dst]) for e in graph.edges}
    for before, after in itertools.pairwise(order):
        assert (before, after) in steps, (before, after)
    backwards = [(a, b) for a, b in steps if a in order and b in order and order.index(b) <= order.index(a)]
    assert not backwards
    dot = to_dot(graph)
    assert "rankdir=LR" in dot and 'size="9.2' in dot and "rank=source" in dot


def test_proxy_graph_focus(dump: dict) -> None:
    outbound = proxy_graph(dump, direction="outbound")
    listeners = {n.label for n in outbound.nodes.values() if n.kind == "listener"}
    assert listeners == {"virtualOutbound", "0.0.0.0_9080", "10.96.0.10_9153", "10.96.0.20_3306"}
    inbound = proxy_graph(dump, direction="inbound")
    assert {n.label for n in inbound.nodes.values() if n.kind == "listener"} == {"virtualInbound"}
    assert {n.label for n in proxy_graph(dump, port=3306).nodes.values() if n.kind == "listener"} == \
        {"10.96.0.20_3306"}
    only_ratings = proxy_graph(dump, port=9080, host="ratings")
    hosts = {n.label for n in only_ratings.nodes.values() if n.kind == "virtual_host"}
    assert hosts == {"ratings.default.svc.cluster.local:9080"}
    assert not [n for n in only_ratings.nodes if "reviews" in n]
    assert len(only_ratings.nodes) < len(proxy_graph(dump, port=9080).nodes) / 2  # a small picture
    assert listener_ports(dump) == {"outbound": [3306, 9080, 9153, 15001], "inbound": [15006]}
    with pytest.raises(ValueError, match="direction 'sideways' is not one of outbound, inbound, all"):
        proxy_graph(dump, direction="sideways")


def test_inbound_chains_collapse_into_one_node_until_expanded(dump: dict) -> None:
    folded = proxy_graph(dump, direction="inbound")
    collapsed = folded.nodes["listener:virtualInbound#*"]
    assert (collapsed.kind, collapsed.label) == ("collapsed", "8 filter chains")
    assert not [n for n in folded.nodes.values() if n.kind == "chain"]
    expanded = proxy_graph(dump, direction="inbound", expand_inbound=True)
    assert len([n for n in expanded.nodes.values() if n.kind == "chain"]) == 8
    assert "listener:virtualInbound#*" not in expanded.nodes


def test_proxy_graph_nack_mark_in_focus_with_envoys_text() -> None:
    nack = load("envoy/config_dump_nack.json")
    graph = proxy_graph(nack, direction="outbound")
    node = graph.nodes["listener:bad-listener"]
    assert node.state == "error" and "NACK: Didn't find a registered implementation" in node.detail
    dot = to_dot(graph)
    assert "#cc0000" in dot and "not.a.filter" in dot  # red, and Envoy's words in the picture
    assert "listener:bad-listener" not in proxy_graph(nack, listeners=["0.0.0.0_9080"]).nodes


def test_changed_marks_what_differs_from_the_previous_picture(dump: dict) -> None:
    before = proxy_graph(dump, port=9080)
    assert not changed(mark_changes(None, before))  # nothing to compare with: nothing marked
    assert not changed(mark_changes(before, proxy_graph(dump, port=9080)))  # same config: nothing marked
    text = json.dumps(dump).replace('"weight": 80', '"weight": 60').replace('"weight": 20', '"weight": 40')
    edited = json.loads(text)
    after = mark_changes(before, proxy_graph(edited, port=9080))
    assert changed(after) == [f"{REVIEWS_ROUTE}/1"]  # the route whose weights moved, nothing else
    assert "● changed" in to_dot(after) and "[changed]" in to_text(after)
    # a new last_updated from Envoy marks the resource even when its content looks the same
    bumped = json.loads(json.dumps(dump).replace("2026-11-27T08:43:39.892Z", "2026-11-27T09:00:00.000Z"))
    assert set(changed(mark_changes(before, proxy_graph(bumped, port=9080)))) == {"listener:0.0.0.0_9080", "rc:9080"}


def test_request_path_lights_listener_chain_route_cluster_endpoint(dump: dict) -> None:
    graph = request_path(proxy_graph(dump, port=9080), REQUEST)
    lit = [nid for nid, n in graph.nodes.items() if n.highlight]
    assert lit == ["downstream", "listener:0.0.0.0_9080", "listener:0.0.0.0_9080#0", "listener:0.0.0.0_9080#0/f0",
                   "rc:9080", REVIEWS_ROUTE, f"{REVIEWS_ROUTE}/1", f"cluster:{REVIEWS_V1}",
                   "endpoint:10.244.0.14:9080"]
    lit_edges = [(e.src, e.dst) for e in graph.edges if e.highlight]
    assert (f"{REVIEWS_ROUTE}/1", f"cluster:{REVIEWS_V1}") in lit_edges
    assert (f"{REVIEWS_ROUTE}/0", "cluster:outbound|9080|v2|reviews.default.svc.cluster.local") not in lit_edges
    assert "▶ 200 -" in graph.nodes["endpoint:10.244.0.14:9080"].detail
    assert "#1155cc" in to_dot(graph)
    jason = request_path(proxy_graph(dump, port=9080), {**REQUEST, "route_name": "jason", "upstream_host": "",
                                                        "upstream_cluster": REVIEWS_V1.replace("v1", "v2")})
    assert f"{REVIEWS_ROUTE}/0" in [nid for nid, n in jason.nodes.items() if n.highlight]


# --- mesh graph: the whole story ---------------------------------------------------------------

def bookinfo_topology() -> dict:
    """Bookinfo with the fixture's pod IPs (tests/fixtures/envoy), shaped like Mesh.topology()."""
    ips = {"productpage-v1": "10.244.0.12", "details-v1": "10.244.0.11", "reviews-v1": "10.244.0.14",
           "reviews-v2": "10.244.0.15", "reviews-v3": "10.244.0.16", "ratings-v1": "10.244.0.13"}
    calls = {"productpage-v1": ["details", "reviews"], "reviews-v2": ["ratings"], "reviews-v3": ["ratings"]}
    workloads = [{**workload(name, ip, name.rsplit("-", 1)[0]), "calls": calls.get(name, []),
                  "service_account": f"bookinfo-{name.rsplit('-', 1)[0]}", "namespace": "default"}
                 for name, ip in ips.items()]
    workloads.append({"name": "outsider", "ip": "10.244.0.40", "labels": {"app": "outsider"}, "sidecar": False})
    services = [{"name": app, "vip": f"10.96.0.{i}", "selector": {"app": app}, "namespace": "default",
                 "fqdn": f"{app}.default.svc.cluster.local"}
                for i, app in enumerate(("productpage", "details", "reviews", "ratings"), 11)]
    return {"services": services, "workloads": workloads,
            "outside": {"host": "httpbin.example.com", "address": "10.244.7.1", "ports": [8080]}}


STATUS = [{"pod": "productpage-v1", "connected": True,
           "types": {"LDS": {"state": "SYNCED"}, "RDS": {"state": "SYNCED"}}},
          {"pod": "reviews-v1", "connected": True, "types": {"LDS": {"state": "ERROR"}, "CDS": {"state": "SYNCED"}}},
          {"pod": "reviews-v2", "connected": True, "types": {"RDS": {"state": "STALE"}}},
          {"pod": "details-v1", "connected": False, "types": {}}]


def test_mesh_graph_boss_streams_and_the_call_graph_before_any_traffic() -> None:
    sample = load("envoy/clusters.json")  # every sidecar holds the same clusters; no request was sent
    topology = bookinfo_topology()
    pods = [w["name"] for w in topology["workloads"] if w.get("sidecar", True)]
    graph = mesh_graph(topology, {p: sample for p in pods}, since={p: sample for p in pods}, status_rows=STATUS,
                       flashes={"reviews-v3": "ACK"})
    assert graph.nodes["boss"].kind == "boss" and graph.first == ("boss",) and graph.rankdir == "TB"
    streams = {e.dst: (e.state, e.label) for e in graph.edges if e.src == "boss" and e.state != "invisible"}
    assert set(streams) == {f"pod:{p}" for p in pods}  # one stream per sidecar, none to the outsider
    assert streams["pod:productpage-v1"] == ("synced", "")  # green says it: labels only where something happens
    assert streams["pod:reviews-v1"][0] == "error" and streams["pod:reviews-v2"][0] == "stale"
    assert streams["pod:details-v1"][0] == "disconnected" and streams["pod:ratings-v1"][0] == "disconnected"
    assert streams["pod:reviews-v3"][0] == "flash-ack"
    calls = {(e.src[4:], e.dst[4:]): e for e in graph.edges if e.src != "boss"}
    assert set(calls) == {("productpage-v1", "details-v1"), ("productpage-v1", "reviews-v1"),
                          ("productpage-v1", "reviews-v2"), ("productpage-v1", "reviews-v3"),
                          ("reviews-v2", "ratings-v1"), ("reviews-v3", "ratings-v1")}
    assert not [c for c in calls if c[0] == "reviews-v1"]  # v1 shows no stars: it never calls ratings
    assert {e.state for e in calls.values()} == {"idle"} and {e.label for e in calls.values()} == {"no traffic"}
    assert graph.nodes["pod:outsider"].kind == "outsider" and "no sidecar" in graph.nodes["pod:outsider"].detail
    assert graph.nodes["outside"].kind == "outside"
    dot = to_dot(graph)
    assert "rankdir=TB" in dot and "rank=source" in dot and '"boss" -> "pod:reviews-v1"' in dot


def test_mesh_graph_weights_rates_and_padlocks() -> None:
    topology = bookinfo_topology()
    routes = {"productpage-v1": load("envoy/config_dump.json")}
    tls = {"productpage-v1": {REVIEWS_V1, "outbound|9080||details.default.svc.cluster.local"}}
    sample = load("envoy/clusters.json")
    graph = mesh_graph(topology, {"productpage-v1": sample}, routes=routes, tls=tls, window_s=2.0)
    edges = {e.dst: e.label for e in graph.edges if e.src == "pod:productpage-v1"}
    assert edges["pod:reviews-v1"] == "mTLS · no traffic · w 80%"
    assert edges["pod:details-v1"] == "mTLS · no traffic"
    assert edges["pod:reviews-v3"] == "no traffic · w 20%"
    assert "mTLS: sa/bookinfo-productpage" in graph.nodes["pod:productpage-v1"].detail
    assert route_weights(routes["productpage-v1"])["reviews.default.svc.cluster.local"] == {"v1": 0.8, "v3": 0.2}
    assert tls_clusters(load("envoy/config_dump.json")) == set()  # the fixture's sidecar has no TLS sockets


def test_mesh_graph_rates_and_response_colours() -> None:
    graph = mesh_graph(TOPOLOGY, {"productpage-v1": load("traffic/clusters_2.json")},
                       since={"productpage-v1": load("traffic/clusters_1.json")}, window_s=2.0)
    edges = {e.dst: e for e in graph.edges if e.src == "pod:productpage-v1"}
    assert edges["pod:reviews-v1"].label == "31 rq · 78% · 15.5/s" and edges["pod:reviews-v1"].state == "ok"
    assert edges["pod:ratings-v1"].state == "error"


def test_stream_state() -> None:
    assert stream_state(None) == ("disconnected", "disconnected")
    assert stream_state({"connected": True, "types": {"LDS": {"state": "NOT SENT"}}}) == ("notsent", "NOT SENT")


# --- output ---------------------------------------------------------------------------------------

def test_to_text_is_an_indented_tree(dump: dict) -> None:
    text = to_text(proxy_graph(dump, listeners=["0.0.0.0_9080"], title="productpage-v1"))
    lines = text.splitlines()
    assert lines[:5] == ["productpage-v1", "downstream Downstream (the app (out), pods (in))",
                         "  -> listener 0.0.0.0_9080", "    -[Trans: raw_buffer; App: http/1.1,h2c]-> chain #0",
                         "      -> filter HCM"]
    assert "              -[80%]-> cluster outbound|9080|v1|reviews.default.svc.cluster.local (EDS)" in lines
    assert "                -> endpoint 10.244.0.13:9080 (UNHEALTHY) [bad]" in lines


def test_to_text_shows_a_shared_subtree_once() -> None:
    graph = Graph("t", {n: Node(n, n, "x") for n in "abcd"})
    for src, dst in [("a", "c"), ("b", "c"), ("c", "d")]:
        graph.link(src, dst)
    assert to_text(graph).splitlines() == ["t", "x a", "  -> x c", "    -> x d", "x b", "  -> x c (see above)"]


def test_to_text_of_a_cycle() -> None:
    graph = Graph("", {n: Node(n, n, "pod") for n in "ab"})
    graph.link("a", "b", "1 rq")
    graph.link("b", "a", "2 rq")
    assert to_text(graph).splitlines() == ["pod a", "  -[1 rq]-> pod b", "    -[2 rq]-> pod a (see above)"]


def test_to_dot_quotes_names_envoy_uses() -> None:
    graph = Graph('say "hi"', {})
    graph.add(Node('cluster:outbound|9080||a"b', "x\\y", "cluster", "two\nlines"))
    dot = to_dot(graph)
    assert 'label="say \\"hi\\""' in dot
    assert '"cluster:outbound|9080||a\\"b" [label="x\\\\y\\ntwo\\nlines"' in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz `dot`")
def test_dot_accepts_every_graph(dump: dict) -> None:
    graphs = [proxy_graph(dump), proxy_graph(load("envoy/config_dump_nack.json"), load("envoy/clusters.json")),
              mesh_graph(TOPOLOGY, {"productpage-v1": load("traffic/clusters_2.json")}),
              request_path(proxy_graph(dump, expand_inbound=True), REQUEST),
              mesh_graph(bookinfo_topology(), {"productpage-v1": load("envoy/clusters.json")}, status_rows=STATUS)]
    for graph in graphs:
        done = subprocess.run(["dot", "-Tsvg"], input=to_dot(graph), capture_output=True, text=True, check=True)
        assert "<svg" in done.stdout and not done.stderr


def test_mesh_graph_shows_the_front_gate_only_while_a_gateway_opens_it() -> None:
    """An idle gate holds no listener: drawing it would only crowd the picture; once open, it is there."""
    topology = bookinfo_topology()
    gate = {"name": "istio-ingressgateway-x", "deployment": "istio-ingressgateway", "ip": "10.244.0.30",
            "labels": {"istio": "ingressgateway"}, "sidecar": True, "listens": [],
            "node_id": "router~10.244.0.30~istio-ingressgateway-x.istio-system~istio-system.svc.cluster.local"}
    topology["workloads"].append(gate)
    assert "pod:istio-ingressgateway-x" not in mesh_graph(topology, {}, status_rows=STATUS).nodes
    gate["listens"] = [8080]
    opened = mesh_graph(topology, {}, status_rows=STATUS)
    assert opened.nodes["pod:istio-ingressgateway-x"].label == "istio-ingressgateway"
    assert ("boss", "pod:istio-ingressgateway-x") in {(e.src, e.dst) for e in opened.edges}
