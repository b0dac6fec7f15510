"""Who sent how many requests where, from Envoy's own `/clusters?format=json` host stats.

Every upstream host of every cluster carries Envoy's counters: `rq_total`, `rq_success` and
`rq_error` (5xx answers and failed connections), printed as strings and left out while zero.
`hosts(clusters_json)` reads them with each host's health; `delta(before, after)` subtracts an
earlier sample so a live view shows what happened *since* rather than since Envoy started.

    >>> [(h.cluster, h.address, h.counts.total) for h in hosts(after) if h.counts.total]
    [('outbound|9080||ratings.default.svc.cluster.local', '127.0.0.13', 60), ...]
    >>> delta(before, after)[("outbound|9080|v1|reviews.default.svc.cluster.local", "127.0.0.14", 46569)]
    Counts(total=31, success=31, error=0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Counts", "Host", "HostKey", "counts", "delta", "hosts", "total"]

HostKey = tuple[str, str, int]  # (cluster name, address, port)


@dataclass(frozen=True)
class Counts:
    """Requests to one host: all of them, the 2xx-4xx ones, and the errors (5xx, resets)."""

    total: int = 0
    success: int = 0
    error: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.total + other.total, self.success + other.success, self.error + other.error)

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.total - other.total, self.success - other.success, self.error - other.error)


@dataclass(frozen=True)
class Host:
    """One upstream host as Envoy sees it: where, how healthy, how many requests."""

    cluster: str
    address: str  # an IP, or `unix://<path>` for a pipe
    port: int
    health: str  # EDS health (`HEALTHY`, `UNHEALTHY`, `DRAINING`…) plus any failed check, e.g. `HEALTHY, outlier`
    counts: Counts

    @property
    def key(self) -> HostKey:
        return self.cluster, self.address, self.port

    @property
    def healthy(self) -> bool:
        return self.health == "HEALTHY"


# health_status flags Envoy sets when a check fails, and the short word a view prints for each.
_FAILED_CHECKS = {
    "failed_active_health_check": "active check", "failed_outlier_check": "outlier",
    "failed_eds_health": "EDS", "failed_active_degraded_check": "degraded",
    "pending_dynamic_removal": "removing", "pending_active_hc": "pending check",
    "excluded_via_immediate_hc_fail": "excluded", "active_hc_timeout": "check timeout",
}


def hosts(clusters_json: Mapping[str, Any]) -> list[Host]:
    """Every host of every cluster in `/clusters?format=json`, in Envoy's order."""
    return [_host(status.get("name", ""), host)
            for status in clusters_json.get("cluster_statuses", [])
            for host in status.get("host_statuses", [])]


def counts(clusters_json: Mapping[str, Any]) -> dict[HostKey, Counts]:
    """Request counts per (cluster, address, port) since Envoy started."""
    return {host.key: host.counts for host in hosts(clusters_json)}


def delta(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[HostKey, Counts]:
    """Requests between two samples; a host whose counters went down (Envoy restarted, host re-added)
    counts from zero again, as Prometheus' `increase()` does.
    """
    earlier = counts(before or {})
    result = {}
    for key, now in counts(after).items():
        diff = now - earlier.get(key, Counts())
        result[key] = now if min(diff.total, diff.success, diff.error) < 0 else diff
    return result


def total(values: Iterable[Counts]) -> Counts:
    """The sum of several hosts' counts."""
    return sum(values, Counts())


def _host(cluster: str, host: Mapping[str, Any]) -> Host:
    address = host.get("address", {})
    socket_address = address.get("socket_address", {})
    where = socket_address.get("address") or ("unix://" + address.get("pipe", {}).get("path", ""))
    stats = {stat.get("name"): int(stat.get("value", 0)) for stat in host.get("stats", [])}
    status = host.get("health_status", {})
    failed = [word for flag, word in _FAILED_CHECKS.items() if status.get(flag)]
    health = ", ".join([status.get("eds_health_status", "UNKNOWN"), *failed])
    return Host(cluster, where, int(socket_address.get("port_value", 0)), health,
                Counts(stats.get("rq_total", 0), stats.get("rq_success", 0), stats.get("rq_error", 0)))
