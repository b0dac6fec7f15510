"""What a sidecar sees: the services it calls out to and the ports it serves.

istiod computes this per proxy as its SidecarScope; without a `Sidecar` resource every proxy
sees every service in the mesh (Kubernetes Services and ServiceEntry hosts alike), and serves
the ports of the Kubernetes Services that select its pod. The registry itself is merged once per
config change by the push context (`push_context.of`); these functions read it from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from meshkit.model import Service, ServicePort, Topology, Workload

from .push_context import of
from .registry import RegistryService


class InboundPort(NamedTuple):
    """A port the proxy serves: the Service port and the Service it belongs to."""

    service: Service
    port: ServicePort


def services(topology: Topology) -> list[RegistryService]:
    """Every service the mesh knows, by hostname; a Kubernetes Service hides an entry for its host."""
    return list(of(topology).services)


def outbound_ports(topology: Topology) -> list[tuple[RegistryService, ServicePort]]:
    """Every (service, port) in the mesh, by hostname then port: one outbound cluster each."""
    return list(of(topology).outbound_ports)


def http_ports(topology: Topology) -> list[int]:
    """Every port number some service declares as HTTP: one listener and one route config each."""
    return list(of(topology).http_ports)


def inbound_ports(topology: Topology, proxy: Workload) -> list[InboundPort]:
    """The proxy's own service ports, one per target port (the first service wins, as istiod's
    conflict rule keeps one), by target port."""
    by_target: dict[int, InboundPort] = {}
    for service in sorted(of(topology).services_of(proxy), key=lambda s: s.fqdn):
        for port in service.ports:
            by_target.setdefault(port.target_port, InboundPort(service, port))
    return [by_target[t] for t in sorted(by_target)]


def lookup(topology: Topology) -> Mapping[str, RegistryService]:
    """The registry keyed by hostname (istiod's `ServiceForHostname`), read-only and shared."""
    return of(topology).lookup
