"""RDS: the per-port HTTP route configurations istiod sends a sidecar (Istio ≈1.24–1.26).

Outbound, one `RouteConfiguration` per HTTP port (`"9080"`) holds one virtual host per service
on that port (`reviews.default.svc.cluster.local:9080`, sorted), then the catch-all `allow_any`
(ALLOW_ANY) or `block_all` (REGISTRY_ONLY). Without a VirtualService each service vhost carries
istiod's default route: no timeout, 2 retries on connect-failure/refused-stream/unavailable/
cancelled/retriable-status-codes (1.24+: no 503). Vhost domains are the 1.16–1.26 set (no
`:port` twins, no 1.27 trailing-dot FQDN) with `ignore_port_in_host_matching`.

Inbound route configurations (`inbound|9080||`, `InboundPassthroughCluster`) are not sent over
RDS: istiod inlines them in the `virtualInbound` HCMs, so the listener builder calls
`inbound_route_config` / `inbound_passthrough_route_config` from here.

The builders are small on purpose: a VirtualService will hand `service_virtual_host` its own
routes instead of `[default_outbound_route(...)]`, and a ServiceEntry host becomes one more vhost.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from google.protobuf import wrappers_pb2

from meshkit.model import ALLOW_ANY, HTTP, MeshConfig, Service, Topology, Workload

from . import names
from .scope import http_ports, outbound_ports
from .values import duration, pack

# istiod's default outbound retry policy (route/retry/retry.go, 1.24+ without retriable 503).
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
DEFAULT_RETRIES = 2
HOST_SELECTION_RETRY_MAX_ATTEMPTS = 5
# 1.24+ inbound default (ENABLE_INBOUND_RETRY_POLICY): retry resets before the request left.
INBOUND_RETRY_ON = "reset-before-request"
MAX_DIRECT_RESPONSE_BODY_SIZE_BYTES = 1024 * 1024
BLOCK_ALL_STATUS = 502
PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts"


def vhost_domains(service: Service, client_namespace: str) -> list[str]:
    """The names a client may use for a service (istiod `generateVirtualHostDomains`, 1.16–1.26).

    Same namespace: FQDN, short name, `name.ns.svc`, `name.ns`, VIP. Other namespaces lose the
    short name, which would mean a service of their own.
    """
    name, ns = service.name, service.namespace
    if client_namespace == ns:
        return [service.fqdn, name, f"{name}.{ns}.svc", f"{name}.{ns}", service.vip]
    return [service.fqdn, f"{name}.{ns}", f"{name}.{ns}.svc", service.vip]


def _route(name: str, cluster: str, operation: str) -> rc.Route:
    """A `prefix: /` route to one cluster with a tracing decorator (istiod `buildDefaultHTTPRoute`)."""
    return rc.Route(
        name=name,
        match=rc.RouteMatch(prefix="/"),
        route=rc.RouteAction(cluster=cluster, timeout=duration(0)),
        decorator=rc.Decorator(operation=operation),
    )


def default_outbound_route(cluster: str, operation: str) -> rc.Route:
    """istiod's route for a service without VirtualService (`BuildDefaultHTTPOutboundRoute`)."""
    route = _route(names.DEFAULT_ROUTE, cluster, operation)
    action = route.route
    action.max_grpc_timeout.CopyFrom(duration(0))
    action.retry_policy.CopyFrom(
        rc.RetryPolicy(
            retry_on=DEFAULT_RETRY_ON,
            num_retries=wrappers_pb2.UInt32Value(value=DEFAULT_RETRIES),
            retry_host_predicate=[
                rc.RetryPolicy.RetryHostPredicate(
                    name=PREVIOUS_HOSTS, typed_config=pack(previous_hosts_pb2.PreviousHostsPredicate())
                )
            ],
            host_selection_retry_max_attempts=HOST_SELECTION_RETRY_MAX_ATTEMPTS,
        )
    )
    return route


def default_inbound_route(cluster: str, operation: str) -> rc.Route:
    """istiod's inbound route (`BuildDefaultHTTPInboundRoute`, 1.24+): no timeouts, retry early resets."""
    route = _route(names.DEFAULT_ROUTE, cluster, operation)
    action = route.route
    action.max_stream_duration.max_stream_duration.CopyFrom(duration(0))
    action.max_stream_duration.grpc_timeout_header_max.CopyFrom(duration(0))
    action.retry_policy.retry_on = INBOUND_RETRY_ON
    action.retry_policy.num_retries.value = DEFAULT_RETRIES
    return route


def virtual_host(
    name: str, domains: Sequence[str], routes: Sequence[rc.Route], *, count_attempts: bool = True
) -> rc.VirtualHost:
    """A vhost; outbound ones set `include_request_attempt_count` (istiod's proxy-headers default)."""
    return rc.VirtualHost(name=name, domains=domains, routes=routes, include_request_attempt_count=count_attempts)


def service_virtual_host(
    service: Service, port: int, client_namespace: str, routes: Sequence[rc.Route] | None = None
) -> rc.VirtualHost:
    """`<fqdn>:<port>` with the service's domains; `routes` defaults to istiod's default route."""
    vhost_name = names.service_vhost(service.fqdn, port)
    if routes is None:
        routes = [default_outbound_route(names.outbound_cluster(port, service.fqdn), f"{vhost_name}/*")]
    return virtual_host(vhost_name, vhost_domains(service, client_namespace), routes)


def catch_all_virtual_host(mesh: MeshConfig) -> rc.VirtualHost:
    """The last vhost of every port: `allow_any` → PassthroughCluster, or `block_all` → direct 502."""
    if mesh.outbound_traffic_policy == ALLOW_ANY:
        route = rc.Route(
            name=names.ALLOW_ANY_VHOST,
            match=rc.RouteMatch(prefix="/"),
            route=rc.RouteAction(cluster=names.PASSTHROUGH_CLUSTER, timeout=duration(0), max_grpc_timeout=duration(0)),
        )
        return virtual_host(names.ALLOW_ANY_VHOST, ["*"], [route])
    route = rc.Route(
        name=names.BLOCK_ALL_VHOST,
        match=rc.RouteMatch(prefix="/"),
        direct_response=rc.DirectResponseAction(status=BLOCK_ALL_STATUS),
    )
    return virtual_host(names.BLOCK_ALL_VHOST, ["*"], [route])


def outbound_route_config(name: str, virtual_hosts: Sequence[rc.VirtualHost]) -> route_pb2.RouteConfiguration:
    """An RDS route config as istiod shapes it (`buildSidecarOutboundHTTPRouteConfig`)."""
    return route_pb2.RouteConfiguration(
        name=name,
        virtual_hosts=virtual_hosts,
        validate_clusters=wrappers_pb2.BoolValue(value=False),
        max_direct_response_body_size_bytes=wrappers_pb2.UInt32Value(value=MAX_DIRECT_RESPONSE_BODY_SIZE_BYTES),
        ignore_port_in_host_matching=True,
    )


def port_route_config(topology: Topology, proxy: Workload, port: int) -> route_pb2.RouteConfiguration:
    """Route config `"<port>"`: a vhost per HTTP service on that port, sorted, then the catch-all."""
    vhosts = sorted(
        (
            service_virtual_host(s, port, proxy.namespace)
            for s, p in outbound_ports(topology)
            if p.port == port and p.protocol == HTTP
        ),
        key=lambda v: v.name,
    )
    vhosts.append(catch_all_virtual_host(topology.mesh))
    return outbound_route_config(names.route_config_name(port), vhosts)


def _inline_route_config(name: str, vhost_name: str, route: rc.Route) -> route_pb2.RouteConfiguration:
    """istiod's inbound route config: one `*` vhost with one route, clusters not validated."""
    return route_pb2.RouteConfiguration(
        name=name,
        virtual_hosts=[virtual_host(vhost_name, ["*"], [route], count_attempts=False)],
        validate_clusters=wrappers_pb2.BoolValue(value=False),
    )


def inbound_route_config(service: Service, port: int, target_port: int) -> route_pb2.RouteConfiguration:
    """`inbound|<targetPort>||` with vhost `inbound|http|<port>` → the inbound cluster."""
    cluster = names.inbound_cluster(target_port)
    operation = f"{names.service_vhost(service.fqdn, port)}/*"
    return _inline_route_config(cluster, names.inbound_vhost(port), default_inbound_route(cluster, operation))


def inbound_passthrough_route_config() -> route_pb2.RouteConfiguration:
    """`InboundPassthroughCluster` with vhost `inbound|http|0` (decorator `:0/*`, as istiod)."""
    cluster = names.INBOUND_PASSTHROUGH_CLUSTER
    return _inline_route_config(cluster, names.inbound_vhost(0), default_inbound_route(cluster, ":0/*"))


def build_routes(topology: Topology, proxy: Workload) -> list[route_pb2.RouteConfiguration]:
    """Every RDS route configuration for `proxy`, one per HTTP port in the mesh, by port."""
    return [port_route_config(topology, proxy, port) for port in http_ports(topology)]
