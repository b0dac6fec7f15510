"""TraceView and PushTimeline against real Envoy sidecars: real requests, real access logs, real pushes.

Each test leaves the mesh as it found it (the `restored` fixture of test_widgets_live.py deletes
what it applied and closes the views it opened).
"""

from __future__ import annotations

import collections
import time

import pytest

from meshkit.widgets.builders import destination_rule, weights_to_virtual_service
from meshkit.widgets.timeline import PushTimeline
from meshkit.widgets.trace import TraceView

from . import test_widgets_live
from .test_widgets_live import wait_until

restored = test_widgets_live.restored  # the same fixture: the mesh put back as it was, views closed

pytestmark = pytest.mark.mesh

PAGE = "http://productpage:9080/productpage"
REVIEWS = "http://reviews:9080/reviews/0"
MISSING = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: nowhere.default.svc.cluster.local}}]
"""


def deployment(pod: str) -> str:
    return pod.rsplit("-", 2)[0]


def test_a_productpage_request_is_traced_across_both_sidecars_of_every_call(restored) -> None:
    mesh, opened = restored
    mesh.apply(destination_rule("reviews", ["v1", "v2", "v3"]) + "---\n"
               + weights_to_virtual_service("reviews", {"v2": 100}))  # v2 calls ratings
    started = time.monotonic()
    view = TraceView(mesh, "productpage-v1", PAGE)
    took = time.monotonic() - started
    opened(view)
    print(f"\nTraceView (send + read every sidecar's log + draw) {took * 1000:.0f} ms\n{view.text()}")
    trace = view.trace
    assert trace is not None and view.row["status"] == 200
    calls = [(depth, call.target, deployment(call.caller), deployment(call.callee)) for depth, call in trace.walk()]
    assert calls == [
        (0, "productpage:9080/productpage", "productpage-v1", "productpage-v1"),
        (1, "details:9080/details/0", "productpage-v1", "details-v1"),
        (1, "reviews:9080/reviews/0", "productpage-v1", "reviews-v2"),
        (2, "ratings:9080/ratings/0", "reviews-v2", "ratings-v1"),
    ], view.text()
    for _, call in trace.walk():  # both sidecars of each call logged it, with the fields the format added
        out, inn = call.outbound, call.inbound
        assert out is not None and inn is not None, view.text()
        assert out.listener == "0.0.0.0_9080" and out.cluster.startswith("outbound|9080|") and out.attempts == 1
        assert inn.listener == "virtualInbound" and inn.chain == "0.0.0.0_9080" and inn.cluster == "inbound|9080||"
        assert out.endpoint == inn.downstream_local and out.status == inn.status == 200
    reviews = next(c for _, c in trace.walk() if c.target.startswith("reviews"))
    assert reviews.outbound.cluster == "outbound|9080|v2|reviews.default.svc.cluster.local"
    assert "✓ every hop answered" in view.text()
    assert "<svg" in view.html() or "Graphviz" in view.html()


def test_a_route_to_a_missing_cluster_shows_where_it_stopped(restored) -> None:
    mesh, opened = restored
    mesh.apply(MISSING)
    view = TraceView(mesh, "productpage-v1", REVIEWS)
    opened(view)
    print(f"\n{view.text()}")
    (call,) = [c for _, c in view.trace.walk()]
    assert call.outbound is not None and call.inbound is None
    assert call.outbound.status == 503 and call.outbound.flags in ("NC", "NR")
    assert call.wanted == ["outbound|9080||nowhere.default.svc.cluster.local"]
    assert "at productpage-v1" in view.text() and "outbound|9080||nowhere.default.svc.cluster.local" in view.text()


def test_push_timeline_diffs_a_weight_edit_and_replay_brings_the_weights_back(restored) -> None:
    mesh, opened = restored
    timeline = PushTimeline(mesh)
    opened(timeline)
    mesh.apply(destination_rule("reviews", ["v1", "v3"]))
    first = mesh.apply(weights_to_virtual_service("reviews", {"v1": 90, "v3": 10}))["id"]
    second = mesh.apply(weights_to_virtual_service("reviews", {"v1": 10, "v3": 90}))["id"]
    assert wait_until(lambda: second in {r["id"] for r in timeline.rows}, 5.0), "no redraw on the new pushes"

    started = time.monotonic()
    timeline.select(first, second)
    print(f"\npush_diff {first} → {second}: {(time.monotonic() - started) * 1000:.0f} ms\n{timeline.text()[-1500:]}")
    # the sidecars' route config 9080 (the front gate, whose routes differ, gets its own entry)
    (rds,) = [d for d in timeline.diff if d["type"] == "RDS" and d["name"] == "9080"
              and any(p.startswith("productpage") for p in d["pods"])]
    assert rds["name"] == "9080" and rds["action"] == "modified" and len(rds["pods"]) >= 7
    changed = [line for line in rds["diff"].splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert any(line[1:].strip().startswith("weight:") for line in changed), rds["diff"]

    def v3_share(n: int = 40) -> float:
        seen = collections.Counter(r.get("version") for r in mesh.curl_rows("productpage-v1", REVIEWS, n=n))
        return seen["v3"] / n

    assert v3_share() >= 0.6  # 90 % v3 now
    timeline.select(first)
    timeline._replay_clicked()
    replay = timeline.last_replay
    assert replay is not None and replay["reason"] == f"replay push {first}", timeline._status.value
    assert mesh.push_diff(first, replay["id"]) == []  # exactly what push `first` left the proxies with
    assert v3_share() <= 0.4  # 10 % v3 again: requests follow the replayed weights
