"""What a sidecar sees: the services it calls out to and the ports it serves.

istiod computes this per proxy as its SidecarScope; without a `Sidecar` resource every proxy
sees every service in the mesh (Kubernetes Services and ServiceEntry hosts alike), and serves
the ports of the Kubernetes Services that select its pod.
"""

from __future__ import annotations

from typing import NamedTuple

from meshkit.model import HTTP, Service, ServicePort, Topology, Workload

from . import service_entry
from .registry import RegistryService, kube_service


class InboundPort(NamedTuple):
    """A port the proxy serves: the Service port and the Service it belongs to."""

    service: Service
    port: ServicePort


def services(topology: Topology) -> list[RegistryService]:
    """Every service the mesh knows, by hostname; a Kubernetes Service hides an entry for its host."""
    by_host = {s.fqdn: kube_service(topology, s) for s in topology.services}
    for entry in service_entry.services(topology):
        by_host.setdefault(entry.hostname, entry)
    return [by_host[h] for h in sorted(by_host)]


def outbound_ports(topology: Topology) -> list[tuple[RegistryService, ServicePort]]:
    """Every (service, port) in the mesh, by hostname then port: one outbound cluster each."""
    return [(s, p) for s in services(topology) for p in sorted(s.ports, key=lambda p: p.port)]


def http_ports(topology: Topology) -> list[int]:
    """Every port number some service declares as HTTP: one listener and one route config each."""
    return sorted({p.port for _, p in outbound_ports(topology) if p.protocol == HTTP})


def inbound_ports(topology: Topology, proxy: Workload) -> list[InboundPort]:
    """The proxy's own service ports, one per target port (the first service wins, as istiod's
    conflict rule keeps one), by target port."""
    by_target: dict[int, InboundPort] = {}
    for service in sorted(topology.services_of(proxy), key=lambda s: s.fqdn):
        for port in service.ports:
            by_target.setdefault(port.target_port, InboundPort(service, port))
    return [by_target[t] for t in sorted(by_target)]


def lookup(topology: Topology) -> dict[str, RegistryService]:
    """The registry keyed by hostname (istiod's `ServiceForHostname`)."""
    return {s.hostname: s for s in services(topology)}
