"""What a sidecar sees: the services it calls out to and the ports it serves.

istiod computes this per proxy as its SidecarScope; without a `Sidecar` resource every proxy
sees every service in the mesh (Kubernetes Services and ServiceEntry hosts alike), with one
only those its egress hosts name (`sidecar`); it serves the ports of the Kubernetes Services
that select its pod. The registry is merged, and each Sidecar's view of it filtered, once per
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


def services(topology: Topology, proxy: Workload | None = None) -> list[RegistryService]:
    """Every service the mesh knows (that `proxy`'s Sidecar lets it see), by hostname; a Kubernetes
    Service hides an entry for its host."""
    ctx = of(topology)
    return list(ctx.services if proxy is None else ctx.scope(proxy).services)


def outbound_ports(topology: Topology, proxy: Workload | None = None) -> list[tuple[RegistryService, ServicePort]]:
    """Every (service, port) `proxy` sees, by hostname then port: one outbound cluster each."""
    ctx = of(topology)
    return list(ctx.outbound_ports if proxy is None else ctx.scope(proxy).outbound_ports)


def http_ports(topology: Topology, proxy: Workload | None = None) -> list[int]:
    """Every port number a service `proxy` sees declares as HTTP: one listener and one route config each."""
    ctx = of(topology)
    return list(ctx.http_ports if proxy is None else ctx.scope(proxy).http_ports)


def inbound_ports(topology: Topology, proxy: Workload) -> list[InboundPort]:
    """The proxy's own service ports, one per target port (the first service wins, as istiod's
    conflict rule keeps one), by target port."""
    by_target: dict[int, InboundPort] = {}
    for service in sorted(of(topology).services_of(proxy), key=lambda s: s.fqdn):
        for port in service.ports:
            by_target.setdefault(port.target_port, InboundPort(service, port))
    return [by_target[t] for t in sorted(by_target)]


def lookup(topology: Topology, proxy: Workload | None = None) -> Mapping[str, RegistryService]:
    """The registry keyed by hostname (istiod's `ServiceForHostname`), read-only and shared."""
    ctx = of(topology)
    return ctx.lookup if proxy is None else ctx.scope(proxy).lookup


def for_proxy(topology: Topology, proxy: Workload) -> Topology:
    """The topology as `proxy` sees it: only the Istio config exported to its namespace (`exportTo`),
    and the mesh's outboundTrafficPolicy replaced by its Sidecar's, if that sets one. The same object
    for every proxy with the same view (`PushContext.view`), so they share its index and caches."""
    return of(topology).view(proxy)
