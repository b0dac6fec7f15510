"""What a sidecar sees: the services it calls out to and the ports it serves.

istiod computes this per proxy as its SidecarScope; without a `Sidecar` resource every proxy
sees every service in the mesh (Kubernetes Services and ServiceEntry hosts alike), with one
only those its egress hosts name (`sidecar`); it serves the ports of the Kubernetes Services
that select its pod.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from meshkit.model import HTTP, Service, ServicePort, Topology, Workload

from . import service_entry, sidecar
from .registry import RegistryService, kube_service


class InboundPort(NamedTuple):
    """A port the proxy serves: the Service port and the Service it belongs to."""

    service: Service
    port: ServicePort


def services(topology: Topology, proxy: Workload | None = None) -> list[RegistryService]:
    """Every service the mesh knows (that `proxy`'s Sidecar lets it see), by hostname; a Kubernetes
    Service hides an entry for its host."""
    by_host = {s.fqdn: kube_service(topology, s) for s in topology.services}
    for entry in service_entry.services(topology):
        by_host.setdefault(entry.hostname, entry)
    scope = sidecar.sidecar_for(topology, proxy) if proxy is not None else None
    return [by_host[h] for h in sorted(by_host) if proxy is None or sidecar.visible(scope, proxy, by_host[h])]


def outbound_ports(topology: Topology, proxy: Workload | None = None) -> list[tuple[RegistryService, ServicePort]]:
    """Every (service, port) `proxy` sees, by hostname then port: one outbound cluster each."""
    return [(s, p) for s in services(topology, proxy) for p in sorted(s.ports, key=lambda p: p.port)]


def http_ports(topology: Topology, proxy: Workload | None = None) -> list[int]:
    """Every port number a service `proxy` sees declares as HTTP: one listener and one route config each."""
    return sorted({p.port for _, p in outbound_ports(topology, proxy) if p.protocol == HTTP})


def inbound_ports(topology: Topology, proxy: Workload) -> list[InboundPort]:
    """The proxy's own service ports, one per target port (the first service wins, as istiod's
    conflict rule keeps one), by target port."""
    by_target: dict[int, InboundPort] = {}
    for service in sorted(topology.services_of(proxy), key=lambda s: s.fqdn):
        for port in service.ports:
            by_target.setdefault(port.target_port, InboundPort(service, port))
    return [by_target[t] for t in sorted(by_target)]


def lookup(topology: Topology, proxy: Workload | None = None) -> dict[str, RegistryService]:
    """The registry keyed by hostname (istiod's `ServiceForHostname`)."""
    return {s.hostname: s for s in services(topology, proxy)}


def for_proxy(topology: Topology, proxy: Workload) -> Topology:
    """The topology as `proxy` sees it: only the Istio config exported to its namespace (`exportTo`),
    and the mesh's outboundTrafficPolicy replaced by its Sidecar's, if that sets one."""
    visible = topology.istio.visible_to(proxy.namespace)
    if len(visible.resources) != len(topology.istio.resources):
        topology = replace(topology, istio=visible)
    mode = sidecar.outbound_traffic_policy(sidecar.sidecar_for(topology, proxy), topology.mesh.outbound_traffic_policy)
    if mode == topology.mesh.outbound_traffic_policy:
        return topology
    return replace(topology, mesh=replace(topology.mesh, outbound_traffic_policy=mode))
