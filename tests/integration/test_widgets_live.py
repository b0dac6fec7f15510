"""The widgets against real Envoy sidecars: what the unit tests check with a stand-in mesh, for real.

Every test leaves the mesh as it found it: the Istio resources it applied are deleted and raw
overrides reverted (the `restored` fixture), and every view it opened is closed (its threads end).
Timings are printed, never asserted; `benchmarks/redraw.py` gives the redraw figure over many edits.
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Callable, Iterator

import pytest
import yaml

from meshkit.widgets.builders import destination_rule, header_match_virtual_service, weights_to_virtual_service
from meshkit.widgets.editors import FaultForm, HeaderMatchForm, WeightSliders, YamlEditor
from meshkit.widgets.graphs import MeshGraph, ProxyGraph
from meshkit.widgets.panels import SyncTable, TrafficPanel

from .test_local_mesh import BAD_LISTENER  # two identical filter chains: Envoy NACKs it

pytestmark = pytest.mark.mesh

ISTIO_KINDS = ("VirtualService", "DestinationRule", "ServiceEntry")
REVIEWS = "http://reviews:9080/reviews/0"
JASON = {"end-user": "jason"}

ENVOY_SAYS = "has the same matching rules"


def wait_until(check: Callable[[], object], timeout: float = 10.0, step: float = 0.02) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def versions(rows: list[dict]) -> collections.Counter:
    return collections.Counter(r.get("version") or f"HTTP {r.get('status')}" for r in rows)


@pytest.fixture
def restored(mesh) -> Iterator:
    """The mesh, put back afterwards: Istio resources the test added deleted, raw overrides reverted."""
    before = {kind: {r["metadata"]["name"] for r in mesh.get(kind)} for kind in ISTIO_KINDS}
    views: list = []
    yield mesh, views.append
    for view in views:
        view.close()
    added = [r for kind in ISTIO_KINDS for r in mesh.get(kind) if r["metadata"]["name"] not in before[kind]]
    added.sort(key=lambda r: ISTIO_KINDS.index(r["kind"]))  # routes before the subsets they use
    if added:
        mesh.delete(yaml.safe_dump_all(added))
    mesh.revert()
    assert {kind: {r["metadata"]["name"] for r in mesh.get(kind)} for kind in ISTIO_KINDS} == before
    rows = mesh.status_rows()
    assert all(t.get("state") != "ERROR" for r in rows for t in r["types"].values()), rows


# 1 ---------------------------------------------------------------------------------------------

def test_proxy_graph_redraws_after_the_ack_with_the_new_routes(restored) -> None:
    mesh, opened = restored
    graph = ProxyGraph(mesh, "productpage-v1", listeners=["0.0.0.0_9080"])
    opened(graph)
    before, drawn = graph.text(), graph.redraws
    assert "-> cluster outbound|9080||reviews.default.svc.cluster.local" in before
    assert "|v3|reviews" not in before

    started = time.time()
    push = mesh.apply(destination_rule("reviews", ["v1", "v2", "v3"]) + "---\n"
                      + weights_to_virtual_service("reviews", {"v1": 80, "v3": 20}))
    acked = time.time()
    wanted = ("-[80%]-> cluster outbound|9080|v1|reviews.default.svc.cluster.local",
              "-[20%]-> cluster outbound|9080|v3|reviews.default.svc.cluster.local")
    assert wait_until(lambda: graph.redraws > drawn and all(w in graph.text() for w in wanted), 5.0), graph.text()
    shown = time.time()
    # content, not timing: the picture is the new config, with an SVG of it
    assert "-> cluster outbound|9080||reviews.default.svc.cluster.local\n" not in graph.text().split("virtual host "
                                                                                                    "reviews")[1]
    assert "<svg" in graph.html() and "outbound|9080|v3|reviews" in graph.html()
    assert graph.last_redraw_latency_s is not None
    print(f"\nProxyGraph redraw after productpage-v1's ACK (live mesh): {graph.last_redraw_latency_s * 1000:.0f} ms; "
          f"apply() → all ACKed {push['duration_ms']:.0f} ms (boss), apply() returned → graph shows it "
          f"{(shown - acked) * 1000:.0f} ms, apply() called → graph shows it {(shown - started) * 1000:.0f} ms")


# 2 ---------------------------------------------------------------------------------------------

def test_weight_sliders_apply_once_on_release_and_requests_follow(restored) -> None:
    mesh, opened = restored
    sliders = WeightSliders(mesh, "reviews", ["v1", "v2", "v3"], weights={"v1": 100, "v2": 0, "v3": 0})
    opened(sliders)
    pushes = len(mesh.history_rows())
    assert sliders.applies == 0  # building the sliders pushes nothing

    sliders.sliders["v3"].value = 25  # what the front end sends when the v3 slider is let go at 25
    assert sliders.weights == {"v1": 75, "v2": 0, "v3": 25}
    assert sliders.applies == 1 and sliders.last_error is None, sliders.outcome
    assert len(mesh.history_rows()) == pushes + 1  # one release, one push (the others followed silently)
    results = sliders.last_result["results"]
    assert results and all(set(types.values()) == {"ACK"} for types in results.values() if types), results
    assert "ACK from" in sliders.outcome

    n = 400
    seen = versions(mesh.curl_rows("productpage-v1", REVIEWS, n=n))
    share = seen["v3"] / n
    print(f"\nweights v1=75 v3=25 → {n} requests: {dict(seen)} (v3 {share:.0%})")
    # 25 % of 400: σ ≈ 2.2 %; ±10 points is > 4 σ, so this does not flake, and 0 % / 50 % would fail
    assert set(seen) == {"v1", "v3"}, seen
    assert abs(share - 0.25) <= 0.10, seen


# 3 ---------------------------------------------------------------------------------------------

def test_yaml_editor_shows_envoys_own_error_for_a_bad_listener(restored) -> None:
    mesh, opened = restored
    editor = YamlEditor(mesh, pods=["reviews-v1"], text=BAD_LISTENER)
    opened(editor)
    diff = editor.show_diff()
    assert "after apply: LDS broken" in diff and "live: (none)" in diff, diff
    assert editor.apply() is None
    print(f"\nYamlEditor panel:\n{editor.outcome}")
    assert "NACK from reviews-v1" in editor.outcome
    assert ENVOY_SAYS in editor.outcome  # Envoy's text, not a paraphrase
    assert ENVOY_SAYS in editor._result.value and "#cc0000" in editor._result.value  # shown, in red
    # the last good config keeps serving
    assert {r["status"] for r in mesh.curl_rows("reviews-v1", "http://ratings:9080/ratings/0", n=3)} == {200}


# 4 ---------------------------------------------------------------------------------------------

def test_mesh_graph_edges_get_live_counts_while_traffic_runs(restored) -> None:
    mesh, opened = restored
    traffic = TrafficPanel(mesh, "productpage-v1", REVIEWS, rate=10)
    graph = MeshGraph(mesh, refresh_s=1.0)
    opened(traffic)
    opened(graph)
    pods = {wl["deployment"]: wl["name"] for wl in mesh.topology()["workloads"]}
    edges = lambda: {(e.src, e.dst): e.label for e in graph.graph.edges  # noqa: E731
                     if e.src == f"pod:{pods['productpage-v1']}" and e.dst.startswith("pod:reviews-")}
    first = graph.redraws
    counted = lambda label: int(found.group(1)) if (found := re.search(r"(\d+) rq", label)) else 0  # noqa: E731
    traffic.start()
    # a refresh or two later the window is one that had traffic in it
    assert wait_until(lambda: graph.redraws >= first + 2 and len(edges()) == 3
                      and all(counted(label) > 0 for label in edges().values()), 15.0), graph.text()
    traffic.stop()
    live = edges()
    print(f"\nMeshGraph productpage → reviews ({graph.graph.title}): "
          + "; ".join(f"{dst.split(':', 1)[1]} {label}" for (_, dst), label in sorted(live.items())))
    assert all(counted(label) > 0 and "/s" in label for label in live.values())  # counts and rates
    assert traffic.sent > 0 and "reviews-v" in traffic.text()
    assert "rq ·" in graph.html() and "<svg" in graph.html()


# 5 ---------------------------------------------------------------------------------------------

def test_sync_table_shows_error_with_envoys_text_after_a_nack(restored) -> None:
    mesh, opened = restored
    table = SyncTable(mesh)
    opened(table)
    assert "ERROR" not in table.text()
    editor = YamlEditor(mesh, pods=["reviews-v1"], text=BAD_LISTENER)
    opened(editor)
    editor.apply()
    assert wait_until(lambda: "ERROR" in table.text(), 5.0), table.text()
    row = next(line for line in table.text().splitlines() if "reviews-v1-" in line)
    print(f"\nSyncTable after the NACK:\n{table.text()}")
    assert "ERROR" in row and ENVOY_SAYS in row
    html = table.html()
    assert "#f4cccc" in html and ENVOY_SAYS in html  # the red cell and the text in the page
    mesh.revert(["reviews-v1"])
    assert wait_until(lambda: "ERROR" not in table.text(), 5.0), table.text()


# 6 ---------------------------------------------------------------------------------------------

def test_header_match_form_preview_then_apply_sends_jason_to_v3(restored) -> None:
    mesh, opened = restored
    form = HeaderMatchForm(mesh, "reviews", ["v1", "v2", "v3"], preview_pod="productpage-v1")
    opened(form)
    assert (form.header.value, form.value.value, form.subset.value, form.default_subset.value) == \
        ("end-user", "jason", "v3", "v1")
    form._show_xds.value = True  # "show generated xDS"
    preview = form._xds.value
    assert "productpage-v1" in preview and "end-user" in preview and "jason" in preview, preview
    assert "outbound|9080|v3|reviews.default.svc.cluster.local" in preview
    assert form.applies == 0  # a preview pushes nothing
    assert form.apply() is not None, form.outcome

    jason = versions(mesh.curl_rows("productpage-v1", REVIEWS, JASON, n=20))
    others = versions(mesh.curl_rows("productpage-v1", REVIEWS, n=20))
    print(f"\nHeaderMatchForm: end-user: jason → {dict(jason)}; no header → {dict(others)}")
    assert jason == {"v3": 20} and others == {"v1": 20}


def test_fault_form_preview_then_apply_aborts_ratings_for_jason(restored) -> None:
    mesh, opened = restored
    form = FaultForm(mesh, "ratings", preview_pod="reviews-v2")
    opened(form)
    form.abort.value = 503
    form._show_xds.value = True
    preview = form._xds.value
    assert "abort" in preview and "503" in preview, preview
    assert form.applies == 0
    assert form.apply() is not None, form.outcome

    # the fault has no header match (FaultForm applies to every caller): jason gets it too,
    # from Envoy's fault filter (response flag FI), not from the ratings app
    rows = mesh.curl_rows("reviews-v2", "http://ratings:9080/ratings/0", JASON, n=5)
    print(f"\nFaultForm abort 503: {[(r['status'], r['flags']) for r in rows]}")
    assert {r["status"] for r in rows} == {503} and {r["flags"] for r in rows} == {"FI"}, rows


# 7 ---------------------------------------------------------------------------------------------

def test_mesh_graph_tells_the_story_before_any_traffic(restored) -> None:
    """The boss, a SYNCED stream to every sidecar, and the calls the config allows, all before a request."""
    mesh, opened = restored
    graph = MeshGraph(mesh, refresh_s=0.5)
    opened(graph)
    pods = {wl["deployment"]: wl["name"] for wl in mesh.topology()["workloads"]}
    streams = {e.dst[4:]: e.state for e in graph.graph.edges if e.src == "boss" and e.state != "invisible"}
    # every lieutenant's stream; the front gate appears once a Gateway opens it
    lieutenants = {name for dep, name in pods.items() if dep not in ("outsider", "istio-ingressgateway")}
    assert set(streams) == lieutenants, streams
    assert set(streams.values()) <= {"synced", "flash-ack", "flash-sent"}, streams
    calls = {(e.src[4:], e.dst[4:]) for e in graph.graph.edges if e.src.startswith("pod:")}
    wanted = {("productpage-v1", "details-v1"), ("productpage-v1", "reviews-v1"), ("productpage-v1", "reviews-v2"),
              ("productpage-v1", "reviews-v3"), ("reviews-v2", "ratings-v1"), ("reviews-v3", "ratings-v1")}
    assert {(pods[a], pods[b]) for a, b in wanted} <= calls, calls
    # reviews-v1's app never calls ratings: no configured (grey) edge; one only if a test curled from it
    assert not [e for e in graph.graph.edges if e.src == f"pod:{pods['reviews-v1']}" and "no traffic" in e.label]
    assert graph.graph.nodes[f"pod:{pods['outsider']}"].kind == "outsider"
    assert "mTLS: sa/bookinfo-reviews" in graph.graph.nodes[f"pod:{pods['reviews-v2']}"].detail  # auto mTLS
    # a weight change shows on the edge from the live RDS, soon after productpage-v1's ACK
    drawn = graph.redraws
    mesh.apply(destination_rule("reviews", ["v1", "v2", "v3"]) + "---\n"
               + weights_to_virtual_service("reviews", {"v1": 70, "v3": 30}))
    assert wait_until(lambda: graph.redraws > drawn and "w 70%]-> pod reviews-v1 (" in graph.text(),
                      5.0), graph.text()
    print(f"\nMeshGraph weight on the edge {graph.last_redraw_latency_s * 1000:.0f} ms after the ACK")
    # one request: its edge leaves "no traffic" at the next refresh (refresh_s 0.5 s)
    row = mesh.curl_rows("productpage-v1", REVIEWS)[0]
    sent = time.monotonic()
    edge = lambda: next((e for e in graph.graph.edges if e.src == f"pod:{pods['productpage-v1']}"  # noqa: E731
                         and e.dst == f"pod:{row['pod']}"), None)
    assert wait_until(lambda: edge() is not None and " rq · " in edge().label, 5.0), graph.text()
    print(f"MeshGraph shows the request {(time.monotonic() - sent) * 1000:.0f} ms after curl returned: "
          f"{edge().label} ({edge().state})")
    assert edge().state in ("ok", "mixed")


def test_proxy_graph_lights_the_path_of_a_real_request(restored) -> None:
    """jason's request matches the header route and goes to v3: that route, cluster and endpoint light up."""
    mesh, opened = restored
    routes = yaml.safe_load(header_match_virtual_service("reviews", "end-user", "exact", "jason", "v3", "v1"))
    for route, name in zip(routes["spec"]["http"], ("jason", "everyone"), strict=True):
        route["name"] = name  # Envoy's route names, as the access log reports the one that matched
    mesh.apply(destination_rule("reviews", ["v1", "v2", "v3"]) + "---\n" + yaml.safe_dump(routes))
    graph = ProxyGraph(mesh, "productpage-v1")
    opened(graph)
    row = graph.send(REVIEWS, JASON)
    assert (row["status"], row["route_name"], row["version"]) == (200, "jason", "v3"), row
    lit = {n.kind: n for n in graph.graph.nodes.values() if n.highlight}
    assert lit["route"].label == "jason" and lit["cluster"].label == row["upstream_cluster"]
    assert lit["endpoint"].label == row["upstream_host"] and "▶ 200" in lit["endpoint"].detail
    assert lit["listener"].label == "0.0.0.0_9080" and "[request path]" in graph.text()
    everyone = graph.send(REVIEWS)
    lit = {n.kind: n.label for n in graph.graph.nodes.values() if n.highlight}
    assert everyone["route_name"] == lit["route"] == "everyone" and "|v1|" in lit["cluster"], lit
