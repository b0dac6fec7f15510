"""RDS: the per-port HTTP route configurations istiod sends a sidecar (Istio 1.30).

Outbound, one `RouteConfiguration` per HTTP port (`"9080"`) holds one virtual host per service
on that port (`reviews.default.svc.cluster.local:9080`, sorted), then the catch-all `allow_any`
(ALLOW_ANY) or `block_all` (REGISTRY_ONLY). Services include ServiceEntry hosts, so declaring a
host on an HTTP port gives it a vhost ahead of `block_all`. Without a VirtualService each service
vhost carries istiod's default route: no timeout, 2 retries on connect-failure/refused-stream/
unavailable/cancelled/retriable-status-codes (1.24+: no 503), plus the DestinationRule's
consistent-hash `hash_policy` (istiod keeps `previous_hosts` on this default route). Vhost
domains are 1.30's (no `:port` twins, the trailing-dot FQDN of 1.27+) with
`ignore_port_in_host_matching`.

A sidecar VirtualService replaces the default route of the services it names on this port with
its own routes (`virtual_service.http_routes`), istiod's `BuildSidecarOutboundVirtualHosts`: a
VirtualService is only considered on a port where it names a service (or on port 80, istiod's
"hack" for non-service hosts); each of its hosts without a service on the port gets a vhost
`<host>:<port>` with domains `[<host>]`; if none of its routes apply to the proxy the services
keep their default route. The first vhost of a name wins and a domain already used by an earlier
vhost is dropped from later ones, as istiod's `dedupeDomains`.

Inbound route configurations (`inbound|9080||`, `InboundPassthroughCluster`) are not sent over
RDS: istiod inlines them in the `virtualInbound` HCMs, so the listener builder calls
`inbound_route_config` / `inbound_passthrough_route_config` from here.

"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from google.protobuf import wrappers_pb2

from meshkit.model import ALLOW_ANY, HTTP, MeshConfig, Service, Topology, Workload
from meshkit.model.constants import CLUSTER_DOMAIN

from . import destination_rule as dr
from . import names, push_context, virtual_service
from .registry import RegistryService
from .resources import ROUTE
from .retry import DEFAULT_RETRIES, default_policy
from .values import duration

# 1.24+ inbound default (ENABLE_INBOUND_RETRY_POLICY): retry resets before the request left.
INBOUND_RETRY_ON = "reset-before-request"
MAX_DIRECT_RESPONSE_BODY_SIZE_BYTES = 1024 * 1024
BLOCK_ALL_STATUS = 502
# istiod's port-80 special case (`listenerPort == 80` in BuildSidecarOutboundVirtualHosts).
NON_SERVICE_HOST_PORT = 80


def vhost_domains(service: RegistryService, client_namespace: str) -> list[str]:
    """The names a client may use for a service (istiod `generateVirtualHostDomains`, 1.30).

    The host, its absolute form with a trailing dot (PILOT_ENABLE_ABSOLUTE_FQDN_VHOST_DOMAIN,
    default since 1.27), then for a `<name>.<ns>.svc.cluster.local` host from the same namespace:
    short name, `name.ns.svc`, `name.ns`; from another namespace `name.ns`, `name.ns.svc` (the
    short name would mean a service of their own). Other hosts (`httpbin.org`) have no short
    forms. Then the addresses.
    """
    domains = [service.hostname, f"{service.hostname}."]
    suffix = f".{CLUSTER_DOMAIN}"
    if service.hostname.endswith(suffix) and service.hostname.count(".") == CLUSTER_DOMAIN.count(".") + 2:
        name, ns = service.hostname.removesuffix(suffix).split(".")
        same = [name, f"{name}.{ns}.svc", f"{name}.{ns}"]
        domains += same if client_namespace == ns else [f"{name}.{ns}", f"{name}.{ns}.svc"]
    return domains + [a for a in service.addresses if a != names.WILDCARD]


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
    route.route.max_grpc_timeout.CopyFrom(duration(0))
    route.route.retry_policy.CopyFrom(default_policy())
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
    service: RegistryService, port: int, client_namespace: str, routes: Sequence[rc.Route] | None = None
) -> rc.VirtualHost:
    """`<host>:<port>` with the service's domains; `routes` defaults to istiod's default route."""
    vhost_name = names.service_vhost(service.hostname, port)
    if routes is None:
        routes = [default_outbound_route(names.outbound_cluster(port, service.hostname), f"{vhost_name}/*")]
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


def default_virtual_host(topology: Topology, service: RegistryService, port: int, namespace: str) -> rc.VirtualHost:
    """A service without VirtualService: the default route, hashed if its DestinationRule says so.

    It depends on the client only through its domains (same namespace or not), so it is built
    once per push context and domain set, and shared: callers must not change it.
    """
    index = push_context.of(topology)

    def build() -> rc.VirtualHost:
        vhost = service_virtual_host(service, port, namespace)
        hash_policy = dr.hash_policy(dr.consistent_hash(index.destination_rule_for(service.hostname), port))
        if hash_policy is not None:
            vhost.routes[0].route.hash_policy.append(hash_policy)
        return vhost

    return index.shared((ROUTE, "vhost", service.hostname, port, tuple(vhost_domains(service, namespace))), build)


def port_virtual_hosts(topology: Topology, proxy: Workload, port: int) -> list[rc.VirtualHost]:
    """Every vhost of route config `"<port>"` before sorting: VirtualService ones first, in config
    order, then the default vhost of each service no VirtualService took."""
    index = push_context.of(topology)
    on_port = {s.hostname: s for s, p in index.scope(proxy).outbound_ports if p.port == port and p.protocol == HTTP}
    ctx = virtual_service.Context(proxy, port, topology.istio)
    candidates: list[rc.VirtualHost] = []
    taken: set[str] = set()
    for vs in index.sidecar_virtual_services:
        hosts = index.hosts(vs)
        services = [on_port[h] for h in hosts if h in on_port]
        if not services and port != NON_SERVICE_HOST_PORT:
            continue
        routes = virtual_service.http_routes(vs, ctx)
        if not routes:
            continue
        candidates += [
            virtual_host(names.service_vhost(h, port), [h], routes) for h in hosts if h not in on_port and "*" not in h
        ]
        candidates += [service_virtual_host(s, port, proxy.namespace, routes) for s in services]
        taken.update(s.hostname for s in services)
    candidates += [
        default_virtual_host(topology, s, port, proxy.namespace) for h, s in on_port.items() if h not in taken
    ]
    return deduplicated(candidates)


def deduplicated(vhosts: Sequence[rc.VirtualHost]) -> list[rc.VirtualHost]:
    """The first vhost of each name, each domain kept only where it first appears (istiod's
    `buildVirtualHost` / `dedupeDomains`); a vhost left without domains is dropped."""
    seen_names: set[str] = set()
    seen_domains: set[str] = set()
    out = []
    for vhost in vhosts:
        if vhost.name in seen_names:
            continue
        seen_names.add(vhost.name)
        domains = [d for d in vhost.domains if d.lower() not in seen_domains]
        seen_domains.update(d.lower() for d in domains)
        if domains and len(domains) != len(vhost.domains):
            vhost = _with_domains(vhost, domains)
        if domains:
            out.append(vhost)
    return out


def _with_domains(vhost: rc.VirtualHost, domains: Sequence[str]) -> rc.VirtualHost:
    """A copy of `vhost` with other domains (the original may be shared by other proxies)."""
    copy = rc.VirtualHost()
    copy.CopyFrom(vhost)
    del copy.domains[:]
    copy.domains.extend(domains)
    return copy


def port_route_config(topology: Topology, proxy: Workload, port: int) -> route_pb2.RouteConfiguration:
    """Route config `"<port>"`: the vhosts of that port sorted by name, then the catch-all."""
    vhosts = sorted(port_virtual_hosts(topology, proxy, port), key=lambda v: v.name)
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
    """Every RDS route configuration for `proxy`, one per HTTP port it sees, by port.

    A route configuration depends on the proxy only through `PushContext.proxy_key` (its
    namespace, its Sidecar scope, and its labels when a VirtualService matches on them), so
    proxies with the same key share the same objects, built once per push context.
    """
    index = push_context.of(topology)
    key = index.proxy_key(proxy)
    return [index.shared((ROUTE, port, key), lambda port=port: port_route_config(topology, proxy, port), routing=True)
            for port in index.scope(proxy).http_ports]
