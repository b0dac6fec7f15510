"""`istioctl proxy-status` (the per-type, verbose form) from plain rows the boss reports.

One row per proxy, with the state of each xDS type as istiod computes it: `SYNCED` (Envoy ACKed
the last thing sent), `STALE` (sent, not yet ACKed), `NOT SENT`, `ERROR` (the last answer was a
NACK), and `IGNORED` for a type the proxy never asked for — what istioctl 1.26 prints.

Unlike istioctl, which lists only the proxies connected to istiod right now, meshkit also lists
the ones whose ADS stream closed: their types read `DISCONNECTED` (the boss cannot know what
they hold, nor reach them), and while the boss itself is stopped every type of every row reads
`BOSS STOPPED`. The table's note (`df.attrs["note"]`, printed under it by `render`) says who is
not connected since when, and that the sidecars keep serving their last config.

    >>> rows = [{"name": "sidecar~10.244.0.12~productpage-v1.default~default.svc.cluster.local",
    ...          "cluster": "Kubernetes", "istiod": "meshkit", "version": "1.26.0",
    ...          "types": {"CDS": {"state": "SYNCED"}, "LDS": {"state": "ERROR", "error": "bad filter"}}}]
    >>> status_table(rows).iloc[0][["CDS", "LDS", "EDS", "ERROR DETAIL"]].tolist()
    ['SYNCED', 'ERROR', 'IGNORED', 'LDS: bad filter']
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from .tables import istioctl_table

__all__ = ["BOSS_STOPPED", "DISCONNECTED", "TYPES", "status_note", "status_table"]

TYPES = ("CDS", "LDS", "EDS", "RDS", "ECDS")
DISCONNECTED = "DISCONNECTED"
BOSS_STOPPED = "BOSS STOPPED"


def status_table(rows: Iterable[Mapping[str, Any]], now: float | None = None) -> pd.DataFrame:
    """`NAME CLUSTER CDS LDS EDS RDS ECDS ISTIOD VERSION`, sorted by proxy name.

    Each row: `{"name", "cluster", "istiod", "version", "types": {"CDS": {"state", "version",
    "error"}, …}}`, optionally `"state"` (CONNECTED, DISCONNECTED, BOSS STOPPED) and `"since"`
    (epoch seconds). An extra last column `ERROR DETAIL` (`<TYPE>: <Envoy's text>`, `; `-joined)
    appears only when some proxy has an error to show. Proxies that are not connected stay in the
    table (istioctl would leave them out); `df.attrs["note"]` says so, see `status_note`.
    """
    rows = sorted(rows, key=lambda r: r.get("name", ""))
    table = []
    for row in rows:
        types = row.get("types", {})
        states = [str(types.get(t, {}).get("state") or "IGNORED").upper() for t in TYPES]
        errors = "; ".join(f"{t}: {types[t]['error']}" for t in TYPES if types.get(t, {}).get("error"))
        table.append([row.get("name", ""), row.get("cluster", ""), *states, row.get("istiod", ""),
                      row.get("version", ""), errors])
    columns = ["NAME", "CLUSTER", *TYPES, "ISTIOD", "VERSION", "ERROR DETAIL"]
    if not any(r[-1] for r in table):
        columns, table = columns[:-1], [r[:-1] for r in table]
    frame = istioctl_table(table, columns, padding=5)
    note = status_note(rows, now)
    if note:
        frame.attrs["note"] = note
    return frame


def status_note(rows: Iterable[Mapping[str, Any]], now: float | None = None) -> str:
    """What the table cannot say in its cells: the boss is stopped, or who is disconnected since
    when; empty when every proxy is connected."""
    rows = list(rows)
    now = time.time() if now is None else now
    stopped = [r for r in rows if r.get("state") == BOSS_STOPPED]
    away = [r for r in rows if r.get("state") == DISCONNECTED]
    lines = []
    if stopped:
        lines.append(f"The boss is stopped{_since(stopped[0].get('since'), now)}: no sidecar is connected, "
                     "and the sidecars keep serving their last config until it is back (mesh.start_boss()).")
    if away:
        lines.append("Not connected to the boss (istioctl proxy-status lists only connected proxies; "
                     "meshkit keeps them, marked DISCONNECTED):")
        lines += [f"  {r.get('name', '')} disconnected{_since(r.get('since'), now)}" for r in away]
    return "\n".join(lines)


def _since(when: float | None, now: float) -> str:
    if not when:
        return ""
    clock = time.strftime("%H:%M:%S", time.localtime(when))
    return f" since {clock} ({max(0.0, now - when):.1f} s ago)"
