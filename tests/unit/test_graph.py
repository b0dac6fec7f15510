"""Graphs and edge counts from real Envoy 1.40 admin JSON (tests/fixtures/envoy, tests/fixtures/traffic)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from meshkit.inspect import traffic
from meshkit.inspect.dump import section
from meshkit.inspect.graph import Graph, Node, mesh_graph, proxy_graph, to_dot, to_text

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
    assert edges[(chain, "rc:9080")] == "RDS"
    vhost = "rc:9080/reviews.default.svc.cluster.local:9080"
    assert edges[("rc:9080", vhost)] == "reviews, reviews.default +3"
    assert edges[(vhost, f"{vhost}/0")] == "1. /* & end-user=jason"
    assert edges[(f"{vhost}/1", f"cluster:{REVIEWS_V1}")] == "80%"
    assert (f"cluster:{REVIEWS_V1}", "endpoint:10.244.0.14:9080") in edges
    assert edges[(listener, "listener:0.0.0.0_9080#1")] == "no chain matched (default)"
    assert "listener:virtualInbound" not in graph.nodes  # only what 0.0.0.0_9080 leads to


def test_proxy_graph_states(dump: dict) -> None:
    nodes = proxy_graph(dump).nodes
    assert nodes["endpoint:10.244.0.13:9080"].state == "bad"  # EDS says UNHEALTHY
    assert nodes["endpoint:10.244.0.14:9080"].state == "ok"
    assert nodes["cluster:BlackHoleCluster"].state == "blackhole"
    assert nodes["direct:418"].kind == "direct_response"
    assert next(iter(nodes.values())).kind == "listener"  # drawn from the door inwards


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
    labels = {e.dst: e.label for e in graph.edges}
    assert labels["pod:reviews-v1"] == "45 rq · 75%"


def test_mesh_graph_idle_edges_and_hosts_outside_the_topology() -> None:
    """The inspect fixture's sidecar sees 10.244.0.x hosts, none of them pods of TOPOLOGY."""
    graph = mesh_graph(TOPOLOGY, {"productpage-v1": load("envoy/clusters.json")}, idle=True)
    external = graph.nodes["external:10.244.0.30:3306"]
    assert (external.kind, external.detail) == ("external", "mysqldb.default.svc.cluster.local")
    assert {e.state for e in graph.edges} == {"idle"}
    assert all(not e.src.startswith("external") for e in graph.edges)


# --- output ---------------------------------------------------------------------------------------

def test_to_text_is_an_indented_tree(dump: dict) -> None:
    text = to_text(proxy_graph(dump, listeners=["0.0.0.0_9080"], title="productpage-v1"))
    lines = text.splitlines()
    assert lines[:3] == ["productpage-v1", "listener 0.0.0.0_9080 (0.0.0.0:9080)",
                         "  -[Trans: raw_buffer; App: http/1.1,h2c]-> chain #0 (HCM)"]
    assert "          -[80%]-> cluster outbound|9080|v1|reviews.default.svc.cluster.local (EDS)" in lines
    assert "            -> endpoint 10.244.0.13:9080 (UNHEALTHY) [bad]" in lines


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
              mesh_graph(TOPOLOGY, {"productpage-v1": load("traffic/clusters_2.json")})]
    for graph in graphs:
        done = subprocess.run(["dot", "-Tsvg"], input=to_dot(graph), capture_output=True, text=True, check=True)
        assert "<svg" in done.stdout and not done.stderr
