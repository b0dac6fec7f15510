"""Joining one request's access-log lines into hops, from real sidecar lines.

tests/fixtures/traffic/traces.json holds, per scenario, one request sent from productpage-v1 in
a live Bookinfo mesh and every line each sidecar logged for it (capture_traces.py makes it):
ok (productpage → details, reviews-v2 → ratings), no_route (NR), no_healthy_upstream (UH),
fault_abort (FI), fault_delay (DI), timeout (UT, DC), retries (URX: three tries on three pods) and
blackhole (REGISTRY_ONLY, block_all).
The widget tests feed `TraceView` and `PushTimeline` those lines and a real ControlPlane.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from meshkit.inspect.graph import to_dot, to_text
from meshkit.inspect.trace import (
    FLAG_WORDS,
    Hop,
    build_trace,
    explain,
    incomplete,
    intended_clusters,
    stops,
    trace_graph,
    trace_rows,
    trace_text,
)
from meshkit.model import bookinfo
from meshkit.model.istio import parse_istio
from meshkit.widgets.builders import destination_rule, weights_to_virtual_service
from meshkit.xds.cache import SnapshotCache
from meshkit.xds.control_plane import ControlPlane
from meshkit.xds.push_log import diff_states
from meshkit.xds.status import SyncTracker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TRACES = json.loads((FIXTURES / "traffic" / "traces.json").read_text())


def trace_of(name: str, drop: tuple[str, ...] = ()):
    t = TRACES[name]
    lines = {pod: found for pod, found in t["lines"].items() if pod not in drop}
    return build_trace(lines, t["request_id"], t["client"], t["reply"]["client_address"], t["ips"])


def shape(trace) -> list[tuple[int, str, str, str]]:
    """(depth, target, caller, callee) per call, depth first."""
    return [(depth, call.target, call.caller, call.callee) for depth, call in trace.walk()]


def test_a_productpage_request_has_both_sidecars_of_every_call() -> None:
    trace = trace_of("ok")
    assert shape(trace) == [
        (0, "productpage:9080/productpage", "productpage-v1", "productpage-v1"),
        (1, "details:9080/details/0", "productpage-v1", "details-v1"),
        (1, "reviews:9080/reviews/0", "productpage-v1", "reviews-v2"),
        (2, "ratings:9080/ratings/0", "reviews-v2", "ratings-v1"),
    ]
    for _, call in trace.walk():
        assert call.outbound.side == "outbound" and call.outbound.listener == "0.0.0.0_9080"
        assert call.outbound.cluster.startswith("outbound|9080|")
        assert call.inbound.side == "inbound" and call.inbound.listener == "virtualInbound"
        assert call.inbound.chain == "0.0.0.0_9080" and call.inbound.cluster == "inbound|9080||"
        assert call.outbound.endpoint == call.inbound.downstream_local  # the endpoint it chose answered
        assert call.outbound.attempts == 1 and call.status == 200
    assert len(trace.hops()) == 8 and stops(trace) == []
    assert "✓ every hop answered" in trace_text(trace)


def test_the_client_line_is_the_root_even_when_the_app_reuses_the_request_id() -> None:
    trace = trace_of("ok")
    root = trace.calls[0]
    assert root.outbound.downstream_remote == TRACES["ok"]["reply"]["client_address"]
    assert len(trace.calls) == 1  # the app's own calls hang below, not beside it


@pytest.mark.parametrize(("name", "where", "flag"), [
    ("no_route", "productpage-v1's sidecar (outbound)", "NR"),
    ("no_healthy_upstream", "productpage-v1's sidecar (outbound), cluster outbound|9080|gone|reviews", "UH"),
    ("fault_abort", "reviews-v2's sidecar (outbound)", "FI"),
    ("timeout", "productpage-v1's sidecar (outbound); reviews-v2's sidecar (inbound) logged no answer DC", "UT"),
])
def test_a_failed_request_says_where_it_stopped_and_why(name: str, where: str, flag: str) -> None:
    problems = stops(trace_of(name))
    assert len(problems) == 1, problems
    assert where in problems[0] and f" {flag} " in problems[0]
    assert FLAG_WORDS[flag].split(":")[0] in problems[0]


def test_a_fault_abort_stops_before_ratings_and_the_rest_answered() -> None:
    trace = trace_of("fault_abort")
    ratings = [c for _, c in trace.walk() if c.target.startswith("ratings")]
    assert len(ratings) == 1 and ratings[0].inbound is None and ratings[0].outbound.status == 503
    assert ratings[0].caller == "reviews-v2" and trace.calls[0].status == 200  # productpage still answered


def test_a_delay_is_explained_but_is_no_failure() -> None:
    trace = trace_of("fault_delay")
    ratings = next(c for _, c in trace.walk() if c.target.startswith("ratings"))
    assert ratings.outbound.flags == "DI" and ratings.outbound.duration_ms >= 990  # Envoy says 999 for 1 s
    assert not ratings.outbound.failed and stops(trace) == []
    assert explain(ratings.outbound).startswith("fault injection delay")


def test_a_call_logged_after_its_caller_gave_up_still_hangs_under_it() -> None:
    trace = trace_of("timeout")  # ratings' inbound line comes 2 s after reviews' inbound closed
    assert shape(trace)[-1] == (2, "ratings:9080/ratings/0", "reviews-v2", "ratings-v1")
    reviews = next(c for _, c in trace.walk() if c.target.startswith("reviews"))
    assert (reviews.outbound.status, reviews.outbound.flags, reviews.inbound.flags) == (504, "UT", "DC")


def test_retries_show_every_attempt_and_the_pod_each_reached() -> None:
    trace = trace_of("retries")  # reviews answers 503, the route retries 5xx twice
    (call,) = [c for _, c in trace.walk()]
    assert call.outbound.attempts == 3 and call.outbound.flags == "URX"
    tried = [h.pod for h in (*call.retried, call.inbound)]
    assert len(tried) == 3 and call.inbound.downstream_local == call.outbound.endpoint  # the last try is logged
    assert all(h.status == 503 and h.flags == "-" for h in (*call.retried, call.inbound))
    assert [row[8] for row in trace_rows(trace)] == ["3", "1", "2", "3"]
    assert "retries exhausted" in stops(trace)[0] and "the app answered 503 itself" in stops(trace)[0]
    assert "tried first: " in trace_graph(trace).nodes["call1"].label


def test_registry_only_blocks_at_the_block_all_route() -> None:
    trace = trace_of("blackhole")
    (call,) = [c for _, c in trace.walk()]
    assert call.outbound.route == "block_all" and call.outbound.status == 502 and call.inbound is None
    assert "REGISTRY_ONLY" in stops(trace)[0]
    assert trace_graph(trace).nodes["call1"].state == "blackhole"


def test_missing_inbound_lines_make_the_trace_incomplete() -> None:
    whole, partial = trace_of("ok"), trace_of("ok", drop=("ratings-v1",))
    assert incomplete(whole, TRACES["ok"]["ips"]) == []
    (missing,) = incomplete(partial, TRACES["ok"]["ips"])
    assert missing.target == "ratings:9080/ratings/0" and missing.callee == "ratings-v1"  # named by endpoint IP


def test_text_rows_show_every_hop() -> None:
    rows = trace_rows(trace_of("ok"))
    assert len(rows) == 8
    assert [r[2:4] for r in rows[-2:]] == [["reviews-v2", "out"], ["ratings-v1", "inb"]]
    assert rows[-1][4] == "virtualInbound/0.0.0.0_9080" and rows[-1][6] == "inbound|9080||"


def test_graph_is_client_then_one_node_per_call_and_failures_are_red() -> None:
    graph = trace_graph(trace_of("fault_abort"))
    assert list(graph.nodes) == ["client", "call1", "call2", "call3", "call4"]
    assert [(e.src, e.dst) for e in graph.edges] == [("client", "call1"), ("call1", "call2"), ("call1", "call3"),
                                                    ("call3", "call4")]
    assert graph.nodes["call4"].state == "error" and graph.nodes["call4"].detail == "fault injection abort"
    assert "in @reviews-v2 15006\n0.0.0.0_9080 → inbound|9080||" in graph.nodes["call3"].label
    assert all(len(line) <= 30 for n in graph.nodes.values() for line in n.label.splitlines())
    assert "call ratings:9080/ratings/0" in to_text(graph) and "digraph" in to_dot(graph)


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz `dot`")
def test_the_picture_fits_900_px_with_text_of_11_px_or_more() -> None:
    from meshkit.widgets.graphs import render_svg
    from meshkit.widgets.trace import fit_svg

    for name in TRACES:
        svg, why = render_svg(trace_graph(trace_of(name)))
        assert svg, why
        natural = float(re.search(r'width="([\d.]+)pt"', svg).group(1))
        width = float(re.search(r'width="([\d.]+)px"', fit_svg(svg)).group(1))
        assert width <= 900
        font_px = 10 * width / natural  # Graphviz labels are 10 pt in a viewBox measured in pt
        assert font_px >= 11, (name, font_px)


def test_intended_clusters_read_the_callers_routes() -> None:
    dump = json.loads((FIXTURES / "envoy" / "config_dump.json").read_text())
    hop = Hop.from_line("productpage-v1", {"authority": "reviews:9080", "downstream_local_address": "10.96.0.14:9080",
                                           "response_flags": "NC", "response_code": 503})
    wanted = intended_clusters(dump, hop)
    assert wanted and all("reviews" in name for name in wanted)
    assert intended_clusters(dump, replace(hop, authority="nowhere:9080")) == []


# --- the widgets, on captured lines and a real ControlPlane ------------------------------------------

class CapturedMesh:
    """Answers TraceView's and PushTimeline's calls from captured lines and a real ControlPlane."""

    def __init__(self, scenario: str = "ok") -> None:
        self.trace = TRACES[scenario]
        self.sent: list[dict] = []
        self._plane: ControlPlane | None = None

    @property
    def plane(self) -> ControlPlane:
        if self._plane is None:
            self._plane = ControlPlane(bookinfo(), SnapshotCache(), SyncTracker())
            asyncio.run(self._plane.push_all())
        return self._plane

    def topology(self) -> dict:
        return {"workloads": [{"name": pod, "deployment": pod, "ip": ip, "sidecar": True}
                              for pod, ip in self.trace["ips"].items()]}

    def curl_rows(self, pod: str, url: str, headers: dict | None = None, n: int = 1) -> list[dict]:
        self.sent.append(dict(headers or {}))
        return [self.trace["reply"]]

    def access_log(self, request_id: str = "", client: str = "", **_: object) -> dict:
        assert request_id == self.trace["request_id"] and client == self.trace["reply"]["client_address"]
        return {pod: {"offset": 0, "lines": lines} for pod, lines in self.trace["lines"].items()}

    def admin(self, pod: str, path: str) -> str:
        return (FIXTURES / "envoy" / "config_dump.json").read_text()

    def history_rows(self) -> list[dict]:
        return [p.as_dict() for p in self.plane.history()]

    def push_diff(self, a: int, b: int) -> list[dict]:
        return diff_states(self.plane.pushes.get(a), self.plane.pushes.get(b))

    def replay(self, push_id: int) -> dict:
        return asyncio.run(self.plane.replay(push_id)).as_dict()

    def apply(self, text: str) -> int:
        topology = replace(self.plane.topology, istio=self.plane.topology.istio.applied(parse_istio(text)))
        return asyncio.run(self.plane.set_topology(topology, "apply")).id


def test_trace_view_sends_one_request_with_its_own_id_and_shows_the_hops() -> None:
    from meshkit.widgets.trace import TraceView

    mesh = CapturedMesh("fault_abort")
    view = TraceView(mesh, "productpage-v1", "http://productpage:9080/productpage")
    assert len(mesh.sent) == 1 and re.fullmatch(r"[0-9a-f-]{36}", mesh.sent[0]["x-request-id"])
    text = view.text()
    assert text.startswith("HTTP 200") and "✗ ratings:9080/ratings/0: HTTP 503 FI at reviews-v2's sidecar" in text
    bundle = view._repr_mimebundle_()
    assert bundle["text/plain"] == text and "ratings:9080/ratings/0" in bundle["text/html"]
    again = TraceView(mesh, "productpage-v1", row=mesh.trace["reply"])  # a curl row: nothing sent
    assert len(mesh.sent) == 1 and again.trace is not None and len(again.trace.hops()) == len(view.trace.hops())
    with pytest.raises(ValueError, match="needs a url"):
        TraceView(mesh, "productpage-v1")


def test_push_timeline_diffs_two_pushes_and_replays_one() -> None:
    from meshkit.widgets.timeline import PushTimeline

    mesh = CapturedMesh()
    mesh.apply(destination_rule("reviews", ["v1", "v3"]))
    first = mesh.apply(weights_to_virtual_service("reviews", {"v1": 80, "v3": 20}))
    second = mesh.apply(weights_to_virtual_service("reviews", {"v1": 20, "v3": 80}))
    timeline = PushTimeline(mesh, watch=False)
    assert [r["id"] for r in timeline.rows] == [1, 2, first, second]
    timeline.select(second, first)
    assert timeline.selected == (first, second)
    assert "## RDS 9080 (modified)" in timeline.text() and "+          weight: " in timeline.text()
    assert "color:#38761d" in timeline._diff.value  # added lines are green
    timeline.select(first)
    assert timeline._replay.description == f"Replay push {first}"
    timeline._replay_clicked()
    assert timeline.last_replay["reason"] == f"replay push {first}"
    assert [r["id"] for r in timeline.rows][-1] == second + 1
    assert mesh.push_diff(first, second + 1) == []  # the state after the replay is the one of `first`
    timeline.select(1, 2)
    assert "CDS" in timeline.text()
    timeline.close()
