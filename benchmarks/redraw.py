"""Redraw latency: an edit, the sidecars' ACKs, and the live ProxyGraph and MeshGraph showing it.

    sudo .venv/bin/python benchmarks/redraw.py [--edits 20]

Alternates the reviews weights (a VirtualService with a DestinationRule, as the sliders write)
between 80/20 and 20/80, so every edit is a real change both graphs must show: ProxyGraph
(productpage-v1, outbound 9080) its route's new weights, marked changed; MeshGraph the weight on
the productpage → reviews-v1 edge, read from productpage-v1's live RDS. For each edit it waits
until both show it, then prints p50/p95/max of
- ACK → redrawn: each widget's own `last_redraw_latency_s` (the boss's ACK event to the finished
  redraw with Graphviz) for the redraw that showed the change;
- apply() → shown: the learner's view, from the call to the graph showing the change.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import yaml

import meshkit
from meshkit.widgets.builders import destination_rule, weights_to_virtual_service
from meshkit.widgets.graphs import MeshGraph, ProxyGraph

SHOWN_TIMEOUT_S = 10.0


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def measure(mesh: meshkit.Mesh, edits: int) -> dict[str, list[float]]:
    proxy = ProxyGraph(mesh, "productpage-v1")
    whole = MeshGraph(mesh)
    rule = destination_rule("reviews", ["v1", "v3"])
    found: dict[str, list[float]] = {"proxy ack": [], "mesh ack": [], "proxy shown": [], "mesh shown": []}
    try:
        for i in range(edits):
            v1 = 80 if i % 2 == 0 else 20
            wanted = {"proxy": (proxy, f"-[{v1}%]-> cluster outbound|9080|v1|reviews.default.svc.cluster.local"),
                      "mesh": (whole, f"w {v1}%]-> pod reviews-v1")}
            drawn = {name: view.redraws for name, (view, _) in wanted.items()}
            start = time.time()
            mesh.apply(rule + "---\n" + weights_to_virtual_service("reviews", {"v1": v1, "v3": 100 - v1}))
            deadline = time.monotonic() + SHOWN_TIMEOUT_S
            pending = dict(wanted)
            while pending:
                for name, (view, text) in list(pending.items()):
                    with view._lock:  # the picture and its latency from the same redraw
                        shown = view.redraws > drawn[name] and text in view.text()
                        latency = view.last_redraw_latency_s
                    if shown:
                        found[f"{name} shown"].append((time.time() - start) * 1000)
                        found[f"{name} ack"].append((latency or 0.0) * 1000)
                        del pending[name]
                if time.monotonic() > deadline:
                    raise SystemExit(f"edit {i}: {', '.join(pending)} did not show the new weights within "
                                     f"{SHOWN_TIMEOUT_S:.0f}s")
                time.sleep(0.005)
    finally:
        proxy.close()
        whole.close()
        added = [r for kind in ("VirtualService", "DestinationRule") for r in mesh.get(kind)]
        if added:
            mesh.delete(yaml.safe_dump_all(added))
    return found


def report(label: str, values: list[float]) -> None:
    print(f"{label}: p50 {statistics.median(values):.0f} ms, p95 {percentile(values, 95):.0f} ms, "
          f"max {max(values):.0f} ms over {len(values)} edits")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--edits", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshkit-redraw-") as home:
        mesh = meshkit.up(home)
        try:
            found = measure(mesh, args.edits)
        finally:
            meshkit.down(home)
    report("ProxyGraph ACK → redrawn (productpage-v1, Graphviz SVG)", found["proxy ack"])
    report("MeshGraph ACK → redrawn (the whole mesh, Graphviz SVG)", found["mesh ack"])
    report("apply() called → ProxyGraph shows the new weights", found["proxy shown"])
    report("apply() called → MeshGraph shows the new weights", found["mesh shown"])
    for name in ("proxy", "mesh"):
        fast = sum(1 for v in found[f"{name} ack"] if v < 300)
        print(f"{name}: redrawn within 300 ms of the ACK in {fast}/{len(found[f'{name} ack'])} edits")


if __name__ == "__main__":
    main()
