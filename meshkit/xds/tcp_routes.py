"""VirtualService `tcp` and `tls` rules → the tcp_proxy targets of outbound TCP and TLS chains.

Follows istiod's `buildSidecarOutboundTCPFilterChainOpts` and `buildSidecarOutboundTLSFilterChainOpts`
(`pilot/pkg/networking/core/tls.go`, 1.30): the first `tcp` rule whose match fits the proxy and port
wins; `tls` rules give one chain per match, keyed by its `sniHosts` (the first of equal SNI sets wins).
Matches with `destinationSubnets` are left out (meshkit builds no CIDR chains; `warnings` says so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from meshkit.model import Workload
from meshkit.model.config import IstioConfig, resolve_host
from meshkit.model.istio import IstioResource

from .registry import RegistryService
from .virtual_service import MESH_GATEWAY, destination_cluster, naming


class TcpTarget(NamedTuple):
    """Where a TCP listener's tcp_proxy sends connections, and the VirtualService that said so."""

    clusters: str | Sequence[tuple[str, int]]
    stat_prefix: str
    config: str


def tcp_target(
    istio: IstioConfig, service: RegistryService, port: int, proxy: Workload, registry: Mapping[str, RegistryService]
) -> TcpTarget | None:
    """The first `tcp` rule of a sidecar VirtualService for `service` that applies to this proxy
    and port (istiod's `buildSidecarOutboundTCPFilterChainOpts`), or None for the default."""
    for vs in naming(istio, service.hostname):
        for tcp in vs.spec.get("tcp", []):
            routes = tcp.get("route", [])
            if routes and (not tcp.get("match") or any(tcp_match(m, proxy, port) for m in tcp["match"])):
                return tcp_destinations(vs, routes, port, registry)
    return None


def tls_routes(
    istio: IstioConfig, service: RegistryService, port: int, proxy: Workload, registry: Mapping[str, RegistryService]
) -> list[tuple[tuple[str, ...], TcpTarget]]:
    """istiod's `buildSidecarOutboundTLSFilterChainOpts` for the `tls` rules naming `service`: one
    (SNI hosts, target) per match that fits this proxy and port, the first of equal SNI sets winning."""
    out: list[tuple[tuple[str, ...], TcpTarget]] = []
    seen: set[tuple[str, ...]] = set()
    for vs in naming(istio, service.hostname):
        for tls in vs.spec.get("tls", []):
            for match in tls.get("match", []):
                sni = tuple(match.get("sniHosts", []))
                if tcp_match(match, proxy, port) and sni not in seen and tls.get("route"):
                    seen.add(sni)
                    out.append((sni, tcp_destinations(vs, tls["route"], port, registry)))
    return out


def tcp_match(match: dict, proxy: Workload, port: int) -> bool:
    """istiod's `matchTCP` for a sidecar (a match with `destinationSubnets` is not supported)."""
    labels = proxy.label_map
    return (
        (not match.get("gateways") or MESH_GATEWAY in match["gateways"])
        and all(labels.get(k) == v for k, v in match.get("sourceLabels", {}).items())
        and match.get("port", port) == port
        and match.get("sourceNamespace", proxy.namespace) == proxy.namespace
        and not match.get("destinationSubnets")
    )


def tcp_destinations(
    vs: IstioResource, routes: list[dict], port: int, registry: Mapping[str, RegistryService]
) -> TcpTarget:
    """One cluster (stat prefix = cluster), or weighted clusters (stat prefix `<name>.<namespace>`)."""

    def cluster(dest: dict) -> str:
        return destination_cluster(dest, vs.namespace, port, registry.get(resolve_host(dest["host"], vs.namespace)))

    if len(routes) == 1:
        name = cluster(routes[0]["destination"])
        return TcpTarget(name, name, vs.config_path)
    weighted = [(cluster(r["destination"]), r["weight"]) for r in routes if r.get("weight")]
    return TcpTarget(weighted, f"{vs.name}.{vs.namespace}", vs.config_path)
