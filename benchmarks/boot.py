"""Boot time: `meshkit up` until every sidecar is SYNCED and productpage → reviews → ratings answers 200.

    sudo .venv/bin/python benchmarks/boot.py [--runs 3] [--capture iptables]
    .venv/bin/python benchmarks/boot.py --capture userspace     (no root needed)

Prints figures; asserts nothing (timings vary with the machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import meshkit
from meshkit.constants import CAPTURES


def boot_once(capture: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="meshkit-boot-") as home:
        start = time.perf_counter()
        mesh = meshkit.up(home, capture=capture)
        synced = time.perf_counter() - start
        states = {s["state"] for row in mesh.status_rows() for s in row["types"].values()
                  if s["state"] != "NOT SENT"}
        assert states == {"SYNCED"}, states
        while True:
            rows = mesh.curl_rows("productpage-v1", "http://productpage:9080/productpage", n=3)
            bodies = [json.loads(r["body"]) for r in rows if r["status"] == 200]
            rated = [b for b in bodies if b["reviews"]["status"] == 200
                     and b["reviews"]["body"].get("ratings_call", {}).get("status") == 200]
            if rated:
                break
        answered = time.perf_counter() - start
        down_start = time.perf_counter()
        meshkit.down(home)
        return {"synced_s": synced, "answered_s": answered, "down_s": time.perf_counter() - down_start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--capture", choices=CAPTURES, default=None,
                        help="traffic capture (default: $MESHKIT_CAPTURE, else auto)")
    args = parser.parse_args()
    results = [boot_once(args.capture) for _ in range(args.runs)]
    for i, r in enumerate(results, 1):
        print(f"run {i}: all sidecars SYNCED {r['synced_s']:.2f}s, "
              f"productpage→reviews→ratings 200 at {r['answered_s']:.2f}s, down {r['down_s']:.2f}s")
    median = statistics.median(r["answered_s"] for r in results)
    capture = args.capture or "auto"
    print(f"boot [capture {capture}] (up → SYNCED + 200 through the chain), median of {args.runs}: {median:.2f}s")


if __name__ == "__main__":
    main()
