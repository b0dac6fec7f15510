"""LDS: the listeners istiod sends a sidecar (Istio 1.30), in istiod's order.

- per-port outbound HTTP listeners `0.0.0.0_<port>` (never bound; reached through
  `use_original_dst`) routing over RDS `"<port>"`, with `PassthroughFilterChain` as default chain;
- per-address outbound TCP listeners `<VIP>_<port>` → `tcp_proxy` to `outbound|<port>||<host>`, or
  to what a VirtualService `tcp` rule says (one cluster or weighted clusters, chain metadata
  `istio.config`). A ServiceEntry TCP port gets one per `addresses` entry, or `0.0.0.0_<port>`
  matching every destination on that port when it has none (istiod: "an SE without addresses
  on a TCP port matches all IPs"); when that wildcard listener name is already taken (an HTTP
  port, an earlier entry) the first one wins;
- `virtualOutbound` (0.0.0.0:15001): loop guard, then the catch-all to PassthroughCluster
  (ALLOW_ANY) or BlackHoleCluster (REGISTRY_ONLY);
- `virtualInbound` (0.0.0.0:15006): loop guard, the passthrough chains, then one chain group
  per served port `0.0.0.0_<targetPort>` with inline route config `inbound|<port>||`.

Inbound chains follow istiod's match tables (`filterchain_options.go`) for the port's mTLS mode,
which PeerAuthentication decides (`peer_authentication`; PERMISSIVE by default): chains marked
`mtls` terminate Istio mutual TLS with SDS `default`/`ROOTCA` (`secrets.downstream_tls`), the
others take plaintext (`raw_buffer`) or the client's own TLS passed through. AuthorizationPolicy
puts RBAC filters in front of every inbound HCM and tcp_proxy (`authorization`).
Listener inspectors are derived from the chains as istiod's `populateListenerFilters` does.
Istio's own network filters (`istio.metadata_exchange`, `istio.stats`) are not in upstream
Envoy and are left out (see `filters`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import wrappers_pb2

from meshkit.model import HTTP, TCP, MeshConfig, Topology, Workload

from . import authorization, capture, filters, names, push_context, request_authentication, routes, secrets, tcp_routes
from .peer_authentication import DISABLE, PERMISSIVE, STRICT, port_mode, workload_mode
from .registry import RegistryService
from .resources import LISTENER
from .scope import InboundPort, inbound_ports
from .values import duration, filter_metadata

Listener = listener_pb2.Listener
# PILOT_GATEWAY_TRANSPORT_SOCKET_CONNECT_TIMEOUT (15 s), which 1.30 sets on every outbound chain.
TRANSPORT_SOCKET_CONNECT_TIMEOUT_S = 15


class ChainMatch(NamedTuple):
    """One row of istiod's inbound match table: transport, ALPNs, the protocol it serves, and
    whether the chain terminates Istio mTLS (a TLS transport socket with the SDS certificates)."""

    transport: str
    protocol: str
    alpns: tuple[str, ...] = ()
    mtls: bool = False


_T, _R = filters.TLS, filters.RAW_BUFFER
# istiod's `getFilterChainMatchOptions` per mTLS mode and port protocol. "auto" is the
# passthrough (undeclared ports), where HTTP is told apart by ALPN (http_inspector or istio-http/*).
INBOUND_MATCH_OPTIONS: dict[str, dict[str, tuple[ChainMatch, ...]]] = {
    PERMISSIVE: {
        "auto": (
            ChainMatch(_T, HTTP, filters.MTLS_HTTP_ALPNS, mtls=True),
            ChainMatch(_R, HTTP, filters.PLAINTEXT_HTTP_ALPNS),
            ChainMatch(_T, TCP, filters.MTLS_TCP_ALPNS, mtls=True),
            ChainMatch(_R, TCP),
            ChainMatch(_T, TCP),
        ),
        HTTP: (ChainMatch(_T, HTTP, filters.ALL_ISTIO_MTLS_ALPNS, mtls=True), ChainMatch(_R, HTTP)),
        TCP: (
            ChainMatch(_T, TCP, filters.ALL_ISTIO_MTLS_ALPNS, mtls=True),
            ChainMatch(_T, TCP),
            ChainMatch(_R, TCP),
        ),
    },
    STRICT: {
        "auto": (ChainMatch(_T, HTTP, filters.MTLS_HTTP_ALPNS, mtls=True), ChainMatch(_T, TCP, mtls=True)),
        HTTP: (ChainMatch(_T, HTTP, mtls=True),),
        TCP: (ChainMatch(_T, TCP, mtls=True),),
    },
    DISABLE: {
        "auto": (ChainMatch(_R, HTTP, filters.PLAINTEXT_HTTP_ALPNS), ChainMatch(_R, TCP)),
        HTTP: (ChainMatch(_R, HTTP),),
        TCP: (ChainMatch(_R, TCP),),
    },
}


def socket_address(ip: str, port: int) -> address_pb2.Address:
    """An IP:port listener address."""
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=ip, port_value=port))


def filter_chain(
    filters_: Sequence[lc.Filter], *, name: str = "", match: lc.FilterChainMatch | None = None
) -> lc.FilterChain:
    """A filter chain, optionally named and matched."""
    chain = lc.FilterChain(name=name, filters=filters_)
    if match is not None:
        chain.filter_chain_match.CopyFrom(match)
    return chain


def destination_port_match(port: int) -> lc.FilterChainMatch:
    """Match connections by their original destination port."""
    return lc.FilterChainMatch(destination_port=wrappers_pb2.UInt32Value(value=port))


def blackhole_chain(name: str, port: int) -> lc.FilterChain:
    """Loop guard: a connection addressed to the capture port itself goes nowhere."""
    return filter_chain([filters.tcp_proxy(names.BLACKHOLE_CLUSTER)], name=name, match=destination_port_match(port))


def catch_all_chain(name: str, mesh: MeshConfig) -> lc.FilterChain:
    """Unmatched outbound TCP: PassthroughCluster (ALLOW_ANY) or BlackHoleCluster (REGISTRY_ONLY)."""
    return filter_chain([filters.tcp_proxy(names.catch_all_cluster(mesh))], name=name)


def _listener(name: str, address: address_pb2.Address, direction: int, chains: Sequence[lc.FilterChain]) -> Listener:
    """Fields every sidecar listener has, including istiod's listener-level `NR` access log."""
    return Listener(
        name=name,
        address=address,
        traffic_direction=direction,
        filter_chains=chains,
        access_log=[filters.file_access_log(only_no_route=True)],
    )


class ChainOpts(NamedTuple):
    """One outbound filter chain before it becomes a listener's (istiod's `filterChainOpts`): SNI
    hosts and ALPNs to match (none: it matches everything), its filters and `istio.config`."""

    filters: Sequence[lc.Filter]
    server_names: tuple[str, ...] = ()
    alpns: tuple[str, ...] = ()
    transport: str = ""
    config: str = ""

    @property
    def match_all(self) -> bool:
        return (not self.server_names or "*" in self.server_names) and not self.alpns and not self.transport


def _outbound_chain(opts: ChainOpts) -> lc.FilterChain:
    chain = filter_chain(opts.filters)
    chain.transport_socket_connect_timeout.CopyFrom(duration(TRANSPORT_SOCKET_CONNECT_TIMEOUT_S))
    if opts.config:
        chain.metadata.CopyFrom(filter_metadata({"istio": {"config": opts.config}}))
    if not opts.match_all:
        match = chain.filter_chain_match
        match.transport_protocol = opts.transport
        match.application_protocols.extend(opts.alpns)
        if "*" not in opts.server_names:
            match.server_names.extend(sorted(opts.server_names))
    return chain


def outbound_listener(address: str, port: int, chains: Sequence[ChainOpts], mesh: MeshConfig) -> Listener:
    """istiod's `buildListenerFromEntry` for an outbound listener reached only through
    virtualOutbound's `use_original_dst`: a match-all chain becomes the default chain (or the
    only chain), otherwise `PassthroughFilterChain` catches what no chain matched; tls_inspector
    when a chain matches SNI, http_inspector (and the detection timeout) when one matches ALPN."""
    name = names.listener_name(address, port)
    listener = _listener(name, socket_address(address, port), base_pb2.OUTBOUND, [])
    listener.bind_to_port.value = False
    listener.continue_on_listener_filters_timeout = True
    default = None
    for opts in chains:
        if opts.match_all:
            default = _outbound_chain(opts)
        else:
            listener.filter_chains.append(_outbound_chain(opts))
    if default is not None and not listener.filter_chains:
        listener.filter_chains.append(default)
    elif default is not None:
        listener.default_filter_chain.CopyFrom(default)
    else:
        listener.default_filter_chain.CopyFrom(catch_all_chain(names.PASSTHROUGH_CHAIN, mesh))
        listener.default_filter_chain.filter_chain_match.SetInParent()
    if any(opts.server_names for opts in chains):
        listener.listener_filters.append(filters.tls_inspector())
    needs_http = any(opts.alpns for opts in chains)
    if needs_http:
        listener.listener_filters.append(filters.http_inspector())
    listener.listener_filters_timeout.CopyFrom(duration(mesh.protocol_detection_timeout_s if needs_http else 0))
    return listener


def outbound_http_listener(port: int, mesh: MeshConfig) -> Listener:
    """`0.0.0.0_<port>`: HTTP (by ALPN from http_inspector) → RDS `"<port>"`, the rest → catch-all."""
    hcm = filters.http_connection_manager(
        f"outbound_{names.listener_name(names.WILDCARD, port)}", names.route_config_name(port), [filters.istio_alpn()]
    )
    opts = ChainOpts([hcm], alpns=filters.PLAINTEXT_HTTP_ALPNS, transport=filters.RAW_BUFFER)
    return outbound_listener(names.WILDCARD, port, [opts], mesh)


def outbound_tcp_listener(address: str, port: int, target: lc.Filter, mesh: MeshConfig, config: str = "") -> Listener:
    """`<address>_<port>`: every byte to this service address → its `tcp_proxy`."""
    return outbound_listener(address, port, [ChainOpts([target], config=config)], mesh)


def virtual_outbound_listener(mesh: MeshConfig) -> Listener:
    """`virtualOutbound` on 15001: where iptables sends every outbound connection."""
    listener = _listener(
        names.VIRTUAL_OUTBOUND,
        socket_address(names.WILDCARD, names.OUTBOUND_CAPTURE_PORT),
        base_pb2.OUTBOUND,
        [
            blackhole_chain(names.VIRTUAL_OUTBOUND_BLACKHOLE_CHAIN, names.OUTBOUND_CAPTURE_PORT),
            catch_all_chain(names.VIRTUAL_OUTBOUND_CATCHALL_CHAIN, mesh),
        ],
    )
    listener.use_original_dst.value = True
    return listener


def inbound_chains(
    options: Sequence[ChainMatch], by_protocol: Mapping[str, tuple[str, Sequence[lc.Filter]]], port: int | None = None
) -> list[lc.FilterChain]:
    """One chain per match option, named and filtered by its protocol (`{HTTP: (name, [hcm]), ...}`)."""
    chains = []
    for option in options:
        match = lc.FilterChainMatch(transport_protocol=option.transport, application_protocols=option.alpns)
        if port is not None:
            match.destination_port.value = port
        name, network_filters = by_protocol[option.protocol]
        chain = filter_chain(network_filters, name=name, match=match)
        if option.mtls:
            chain.transport_socket.CopyFrom(secrets.downstream_tls(tcp=option.protocol == TCP))
        chains.append(chain)
    return chains


def _inbound_filters(topology: Topology, proxy: Workload, protocol: str, stat_prefix: str,
                     target: str | route_pb2.RouteConfiguration) -> list[lc.Filter]:
    """HCM with jwt_authn and RBAC (if policies apply) before the router, or RBAC then tcp_proxy."""
    if protocol == HTTP:
        before = [*request_authentication.http_filters(topology, proxy), *authorization.http_filters(topology, proxy)]
        return [filters.http_connection_manager(stat_prefix, target, before, inbound=True)]
    return [*authorization.network_filters(topology, proxy), filters.tcp_proxy(str(target))]


def inbound_passthrough_chains(topology: Topology, proxy: Workload) -> list[lc.FilterChain]:
    """Traffic to ports no service declares: `virtualInbound-catchall-http` and `virtualInbound`."""
    cluster = names.INBOUND_PASSTHROUGH_CLUSTER
    by_protocol = {
        HTTP: (
            names.VIRTUAL_INBOUND_CATCHALL_HTTP_CHAIN,
            _inbound_filters(topology, proxy, HTTP, cluster, routes.inbound_passthrough_route_config()),
        ),
        TCP: (names.VIRTUAL_INBOUND_CATCHALL_TCP_CHAIN, _inbound_filters(topology, proxy, TCP, cluster, cluster)),
    }
    return inbound_chains(INBOUND_MATCH_OPTIONS[workload_mode(topology, proxy)]["auto"], by_protocol)


def inbound_port_chains(topology: Topology, proxy: Workload, inbound: InboundPort) -> list[lc.FilterChain]:
    """Chains `0.0.0.0_<targetPort>` for one served port → cluster `inbound|<targetPort>||`."""
    target = inbound.port.target_port
    name = names.listener_name(names.WILDCARD, target)
    protocol = inbound.port.protocol
    if protocol == HTTP:
        destination: str | route_pb2.RouteConfiguration = routes.inbound_route_config(
            inbound.service, inbound.port.port, target
        )
    else:
        destination = names.inbound_cluster(target)
    network_filters = _inbound_filters(topology, proxy, protocol, f"inbound_{name}", destination)
    options = INBOUND_MATCH_OPTIONS[port_mode(topology, proxy, target)][protocol]
    return inbound_chains(options, {protocol: (name, network_filters)}, target)


def inspector_filters(chains: Sequence[lc.FilterChain]) -> list[lc.ListenerFilter]:
    """tls_inspector / http_inspector when some chain matches TLS / plaintext HTTP ALPNs, disabled
    on destination ports none of whose chains needs them (istiod `populateListenerFilters`)."""
    needs: dict[int, tuple[bool, bool]] = {}
    for chain in chains:
        m = chain.filter_chain_match
        tls, http = needs.get(m.destination_port.value, (False, False))
        needs[m.destination_port.value] = (
            tls or m.transport_protocol == filters.TLS,
            http or any(a in filters.PLAINTEXT_HTTP_ALPNS for a in m.application_protocols),
        )
    result = []
    for index, make in ((0, filters.tls_inspector), (1, filters.http_inspector)):
        if any(need[index] for need in needs.values()):
            off = [port for port, need in needs.items() if port and not need[index]]
            result.append(filters.disabled_on_ports(make(), off))
    return result


def virtual_inbound_listener(topology: Topology, proxy: Workload) -> Listener:
    """`virtualInbound` on 15006: where iptables sends every inbound connection."""
    chains = [
        blackhole_chain(names.VIRTUAL_INBOUND_BLACKHOLE_CHAIN, names.INBOUND_CAPTURE_PORT),
        *inbound_passthrough_chains(topology, proxy),
        *(c for inbound in inbound_ports(topology, proxy) for c in inbound_port_chains(topology, proxy, inbound)),
    ]
    listener = _listener(
        names.VIRTUAL_INBOUND, socket_address(names.WILDCARD, names.INBOUND_CAPTURE_PORT), base_pb2.INBOUND, chains
    )
    listener.listener_filters.extend([filters.original_dst(), *inspector_filters(chains)])
    listener.listener_filters_timeout.CopyFrom(duration(topology.mesh.protocol_detection_timeout_s))
    listener.continue_on_listener_filters_timeout = True
    return listener


def tcp_proxy_for(topology: Topology, proxy: Workload, service: RegistryService, port: int) -> tuple[lc.Filter, str]:
    """The tcp_proxy for a TCP service port and the VirtualService behind it ("" for the default)."""
    index = push_context.of(topology)
    named = index.virtual_services_naming(service.hostname)
    target = tcp_routes.tcp_target(topology.istio, service, port, proxy, index.scope(proxy).lookup) if named else None
    if target is None:
        return filters.tcp_proxy(names.outbound_cluster(port, service.hostname)), ""
    return filters.tcp_proxy(target.clusters, target.stat_prefix), target.config


def tls_chains(
    topology: Topology, proxy: Workload, service: RegistryService, port: int, address: str
) -> list[ChainOpts]:
    """istiod's `buildSidecarOutboundTLSFilterChainOpts`: a VirtualService's `tls` routes by SNI, else
    one chain to the service, matching its host as SNI when the listener is the wildcard one."""
    index = push_context.of(topology)
    named = index.virtual_services_naming(service.hostname)
    routed = tcp_routes.tls_routes(topology.istio, service, port, proxy, index.scope(proxy).lookup) if named else []
    if routed:
        return [ChainOpts([filters.tcp_proxy(t.clusters, t.stat_prefix)], server_names=sni, config=t.config)
                for sni, t in routed]
    number = service.ports[0].port if len(service.ports) == 1 else port
    sni = (service.hostname,) if address == names.WILDCARD else ()
    return [ChainOpts([filters.tcp_proxy(names.outbound_cluster(number, service.hostname))], server_names=sni)]


def _merge(existing: list[ChainOpts], new: Sequence[ChainOpts]) -> None:
    """Add TLS chains to a listener another TLS service already holds; the first SNI match wins."""
    taken = {opts.server_names for opts in existing}
    existing.extend(opts for opts in new if opts.server_names not in taken)


def outbound_listeners(topology: Topology, proxy: Workload) -> list[Listener]:
    """Per-port HTTP, per-address TCP and per-port SNI-routed TLS listeners, by port then address.

    They depend on the proxy only through `PushContext.proxy_key`, so proxies with the same key
    share the same objects, built once per push context.
    """
    index = push_context.of(topology)
    key = (LISTENER, "outbound", index.proxy_key(proxy))
    return list(index.shared(key, lambda: tuple(_outbound_listeners(topology, proxy)), routing=True))


def _outbound_listeners(topology: Topology, proxy: Workload) -> list[Listener]:
    mesh = topology.mesh
    index = push_context.of(topology)
    scope = index.scope(proxy)
    listeners = {(port, names.WILDCARD): outbound_http_listener(port, mesh) for port in scope.http_ports}
    chains: dict[tuple[int, str], list[ChainOpts]] = {}
    tls_keys: set[tuple[int, str]] = set()
    for service, port in scope.outbound_ports:
        if port.protocol != TCP:
            continue
        tls = port.port in service.tls_ports
        if not tls:
            target, config = tcp_proxy_for(topology, proxy, service, port.port)
        for address in service.addresses or (names.WILDCARD,):
            key = (port.port, address)
            if key in listeners or (key in chains and not (tls and key in tls_keys)):
                continue  # the first service on a listener keeps it (TLS ones share it by SNI)
            if tls:
                _merge(chains.setdefault(key, []), tls_chains(topology, proxy, service, port.port, address))
                tls_keys.add(key)
            elif config or index.virtual_services_naming(service.hostname):
                chains[key] = [ChainOpts([target], config=config)]
            else:  # the default listener of a service: the same for every proxy, shared
                listeners[key] = _default_tcp_listener(index, service, address, port.port)
    listeners.update({key: outbound_listener(key[1], key[0], opts, mesh) for key, opts in chains.items()})
    return [listeners[key] for key in sorted(listeners)]


def _default_tcp_listener(index: push_context.PushContext, service: RegistryService, address: str,
                          port: int) -> Listener:
    """An outbound TCP listener no VirtualService shapes: built once per push context."""

    def build() -> Listener:
        return outbound_tcp_listener(address, port, filters.tcp_proxy(names.outbound_cluster(port, service.hostname)),
                                     index.mesh)

    return index.shared((LISTENER, names.listener_name(address, port), service.hostname), build)


def build_listeners(topology: Topology, proxy: Workload) -> list[Listener]:
    """Every LDS listener for `proxy`, in istiod's order: outbound, virtualOutbound, virtualInbound."""
    listeners = [
        *outbound_listeners(topology, proxy),
        virtual_outbound_listener(topology.mesh),
        virtual_inbound_listener(topology, proxy),
    ]
    return capture.adapt(listeners, topology, proxy)  # userspace capture: see xds/capture.py
