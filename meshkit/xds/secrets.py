"""SDS and the TLS contexts that use it, as istiod and pilot-agent shape them (Istio 1.30).

Two secrets per sidecar, named as Istio names them: `default` (the workload's key and
certificate chain, a `tls_certificate`) and `ROOTCA` (the mesh root, a `validation_context`).
In Istio pilot-agent serves them to Envoy over a separate SDS socket (`sds-grpc`); meshkit's boss
sends them on the same ADS stream, last in the push order (… → RDS → SDS), so TLS contexts name
them with `sds_config: {ads: {}}`.

- client side (`cluster_tls.go` `buildIstioMutualTLS` / auto-mTLS): `UpstreamTlsContext` with SDS
  `default` + `ROOTCA`, the destination's SPIFFE ids as URI SANs to verify, ALPN
  `istio-peer-exchange, istio` and SNI `outbound_.<port>_.<subset>_.<host>`;
- server side (`security/authn/utils.go` `BuildInboundTLS`): `DownstreamTlsContext` requiring a
  client certificate, SDS `default` + `ROOTCA`, ALPN `h2, http/1.1` (TCP: `istio-peer-exchange`
  first), TLS ≥ 1.2 with Istio's cipher list.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from envoy.config.core.v3 import base_pb2, config_source_pb2
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf.message import Message

from .ca import IssuedCert
from .values import duration, pack

Secret = secret_pb2.Secret

DEFAULT_SECRET = "default"
ROOT_SECRET = "ROOTCA"
TLS_SOCKET = "envoy.transport_sockets.tls"
RAW_SOCKET = "envoy.transport_sockets.raw_buffer"

# pilot/pkg/networking/util: ALPNInMeshWithMxc, ALPNHttp, ALPNDownstreamWithMxc.
CLIENT_ALPNS = ("istio-peer-exchange", "istio")
SERVER_HTTP_ALPNS = ("h2", "http/1.1")
SERVER_TCP_ALPNS = ("istio-peer-exchange", "h2", "http/1.1")
# security/pkg/.../authn SupportedCiphers
CIPHERS = ("ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256",
           "ECDHE-RSA-AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-GCM-SHA256")


def workload_secret(cert: IssuedCert) -> Secret:
    """SDS `default`: the workload's certificate chain and private key."""
    return Secret(
        name=DEFAULT_SECRET,
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(inline_bytes=cert.cert_pem),
            private_key=base_pb2.DataSource(inline_bytes=cert.key_pem),
        ),
    )


def root_secret(root_pem: bytes) -> Secret:
    """SDS `ROOTCA`: the mesh's trust anchor."""
    return Secret(
        name=ROOT_SECRET,
        validation_context=common_pb2.CertificateValidationContext(
            trusted_ca=base_pb2.DataSource(inline_bytes=root_pem)
        ),
    )


def build_secrets(cert: IssuedCert, root_pem: bytes) -> list[Secret]:
    """The SDS resources of one sidecar, in the order `istioctl pc secret` lists them."""
    return [workload_secret(cert), root_secret(root_pem)]


def _sds(name: str) -> secret_pb2.SdsSecretConfig:
    return secret_pb2.SdsSecretConfig(
        name=name,
        sds_config=config_source_pb2.ConfigSource(
            ads=config_source_pb2.AggregatedConfigSource(),
            initial_fetch_timeout=duration(0),
            resource_api_version=config_source_pb2.ApiVersion.V3,
        ),
    )


def common_tls_context(alpns: Sequence[str], sans: Sequence[str] = ()) -> tls_pb2.CommonTlsContext:
    """SDS `default` as our certificate, SDS `ROOTCA` (+ SANs to verify) for the peer's."""
    context = tls_pb2.CommonTlsContext(
        tls_certificate_sds_secret_configs=[_sds(DEFAULT_SECRET)],
        alpn_protocols=alpns,
    )
    combined = context.combined_validation_context
    combined.default_validation_context.SetInParent()
    combined.default_validation_context.match_typed_subject_alt_names.extend(
        common_pb2.SubjectAltNameMatcher(san_type=common_pb2.SubjectAltNameMatcher.URI,
                                         matcher=string_pb2.StringMatcher(exact=san))
        for san in sans
    )
    combined.validation_context_sds_secret_config.CopyFrom(_sds(ROOT_SECRET))
    return context


def sni(port: int, host: str, subset: str = "") -> str:
    """istiod's `BuildDNSSrvSubsetKey`: `outbound_.9080_.v1_.reviews.default.svc.cluster.local`."""
    return f"outbound_.{port}_.{subset}_.{host}"


def upstream_tls(sans: Sequence[str], server_name: str) -> base_pb2.TransportSocket:
    """ISTIO_MUTUAL on a cluster: present our identity, verify the server's SPIFFE id."""
    context = tls_pb2.UpstreamTlsContext(common_tls_context=common_tls_context(CLIENT_ALPNS, sans), sni=server_name)
    return base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=pack(context))


FILE_ROOT = "file-root:"
FILE_CERT = "file-cert:"
SYSTEM_CA = "system"
CREDENTIAL = "kubernetes://"
# pilot-agent's `file-root:system`: the distribution's CA bundle, the first that exists.
SYSTEM_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem")


def user_tls(tls: dict, sni: str) -> tuple[tls_pb2.UpstreamTlsContext | None, bool]:
    """DestinationRule `tls.mode` SIMPLE / MUTUAL as istiod's `constructUpstreamTLS` builds it, and
    whether the cluster needs `auto_sni` (no `sni` given: Envoy takes the request's Host).

    Files (`caCertificates`, default `system`; `clientCertificate` + `privateKey` for MUTUAL) are
    served over SDS as `file-root:<path>` / `file-cert:<cert>~<key>`, as pilot-agent serves them
    (here the boss reads them, `file_secret`); `credentialName` names the SDS secret
    `kubernetes://<name>` (and `-cacert`). `insecureSkipVerify` leaves an empty validation context.
    """
    common = tls_pb2.CommonTlsContext(tls_params=common_pb2.TlsParameters(
        tls_minimum_protocol_version=common_pb2.TlsParameters.TLSv1_2,
        tls_maximum_protocol_version=common_pb2.TlsParameters.TLSv1_3,
    ))
    mutual = tls.get("mode") == "MUTUAL"
    credential = tls.get("credentialName", "")
    if credential:
        cert_name, root_name = CREDENTIAL + credential, CREDENTIAL + credential + "-cacert"
    else:
        if mutual and not (tls.get("clientCertificate") and tls.get("privateKey")):
            return None, False  # istiod: "client certificate and private key must not be empty"
        cert_name = f"{FILE_CERT}{tls.get('clientCertificate')}~{tls.get('privateKey')}"
        root_name = FILE_ROOT + (tls.get("caCertificates") or SYSTEM_CA)
    if mutual:
        common.tls_certificate_sds_secret_configs.append(_sds(cert_name))
    if tls.get("insecureSkipVerify"):
        common.validation_context.SetInParent()
    else:
        combined = common.combined_validation_context
        combined.default_validation_context.match_typed_subject_alt_names.extend(
            common_pb2.SubjectAltNameMatcher(san_type=common_pb2.SubjectAltNameMatcher.DNS,
                                             matcher=string_pb2.StringMatcher(exact=san))
            for san in tls.get("subjectAltNames") or []
        )
        combined.validation_context_sds_secret_config.CopyFrom(_sds(root_name))
    return tls_pb2.UpstreamTlsContext(common_tls_context=common, sni=sni), not sni


def transport_socket(context: tls_pb2.UpstreamTlsContext) -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=pack(context))


def file_secret(name: str) -> Secret | None:
    """What pilot-agent serves for `file-root:<path>` / `file-cert:<cert>~<key>`, read now; None
    for another name or a file that cannot be read (Envoy then keeps waiting for the secret)."""
    try:
        if name.startswith(FILE_ROOT):
            path = name.removeprefix(FILE_ROOT)
            if path == SYSTEM_CA:
                path = next((p for p in SYSTEM_CA_BUNDLES if Path(p).exists()), SYSTEM_CA_BUNDLES[0])
            return Secret(name=name, validation_context=common_pb2.CertificateValidationContext(
                trusted_ca=base_pb2.DataSource(inline_bytes=Path(path).read_bytes())))
        if name.startswith(FILE_CERT):
            cert, _, key = name.removeprefix(FILE_CERT).partition("~")
            return Secret(name=name, tls_certificate=common_pb2.TlsCertificate(
                certificate_chain=base_pb2.DataSource(inline_bytes=Path(cert).read_bytes()),
                private_key=base_pb2.DataSource(inline_bytes=Path(key).read_bytes())))
    except OSError:
        return None
    return None


def referenced_file_secrets(clusters: Sequence[Message]) -> list[str]:
    """The `file-root:` / `file-cert:` SDS names the clusters' TLS contexts ask for, in order."""
    found: list[str] = []
    for cluster in clusters:
        if not cluster.HasField("transport_socket"):
            continue
        context = tls_pb2.UpstreamTlsContext()
        if not cluster.transport_socket.typed_config.Unpack(context):
            continue
        common = context.common_tls_context
        for config in [*common.tls_certificate_sds_secret_configs,
                       common.combined_validation_context.validation_context_sds_secret_config]:
            if config.name.startswith((FILE_ROOT, FILE_CERT)) and config.name not in found:
                found.append(config.name)
    return found


def raw_buffer() -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(name=RAW_SOCKET, typed_config=pack(raw_buffer_pb2.RawBuffer()))


def downstream_tls(tcp: bool) -> base_pb2.TransportSocket:
    """Istio mTLS on an inbound chain: require a client certificate signed by ROOTCA."""
    context = tls_pb2.DownstreamTlsContext(
        common_tls_context=common_tls_context(SERVER_TCP_ALPNS if tcp else SERVER_HTTP_ALPNS),
        require_client_certificate={"value": True},
    )
    params = context.common_tls_context.tls_params
    params.tls_minimum_protocol_version = common_pb2.TlsParameters.TLSv1_2
    params.cipher_suites.extend(CIPHERS)
    return base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=pack(context))
