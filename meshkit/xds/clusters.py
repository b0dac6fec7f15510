"""CDS: the clusters istiod sends a sidecar (Istio 1.30), in istiod's order.

1. for every service port in the registry (Kubernetes Services and ServiceEntry hosts, by host):
   `outbound|<port>||<host>`, then one `outbound|<port>|<subset>|<host>` per DestinationRule
   subset. Kubernetes Services and STATIC entries are EDS over ADS (the EDS resource named like
   the cluster), DNS entries STRICT_DNS (DNS_ROUND_ROBIN: LOGICAL_DNS) with their endpoints
   inline, NONE entries ORIGINAL_DST. Every one gets the mesh connect timeout, "unlimited"
   circuit breakers unless a DestinationRule says otherwise, `alt_stat_name` `<name>;` (1.23+)
   and `istio.services` metadata; DR-covered ones `istio.config` (+ `subset`), MESH_EXTERNAL
   ones `istio.external: true`. A DNS cluster with no endpoint is left out, as istiod does;
2. `BlackHoleCluster` (STATIC, no endpoints) and `PassthroughCluster` (ORIGINAL_DST);
3. `inbound|<targetPort>||` for the proxy's own ports and `InboundPassthroughCluster`, both
   ORIGINAL_DST from 127.0.0.6 (meshConfig `inboundTrafficPolicy: PASSTHROUGH`, the default).

Bootstrap clusters (`xds-grpc`, `prometheus_stats`, `agent`, `sds-grpc`) are not here: they live
in the bootstrap. Istio's cluster filter `istio.metadata_exchange` is left out (not in upstream
Envoy). DestinationRule policies are callables applied in order (`destination_rule`), like
istiod's `applyTrafficPolicy`, ending with the upstream TLS (`cluster_tls.go`): a DestinationRule
`tls.mode: ISTIO_MUTUAL` puts Istio mTLS on the cluster, `DISABLE` leaves it plaintext, and no
`tls` means auto-mTLS: `transport_socket_matches` `tlsMode-istio` (endpoints whose metadata says
`tlsMode: istio`, i.e. pods with a sidecar) → mTLS, `tlsMode-disabled` → raw buffer. Istio mTLS
verifies the server's certificate against the SPIFFE ids of the service's workloads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, protocol_pb2
from envoy.extensions.network.dns_resolver.cares.v3 import cares_dns_resolver_pb2 as cares
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo

from meshkit.constants import spiffe_id
from meshkit.model import MeshConfig, Service, ServicePort, Topology, Workload
from meshkit.model.istio import IstioResource

from . import destination_rule as dr
from . import names, push_context, secrets
from .destination_rule import HTTP_PROTOCOL_OPTIONS, ClusterPolicy
from .endpoints import load_assignment
from .registry import DNS, DNS_ROUND_ROBIN, NONE, RegistryService
from .resources import CLUSTER
from .scope import inbound_ports
from .values import ads_config_source, duration, filter_metadata, pack, struct

Cluster = cluster_pb2.Cluster

PASSTHROUGH_IDLE_TIMEOUT_S = 300
CLUSTER_TYPES = {DNS: Cluster.STRICT_DNS, DNS_ROUND_ROBIN: Cluster.LOGICAL_DNS, NONE: Cluster.ORIGINAL_DST}
# istiod's DNS cluster settings: c-ares with PILOT_DNS_CARES_UDP_MAX_QUERIES (100),
# PILOT_DNS_JITTER_DURATION (100 ms), meshConfig dnsRefreshRate (60 s), DNS TTLs respected.
CARES = "envoy.network.dns_resolver.cares"
CARES_UDP_MAX_QUERIES = 100
DNS_JITTER_S = 0.1
DNS_REFRESH_RATE_S = 60


def base_cluster(name: str, kind: int, lb_policy: int, mesh: MeshConfig) -> Cluster:
    """The fields istiod sets on every cluster: name, type, LB, connect timeout, `<name>;` stats."""
    return Cluster(
        name=name,
        type=kind,
        lb_policy=lb_policy,
        connect_timeout=duration(mesh.connect_timeout_s),
        alt_stat_name=names.stat_prefix(name),
    )


DEFAULT_POLICIES: tuple[ClusterPolicy, ...] = (dr.connection_pool({}),)


def services_metadata(*services: Service | RegistryService) -> dict[str, object]:
    """`filter_metadata.istio.services`, which istioctl and telemetry read back."""
    return {
        "services": [
            {"host": s.fqdn if isinstance(s, Service) else s.hostname, "name": s.name, "namespace": s.namespace}
            for s in services
        ]
    }


def _dns(cluster: Cluster) -> None:
    """istiod's STRICT_DNS / LOGICAL_DNS settings (`buildCluster`), for an IPv4 proxy."""
    cluster.dns_lookup_family = Cluster.V4_ONLY
    cluster.typed_dns_resolver_config.name = CARES
    cluster.typed_dns_resolver_config.typed_config.CopyFrom(
        pack(cares.CaresDnsResolverConfig(udp_max_queries={"value": CARES_UDP_MAX_QUERIES}))
    )
    cluster.dns_jitter.CopyFrom(duration(DNS_JITTER_S))
    cluster.dns_refresh_rate.CopyFrom(duration(DNS_REFRESH_RATE_S))
    cluster.respect_dns_ttl = True


def outbound_cluster(
    service: RegistryService,
    port: ServicePort,
    mesh: MeshConfig,
    *,
    subset: str = "",
    selector: Mapping[str, str] | None = None,
    policies: Sequence[ClusterPolicy] = DEFAULT_POLICIES,
) -> Cluster | None:
    """`outbound|<port>|<subset>|<host>`, typed by the service's resolution; a DNS cluster holds
    the endpoints `selector` picks, or is None without any (istiod's `buildCluster` drops it)."""
    name = names.outbound_cluster(port.port, service.hostname, subset)
    kind = CLUSTER_TYPES.get(service.resolution, Cluster.EDS)
    cluster = base_cluster(name, kind, Cluster.LEAST_REQUEST, mesh)
    if kind == Cluster.EDS:
        cluster.eds_cluster_config.eds_config.CopyFrom(ads_config_source())
        cluster.eds_cluster_config.service_name = name
    elif kind != Cluster.ORIGINAL_DST:
        assignment = load_assignment(name, service, port, selector)
        if not assignment.endpoints:
            return None
        _dns(cluster)
        cluster.load_assignment.CopyFrom(assignment)
    cluster.metadata.CopyFrom(filter_metadata({"istio": services_metadata(service)}))
    if service.mesh_external:
        cluster.metadata.filter_metadata["istio"].update({"external": True})
    for policy in policies:
        policy(cluster)
    return cluster


TLS_MODE_ISTIO = "tlsMode-istio"
TLS_MODE_DISABLED = "tlsMode-disabled"


def service_sans(service: RegistryService, selector: Mapping[str, str] | None = None) -> list[str]:
    """The SPIFFE ids a client accepts from the service's (subset's) sidecar workloads."""
    return sorted({
        spiffe_id(m.namespace, m.service_account)
        for m in service.members
        if m.istio_mtls and m.service_account and m.selected_by(selector or {})
    })


def upstream_tls(
    service: RegistryService, port: ServicePort, tls: dict | None, subset: str = "",
    selector: Mapping[str, str] | None = None, rule: IstioResource | None = None,
) -> ClusterPolicy:
    """istiod's `buildUpstreamTLSSettings` + `applyUpstreamTLSSettings`: DR `tls.mode`, or auto-mTLS
    (transport socket matches) when the DR says nothing and the service is in the mesh."""
    tls = tls or {}
    mode = tls.get("mode")

    def apply(cluster: Cluster) -> None:
        if mode == "DISABLE" or (mode is None and service.mesh_external):
            return
        if mode in ("SIMPLE", "MUTUAL"):
            if tls.get("credentialName") and not (rule and rule.spec.get("workloadSelector")):
                return  # istiod: a sidecar gets no TLS from a credentialName DR without workloadSelector
            context, auto_sni = secrets.user_tls(tls, tls.get("sni", ""))
            if context is not None:
                cluster.transport_socket.CopyFrom(secrets.transport_socket(context))
                if auto_sni:
                    verify = not tls.get("subjectAltNames") and not tls.get("insecureSkipVerify")
                    dr.auto_sni(cluster, validate_san=verify)
            return
        sans = list(tls.get("subjectAltNames") or []) or service_sans(service, selector)
        socket = secrets.upstream_tls(sans, tls.get("sni") or secrets.sni(port.port, service.hostname, subset))
        if mode == "ISTIO_MUTUAL":
            cluster.transport_socket.CopyFrom(socket)
            return
        cluster.transport_socket_matches.add(name=TLS_MODE_ISTIO, match=struct({"tlsMode": "istio"}),
                                             transport_socket=socket)
        cluster.transport_socket_matches.add(name=TLS_MODE_DISABLED, match=struct({}),
                                             transport_socket=secrets.raw_buffer())

    return apply


def service_clusters(
    service: RegistryService, port: ServicePort, mesh: MeshConfig, rule: IstioResource | None
) -> list[Cluster]:
    """The default cluster of a service port, then one per DestinationRule subset (`applyDestinationRule`)."""

    def policies(subset: dict | None) -> list[ClusterPolicy]:
        effective = dr.effective_policy(rule, port.port, subset)
        changes = dr.traffic_policy(effective)
        if rule is not None:
            changes.append(dr.config_metadata(rule, subset["name"] if subset else ""))
        name, selector = (subset["name"], subset.get("labels", {})) if subset else ("", None)
        changes.append(upstream_tls(service, port, effective.get("tls"), name, selector, rule))
        return changes

    clusters = [outbound_cluster(service, port, mesh, policies=policies(None))]
    clusters += [
        outbound_cluster(service, port, mesh, subset=s["name"], selector=s.get("labels", {}), policies=policies(s))
        for s in dr.subsets(rule)
    ]
    return [c for c in clusters if c is not None]


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
    return original_dst_cluster(names.PASSTHROUGH_CLUSTER, mesh, [_use_downstream_protocol, *DEFAULT_POLICIES])


def inbound_cluster(service: Service, target_port: int, mesh: MeshConfig) -> Cluster:
    """`inbound|<targetPort>||`: the app behind this sidecar, reached at the original destination."""
    cluster = original_dst_cluster(names.inbound_cluster(target_port), mesh, [*DEFAULT_POLICIES, _bind_inbound_source])
    cluster.metadata.CopyFrom(filter_metadata({"istio": services_metadata(service)}))
    return cluster


def inbound_passthrough_cluster(mesh: MeshConfig) -> Cluster:
    """`InboundPassthroughCluster` (1.23+): inbound traffic to ports no service declares."""
    return original_dst_cluster(
        names.INBOUND_PASSTHROUGH_CLUSTER, mesh, [_use_downstream_protocol, *DEFAULT_POLICIES, _bind_inbound_source]
    )


def build_clusters(topology: Topology, proxy: Workload) -> list[Cluster]:
    """Every CDS cluster for `proxy`, in istiod's order (outbound, catch-alls, inbound).

    The outbound clusters are the same for every proxy of one Sidecar scope, the catch-alls for
    every proxy, so they are built once per push context and shared (the same objects); an
    inbound cluster is shared by the proxies serving the same Service port.
    """
    ctx = push_context.of(topology)
    scope = ctx.scope(proxy)
    mesh = topology.mesh

    def outbound() -> tuple[Cluster, ...]:
        return tuple(
            c for s, p in scope.outbound_ports
            for c in service_clusters(s, p, mesh, ctx.destination_rule_for(s.hostname))
        )

    def inbound(service: Service, target_port: int) -> Cluster:
        key = (CLUSTER, names.inbound_cluster(target_port), service.fqdn)
        return ctx.shared(key, lambda: inbound_cluster(service, target_port, mesh))

    return [
        *ctx.shared((CLUSTER, "outbound", scope.key), outbound),
        *ctx.shared((CLUSTER, "catch-all"), lambda: (blackhole_cluster(mesh), passthrough_cluster(mesh))),
        *(inbound(i.service, i.port.target_port) for i in inbound_ports(topology, proxy)),
        ctx.shared((CLUSTER, names.INBOUND_PASSTHROUGH_CLUSTER), lambda: inbound_passthrough_cluster(mesh)),
    ]
