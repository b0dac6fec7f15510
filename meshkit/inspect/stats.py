"""Requests by source, destination and response code, from Envoy's own counters.

In Istio the `istio.stats` filter (a Wasm/native extension, not in upstream Envoy) counts every
request into `istio_requests_total{reporter, source_workload, destination_service,
response_code, ...}` and serves it with the rest on `:15090/stats/prometheus`. Upstream Envoy
already counts the same facts, only named by Envoy's own objects:

- client side (Istio's `reporter="source"`): per outbound cluster
  `cluster.outbound|9080||reviews.default.svc.cluster.local;.upstream_rq_200` — the sidecar is
  the source, the cluster names the destination service, the suffix is the response code;
- server side (`reporter="destination"`): per inbound HCM `http.inbound_0.0.0.0_9080;.downstream_rq_2xx`
  (classes only), RBAC verdicts `http.inbound_0.0.0.0_9080;.rbac.allowed|denied`, and mTLS on the
  listener `listener.0.0.0.0_15006.ssl.handshake` / `.ssl.connection_error` / `.ssl.no_certificate`.

`requests({pod: stats_text})` turns the client-side counters of several sidecars into one table;
`counters(text, pattern)` picks any counters out of `/stats` text (`name: value` lines).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd

from .tables import istioctl_table

__all__ = ["counters", "requests"]

UPSTREAM_RQ = re.compile(r"^cluster\.outbound\|(\d+)\|([^|]*)\|([^;:]+);?\.upstream_rq_(\d{3})$")
COLUMNS = ["SOURCE", "DESTINATION", "SUBSET", "RESPONSE CODE", "REQUESTS"]


def counters(text: str, pattern: str = "") -> dict[str, int]:
    """`name: value` lines of Envoy's `/stats` whose name matches `pattern` (a regex), as ints."""
    wanted = re.compile(pattern) if pattern else None
    found = {}
    for line in text.splitlines():
        name, sep, value = line.rpartition(": ")
        if not sep or not value.strip().isdigit():
            continue
        if wanted is None or wanted.search(name):
            found[name] = int(value)
    return found


def requests(stats_by_source: Mapping[str, str], *, include_zero: bool = False) -> pd.DataFrame:
    """One row per (source sidecar, destination service, subset, response code) with its count."""
    rows = []
    for source, text in stats_by_source.items():
        for name, value in counters(text, r"\.upstream_rq_\d{3}$").items():
            match = UPSTREAM_RQ.match(name)
            if match is None or (value == 0 and not include_zero):
                continue
            port, subset, host, code = match.groups()
            rows.append([source, f"{host}:{port}", subset or "-", code, value])
    rows.sort(key=lambda r: (r[0], r[1], r[2], r[3]))
    table = istioctl_table([[str(c) for c in r] for r in rows], COLUMNS, padding=5)
    table["REQUESTS"] = [r[4] for r in rows]
    return table
