"""Widgets without a live mesh: pure YAML builders, weights, diffs, and state transitions.

Where a widget needs a mesh, `FakeMesh` is a real `Mesh` over the contract-checked `FakeTransport`;
its admin API serves real Envoy 1.40 JSON captured in tests/fixtures, never invented Envoy
answers. The live-mesh versions of these tests run against real sidecars (tests marked `mesh`).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meshkit.client.fake import FakeTransport, Mesh
from meshkit.errors import InvalidInput, Nack, NotRunning
from meshkit.inspect import dump as config_dump
from meshkit.model.istio import parse_istio
from meshkit.widgets import base
from meshkit.widgets.builders import (
    describe_outcome,
    destination_rule,
    diff_resources,
    fault_virtual_service,
    header_match_virtual_service,
    live_xds_diff,
    needs_destination_rule,
    normalise_weights,
    weights_to_virtual_service,
    xds_by_name,
)
from meshkit.widgets.editors import FaultForm, HeaderMatchForm, WeightSliders, YamlEditor
from meshkit.widgets.graphs import DOT_MISSING, MeshGraph, ProxyGraph
from meshkit.widgets.panels import SyncTable, TrafficPanel, answer_label, distribution, render_distribution

REPO = Path(__file__).resolve().parents[2]
ENVOY = REPO / "tests" / "fixtures" / "envoy"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def FakeMesh(dump: str = "config_dump.json") -> Mesh:
    """A real `Mesh` over the contract-checked `FakeTransport`, replaying real captured admin JSON.

    The transport records orders (`applied`, `curls`), takes canned trouble (`apply_error`, `rules`)
    and plays the boss reporting a sync event (`push_event`).
    """
    return Mesh(FakeTransport((ENVOY / dump).read_text(), (ENVOY / "clusters.json").read_text()))


def wait_until(check, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


# --- pure builders ------------------------------------------------------------------------------

@pytest.mark.parametrize(("weights", "changed", "expected"), [
    ({"v1": 80, "v2": 0, "v3": 40}, "v3", {"v1": 60, "v2": 0, "v3": 40}),
    ({"v1": 50, "v2": 50, "v3": 40}, "v3", {"v1": 30, "v2": 30, "v3": 40}),
    ({"v1": 60, "v2": 0, "v3": 0}, "v1", {"v1": 60, "v2": 20, "v3": 20}),  # others were all 0: equal shares
    ({"v1": 1, "v2": 1, "v3": 1}, None, {"v1": 34, "v2": 33, "v3": 33}),
    ({"v1": 150, "v2": 10}, "v1", {"v1": 100, "v2": 0}),
    ({"only": 7}, None, {"only": 100}),
])
def test_normalise_weights(weights: dict, changed: str | None, expected: dict) -> None:
    assert normalise_weights(weights, changed) == expected
    assert sum(expected.values()) == 100


def test_yaml_builders_pass_istios_own_schema() -> None:
    texts = [weights_to_virtual_service("reviews", {"v1": 80, "v2": 0, "v3": 20}),
             header_match_virtual_service("reviews", "End-User", "exact", "jason", "v2", "v1"),
             header_match_virtual_service("reviews", "user-agent", "regex", ".*Mobile.*", "v3"),
             fault_virtual_service("ratings", delay_s=7, abort_status=500, percentage=50, timeout_s=0.5, retries=3,
                                   per_try_timeout_s=0.2),
             destination_rule("reviews", ["v1", "v2"])]
    for text in texts:
        assert len(parse_istio(text)) == 1


def test_weights_drop_zero_subsets() -> None:
    spec = parse_istio(weights_to_virtual_service("reviews", {"v1": 80, "v2": 0, "v3": 20}))[0].spec
    assert spec["http"][0]["route"] == [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 80},
                                        {"destination": {"host": "reviews", "subset": "v3"}, "weight": 20}]


def test_header_match_is_first_then_the_rest() -> None:
    http = parse_istio(header_match_virtual_service("reviews", "End-User", "exact", "jason", "v2"))[0].spec["http"]
    assert http[0]["match"] == [{"headers": {"end-user": {"exact": "jason"}}}]  # header names are lower case
    assert http[1]["route"] == [{"destination": {"host": "reviews"}}]
    with pytest.raises(ValueError, match="exact, prefix, regex"):
        header_match_virtual_service("reviews", "x", "suffix", "y", "v1")


def test_fault_fields_and_zero_means_absent() -> None:
    route = parse_istio(fault_virtual_service("ratings", delay_s=7, percentage=10, retries=2))[0].spec["http"][0]
    assert route["fault"] == {"delay": {"fixedDelay": "7s", "percentage": {"value": 10.0}}}
    assert route["retries"] == {"attempts": 2}
    assert "timeout" not in route
    assert "fault" not in parse_istio(fault_virtual_service("ratings"))[0].spec["http"][0]


def test_needs_destination_rule() -> None:
    rule = {"spec": {"host": "reviews.default.svc.cluster.local", "subsets": [{"name": "v1"}, {"name": "v2"}]}}
    assert not needs_destination_rule([rule], "reviews", ["v1", "v2"])
    assert needs_destination_rule([rule], "reviews", ["v1", "v3"])
    assert needs_destination_rule([], "reviews", ["v1"])


def test_diff_resources_shows_only_changes() -> None:
    live = {"RDS 9080": {"name": "9080", "timeout": "0s"}, "CDS a": {"name": "a"}}
    proposed = {"RDS 9080": {"name": "9080", "timeout": "2s"}, "CDS a": {"name": "a"}, "CDS b": {"name": "b"}}
    diff = diff_resources(live, proposed)
    assert "--- live: RDS 9080\n+++ after apply: RDS 9080\n" in diff
    assert "-timeout: 0s\n+timeout: 2s\n" in diff
    assert "--- live: (none)\n+++ after apply: CDS b\n" in diff
    assert "CDS a" not in diff
    assert diff_resources(live, live) == ""


def test_live_xds_diff_against_a_real_dump() -> None:
    """A raw RouteConfiguration (camelCase, as a learner may write it) vs what the real Envoy holds."""
    dump = json.loads((ENVOY / "config_dump.json").read_text())
    raw = ('"@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n'
           'name: kube-dns.kube-system.svc.cluster.local:9153\n'
           'virtualHosts:\n- name: kube-dns.kube-system.svc.cluster.local:9153\n  domains: ["*"]\n'
           '  routes:\n  - match: {prefix: /}\n    directResponse: {status: 503}\n')
    diff = live_xds_diff(dump, raw)
    assert diff.startswith("--- live: RDS kube-dns.kube-system.svc.cluster.local:9153\n")
    assert "+    direct_response:\n+      status: 503\n" in diff
    assert "-    route:\n-      cluster: outbound|9153||kube-dns.kube-system.svc.cluster.local\n" in diff
    same = next(r for r in config_dump.route_configs(dump) if r["name"].startswith("kube-dns"))
    assert live_xds_diff(dump, json.dumps(same)) == ""  # what Envoy holds, handed back: no difference


def test_live_xds_diff_of_a_new_listener_with_typed_configs() -> None:
    """A resource with `typed_config` (a protobuf Any) the proxy does not hold yet: the whole of it, added."""
    dump = json.loads((ENVOY / "config_dump.json").read_text())
    raw = ('"@type": type.googleapis.com/envoy.config.listener.v3.Listener\nname: mine\n'
           'address: {socket_address: {address: 0.0.0.0, port_value: 7777}}\n'
           'filter_chains:\n- filters:\n  - name: envoy.filters.network.tcp_proxy\n    typed_config:\n'
           '      "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n'
           '      stat_prefix: a\n      cluster: PassthroughCluster\n')
    diff = live_xds_diff(dump, raw)
    assert diff.startswith("--- live: (none)\n+++ after apply: LDS mine\n")
    assert "+      stat_prefix: a\n+      cluster: PassthroughCluster\n" in diff


def test_describe_outcome() -> None:
    nack = Nack("rejected", {"id": 7, "errors": {"reviews-v1": "Unknown field: x"}})
    text, tone = describe_outcome(error=nack)
    assert tone == "error"
    assert "push 7: NACK from reviews-v1" in text and "  reviews-v1: Unknown field: x" in text
    assert "last good config" in text
    assert describe_outcome(error=InvalidInput("bad subset"))[0].startswith("refused before")
    ok = {"id": 3, "changes": [{}, {}], "results": {"a": {"RDS": "ACK"}, "b": {"RDS": "ACK"}}, "duration_ms": 41.2,
          "warnings": ["host x not found"]}
    assert describe_outcome(ok) == ("push 3: 2 resource(s) changed, ACK from 2 proxies in 41 ms\n"
                                    "warning: host x not found", "ok")
    assert "nothing changed" in describe_outcome({"id": 4, "changes": []})[0]


def test_distribution_and_labels() -> None:
    rows = [{"status": 200, "pod": "reviews-v1", "version": "v1"}] * 3 + [
        {"status": 503, "pod": "", "flags": "NR"}, {"status": None, "error": "connect failed"}]
    assert answer_label(rows[3]) == "HTTP 503 NR"
    assert answer_label(rows[4]) == "no answer: connect failed"
    shares = distribution(rows)
    assert shares[0] == ("reviews-v1 (v1)", 3, 0.6)
    first = render_distribution(shares, width=10).splitlines()[0]
    assert first.startswith("reviews-v1 (v1) ") and first.endswith("    3  ██████      60%")
    assert render_distribution([]) == "(no answers yet)"


# --- widgets: display and fallbacks ---------------------------------------------------------------

def test_importing_meshkit_widgets_does_not_load_ipywidgets() -> None:
    code = "import sys, meshkit, meshkit.widgets as mw; print('ipywidgets' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split() == ["False", "False"]


def test_display_bundle_has_widget_html_and_text(monkeypatch: pytest.MonkeyPatch) -> None:
    table = SyncTable(FakeMesh(), watch=False)
    bundle = table._repr_mimebundle_()
    assert {WIDGET_VIEW, "text/html", "text/plain"} <= set(bundle)
    assert bundle["text/plain"] == table.text()
    assert "productpage-v1.default" in bundle["text/plain"] and "LDS: bad filter" in bundle["text/plain"]
    monkeypatch.setattr(base, "_text_only", False)
    base.fallback_only()
    assert set(table._repr_mimebundle_()) == {"text/plain"}
    base.fallback_only(False)
    table.close()
    assert set(table._repr_mimebundle_()) == {"text/plain"}  # a closed widget has nothing to render


def test_env_switch_forces_text() -> None:
    code = "import meshkit.widgets as mw; print(mw.text_only())"
    env = {**os.environ, "MESHKIT_WIDGETS": "text"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=REPO)
    assert out.stdout.strip() == "True"


def test_sync_table_colours_states() -> None:
    html = SyncTable(FakeMesh(), watch=False).html()
    assert 'background:#f4cccc" title="1">ERROR' in html and "bad filter" in html
    assert 'background:#d9ead3" title="1">SYNCED' in html


# --- graphs ---------------------------------------------------------------------------------------

def test_proxy_graph_redraws_on_its_ack_and_records_latency() -> None:
    mesh = FakeMesh()
    graph = ProxyGraph(mesh, "productpage-v1", listeners=["0.0.0.0_9080"])
    try:
        assert graph.redraws == 1 and "<svg" in graph.html()
        assert "-[80%]-> cluster outbound|9080|v1|reviews.default.svc.cluster.local" in graph.text()
        mesh.transport.push_event("ACK", "reviews-v1")  # someone else's ACK: no redraw
        mesh.transport.push_event("SENT", "productpage-v1")  # sent, not yet answered: no redraw
        mesh.transport.push_event("ACK", "productpage-v1", "RDS")
        assert wait_until(lambda: graph.redraws == 2)
        time.sleep(0.3)
        assert graph.redraws == 2
        assert graph.last_redraw_latency_s is not None and graph.last_redraw_latency_s < 1.0
        print(f"\nProxyGraph redraw after ACK (fixture dumps, real dot): {graph.last_redraw_latency_s * 1000:.0f} ms")
        mesh.transport.push_event("NACK", "productpage-v1")
        assert wait_until(lambda: graph.redraws == 3)
    finally:
        graph.close()
    assert not graph._thread.is_alive()


def test_proxy_graph_named_by_deployment_redraws_on_the_full_pod_names_ack() -> None:
    """The boss's events name pods in full (`productpage-v1-cg8bj5pwlv-z7g5w`), as the live mesh does."""
    mesh = FakeMesh()
    real = mesh.topology()
    for wl in real["workloads"]:
        wl["deployment"], wl["name"] = wl["name"], f"{wl['name']}-cg8bj5pwlv-z7g5w"
    mesh.topology = lambda: real
    graph = ProxyGraph(mesh, "productpage-v1", listeners=["0.0.0.0_9080"])
    try:
        mesh.transport.push_event("ACK", "reviews-v1-cg8bj5pwlv-z7g5w")
        mesh.transport.push_event("ACK", "productpage-v1-cg8bj5pwlv-z7g5w", "RDS")
        assert wait_until(lambda: graph.redraws == 2)
        time.sleep(0.3)
        assert graph.redraws == 2
    finally:
        graph.close()


def test_graph_thread_stops_when_the_view_is_collected() -> None:
    graph = ProxyGraph(FakeMesh(), "productpage-v1")
    thread = graph._thread
    del graph
    gc.collect()
    thread.join(base.POLL_S + 1.0)
    assert not thread.is_alive()


def test_graph_shows_the_nack_text() -> None:
    graph = ProxyGraph(FakeMesh("config_dump_nack.json"), "productpage-v1", watch=False)
    assert ("  -> listener bad-listener (NACK: Didn't find a registered implementation for 'not.a.filter' with type "
            "URL: 'google.protobuf.Empty') [error]") in graph.text().splitlines()
    assert "not.a.filter" in graph.html() and "#cc0000" in graph.html()


def test_without_dot_graphs_say_how_to_install_it_and_show_text(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    graph = ProxyGraph(FakeMesh(), "productpage-v1", listeners=["0.0.0.0_9080"], watch=False)
    assert "sudo apt-get install graphviz" in graph.html() and "brew install graphviz" in graph.html()
    assert "-[RDS]-&gt; route config 9080 (from RDS)" in graph.html()  # the text tree instead of the SVG
    assert DOT_MISSING in graph.text()


def test_graph_survives_a_mesh_that_is_down() -> None:
    mesh = FakeMesh()
    mesh.admin = lambda pod, path: (_ for _ in ()).throw(NotRunning("no mesh is running"))
    graph = ProxyGraph(mesh, "productpage-v1", watch=False)
    assert "could not read the mesh: no mesh is running" in graph.text()


def test_mesh_graph_draws_pods_and_refreshes_live() -> None:
    mesh = FakeMesh()
    graph = MeshGraph(mesh, refresh_s=0.2)
    try:
        assert graph.graph.title == "mesh: requests since each Envoy started"
        assert "-[ERROR]-> pod productpage-v1 (10.244.0.12" in graph.text()  # the boss's stream, its state
        assert "-[no traffic]-> pod details-v1" in graph.text()  # the call graph before any request
        assert wait_until(lambda: graph.redraws >= 2)  # no event: refresh_s passed
        assert graph.graph.title.startswith("mesh: requests in the last ")
        drawn = graph.redraws
        mesh.transport.push_event("SENT", "reviews-v1", "RDS")  # the boss pushes: reviews-v1's stream flashes
        sent = "-[disconnected (SENT)]-> pod reviews-v1"
        assert wait_until(lambda: graph.redraws > drawn and sent in graph.text()), graph.text()
        mesh.transport.push_event("ACK", "reviews-v1", "RDS")
        assert wait_until(lambda: graph.last_redraw_latency_s is not None), graph.text()
        assert "-[disconnected (ACK)]-> pod reviews-v1" in graph.text() and graph.last_redraw_latency_s < 1.0
    finally:
        graph.close()


def test_proxy_graph_starts_small_and_focus_menus_change_it() -> None:
    graph = ProxyGraph(FakeMesh(), "productpage-v1", watch=False)
    assert (graph.direction, graph.port) == ("outbound", 9080)  # the port its app calls
    listeners = [n.label for n in graph.graph.nodes.values() if n.kind == "listener"]
    assert listeners == ["0.0.0.0_9080"]
    graph._direction.value = "inbound"  # as the learner picks it
    graph._port.value = None
    assert [n.label for n in graph.graph.nodes.values() if n.kind == "listener"] == ["virtualInbound"]
    assert "collapsed 8 filter chains" in graph.text()
    graph._expand.value = True
    assert "collapsed" not in graph.text() and len([n for n in graph.graph.nodes.values() if n.kind == "chain"]) == 8
    graph.focus(direction="outbound", port=9080, host="ratings", expand_inbound=False)
    assert graph._host.value == "ratings" and "reviews" not in graph.text()
    assert 'width="100%"' in graph.html() and "max-width:" in graph.html()  # scales with the notebook


def test_proxy_graph_marks_changes_and_shows_a_request() -> None:
    mesh = FakeMesh()
    graph = ProxyGraph(mesh, "productpage-v1", watch=False)
    assert "[changed]" not in graph.text()
    fake = mesh.transport
    fake.config_dump = fake.config_dump.replace('"weight": 80', '"weight": 70').replace('"weight": 20', '"weight": 30')
    graph.refresh("after ACK RDS")
    assert "-[2. /*]-> route default [changed]" in graph.text() and "● changed" in graph.html()
    graph.refresh("again, nothing new")  # the marks stay until the next version
    assert "[changed]" in graph.text()
    row = graph.send("http://reviews:9080/reviews/0")
    assert row["upstream_host"] == "10.244.0.14:9080" and fake.curls == 1
    lit = [n.id for n in graph.graph.nodes.values() if n.highlight]
    assert lit[-2:] == ["cluster:outbound|9080|v1|reviews.default.svc.cluster.local", "endpoint:10.244.0.14:9080"]
    assert "#1155cc" in graph.html() and "▶ 200 &#45;" in graph.html() and "[request path]" in graph.text()
    graph.show_request(None)
    assert not [n for n in graph.graph.nodes.values() if n.highlight]


def test_proxy_graph_follows_a_traffic_panel() -> None:
    """A TrafficPanel's latest answer lights up on the graph of the same pod, with no call from the learner."""
    mesh = FakeMesh()
    graph = ProxyGraph(mesh, "productpage-v1")
    panel = TrafficPanel(mesh, "productpage-v1", "http://reviews:9080/reviews/0", rate=2)
    try:
        graph.follow(panel)
        panel.start()
        assert wait_until(lambda: any(n.highlight for n in graph.graph.nodes.values()), 5.0), graph.text()
        assert "endpoint 10.244.0.14:9080 (HEALTHY; ▶ 200 -) [request path]" in graph.text()
    finally:
        panel.close()
        graph.close()


# --- editors --------------------------------------------------------------------------------------

def test_slider_release_applies_exactly_once() -> None:
    """The front end sends a value once, on release (continuous_update=False): one push, not three."""
    mesh = FakeMesh()
    mesh.transport.rules = [{"spec": {"host": "reviews", "subsets": [{"name": s} for s in ("v1", "v2", "v3")]}}]
    sliders = WeightSliders(mesh, "reviews", ["v1", "v2", "v3"], weights={"v1": 100})
    assert all(not s.continuous_update for s in sliders.sliders.values())
    assert mesh.transport.applied == [] and sliders.weights == {"v1": 100, "v2": 0, "v3": 0}
    sliders.sliders["v3"].set_state({"value": 20})  # what the comm does with the front end's update
    assert sliders.weights == {"v1": 80, "v2": 0, "v3": 20}
    assert mesh.transport.applied == [(weights_to_virtual_service("reviews", {"v1": 80, "v2": 0, "v3": 20}), None)]
    assert "push 1: 1 resource(s) changed, ACK from 1 proxy" in sliders.text()


def test_sliders_add_a_destination_rule_when_subsets_are_undefined() -> None:
    mesh = FakeMesh()
    sliders = WeightSliders(mesh, "reviews")
    assert list(sliders.sliders) == ["v1", "v2", "v3"]  # from the pods' version labels
    assert [r.kind for r in parse_istio(sliders.yaml())] == ["DestinationRule", "VirtualService"]


def test_nack_shows_envoys_text() -> None:
    mesh = FakeMesh()
    mesh.transport.apply_error = Nack("rejected", {"id": 9, "errors": {"productpage-v1": "Proto constraint"}})
    form = FaultForm(mesh, "ratings")
    form.delay.value = 2.0
    assert form.apply() is None
    assert "productpage-v1: Proto constraint" in form.text()
    assert "fixedDelay: 2s" in mesh.transport.applied[0][0]


def test_header_form_follows_its_fields_and_previews_xds() -> None:
    mesh = FakeMesh()
    mesh.transport.rules = [{"spec": {"host": "reviews", "subsets": [{"name": s} for s in ("v1", "v2", "v3")]}}]
    form = HeaderMatchForm(mesh, "reviews", preview_pod="productpage-v1")
    form.match_type.value, form.value.value, form.subset.value = "prefix", "Mobile", "v2"
    spec = parse_istio(form.yaml())[0].spec
    assert spec["http"][0] == {"match": [{"headers": {"end-user": {"prefix": "Mobile"}}}],
                               "route": [{"destination": {"host": "reviews", "subset": "v2"}}]}
    form._show_xds.value = True
    assert "reviews.default.svc.cluster.local:9080" in form._xds.value
    assert "outbound|9080|v1|reviews.default.svc.cluster.local" in form._xds.value
    form.header.value = " "
    assert "name the header" in form.text()


def test_yaml_editor_diffs_istio_yaml_via_generated_xds() -> None:
    mesh = FakeMesh()
    editor = YamlEditor(mesh, text=weights_to_virtual_service("reviews", {"v1": 50, "v2": 50}))
    assert "-  weight: 100\n+  weight: 50\n" in editor.show_diff()
    editor.apply()
    assert mesh.transport.applied[0][1] is None
    assert diff_resources(xds_by_name(mesh.xds("p")), xds_by_name(mesh.xds("p"))) == ""


def test_yaml_editor_diffs_raw_resources_against_the_pods_dump_and_reports_refusals() -> None:
    mesh = FakeMesh()
    editor = YamlEditor(mesh, pods=["productpage-v1"],
                        text='"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: x\nbogus: 1\n')
    assert editor.show_diff().startswith("cannot diff:") and "bogus" in editor.last_diff
    mesh.transport.apply_error = InvalidInput("unknown field 'bogus'")
    editor.apply()
    assert mesh.transport.applied[0][1] == ["productpage-v1"]
    assert "refused before anything was pushed" in editor.text()


# --- traffic --------------------------------------------------------------------------------------

def test_traffic_panel_starts_and_stops() -> None:
    mesh = FakeMesh()
    panel = TrafficPanel(mesh, "productpage-v1", "http://reviews:9080/reviews/0", headers={"end-user": "jason"},
                         rate=3)
    try:
        panel.toggle.value = True  # the Start button
        assert wait_until(lambda: panel.sent >= 3)
        panel.toggle.value = False
        assert not panel.running and not panel._thread.is_alive()
        sent = mesh.transport.curls
        time.sleep(0.2)
        assert mesh.transport.curls == sent
        text = panel.text()
        assert "headers: end-user: jason" in text and "reviews-v1 (v1)" in text and "100%" in text
    finally:
        panel.close()


def test_a_new_traffic_panel_for_the_same_requests_replaces_the_old_one() -> None:
    mesh = FakeMesh()
    first = TrafficPanel(mesh, "productpage-v1", "http://reviews:9080/")
    second = TrafficPanel(mesh, "productpage-v1", "http://reviews:9080/")
    try:
        first.start()
        second.start()
        assert second.running and not first.running
    finally:
        first.close()
        second.close()
    assert not first._thread.is_alive() and not second._thread.is_alive()


def test_sync_table_shows_disconnected_and_boss_stopped_in_their_own_colours() -> None:
    from envoy.config.core.v3 import base_pb2

    from meshkit.xds.resources import PUSH_ORDER
    from meshkit.xds.status import SyncTracker

    tracker = SyncTracker()
    for node in ("reviews-v1.default", "productpage-v1.default"):
        tracker.on_connect(base_pb2.Node(id=node))
        for n, url in enumerate(PUSH_ORDER):
            tracker.on_sent(node, url, "v1", f"{node}{n}")
            tracker.on_ack(node, url, "v1", f"{node}{n}")
    tracker.on_disconnect("reviews-v1.default")

    mesh = FakeMesh()
    mesh.status_rows = lambda: [{"name": s.node_id, "cluster": "Kubernetes", **s.as_row()} for s in tracker.status()]
    table = SyncTable(mesh, watch=False)
    html = table.html()
    assert html.count('background:#b7b7b7" title="v1">DISCONNECTED') == 4  # CDS LDS EDS RDS
    assert html.count('background:#d9ead3" title="v1">SYNCED') == 4
    assert "reviews-v1.default disconnected since" in html and "reviews-v1.default disconnected since" in table.text()
    tracker.on_server_stopped()
    table.refresh()
    assert table.html().count('background:#f9cb9c" title="v1">BOSS STOPPED') == 8
    assert "SYNCED" not in table.html() and "The boss is stopped since" in table.text()
    table.close()


# --- the end of a lab, and the projector ------------------------------------------------------------

def test_stop_watching_stops_every_live_view_and_keeps_its_picture() -> None:
    mesh = FakeMesh()
    graph, table = ProxyGraph(mesh, "productpage-v1", listeners=["0.0.0.0_9080"]), SyncTable(mesh)
    quiet = SyncTable(mesh, watch=False)
    threads = [graph._thread, table._thread]
    assert all(t.is_alive() for t in threads)
    assert base.stop_watching() == 2  # the two that watch; the quiet one had nothing to stop
    for thread in threads:  # each ends when its current poll returns
        thread.join(base.POLL_S + 1.0)
    assert not any(t.is_alive() for t in threads)
    assert base.stop_watching() == 0
    assert "<svg" in graph.html() and "SYNCED" in table.html() and "SYNCED" in quiet.html()
    before = graph.redraws
    mesh.transport.push_event("ACK", "productpage-v1", "RDS")  # nobody listens any more
    time.sleep(0.3)
    assert graph.redraws == before
    graph.refresh("Redraw button")  # the button still works
    assert graph.redraws == before + 1


def test_projector_shows_mesh_and_sync_table_side_by_side_in_large_type() -> None:
    from meshkit.widgets.projector import Projector

    wall = Projector(FakeMesh(), scale=2.0, watch=False)
    try:
        bundle = wall._repr_mimebundle_()
        assert WIDGET_VIEW in bundle
        assert "the boss (istiod)" in bundle["text/plain"] and "LDS: bad filter" in bundle["text/plain"]
        assert f".{wall.scope} {{ font-size: 200% }}" in bundle["text/html"] and "<svg" in bundle["text/html"]
        row = wall.widget.children[1]
        assert row.children == (wall.graph.widget, wall.table.widget) and "wrap" in row.layout.flex_flow
        assert wall.scope in wall.widget._dom_classes
        with pytest.raises(ValueError, match="scale 9"):
            Projector(FakeMesh(), scale=9, watch=False)
    finally:
        wall.close()
    assert wall.closed and wall.graph.closed and wall.table.closed
