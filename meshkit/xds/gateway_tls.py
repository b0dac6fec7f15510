"""TLS at the gate: terminated HTTPS (SIMPLE, `credentialName`) and SNI passthrough, plus TCP servers.

- SIMPLE: the chain matches the server's hosts by SNI (none for `*`) and terminates TLS with the
  certificate SDS resource `kubernetes://<credentialName>` (istiod's name for a Kubernetes Secret
  read by the gateway; `BuildListenerTLSContext`), ALPN `h2, http/1.1`. In a cluster a learner
  creates that Secret; here the boss is the CA and issues a certificate for the server's hosts
  into it (`credential_hosts` says which names each credential must cover).
- PASSTHROUGH: one chain per VirtualService `tls` route bound to the server, matched by the SNI
  hosts of its `match` (intersected with the server's), → tcp_proxy to the destination
  (`buildGatewayNetworkFiltersFromTLSRoutes`); the TLS stays end to end.
- plain TCP servers: the first bound `tcp` route → tcp_proxy (`buildGatewayNetworkFiltersFromTCPRoutes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2

from meshkit.model import Topology, Workload
from meshkit.model.config import resolve_host
from meshkit.model.istio import IstioResource

from . import filters, secrets, virtual_service
from .ca import CertificateAuthority, IssuedCert
from .listeners import filter_chain
from .registry import RegistryService
from .values import pack

if TYPE_CHECKING:
    from .gateway import Server

CREDENTIAL_PREFIX = "kubernetes://"
SERVER_ALPNS = ("h2", "http/1.1")
CREDENTIAL_TTL_S = 24 * 3600.0  # like a Secret a learner made: it outlives a session (no renewal timer)


def credential_resource(name: str) -> str:
    """The SDS resource name istiod gives a `credentialName`: `kubernetes://bookinfo-credential`."""
    return name if "://" in name else f"{CREDENTIAL_PREFIX}{name}"


def sni_match(hosts: Iterable[str]) -> lc.FilterChainMatch:
    """Match by SNI on the named hosts; `*` alone matches any (no server_names)."""
    named = sorted({h for h in hosts if h != "*"})
    return lc.FilterChainMatch(server_names=named)


def downstream(tls: Mapping[str, object]) -> base_pb2.TransportSocket:
    """Terminate TLS with the server's credential (SIMPLE: no client certificate asked for)."""
    context = tls_pb2.DownstreamTlsContext()
    common = context.common_tls_context
    common.alpn_protocols.extend(SERVER_ALPNS)
    names_ = list(tls.get("credentialNames") or []) or [str(tls.get("credentialName", ""))]  # type: ignore[call-overload]
    for credential in names_:
        common.tls_certificate_sds_secret_configs.append(secrets._sds(credential_resource(str(credential))))
    common.tls_params.tls_minimum_protocol_version = common_pb2.TlsParameters.TLSv1_2
    if tls.get("mode") == "MUTUAL":
        context.require_client_certificate.value = True
    return base_pb2.TransportSocket(name=secrets.TLS_SOCKET, typed_config=pack(context))


def credential_hosts(topology: Topology, proxy: Workload, servers: Sequence[Server]) -> dict[str, list[str]]:
    """credentialName → the DNS names its certificate must cover (the servers' hosts)."""
    out: dict[str, list[str]] = {}
    for server in servers:
        tls = server.spec.get("tls") or {}
        if tls.get("mode") not in ("SIMPLE", "MUTUAL"):
            continue
        for credential in tls.get("credentialNames") or [tls.get("credentialName", "")]:
            if credential:
                hosts = out.setdefault(credential, [])
                hosts += [h for _, h in server.hosts() if h not in hosts]
    return out


def credential_secret(name: str, cert_pem: bytes, key_pem: bytes) -> secret_pb2.Secret:
    """SDS `kubernetes://<name>`: the certificate chain and key the gateway presents."""
    return secret_pb2.Secret(
        name=credential_resource(name),
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(inline_bytes=cert_pem),
            private_key=base_pb2.DataSource(inline_bytes=key_pem),
        ),
    )


def _cluster(dest: dict, vs: IstioResource, port: int, registry: Mapping[str, RegistryService]) -> str:
    service = registry.get(resolve_host(dest["host"], vs.namespace))
    return virtual_service.destination_cluster(dest, vs.namespace, port, service)


def _tcp_target(vs: IstioResource, routes: list[dict], port: int,
                registry: Mapping[str, RegistryService]) -> lc.Filter:
    weighted = [(_cluster(r["destination"], vs, port, registry), r.get("weight", 0)) for r in routes]
    if len(weighted) == 1:
        return filters.tcp_proxy(weighted[0][0], weighted[0][0])
    return filters.tcp_proxy([(c, w) for c, w in weighted if w], f"{vs.name}.{vs.namespace}")


def _gateway_match(match: dict, server: Server, vs: IstioResource) -> bool:
    gateways = match.get("gateways")
    if gateways and not any((g if "/" in g else f"{vs.namespace}/{g}") == server.gateway_name for g in gateways):
        return False
    return match.get("port", server.number) == server.number


def passthrough_chains(topology: Topology, server: Server, bound: Sequence[IstioResource],
                       registry: Mapping[str, RegistryService]) -> list[lc.FilterChain]:
    """One SNI-matched tcp_proxy chain per bound `tls` route (the first route per SNI set wins)."""
    from .gateway import host_matches

    chains, seen = [], set()
    server_hosts = [h for _, h in server.hosts()]
    for vs in bound:
        for tls in vs.spec.get("tls", []):
            for match in tls.get("match") or [{}]:
                if not _gateway_match(match, server, vs):
                    continue
                sni = [h for h in match.get("sniHosts", vs.spec.get("hosts", []))
                       if any(host_matches(s, h) for s in server_hosts)]
                key = tuple(sorted(sni))
                if not sni or key in seen or not tls.get("route"):
                    continue
                seen.add(key)
                chain = filter_chain([_tcp_target(vs, tls["route"], server.number, registry)], match=sni_match(sni))
                chains.append(chain)
    return chains


def tcp_chains(topology: Topology, server: Server, bound: Sequence[IstioResource],
               registry: Mapping[str, RegistryService]) -> list[lc.FilterChain]:
    """Opaque TCP: the first bound `tcp` route whose match fits the server."""
    for vs in bound:
        for tcp in vs.spec.get("tcp", []):
            if tcp.get("route") and (not tcp.get("match") or any(_gateway_match(m, server, vs) for m in tcp["match"])):
                return [filter_chain([_tcp_target(vs, tcp["route"], server.number, registry)])]
    return []


class Credentials:
    """The certificates the boss issued for gateway credentials, kept until their hosts change or
    they near expiry (a new certificate each push would re-push SDS every time)."""

    def __init__(self, ca: CertificateAuthority) -> None:
        self.ca = ca
        self._issued: dict[tuple[str, tuple[str, ...]], IssuedCert] = {}

    def secrets(self, topology: Topology, proxy: Workload) -> list[secret_pb2.Secret]:
        """SDS `kubernetes://<credentialName>` for every credential the proxy's servers name."""
        from .gateway import effective, is_gateway, servers

        if not is_gateway(proxy):
            return []
        topology = effective(topology)
        out = []
        for name, hosts in sorted(credential_hosts(topology, proxy, servers(topology, proxy)).items()):
            key = (name, tuple(sorted(hosts)))
            cert = self._issued.get(key)
            if cert is None or self.ca.clock() >= cert.rotate_at():
                cert = self._issued[key] = self.ca.issue_server(hosts, ttl_s=CREDENTIAL_TTL_S)
            out.append(credential_secret(name, cert.cert_pem, cert.key_pem))
        return out
