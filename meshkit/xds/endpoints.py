"""EDS: one ClusterLoadAssignment per outbound EDS cluster, as istiod builds it (Istio 1.30).

Each endpoint is a member's address with its endpoint port (the service's *target* port, or the
ServiceEntry endpoint's own `ports[name]`), HEALTHY while its pod is Ready and UNHEALTHY once it
is not (`Workload.ready`, set by `ControlPlane.set_pod_health`), weighted, and with the
metadata istiod attaches (`AppendLbEndpointMetadata`): `envoy.transport_socket_match:
{tlsMode: istio}` for pods with a sidecar (and entry endpoints with a service account), which
auto-mTLS will match on, and the telemetry label `istio.workload = "<workload>;<ns>;<canonical
service>;<canonical revision>;Kubernetes"`. All endpoints sit in one locality (the kit has no
zones). istiod, by default, leaves a not-Ready pod out of EDS altogether (it sends it UNHEALTHY
only with PILOT_SEND_UNHEALTHY_ENDPOINTS); meshkit always sends it UNHEALTHY, so `/clusters`
still shows the host and why Envoy no longer picks it. A DestinationRule subset cluster gets
only the members its labels select; a subset that selects nobody still gets its (empty)
assignment, so Envoy answers `503 UH`.
"""

from __future__ import annotations

from collections.abc import Mapping

from envoy.config.core.v3 import address_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ec
from envoy.config.endpoint.v3 import endpoint_pb2
from google.protobuf import wrappers_pb2

from meshkit.model import ServicePort, Topology, Workload

from . import destination_rule as dr
from . import names, push_context
from .registry import STATIC, Member, RegistryService
from .resources import ENDPOINT
from .values import filter_metadata

CLUSTER_ID = "Kubernetes"
# istiod's kubelabels.CanonicalService lookup order.
CANONICAL_NAME_LABELS = ("service.istio.io/canonical-name", "app.kubernetes.io/name", "app")
CANONICAL_REVISION_LABELS = ("service.istio.io/canonical-revision", "app.kubernetes.io/version", "version")


def endpoint_metadata(member: Member) -> dict[str, dict[str, object]]:
    """The filter metadata of one endpoint (the `latest` default revision is left empty, as istiod)."""
    labels = dict(member.labels)
    name = next((labels[k] for k in CANONICAL_NAME_LABELS if k in labels), member.workload)
    revision = next((labels[k] for k in CANONICAL_REVISION_LABELS if k in labels), "")
    metadata: dict[str, dict[str, object]] = {}
    if member.istio_mtls:
        metadata["envoy.transport_socket_match"] = {"tlsMode": "istio"}
    metadata["istio"] = {"workload": f"{member.workload};{member.namespace};{name};{revision};{CLUSTER_ID}"}
    return metadata


def lb_endpoint(member: Member, port: int) -> ec.LbEndpoint:
    """One member as an endpoint on `port` (HEALTHY, or UNHEALTHY if its pod is not Ready), with
    istiod's metadata."""
    return ec.LbEndpoint(
        endpoint=ec.Endpoint(
            address=address_pb2.Address(
                socket_address=address_pb2.SocketAddress(address=member.address, port_value=port)
            )
        ),
        health_status=health_check_pb2.HEALTHY if member.healthy else health_check_pb2.UNHEALTHY,
        metadata=filter_metadata(endpoint_metadata(member)),
        load_balancing_weight=wrappers_pb2.UInt32Value(value=member.weight),
    )


def load_assignment(
    cluster: str, service: RegistryService, port: ServicePort, selector: Mapping[str, str] | None = None
) -> endpoint_pb2.ClusterLoadAssignment:
    """A CLA named like its cluster: the members `selector` picks, in one locality group."""
    members = [m for m in service.members if m.selected_by(selector or {})]
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster)
    if members:
        cla.endpoints.append(
            ec.LocalityLbEndpoints(
                lb_endpoints=[lb_endpoint(m, m.port_for(port)) for m in members],
                load_balancing_weight=wrappers_pb2.UInt32Value(value=sum(m.weight for m in members)),
            )
        )
    return cla


def build_endpoints(topology: Topology, proxy: Workload) -> list[endpoint_pb2.ClusterLoadAssignment]:
    """Every EDS resource for `proxy`: one per EDS cluster (default, then subsets), in CDS order.

    Only for the services `proxy`'s Sidecar lets it see (no locality), so it is built once per push
    context and Sidecar scope and every proxy of that scope gets the same objects. A DestinationRule
    `loadBalancer.simple: PASSTHROUGH` turns a cluster into ORIGINAL_DST, which has no EDS resource.
    """
    ctx = push_context.of(topology)
    scope = ctx.scope(proxy)

    def build() -> tuple[endpoint_pb2.ClusterLoadAssignment, ...]:
        out = []
        for service, port in scope.outbound_ports:
            if service.resolution != STATIC:
                continue
            rule = ctx.destination_rule_for(service.hostname)
            keys = [(None, "", None), *((s, s["name"], s.get("labels", {})) for s in dr.subsets(rule))]
            for subset, name, selector in keys:
                if dr.effective_policy(rule, port.port, subset).get("loadBalancer", {}).get("simple") == "PASSTHROUGH":
                    continue
                out.append(
                    load_assignment(names.outbound_cluster(port.port, service.hostname, name), service, port, selector)
                )
        return tuple(out)

    return list(ctx.shared((ENDPOINT, "all", scope.key), build))
