"""Network, HTTP and listener filters as istiod builds them for sidecars (Istio 1.30).

Upstream Envoy has no Istio extensions, so `istio.metadata_exchange`, `istio.stats` (and
`envoy.filters.http.grpc_stats`, which only feeds `istio.stats`) are left out; everything else
keeps istiod's names, order and defaults. Istio's `istio.alpn` HTTP filter (outbound: tell the
upstream TLS handshake `istio-http/1.1`, so the server's mTLS HTTP chain matches) becomes
upstream Envoy's `set_filter_state` filter writing the well-known filter-state object
`envoy.network.application_protocols`, shared with the upstream connection: the TLS transport
socket then offers those ALPNs instead of the cluster's `istio-peer-exchange, istio`. Unlike
istio.alpn it cannot pick per upstream protocol (istio-h2 for HTTP/2 upstreams), so it always
says `istio-http/1.1`; the server's HCM detects the codec itself, so h2 still works. Access logging is what istiod
emits for `meshConfig.accessLogFile: /dev/stdout` with `accessLogEncoding: JSON`: a file logger
with Istio's default JSON keys on every HCM and tcp_proxy, plus a listener-level logger that
only records connections no filter chain matched (response flag `NR`).
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import substitution_format_string_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.filters.common.set_filter_state.v3 import value_pb2 as filter_state_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.http.set_filter_state.v3 import set_filter_state_pb2
from envoy.extensions.filters.listener.http_inspector.v3 import http_inspector_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.request_id.uuid.v3 import uuid_pb2
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message

from . import names
from .values import ads_config_source, duration, pack, struct

ACCESS_LOG_PATH = "/dev/stdout"
# istiod's proxy-header defaults (`util.GetProxyHeadersFromProxyConfig`) on every sidecar HCM, and
# ENABLE_100_CONTINUE_HEADERS (default true).
SERVER_NAME = "istio-envoy"

# istiod's EnvoyJSONLogFormatIstio (pilot/pkg/model/telemetry_logging.go). meshkit's curl tool
# reads request_id, response_flags, upstream_host and upstream_cluster from these lines. The last
# three keys are meshkit's, not Istio's: they let a trace (inspect/trace.py) name the listener and
# filter chain a request met and how many upstream attempts (retries) it took.
ACCESS_LOG_JSON_FORMAT = {
    "start_time": "%START_TIME%",
    "route_name": "%ROUTE_NAME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration": "%DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",  # Istio 1.23+: the name without the ";" stat delimiter
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "requested_server_name": "%REQUESTED_SERVER_NAME%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "listener_name": "%LISTENER_NAME%",
    "filter_chain_name": "%FILTER_CHAIN_NAME%",
    "upstream_request_attempt_count": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
}

HCM = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
FAULT = "envoy.filters.http.fault"
CORS = "envoy.filters.http.cors"
ROUTER = "envoy.filters.http.router"
SET_FILTER_STATE = "envoy.filters.http.set_filter_state"
APPLICATION_PROTOCOLS_KEY = "envoy.network.application_protocols"
ISTIO_HTTP_ALPN = "istio-http/1.1"
ORIGINAL_DST = "envoy.filters.listener.original_dst"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
HTTP_INSPECTOR = "envoy.filters.listener.http_inspector"

# istiod's ALPN lists and transport protocols (pilot/pkg/networking/core/listener.go, xds/filters).
PLAINTEXT_HTTP_ALPNS = ("http/1.1", "h2c")
MTLS_HTTP_ALPNS = ("istio-http/1.0", "istio-http/1.1", "istio-h2")
MTLS_TCP_ALPNS = ("istio-peer-exchange", "istio")
ALL_ISTIO_MTLS_ALPNS = ("istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2")
RAW_BUFFER = "raw_buffer"
TLS = "tls"


def file_access_log(*, only_no_route: bool = False) -> accesslog_pb2.AccessLog:
    """Istio's JSON file access log; `only_no_route` is the listener variant (flag `NR` only)."""
    log = accesslog_pb2.AccessLog(
        name="envoy.access_loggers.file",
        typed_config=pack(
            file_pb2.FileAccessLog(
                path=ACCESS_LOG_PATH,
                log_format=substitution_format_string_pb2.SubstitutionFormatString(
                    json_format=struct(ACCESS_LOG_JSON_FORMAT)
                ),
            )
        ),
    )
    if only_no_route:
        log.filter.response_flag_filter.flags.append("NR")
    return log


def network_filter(name: str, config: Message) -> listener_components_pb2.Filter:
    """A network filter with its typed config."""
    return listener_components_pb2.Filter(name=name, typed_config=pack(config))


def tcp_proxy(cluster: str | Sequence[tuple[str, int]], stat_prefix: str = "") -> listener_components_pb2.Filter:
    """`tcp_proxy` to one cluster (istiod's stat prefix is the cluster name) or to weighted clusters
    (a VirtualService `tcp` split; istiod's stat prefix is then `<vs name>.<vs namespace>`)."""
    proxy = tcp_proxy_pb2.TcpProxy(access_log=[file_access_log()])
    if isinstance(cluster, str):
        proxy.cluster = cluster
        proxy.stat_prefix = stat_prefix or cluster
    else:
        proxy.stat_prefix = stat_prefix
        for name, weight in cluster:
            proxy.weighted_clusters.clusters.add(name=name, weight=weight)
    return network_filter(TCP_PROXY, proxy)


def istio_alpn() -> hcm_pb2.HttpFilter:
    """What `istio.alpn` does, in upstream Envoy: offer `istio-http/1.1` on the upstream TLS handshake."""
    value = filter_state_pb2.FilterStateValue(
        object_key=APPLICATION_PROTOCOLS_KEY,
        format_string=substitution_format_string_pb2.SubstitutionFormatString(
            text_format_source={"inline_string": ISTIO_HTTP_ALPN}
        ),
        shared_with_upstream=filter_state_pb2.FilterStateValue.ONCE,
    )
    return hcm_pb2.HttpFilter(
        name=SET_FILTER_STATE, typed_config=pack(set_filter_state_pb2.Config(on_request_headers=[value]))
    )


def http_filters(before: Sequence[hcm_pb2.HttpFilter] = ()) -> list[hcm_pb2.HttpFilter]:
    """[before…] → fault → cors → router: the upstream-Envoy part of istiod's sidecar HTTP filter chain.

    fault and cors carry empty configs so routes can set `typed_per_filter_config` for them
    (VirtualService `fault` and `corsPolicy`). `before` holds the ALPN filter (outbound) or the
    RBAC filters (inbound), where istiod puts them.
    """
    return [
        *before,
        hcm_pb2.HttpFilter(name=FAULT, typed_config=pack(fault_pb2.HTTPFault())),
        hcm_pb2.HttpFilter(name=CORS, typed_config=pack(cors_pb2.Cors())),
        hcm_pb2.HttpFilter(name=ROUTER, typed_config=pack(router_pb2.Router())),
    ]


def http_connection_manager(
    stat_prefix: str,
    routes: str | route_pb2.RouteConfiguration,
    before: Sequence[hcm_pb2.HttpFilter] = (),
    *,
    inbound: bool = False,
) -> listener_components_pb2.Filter:
    """An HCM with istiod's defaults; `routes` is an RDS name (outbound) or an inline config (inbound).

    Inbound HCMs forward the caller's identity to the app as istiod's do (`buildSidecarInboundHTTPOpts`):
    `x-forwarded-client-cert` APPEND_FORWARD with the peer certificate's subject, URI and DNS SANs.
    """
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix=names.stat_prefix(stat_prefix),
        codec_type=hcm_pb2.HttpConnectionManager.AUTO,
        use_remote_address=wrappers_pb2.BoolValue(value=False),
        http_filters=http_filters(before),
        upgrade_configs=[hcm_pb2.HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")],
        stream_idle_timeout=duration(0),
        normalize_path=wrappers_pb2.BoolValue(value=True),
        path_with_escaped_slashes_action=hcm_pb2.HttpConnectionManager.KEEP_UNCHANGED,
        request_id_extension=hcm_pb2.RequestIDExtension(
            typed_config=pack(
                uuid_pb2.UuidRequestIdConfig(use_request_id_for_trace_sampling=wrappers_pb2.BoolValue(value=True))
            )
        ),
        access_log=[file_access_log()],
    )
    hcm.server_name = SERVER_NAME
    hcm.proxy_100_continue = True
    if inbound:
        hcm.forward_client_cert_details = hcm_pb2.HttpConnectionManager.APPEND_FORWARD
        details = hcm.set_current_client_cert_details
        details.subject.value, details.uri, details.dns = True, True, True
    if isinstance(routes, str):
        hcm.rds.route_config_name = routes
        hcm.rds.config_source.CopyFrom(ads_config_source())
    else:
        hcm.route_config.CopyFrom(routes)
    return network_filter(HCM, hcm)


def listener_filter(name: str, config: Message) -> listener_components_pb2.ListenerFilter:
    """A listener filter with its typed config."""
    return listener_components_pb2.ListenerFilter(name=name, typed_config=pack(config))


def original_dst() -> listener_components_pb2.ListenerFilter:
    """Recover the pre-iptables destination so chains can match on it."""
    return listener_filter(ORIGINAL_DST, original_dst_pb2.OriginalDst())


def tls_inspector() -> listener_components_pb2.ListenerFilter:
    """Detect TLS (transport `tls`), SNI and ALPN."""
    return listener_filter(TLS_INSPECTOR, tls_inspector_pb2.TlsInspector())


def http_inspector() -> listener_components_pb2.ListenerFilter:
    """Detect plaintext HTTP and set ALPN `http/1.1` or `h2c`."""
    return listener_filter(HTTP_INSPECTOR, http_inspector_pb2.HttpInspector())


def disabled_on_ports(
    filter_: listener_components_pb2.ListenerFilter, ports: Sequence[int]
) -> listener_components_pb2.ListenerFilter:
    """Skip a listener filter for the given destination ports (istiod's `filter_disabled` predicate)."""
    ranges = [
        listener_components_pb2.ListenerFilterChainMatchPredicate(destination_port_range={"start": p, "end": p + 1})
        for p in sorted(ports)
    ]
    if len(ranges) == 1:
        filter_.filter_disabled.CopyFrom(ranges[0])
    elif ranges:
        filter_.filter_disabled.or_match.rules.extend(ranges)
    return filter_
