"""The boss's book: services, the pods (workloads) behind them, and mesh-wide settings.

Everything here is plain immutable data. Translators read it; runtimes place it on a network.
Names follow Kubernetes and Istio (`reviews.default.svc.cluster.local`, pod
`reviews-v2-<hash>-<hash>`, node id `sidecar~IP~POD.NS~NS.svc.cluster.local`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from ..constants import IPTABLES, spiffe_id
from .config import IstioConfig
from .constants import ALLOW_ANY, CLUSTER_DOMAIN, HTTP, OUTBOUND_TRAFFIC_POLICIES, REGISTRY_ONLY, TCP

SIDECAR, ROUTER = "sidecar", "router"

__all__ = [
    "ALLOW_ANY", "CLUSTER_DOMAIN", "HTTP", "OUTBOUND_TRAFFIC_POLICIES", "REGISTRY_ONLY", "ROUTER", "SIDECAR", "TCP",
    "AppSpec", "MeshConfig", "Service", "ServicePort", "Topology", "TopologyError", "Workload", "labels",
]


class TopologyError(ValueError):
    """A lookup or a definition in the boss's book that cannot be satisfied."""


def labels(value: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Normalise a label mapping into the sorted tuple form the model stores."""
    items = value.items() if isinstance(value, Mapping) else value
    return tuple(sorted((str(k), str(v)) for k, v in items))


@dataclass(frozen=True)
class ServicePort:
    """One port of a Service. `protocol` is HTTP or TCP, as Istio infers from the port name."""

    name: str
    port: int
    target_port: int
    protocol: str = HTTP


@dataclass(frozen=True)
class Service:
    """A Kubernetes Service: a stable name and virtual IP in front of the pods its selector picks."""

    name: str
    namespace: str
    vip: str
    ports: tuple[ServicePort, ...]
    selector: tuple[tuple[str, str], ...]

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.{CLUSTER_DOMAIN}"

    def port(self, number: int) -> ServicePort | None:
        return next((p for p in self.ports if p.port == number), None)

    def selects(self, workload: Workload) -> bool:
        labels = dict(workload.labels)
        return (
            workload.namespace == self.namespace
            and bool(self.selector)
            and all(labels.get(k) == v for k, v in self.selector)
        )


@dataclass(frozen=True)
class AppSpec:
    """What stands in for a pod's container image: one of meshkit's demo apps and how it is set up.

    `program` is "bookinfo" (`service` names which, `version` its version) or "generic" (answers
    HTTP on the pod's ports with its identity, echoes on `tcp_ports`, calls `calls` per request).
    A Workload without one runs the demo app its `app` label names (the built-in Bookinfo).
    """

    program: str
    service: str = ""
    version: str = ""
    calls: tuple[str, ...] = ()
    tcp_ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class Workload:
    """A pod: its address, labels and service account, whether it carries a sidecar, and whether
    it is Ready (Kubernetes readiness; a pod that is not is an UNHEALTHY endpoint in EDS)."""

    name: str
    namespace: str
    ip: str
    labels: tuple[tuple[str, str], ...]
    service_account: str
    ports: tuple[int, ...]
    sidecar: bool = True
    ready: bool = True
    calls: tuple[str, ...] = ()  # the Services its app calls (names): the call graph views draw before traffic
    app_spec: AppSpec | None = None  # None: the built-in demo's app for the `app` label
    xds: str = "DELTA"  # the xDS variant its sidecar speaks: DELTA (Istio's default) or SOTW
    # "sidecar" (Envoy beside an app, traffic captured) or "router" (a gateway: Envoy alone,
    # nothing captured, its listeners bound for real); Istio's proxy type, the node id's first field.
    kind: str = SIDECAR

    @property
    def captured(self) -> bool:
        """Whether the pod's traffic is redirected into its Envoy (sidecars only, never a gateway)."""
        return self.sidecar and self.kind == SIDECAR

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def app(self) -> str:
        return self.label_map.get("app", self.name)

    @property
    def version(self) -> str:
        return self.label_map.get("version", "")

    @property
    def deployment(self) -> str:
        """The Deployment a pod belongs to: `reviews-v2` for `reviews-v2-5b7f9c6d4f-x2k4p`."""
        return "-".join(self.name.split("-")[:-2]) if self.name.count("-") >= 2 else self.name

    @property
    def node_id(self) -> str:
        return f"{self.kind}~{self.ip}~{self.name}.{self.namespace}~{self.namespace}.{CLUSTER_DOMAIN}"

    @property
    def node_cluster(self) -> str:
        """`node.cluster` as Istio's bootstrap sets it: `<app label>.<namespace>`."""
        return f"{self.app}.{self.namespace}"

    @property
    def spiffe_id(self) -> str:
        return spiffe_id(self.namespace, self.service_account)


@dataclass(frozen=True)
class MeshConfig:
    """The mesh-wide settings of istiod's MeshConfig that the translation depends on."""

    outbound_traffic_policy: str = ALLOW_ANY
    connect_timeout_s: float = 10.0
    protocol_detection_timeout_s: float = 0.0

    def __post_init__(self) -> None:
        if self.outbound_traffic_policy not in OUTBOUND_TRAFFIC_POLICIES:
            raise TopologyError(
                f"outboundTrafficPolicy.mode {self.outbound_traffic_policy!r} is not one of "
                f"{', '.join(OUTBOUND_TRAFFIC_POLICIES)}"
            )


@dataclass(frozen=True)
class Topology:
    """Services, workloads, mesh config and Istio resources: all the translators need to know."""

    services: tuple[Service, ...]
    workloads: tuple[Workload, ...]
    mesh: MeshConfig = field(default_factory=MeshConfig)
    istio: IstioConfig = field(default_factory=IstioConfig)
    # How traffic reaches the sidecars: "iptables" (Istio's REDIRECT) or "userspace" (a capture
    # process + PROXY protocol, no privileges); see meshkit/xds/capture.py.
    capture: str = IPTABLES

    def with_mesh(self, **changes: object) -> Topology:
        return replace(self, mesh=replace(self.mesh, **changes))

    def endpoints(self, service: Service) -> list[Workload]:
        """The pods a service selects, in a stable order."""
        return sorted((w for w in self.workloads if service.selects(w)), key=lambda w: w.name)

    def services_of(self, workload: Workload) -> list[Service]:
        return [s for s in self.services if s.selects(workload)]

    def sidecars(self) -> list[Workload]:
        return [w for w in self.workloads if w.sidecar]

    def workload(self, name: str) -> Workload:
        """Find a pod by its full name or by its Deployment name (`productpage-v1`)."""
        for w in self.workloads:
            if w.name == name:
                return w
        matches = [w for w in self.workloads if w.deployment == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise TopologyError(f"{name!r} has {len(matches)} pods ({', '.join(w.name for w in matches)}): "
                                "name one of them")
        known = ", ".join(sorted({w.deployment for w in self.workloads}))
        raise TopologyError(f"no pod named {name!r}; pods are: {known}")

    def service(self, host: str) -> Service | None:
        """The Service a host name or VIP refers to, resolved as a pod in `default` would."""
        host = host.rstrip(".")
        for s in self.services:
            short = {s.name, f"{s.name}.{s.namespace}", f"{s.name}.{s.namespace}.svc", s.fqdn, s.vip}
            if host in short:
                return s
        return None

