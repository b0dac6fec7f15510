"""The boss's pushes as a timeline, and the diff between two of them, as plain rows and text.

`push_rows(mesh.history_rows())` gives one row per push: why, which xDS types changed, how many
resources, which proxies ACKed and which NACKed (with Envoy's words), how long it took.
`diff_text(mesh.push_diff(a, b))` prints what changed in Envoy's own YAML between two pushes.

    >>> print(timeline_text(push_rows(mesh.history_rows())))
    PUSH  TIME      REASON         TYPES  CHANGED      ACK  NACK  MS
    0     ...       initial state  RDS    1 in 1 pods  1    -     12
    >>> print(diff_text(mesh.push_diff(1, 2)))
    1 resource change(s)
    ## RDS 9080 (changed) on productpage-v1
    -          weight: 100
    +          weight: 50
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .tables import istioctl_table, render
from .trace import short_pod

__all__ = ["diff_summary", "diff_text", "push_rows", "timeline_text"]

TYPE_ORDER = ("CDS", "EDS", "LDS", "RDS", "SDS")
COLUMNS = ["PUSH", "TIME", "REASON", "TYPES", "CHANGED", "ACK", "NACK", "MS"]


def push_rows(history: Iterable[Mapping[str, Any]]) -> list[dict]:
    """One dict per push (newest last): id, time, reason, types, changed, acked, nacked, errors, ms."""
    rows = []
    for push in history:
        changes = push.get("changes", [])
        kinds = {c["type"] for c in changes}
        results: Mapping[str, Mapping[str, str]] = push.get("results", {})
        errors: Mapping[str, str] = push.get("errors", {})
        rows.append({
            "id": int(push["id"]),
            "time": time.strftime("%H:%M:%S", time.localtime(push.get("started", 0))),
            "reason": str(push.get("reason", "")),
            "types": [t for t in TYPE_ORDER if t in kinds],
            "changed": len({(c["type"], c["name"]) for c in changes}),
            "pods": len({c["pod"] for c in changes}),
            "acked": sorted(p for p, r in results.items() if r and set(r.values()) == {"ACK"}),
            "nacked": sorted(errors),
            "errors": dict(errors),
            "ms": round(float(push.get("duration_ms") or 0.0), 1),
        })
    return rows


def timeline_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """The timeline as an istioctl-style table, one line per push, NACK texts below."""
    if not rows:
        return "(no pushes yet)"
    cells = [[str(r["id"]), r["time"], r["reason"], ",".join(r["types"]) or "-",
              f"{r['changed']} in {r['pods']} pods" if r["changed"] else "0", str(len(r["acked"])),
              ", ".join(short_pod(p) for p in r["nacked"]) or "-", f"{r['ms']:g}"] for r in rows]
    text = render(istioctl_table(cells, COLUMNS, 2))
    errors = [f"push {r['id']} NACK {short_pod(p)}: {e}" for r in rows for p, e in r["errors"].items()]
    return "\n".join([text, *errors])


def diff_summary(diff: Sequence[Mapping[str, Any]]) -> str:
    """`RDS 9080 modified on 7 pods; CDS outbound|9080|v3|reviews… added on 7 pods`."""
    return "; ".join(f"{d['type']} {d['name']} {d['action']} on {_pods(d['pods'])}" for d in diff) or "no change"


def diff_text(diff: Sequence[Mapping[str, Any]], a: int | None = None, b: int | None = None) -> str:
    """Every changed resource's unified YAML diff, each under a line naming the pods it applies to."""
    head = f"push {a} → push {b}: " if a is not None and b is not None else ""
    if not diff:
        return f"{head}nothing differs in what the proxies were sent"
    parts = [f"{head}{len(diff)} resource change(s)"]
    for d in diff:
        parts.append(f"## {d['type']} {d['name']} ({d['action']}) on {_pods(d['pods'])}")
        parts.append(d["diff"].rstrip("\n"))
    return "\n".join(parts)


def _pods(pods: Sequence[str]) -> str:
    names = [short_pod(p) for p in pods]
    return names[0] if len(names) == 1 else f"{len(names)} pods ({', '.join(names)})"
