"""LDS translation: Istio's listener names, ports, chains and matches for Bookinfo sidecars."""

from __future__ import annotations

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2

from meshkit.model import REGISTRY_ONLY, bookinfo
from meshkit.xds import filters
from meshkit.xds.listeners import build_listeners

from .xds_views import HCM, TcpProxy, all_network_filters, by_name, chains, only_filter, unpack

MESH = bookinfo()


def listeners_of(deployment: str, topology=MESH):
    return build_listeners(topology, topology.workload(deployment))


def test_listener_names_and_order_follow_istiod():
    echo_vip = MESH.service("tcp-echo").vip
    names = [listener.name for listener in listeners_of("productpage-v1")]
    assert names == [f"{echo_vip}_9000", "0.0.0.0_9080", "virtualOutbound", "virtualInbound"]


def test_virtual_outbound_captures_and_hands_off():
    vo = by_name(listeners_of("productpage-v1"), "virtualOutbound")
    assert (vo.address.socket_address.address, vo.address.socket_address.port_value) == ("0.0.0.0", 15001)
    assert vo.use_original_dst.value is True
    assert vo.traffic_direction == base_pb2.OUTBOUND
    assert not vo.listener_filters
    blackhole, catch_all = vo.filter_chains
    assert blackhole.name == "virtualOutbound-blackhole"
    assert blackhole.filter_chain_match.destination_port.value == 15001
    assert only_filter(blackhole, TcpProxy).cluster == "BlackHoleCluster"
    assert catch_all.name == "virtualOutbound-catchall-tcp"
    assert not catch_all.HasField("filter_chain_match")
    assert only_filter(catch_all, TcpProxy).cluster == "PassthroughCluster"


def test_outbound_http_listener_routes_over_rds():
    listener = by_name(listeners_of("productpage-v1"), "0.0.0.0_9080")
    assert listener.address.socket_address.port_value == 9080
    assert listener.bind_to_port.value is False
    assert listener.traffic_direction == base_pb2.OUTBOUND
    # 1.30 `buildListenerFromEntry`: tls_inspector only where a chain matches SNI
    assert [f.name for f in listener.listener_filters] == [filters.HTTP_INSPECTOR]
    assert listener.listener_filters_timeout.ToSeconds() == 0 and listener.HasField("listener_filters_timeout")
    assert listener.continue_on_listener_filters_timeout is True
    (chain,) = listener.filter_chains
    assert chain.filter_chain_match.transport_protocol == "raw_buffer"
    assert list(chain.filter_chain_match.application_protocols) == ["http/1.1", "h2c"]
    hcm = only_filter(chain, HCM)
    assert hcm.rds.route_config_name == "9080"
    assert hcm.rds.config_source.HasField("ads")
    assert hcm.rds.config_source.HasField("initial_fetch_timeout")
    assert hcm.stat_prefix == "outbound_0.0.0.0_9080;"
    default = listener.default_filter_chain
    assert default.name == "PassthroughFilterChain"
    assert only_filter(default, TcpProxy).cluster == "PassthroughCluster"


def test_hcm_defaults_follow_istiod():
    hcm = only_filter(by_name(listeners_of("reviews-v2"), "0.0.0.0_9080").filter_chains[0], HCM)
    assert hcm.codec_type == HCM.AUTO
    assert hcm.use_remote_address.value is False
    assert hcm.normalize_path.value is True
    assert hcm.path_with_escaped_slashes_action == HCM.KEEP_UNCHANGED
    assert [u.upgrade_type for u in hcm.upgrade_configs] == ["websocket"]
    assert hcm.HasField("stream_idle_timeout") and hcm.stream_idle_timeout.ToSeconds() == 0
    assert hcm.request_id_extension.typed_config.type_url.endswith("UuidRequestIdConfig")
    assert [f.name for f in hcm.http_filters] == [filters.SET_FILTER_STATE, filters.FAULT, filters.CORS, filters.ROUTER]
    assert (hcm.server_name, hcm.proxy_100_continue) == ("istio-envoy", True)


def test_tcp_service_gets_a_vip_listener():
    echo = MESH.service("tcp-echo")
    listener = by_name(listeners_of("productpage-v1"), f"{echo.vip}_9000")
    assert listener.address.socket_address.address == echo.vip
    assert listener.bind_to_port.value is False
    (chain,) = listener.filter_chains
    proxy = only_filter(chain, TcpProxy)
    assert proxy.cluster == proxy.stat_prefix == "outbound|9000||tcp-echo.default.svc.cluster.local"


def test_registry_only_sends_unknown_traffic_to_the_blackhole():
    closed = MESH.with_mesh(outbound_traffic_policy=REGISTRY_ONLY)
    listeners = listeners_of("productpage-v1", closed)
    catch_all = chains(by_name(listeners, "virtualOutbound"), "virtualOutbound-catchall-tcp")[0]
    assert only_filter(catch_all, TcpProxy).cluster == "BlackHoleCluster"
    default = by_name(listeners, "0.0.0.0_9080").default_filter_chain
    assert only_filter(default, TcpProxy).cluster == "BlackHoleCluster"


def test_virtual_inbound_chains_for_an_http_workload():
    vi = by_name(listeners_of("productpage-v1"), "virtualInbound")
    assert (vi.address.socket_address.address, vi.address.socket_address.port_value) == ("0.0.0.0", 15006)
    assert vi.traffic_direction == base_pb2.INBOUND
    assert vi.continue_on_listener_filters_timeout is True
    assert vi.HasField("listener_filters_timeout") and vi.listener_filters_timeout.ToSeconds() == 0
    assert [f.name for f in vi.listener_filters] == [
        filters.ORIGINAL_DST,
        filters.TLS_INSPECTOR,
        filters.HTTP_INSPECTOR,
    ]
    assert [c.name for c in vi.filter_chains] == [
        "virtualInbound-blackhole",
        "virtualInbound-catchall-http",
        "virtualInbound-catchall-http",
        "virtualInbound",
        "virtualInbound",
        "virtualInbound",
        "0.0.0.0_9080",
        "0.0.0.0_9080",
    ]
    assert vi.filter_chains[0].filter_chain_match.destination_port.value == 15006
    assert only_filter(vi.filter_chains[0], TcpProxy).cluster == "BlackHoleCluster"


def test_inbound_passthrough_chains():
    vi = by_name(listeners_of("productpage-v1"), "virtualInbound")
    mtls, http = chains(vi, "virtualInbound-catchall-http")
    assert mtls.filter_chain_match.transport_protocol == "tls"
    assert list(mtls.filter_chain_match.application_protocols) == ["istio-http/1.0", "istio-http/1.1", "istio-h2"]
    assert mtls.transport_socket.name == "envoy.transport_sockets.tls"
    assert http.filter_chain_match.transport_protocol == "raw_buffer"
    assert list(http.filter_chain_match.application_protocols) == ["http/1.1", "h2c"]
    assert not http.HasField("transport_socket")
    route_config = only_filter(http, HCM).route_config
    assert route_config.name == "InboundPassthroughCluster"
    (vhost,) = route_config.virtual_hosts
    assert vhost.name == "inbound|http|0"
    assert vhost.routes[0].route.cluster == "InboundPassthroughCluster"
    tcp = chains(vi, "virtualInbound")
    assert [c.filter_chain_match.transport_protocol for c in tcp] == ["tls", "raw_buffer", "tls"]
    assert list(tcp[0].filter_chain_match.application_protocols) == ["istio-peer-exchange", "istio"]
    assert [c.HasField("transport_socket") for c in tcp] == [True, False, False]
    assert {only_filter(c, TcpProxy).cluster for c in tcp} == {"InboundPassthroughCluster"}


def test_inbound_http_port_chain_inlines_its_route():
    vi = by_name(listeners_of("reviews-v2"), "virtualInbound")
    mtls, chain = chains(vi, "0.0.0.0_9080")
    assert mtls.filter_chain_match.transport_protocol == "tls"
    assert list(mtls.filter_chain_match.application_protocols) == [
        "istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"]
    assert only_filter(mtls, HCM) == only_filter(chain, HCM)
    assert chain.filter_chain_match.destination_port.value == 9080
    assert chain.filter_chain_match.transport_protocol == "raw_buffer"
    hcm = only_filter(chain, HCM)
    assert hcm.stat_prefix == "inbound_0.0.0.0_9080;"
    assert hcm.route_config.name == "inbound|9080||"
    (vhost,) = hcm.route_config.virtual_hosts
    assert (vhost.name, list(vhost.domains)) == ("inbound|http|9080", ["*"])
    (route,) = vhost.routes
    assert route.name == "default" and route.match.prefix == "/"
    action = route.route
    assert action.cluster == "inbound|9080||"
    assert action.HasField("timeout") and action.timeout.ToSeconds() == 0
    assert (action.retry_policy.retry_on, action.retry_policy.num_retries.value) == ("reset-before-request", 2)
    assert action.max_stream_duration.HasField("max_stream_duration")
    assert action.max_stream_duration.HasField("grpc_timeout_header_max")
    assert route.decorator.operation == "reviews.default.svc.cluster.local:9080/*"


def test_inbound_tcp_port_chains_proxy_to_the_inbound_cluster():
    vi = by_name(listeners_of("tcp-echo-v1"), "virtualInbound")
    port_chains = chains(vi, "0.0.0.0_9000")
    assert [c.filter_chain_match.transport_protocol for c in port_chains] == ["tls", "tls", "raw_buffer"]
    assert {c.filter_chain_match.destination_port.value for c in port_chains} == {9000}
    assert {only_filter(c, TcpProxy).cluster for c in port_chains} == {"inbound|9000||"}


@pytest.mark.parametrize(
    ("deployment", "tls_off", "http_off"),
    [("productpage-v1", [15006], [9080, 15006]), ("tcp-echo-v1", [15006], [9000, 15006])],
)
def test_inspectors_skip_ports_that_do_not_need_them(deployment, tls_off, http_off):
    vi = by_name(listeners_of(deployment), "virtualInbound")
    _, tls, http = vi.listener_filters

    def ports(filter_):
        predicate = filter_.filter_disabled
        rules = predicate.or_match.rules if predicate.HasField("or_match") else [predicate]
        return [r.destination_port_range.start for r in rules]

    assert ports(tls) == tls_off
    assert ports(http) == http_off


def test_every_hcm_and_tcp_proxy_logs_istio_json_to_stdout():
    listeners = [lst for d in ("productpage-v1", "reviews-v2", "tcp-echo-v1") for lst in listeners_of(d)]
    logs = []
    for f in all_network_filters(listeners):
        config = unpack(f.typed_config, HCM if f.name == filters.HCM else TcpProxy)
        logs.extend(config.access_log)
    assert len(logs) > 20
    for log in logs:
        assert log.name == "envoy.access_loggers.file"
        config = unpack(log.typed_config, file_pb2.FileAccessLog)
        assert config.path == "/dev/stdout"
        keys = set(config.log_format.json_format.fields)
        assert {"request_id", "response_flags", "upstream_host", "upstream_cluster"} <= keys
        assert keys == set(filters.ACCESS_LOG_JSON_FORMAT)


def test_listeners_log_unmatched_connections_only():
    for listener in listeners_of("productpage-v1"):
        (log,) = listener.access_log
        assert list(log.filter.response_flag_filter.flags) == ["NR"]
