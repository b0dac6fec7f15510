"""Push latency: a raw edit until every target proxy has ACKed it.

    sudo .venv/bin/python benchmarks/push.py [--edits 30]

Alternates a RouteConfiguration "9080" between two contents so every edit is a real change,
first for productpage-v1 alone, then for all sidecars at once. Prints p50/p95/max of the
boss's own measure (push → last ACK) and of the client's wall time (CLI/notebook → ACKed).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import meshkit
from meshkit.constants import CAPTURES

ROUTE = """
"@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
name: "9080"
virtual_hosts:
- name: reviews.default.svc.cluster.local:9080
  domains: ["reviews", "reviews.default.svc.cluster.local"]
  routes:
  - match: {{prefix: /}}
    route: {{cluster: "outbound|9080||reviews.default.svc.cluster.local", timeout: {timeout}s}}
"""


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def measure(mesh: meshkit.Mesh, pods: list[str] | None, edits: int) -> tuple[list[float], list[float]]:
    boss, wall = [], []
    for i in range(edits):
        start = time.perf_counter()
        push = mesh.apply(ROUTE.format(timeout=10 + i % 2), pods=pods)
        wall.append((time.perf_counter() - start) * 1000)
        boss.append(push["duration_ms"])
    mesh.revert(pods)
    return boss, wall


def report(label: str, boss: list[float], wall: list[float]) -> None:
    print(f"{label}: push→all ACKed p50 {statistics.median(boss):.1f} ms, p95 {percentile(boss, 95):.1f} ms, "
          f"max {max(boss):.1f} ms; client wall p50 {statistics.median(wall):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--edits", type=int, default=30)
    parser.add_argument("--capture", choices=CAPTURES, default=None,
                        help="traffic capture (default: $MESHKIT_CAPTURE, else auto)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshkit-push-") as home:
        mesh = meshkit.up(home, capture=args.capture)
        try:
            sidecars = len(mesh.status_rows())
            print(f"capture {mesh.capture}")
            report("one proxy (productpage-v1)", *measure(mesh, ["productpage-v1"], args.edits))
            report(f"all {sidecars} proxies", *measure(mesh, None, args.edits))
        finally:
            meshkit.down(home)


if __name__ == "__main__":
    main()
