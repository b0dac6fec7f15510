"""The service registry istiod translates from: Kubernetes Services plus ServiceEntry hosts.

istiod turns both into one kind of `model.Service` (hostname, addresses, ports, resolution,
mesh-external flag) with `ServiceInstance`s behind each port, and every outbound translator
works on that. meshkit does the same: this module holds the shapes and the Kubernetes side,
`service_entry` converts ServiceEntries, `scope.services` merges both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meshkit.model import Service, ServicePort, Topology, Workload

# istiod's model.Resolution, named as ServiceEntry spells them.
STATIC = "STATIC"  # ClientSideLB: EDS (Kubernetes Services, SE resolution STATIC)
DNS = "DNS"  # DNSLB: STRICT_DNS
DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"  # DNSRoundRobinLB: LOGICAL_DNS
NONE = "NONE"  # Passthrough: ORIGINAL_DST


@dataclass(frozen=True)
class Member:
    """One workload behind a service: a pod or a ServiceEntry endpoint (istiod's IstioEndpoint)."""

    address: str
    labels: tuple[tuple[str, str], ...]
    workload: str
    namespace: str
    istio_mtls: bool
    port_map: tuple[tuple[str, int], ...] = ()
    weight: int = 1
    service_account: str = ""  # its SPIFFE identity's `sa/`, for the client's SAN check
    healthy: bool = True  # a pod that is not Ready is sent UNHEALTHY

    def port_for(self, port: ServicePort) -> int:
        """The endpoint port: the endpoint's own `ports[name]`, else the target port."""
        return dict(self.port_map).get(port.name) or port.target_port

    def selected_by(self, selector: Mapping[str, str]) -> bool:
        """Whether a DestinationRule subset's labels pick this member (all must match)."""
        labels = dict(self.labels)
        return all(labels.get(k) == v for k, v in selector.items())


@dataclass(frozen=True)
class RegistryService:
    """A host the mesh can route to, as istiod's `model.Service` holds it."""

    hostname: str
    namespace: str
    addresses: tuple[str, ...]
    ports: tuple[ServicePort, ...]
    resolution: str
    mesh_external: bool
    members: tuple[Member, ...]
    kube: Service | None = None
    tls_ports: tuple[int, ...] = ()  # ServiceEntry TLS / HTTPS ports: routed by SNI, not by address

    @property
    def name(self) -> str:
        """`istio.services[].name`: the Service name, or the host for a ServiceEntry."""
        return self.kube.name if self.kube else self.hostname


def pod_member(pod: Workload) -> Member:
    """A pod behind a Kubernetes Service; its telemetry workload is the Deployment."""
    return Member(pod.ip, pod.labels, pod.deployment, pod.namespace, pod.captured,
                  service_account=pod.service_account, healthy=pod.ready)


def kube_service(topology: Topology, service: Service, pods: Iterable[Workload] | None = None) -> RegistryService:
    """A Kubernetes Service: its VIP, its ports, the pods its selector picks (EDS); `pods` when
    the caller already knows them (the push context's index)."""
    return RegistryService(
        hostname=service.fqdn,
        namespace=service.namespace,
        addresses=(service.vip,),
        ports=service.ports,
        resolution=STATIC,
        mesh_external=False,
        members=tuple(pod_member(p) for p in (topology.endpoints(service) if pods is None else pods)),
        kube=service,
    )
