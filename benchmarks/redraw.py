"""Redraw latency: an edit, productpage-v1's ACK, and the live ProxyGraph showing the new routes.

    sudo .venv/bin/python benchmarks/redraw.py [--edits 30]

Alternates the reviews weights (a VirtualService with a DestinationRule, as the sliders write)
between 80/20 and 20/80, so every edit is a real change the graph must show. For each edit it
waits until the graph's text has the new weights, then prints p50/p95/max of
- ACK → redrawn: the widget's own `last_redraw_latency_s` (the boss's ACK event to the finished
  redraw with Graphviz): the "redrawn within 1 s of the ACK" figure;
- apply() → shown: the learner's view, from the call to the graph showing the change.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import yaml

import meshkit
from meshkit.widgets.editors import destination_rule, weights_to_virtual_service
from meshkit.widgets.graphs import ProxyGraph

SHOWN_TIMEOUT_S = 10.0


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def measure(mesh: meshkit.Mesh, edits: int) -> tuple[list[float], list[float]]:
    graph = ProxyGraph(mesh, "productpage-v1", listeners=["0.0.0.0_9080"])
    rule = destination_rule("reviews", ["v1", "v3"])
    ack, shown = [], []
    try:
        for i in range(edits):
            v1 = 80 if i % 2 == 0 else 20
            wanted = f"-[{v1}%]-> cluster outbound|9080|v1|reviews.default.svc.cluster.local"
            drawn = graph.redraws
            start = time.time()
            mesh.apply(rule + "---\n" + weights_to_virtual_service("reviews", {"v1": v1, "v3": 100 - v1}))
            deadline = time.monotonic() + SHOWN_TIMEOUT_S
            while not (graph.redraws > drawn and wanted in graph.text()):
                if time.monotonic() > deadline:
                    raise SystemExit(f"edit {i}: the graph did not show {wanted!r} within {SHOWN_TIMEOUT_S:.0f}s")
                time.sleep(0.005)
            shown.append((time.time() - start) * 1000)
            ack.append((graph.last_redraw_latency_s or 0.0) * 1000)
    finally:
        graph.close()
        added = [r for kind in ("VirtualService", "DestinationRule") for r in mesh.get(kind)]
        if added:
            mesh.delete(yaml.safe_dump_all(added))
    return ack, shown


def report(label: str, values: list[float]) -> None:
    print(f"{label}: p50 {statistics.median(values):.0f} ms, p95 {percentile(values, 95):.0f} ms, "
          f"max {max(values):.0f} ms over {len(values)} edits")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--edits", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshkit-redraw-") as home:
        mesh = meshkit.up(home)
        try:
            ack, shown = measure(mesh, args.edits)
        finally:
            meshkit.down(home)
    report("ProxyGraph ACK → redrawn (productpage-v1, Graphviz SVG)", ack)
    report("apply() called → graph shows the new weights", shown)
    print(f"within 1 s of the ACK: {sum(1 for v in ack if v < 1000)}/{len(ack)} edits")


if __name__ == "__main__":
    main()
