"""CDS: the clusters istiod sends a sidecar (Istio ≈1.24–1.26), in istiod's order.

1. `outbound|<port>||<fqdn>` for every service port in the mesh: EDS over ADS, LEAST_REQUEST,
   mesh connect timeout, "unlimited" circuit breakers, `alt_stat_name` `<name>;` (1.23+) and
   `istio.services` metadata;
2. `BlackHoleCluster` (STATIC, no endpoints) and `PassthroughCluster` (ORIGINAL_DST);
3. `inbound|<targetPort>||` for the proxy's own ports and `InboundPassthroughCluster`, both
   ORIGINAL_DST from 127.0.0.6 (meshConfig `inboundTrafficPolicy: PASSTHROUGH`, the default).

Bootstrap clusters (`xds-grpc`, `prometheus_stats`, `agent`, `sds-grpc`) are not here: they live
in the bootstrap. Istio's cluster filter `istio.metadata_exchange` is left out (not in upstream
Envoy). A DestinationRule will add subset clusters through `outbound_cluster(..., subset=...)`
and change them through `policies` (callables applied in order, like istiod's
`applyTrafficPolicy`); mTLS will add `transport_socket_matches` the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2
from envoy.config.core.v3 import address_pb2, protocol_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo

from meshkit.model import MeshConfig, Service, Topology, Workload

from . import names
from .scope import inbound_ports, outbound_ports
from .values import ads_config_source, duration, filter_metadata, pack

Cluster = cluster_pb2.Cluster
ClusterPolicy = Callable[[Cluster], None]

UNLIMITED = 2**32 - 1
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
PASSTHROUGH_IDLE_TIMEOUT_S = 300


def base_cluster(name: str, kind: int, lb_policy: int, mesh: MeshConfig) -> Cluster:
    """The fields istiod sets on every cluster: name, type, LB, connect timeout, `<name>;` stats."""
    return Cluster(
        name=name,
        type=kind,
        lb_policy=lb_policy,
        connect_timeout=duration(mesh.connect_timeout_s),
        alt_stat_name=names.stat_prefix(name),
    )


def unlimited_circuit_breakers(cluster: Cluster) -> None:
    """istiod's default connection pool: thresholds at their maximum, remaining tracked."""
    cluster.circuit_breakers.CopyFrom(
        circuit_breaker_pb2.CircuitBreakers(
            thresholds=[
                circuit_breaker_pb2.CircuitBreakers.Thresholds(
                    max_connections={"value": UNLIMITED},
                    max_pending_requests={"value": UNLIMITED},
                    max_requests={"value": UNLIMITED},
                    max_retries={"value": UNLIMITED},
                    track_remaining=True,
                )
            ]
        )
    )


DEFAULT_POLICIES: tuple[ClusterPolicy, ...] = (unlimited_circuit_breakers,)


def services_metadata(*services: Service) -> dict[str, object]:
    """`filter_metadata.istio.services`, which istioctl and telemetry read back."""
    return {"services": [{"host": s.fqdn, "name": s.name, "namespace": s.namespace} for s in services]}


def outbound_cluster(
    service: Service,
    port: int,
    mesh: MeshConfig,
    *,
    subset: str = "",
    policies: Sequence[ClusterPolicy] = DEFAULT_POLICIES,
) -> Cluster:
    """`outbound|<port>|<subset>|<fqdn>`: EDS over ADS, the EDS resource named like the cluster."""
    name = names.outbound_cluster(port, service.fqdn, subset)
    cluster = base_cluster(name, Cluster.EDS, Cluster.LEAST_REQUEST, mesh)
    cluster.eds_cluster_config.eds_config.CopyFrom(ads_config_source())
    cluster.eds_cluster_config.service_name = name
    cluster.metadata.CopyFrom(filter_metadata({"istio": services_metadata(service)}))
    for policy in policies:
        policy(cluster)
    return cluster


def _use_downstream_protocol(cluster: Cluster) -> None:
    """Forward HTTP/1.1 as HTTP/1.1 and h2 as h2, idle connections closed after 5 min."""
    options = hpo.HttpProtocolOptions(
        common_http_protocol_options=protocol_pb2.HttpProtocolOptions(
            idle_timeout=duration(PASSTHROUGH_IDLE_TIMEOUT_S)
        ),
        use_downstream_protocol_config=hpo.HttpProtocolOptions.UseDownstreamHttpConfig(
            http_protocol_options=protocol_pb2.Http1ProtocolOptions(),
            http2_protocol_options=protocol_pb2.Http2ProtocolOptions(),
        ),
    )
    cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(pack(options))


def _bind_inbound_source(cluster: Cluster) -> None:
    """Connect to the app from 127.0.0.6 so iptables does not capture Envoy's own forwarding."""
    cluster.upstream_bind_config.source_address.CopyFrom(
        address_pb2.SocketAddress(address=names.INBOUND_PASSTHROUGH_BIND_IP, port_value=0)
    )


def original_dst_cluster(name: str, mesh: MeshConfig, policies: Sequence[ClusterPolicy]) -> Cluster:
    """An ORIGINAL_DST cluster: the upstream is the connection's original destination."""
    cluster = base_cluster(name, Cluster.ORIGINAL_DST, Cluster.CLUSTER_PROVIDED, mesh)
    for policy in policies:
        policy(cluster)
    return cluster


def blackhole_cluster(mesh: MeshConfig) -> Cluster:
    """`BlackHoleCluster`: STATIC with no endpoints, so every connection fails (`UH`)."""
    return base_cluster(names.BLACKHOLE_CLUSTER, Cluster.STATIC, Cluster.ROUND_ROBIN, mesh)


def passthrough_cluster(mesh: MeshConfig) -> Cluster:
    """`PassthroughCluster`: ALLOW_ANY traffic to where it was going."""
    return original_dst_cluster(names.PASSTHROUGH_CLUSTER, mesh, [_use_downstream_protocol])


def inbound_cluster(service: Service, target_port: int, mesh: MeshConfig) -> Cluster:
    """`inbound|<targetPort>||`: the app behind this sidecar, reached at the original destination."""
    cluster = original_dst_cluster(names.inbound_cluster(target_port), mesh, [*DEFAULT_POLICIES, _bind_inbound_source])
    cluster.metadata.CopyFrom(filter_metadata({"istio": services_metadata(service)}))
    return cluster


def inbound_passthrough_cluster(mesh: MeshConfig) -> Cluster:
    """`InboundPassthroughCluster` (1.23+): inbound traffic to ports no service declares."""
    return original_dst_cluster(
        names.INBOUND_PASSTHROUGH_CLUSTER, mesh, [_use_downstream_protocol, _bind_inbound_source]
    )


def build_clusters(topology: Topology, proxy: Workload) -> list[Cluster]:
    """Every CDS cluster for `proxy`, in istiod's order (outbound, catch-alls, inbound)."""
    mesh = topology.mesh
    return [
        *(outbound_cluster(s, p.port, mesh) for s, p in outbound_ports(topology)),
        blackhole_cluster(mesh),
        passthrough_cluster(mesh),
        *(inbound_cluster(i.service, i.port.target_port, mesh) for i in inbound_ports(topology, proxy)),
        inbound_passthrough_cluster(mesh),
    ]
