"""What istiod sends a gateway (a `router` proxy): Istio Gateway servers → listeners and routes.

Follows pilot/pkg/model/gateway.go (`mergeGateways`, `resolvePorts`, `gatewayRDSRouteName`) and
pilot/pkg/networking/core/gateway.go (`buildGatewayListeners`, `buildGatewayHTTPRouteConfig`,
`createGatewayHTTPFilterChainOpts`, `buildGatewayConnectionManager`,
`buildGatewayNetworkFiltersFromTLSRoutes`):

- the Gateways that apply to a gateway pod are those whose `selector` matches its labels (the
  legacy selector) or, for the ones istiod derives from the Gateway API, whose Service
  (`internal.istio.io/gateway-service`) selects it;
- a server port resolves to the pod's port: a Service port of the gateway → its targetPort
  (80 → 8080 on `istio-ingressgateway`), else the number as written (legacy selector only);
- one listener per resolved port, `0.0.0.0_<port>`, bound for real (no iptables in front of a
  gateway), traffic direction OUTBOUND; HTTP servers share RDS `http.<port>`; an HTTPS server that
  terminates TLS gets its own chain (SNI = its hosts) with RDS
  `https.<number>.<port name>.<gateway>.<namespace>` and SDS `kubernetes://<credentialName>`
  (`gateway_tls`); a PASSTHROUGH server gets one chain per VirtualService `tls` route, matched by
  SNI, → tcp_proxy;
- route configurations: one vhost per host a bound VirtualService shares with the server
  (`bookinfo.example.com:80`, `*:8080`: the server's port number, not the pod's), its routes from
  the usual VirtualService translation; no vhost at all → `blackhole:<port>` (404 NR);
- clusters and endpoints: the outbound ones a sidecar gets (a gateway has no inbound side).

A VirtualService applies to a gateway when its `gateways:` name it (`<ns>/<name>`, or `<name>` in
the VirtualService's namespace); one that names only gateways never reaches sidecars
(`virtual_service.for_sidecars`), one that also lists `mesh` reaches both.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message

from meshkit.constants import USERSPACE
from meshkit.model import Topology, Workload
from meshkit.model.config import resolve_host
from meshkit.model.gateway_api import SERVICE_ANNOTATION, converted
from meshkit.model.istio import IstioResource
from meshkit.model.topology import ROUTER

from . import filters, gateway_tls, names, routes, virtual_service
from .clusters import build_clusters
from .endpoints import build_endpoints
from .listeners import filter_chain, socket_address
from .resources import CLUSTER, ENDPOINT, LISTENER, ROUTE
from .scope import lookup
from .values import pack

HTTP_PROTOCOLS = ("HTTP", "HTTP2", "GRPC")
BLACKHOLE_VHOST = "blackhole"


class Server(NamedTuple):
    """One server of one Gateway, on the pod port it resolved to."""

    gateway: IstioResource
    spec: dict
    port: int

    @property
    def gateway_name(self) -> str:
        return f"{self.gateway.namespace}/{self.gateway.name}"

    @property
    def number(self) -> int:
        return int(self.spec["port"]["number"])

    @property
    def protocol(self) -> str:
        return str(self.spec["port"]["protocol"]).upper()

    @property
    def tls_mode(self) -> str:
        return (self.spec.get("tls") or {}).get("mode", "")

    @property
    def route_name(self) -> str:
        """istiod's `gatewayRDSRouteName` ("" for servers without HTTP routes)."""
        bind = f".{self.spec['bind']}" if self.spec.get("bind") else ""
        if self.protocol in HTTP_PROTOCOLS:
            return f"http.{self.port}{bind}"
        if self.protocol == "HTTPS" and self.tls_mode != "PASSTHROUGH":
            name = self.spec["port"].get("name", "")
            return f"https.{self.number}.{name}.{self.gateway.name}.{self.gateway.namespace}{bind}"
        return ""

    def hosts(self) -> list[tuple[str, str]]:
        """(namespace scope, host) per server host: `*` any namespace, `.` the Gateway's own."""
        out = []
        for host in self.spec.get("hosts", []):
            scope, _, name = host.rpartition("/")
            scope = self.gateway.namespace if scope == "." else (scope or "*")
            out.append((scope, name.lower()))
        return out


def is_gateway(proxy: Workload) -> bool:
    return proxy.kind == ROUTER


def _selects(topology: Topology, gateway: IstioResource, proxy: Workload) -> bool:
    service_host = (gateway.source.get("metadata") or {}).get("annotations", {}).get(SERVICE_ANNOTATION)
    if service_host:
        service = topology.service(service_host)
        return service is not None and service.selects(proxy)
    selector = gateway.spec.get("selector") or {}
    labels = proxy.label_map
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def resolve_port(topology: Topology, gateway: IstioResource, proxy: Workload, number: int) -> int | None:
    """istiod's `resolvePorts`: the gateway Service's targetPort for `number`, else `number`
    itself (legacy selector), else nothing (a Gateway API gateway whose Service lacks the port)."""
    for service in topology.services_of(proxy):
        port = service.port(number)
        if port is not None:
            return port.target_port
    legacy = SERVICE_ANNOTATION not in (gateway.source.get("metadata") or {}).get("annotations", {})
    return number if legacy else None


def servers(topology: Topology, proxy: Workload) -> list[Server]:
    """Every server of every Gateway that applies to `proxy`, by pod port, in config order."""
    out = []
    for gateway in topology.istio.of_kind("Gateway"):
        if not _selects(topology, gateway, proxy):
            continue
        for spec in gateway.spec.get("servers", []):
            port = resolve_port(topology, gateway, proxy, int(spec["port"]["number"]))
            if port is not None:
                out.append(Server(gateway, spec, port))
    return sorted(out, key=lambda s: s.port)


# -- which VirtualServices, which hosts ------------------------------------------------------------
def binds(vs: IstioResource, gateway_name: str) -> bool:
    """Whether a VirtualService's `gateways:` names this gateway (`ns/name`, or `name` in its namespace)."""
    return any((g if "/" in g else f"{vs.namespace}/{g}") == gateway_name for g in vs.spec.get("gateways", []))


def host_matches(pattern: str, host: str) -> bool:
    """Istio's wildcard rule for one pair: `*` matches all, `*.foo.com` a suffix, else equality."""
    if pattern == "*" or host == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) or (host.startswith("*.") and host.endswith(pattern[1:]))
    if host.startswith("*."):
        return pattern.endswith(host[1:])
    return pattern == host


def intersecting_hosts(server: Server, vs: IstioResource) -> list[str]:
    """The hosts a VirtualService serves on a server, the more specific of each matching pair
    (istiod's `Intersection`), lower-cased, in the VirtualService's order."""
    out: list[str] = []
    for host in (h.lower() for h in vs.spec.get("hosts", [])):
        for scope, server_host in server.hosts():
            if scope not in ("*", vs.namespace) or not host_matches(server_host, host):
                continue
            specific = server_host if host == "*" or (host.startswith("*.") and not server_host.startswith("*")) \
                else host
            if specific not in out:
                out.append(specific)
    return out


def bound(topology: Topology, server: Server) -> list[IstioResource]:
    return [vs for vs in topology.istio.virtual_services if binds(vs, server.gateway_name)]


def for_gateway(vs: IstioResource, server: Server, topology: Topology) -> IstioResource:
    """The VirtualService as this gateway sees it: match entries for other gateways or ports left
    out (a rule left without any is dropped), a destination without port given its service's only
    port (istiod's `GetDestinationCluster`), so the shared route translation applies as is."""
    registry = lookup(topology)
    spec = copy.deepcopy(vs.spec)
    kept = []
    for rule in spec.get("http", []):
        if rule.get("match"):
            matches = []
            for match in rule["match"]:
                gateways = match.pop("gateways", None)
                if gateways and not any((g if "/" in g else f"{vs.namespace}/{g}") == server.gateway_name
                                        for g in gateways):
                    continue
                if match.get("port", server.number) != server.number:
                    continue
                match.pop("port", None)
                matches.append(match)
            if not matches:
                continue
            rule["match"] = matches
        for dest in [*(r["destination"] for r in rule.get("route", [])), *filter(None, [rule.get("mirror")])]:
            service = registry.get(resolve_host(dest["host"], vs.namespace))
            if "port" not in dest and service is not None and len(service.ports) == 1:
                dest["port"] = {"number": service.ports[0].port}
        kept.append(rule)
    spec["http"] = kept
    return replace(vs, spec=spec)


# -- RDS ------------------------------------------------------------------------------------------
def route_config(topology: Topology, proxy: Workload, name: str,
                 group: Sequence[Server]) -> route_pb2.RouteConfiguration:
    """istiod's `buildGatewayHTTPRouteConfig` for one route name."""
    vhosts: dict[str, rc.VirtualHost] = {}
    for server in group:
        for vs in bound(topology, server):
            hosts = intersecting_hosts(server, vs)
            if not hosts:
                continue
            ctx = virtual_service.Context(proxy, server.number, topology.istio)
            built = virtual_service.http_routes(for_gateway(vs, server, topology), ctx)
            for host in hosts:
                if host in vhosts:
                    vhosts[host].routes.extend(copy.deepcopy(built))
                else:
                    vhosts[host] = routes.virtual_host(names.service_vhost(host, server.number), [host],
                                                       copy.deepcopy(built))
        if (server.spec.get("tls") or {}).get("httpsRedirect"):
            for _, host in server.hosts():
                vhost = vhosts.setdefault(host, routes.virtual_host(names.service_vhost(host, server.number),
                                                                    [host], []))
                vhost.require_tls = rc.VirtualHost.ALL
    if not vhosts:
        empty = routes.virtual_host(names.service_vhost(BLACKHOLE_VHOST, group[0].number), ["*"], [])
        return routes.outbound_route_config(name, [empty])
    ordered = sorted(vhosts.values(), key=lambda v: (v.domains[0] == "*", v.name))
    return routes.outbound_route_config(name, ordered)


def build_routes(topology: Topology, proxy: Workload) -> list[route_pb2.RouteConfiguration]:
    by_name: dict[str, list[Server]] = {}
    for server in servers(topology, proxy):
        if server.route_name:
            by_name.setdefault(server.route_name, []).append(server)
    return [route_config(topology, proxy, name, group) for name, group in sorted(by_name.items())]


# -- LDS ------------------------------------------------------------------------------------------
def connection_manager(server: Server, stat_prefix: str) -> lc.Filter:
    """istiod's gateway HCM: the remote address is the client's (`use_remote_address`), client
    certificate details sanitized and set (`SANITIZE_SET`), routes over RDS."""
    hcm_filter = filters.http_connection_manager(stat_prefix, server.route_name)
    hcm = hcm_pb2.HttpConnectionManager()
    hcm_filter.typed_config.Unpack(hcm)
    hcm.use_remote_address.CopyFrom(wrappers_pb2.BoolValue(value=True))
    hcm.forward_client_cert_details = hcm_pb2.HttpConnectionManager.SANITIZE_SET
    details = hcm.set_current_client_cert_details
    details.subject.value, details.cert, details.dns, details.uri = True, True, True, True
    hcm_filter.typed_config.CopyFrom(pack(hcm))
    return hcm_filter


def server_chains(topology: Topology, server: Server, listener: str) -> list[lc.FilterChain]:
    """The filter chains one server contributes to its port's listener."""
    if server.route_name.startswith("http."):
        return [filter_chain([connection_manager(server, f"outbound_{listener}")])]
    if server.route_name:  # HTTPS terminated here
        chain = filter_chain([connection_manager(server, server.spec.get("name") or f"outbound_{listener}")],
                             match=gateway_tls.sni_match(h for _, h in server.hosts()))
        chain.transport_socket.CopyFrom(gateway_tls.downstream(server.spec["tls"]))
        return [chain]
    if server.tls_mode == "PASSTHROUGH":
        return gateway_tls.passthrough_chains(topology, server, bound(topology, server), lookup(topology))
    return gateway_tls.tcp_chains(topology, server, bound(topology, server), lookup(topology))


def build_listeners(topology: Topology, proxy: Workload) -> list[listener_pb2.Listener]:
    """One bound listener per resolved port, in port order (istiod's `buildGatewayListeners`)."""
    by_port: dict[int, list[Server]] = {}
    for server in servers(topology, proxy):
        by_port.setdefault(server.port, []).append(server)
    out = []
    for port, group in sorted(by_port.items()):
        name = names.listener_name(names.WILDCARD, port)
        chains = [c for server in group for c in server_chains(topology, server, name)]
        if not chains:
            continue
        bind = proxy.ip if topology.capture == USERSPACE else names.WILDCARD  # one loopback for all pods
        listener = listener_pb2.Listener(name=name, address=socket_address(bind, port),
                                         traffic_direction=base_pb2.OUTBOUND, filter_chains=chains)
        if any(c.filter_chain_match.server_names or c.HasField("transport_socket") for c in chains):
            listener.listener_filters.append(filters.tls_inspector())
        out.append(listener)
    return out


def build_clusters_for(topology: Topology, proxy: Workload) -> list:
    """The sidecar's outbound clusters and catch-alls; a gateway has no inbound side."""
    return [c for c in build_clusters(topology, proxy)
            if not c.name.startswith("inbound|") and c.name != names.INBOUND_PASSTHROUGH_CLUSTER]


def generate(topology: Topology, proxy: Workload) -> dict[str, list[Message]]:
    """CDS, EDS, LDS and RDS for a gateway proxy."""
    return {
        CLUSTER: build_clusters_for(topology, proxy),
        ENDPOINT: build_endpoints(topology, proxy),
        LISTENER: build_listeners(topology, proxy),
        ROUTE: build_routes(topology, proxy),
    }


def effective(topology: Topology) -> Topology:
    """The topology with the Istio config istiod derives from Gateway API resources (model.gateway_api)."""
    return converted(topology)
