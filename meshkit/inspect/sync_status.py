"""`istioctl proxy-status` (the per-type, verbose form) from plain rows the boss reports.

One row per proxy, with the state of each xDS type as istiod computes it: `SYNCED` (Envoy ACKed
the last thing sent), `STALE` (sent, not yet ACKed), `NOT SENT`, `ERROR` (the last answer was a
NACK), and `IGNORED` for a type the proxy never asked for — what istioctl 1.26 prints.

    >>> rows = [{"name": "sidecar~10.244.0.12~productpage-v1.default~default.svc.cluster.local",
    ...          "cluster": "Kubernetes", "istiod": "meshkit", "version": "1.26.0",
    ...          "types": {"CDS": {"state": "SYNCED"}, "LDS": {"state": "ERROR", "error": "bad filter"}}}]
    >>> status_table(rows).iloc[0][["CDS", "LDS", "EDS", "ERROR DETAIL"]].tolist()
    ['SYNCED', 'ERROR', 'IGNORED', 'LDS: bad filter']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from .tables import istioctl_table

__all__ = ["TYPES", "status_table"]

TYPES = ("CDS", "LDS", "EDS", "RDS", "ECDS")


def status_table(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """`NAME CLUSTER CDS LDS EDS RDS ECDS ISTIOD VERSION`, sorted by proxy name.

    Each row: `{"name", "cluster", "istiod", "version", "types": {"CDS": {"state", "version",
    "error"}, …}}`. An extra last column `ERROR DETAIL` (`<TYPE>: <Envoy's text>`, `; `-joined)
    appears only when some proxy has an error to show.
    """
    table = []
    for row in sorted(rows, key=lambda r: r.get("name", "")):
        types = row.get("types", {})
        states = [str(types.get(t, {}).get("state") or "IGNORED").upper() for t in TYPES]
        errors = "; ".join(f"{t}: {types[t]['error']}" for t in TYPES if types.get(t, {}).get("error"))
        table.append([row.get("name", ""), row.get("cluster", ""), *states, row.get("istiod", ""),
                      row.get("version", ""), errors])
    columns = ["NAME", "CLUSTER", *TYPES, "ISTIOD", "VERSION", "ERROR DETAIL"]
    if not any(r[-1] for r in table):
        columns, table = columns[:-1], [r[:-1] for r in table]
    return istioctl_table(table, columns, padding=5)
