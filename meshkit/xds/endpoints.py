"""EDS: one ClusterLoadAssignment per outbound EDS cluster, as istiod builds it (Istio ≈1.24–1.26).

Each endpoint is a pod IP with the service's *target* port, HEALTHY (the pod is Ready), and the
metadata istiod attaches (`AppendLbEndpointMetadata`): `envoy.transport_socket_match:
{tlsMode: istio}` for pods with a sidecar (what auto-mTLS will match on) and the telemetry label
`istio.workload = "<workload>;<ns>;<canonical service>;<canonical revision>;Kubernetes"`.
All endpoints sit in one locality (the kit has no zones). A DestinationRule subset will reuse
`load_assignment` with the pods its labels select.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.core.v3 import address_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ec
from envoy.config.endpoint.v3 import endpoint_pb2
from google.protobuf import wrappers_pb2

from meshkit.model import Topology, Workload

from . import names
from .scope import outbound_ports
from .values import filter_metadata

CLUSTER_ID = "Kubernetes"


def endpoint_metadata(pod: Workload) -> dict[str, dict[str, object]]:
    """The filter metadata of one pod's endpoint."""
    workload = f"{pod.deployment};{pod.namespace};{pod.app};{pod.version};{CLUSTER_ID}"
    metadata: dict[str, dict[str, object]] = {}
    if pod.sidecar:
        metadata["envoy.transport_socket_match"] = {"tlsMode": "istio"}
    metadata["istio"] = {"workload": workload}
    return metadata


def lb_endpoint(pod: Workload, port: int) -> ec.LbEndpoint:
    """One pod as a HEALTHY endpoint on `port`, with istiod's metadata."""
    return ec.LbEndpoint(
        endpoint=ec.Endpoint(
            address=address_pb2.Address(socket_address=address_pb2.SocketAddress(address=pod.ip, port_value=port))
        ),
        health_status=health_check_pb2.HEALTHY,
        metadata=filter_metadata(endpoint_metadata(pod)),
        load_balancing_weight=wrappers_pb2.UInt32Value(value=1),
    )


def load_assignment(cluster: str, pods: Sequence[Workload], port: int) -> endpoint_pb2.ClusterLoadAssignment:
    """A CLA named like its cluster, all pods in one locality group weighted by count."""
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster)
    if pods:
        cla.endpoints.append(
            ec.LocalityLbEndpoints(
                lb_endpoints=[lb_endpoint(pod, port) for pod in pods],
                load_balancing_weight=wrappers_pb2.UInt32Value(value=len(pods)),
            )
        )
    return cla


def build_endpoints(topology: Topology, proxy: Workload) -> list[endpoint_pb2.ClusterLoadAssignment]:
    """Every EDS resource for `proxy`: one per outbound cluster, in CDS order.

    The same for every proxy today (no Sidecar scoping or locality yet); `proxy` is kept so the
    signature matches the other translators.
    """
    return [
        load_assignment(names.outbound_cluster(p.port, s.fqdn), topology.endpoints(s), p.target_port)
        for s, p in outbound_ports(topology)
    ]
