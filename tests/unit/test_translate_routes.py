"""RDS translation: per-port route configs, vhost names and domains, istiod's default route."""

from __future__ import annotations

from dataclasses import replace

from meshkit.model import REGISTRY_ONLY, bookinfo
from meshkit.xds.routes import build_routes

from .xds_views import by_name

MESH = bookinfo()
PRODUCTPAGE = MESH.workload("productpage-v1")


def route_config(topology=MESH, proxy=PRODUCTPAGE):
    (config,) = build_routes(topology, proxy)
    return config


def test_one_route_config_per_http_port():
    config = route_config()
    assert config.name == "9080"
    assert config.validate_clusters.value is False and config.HasField("validate_clusters")
    assert config.ignore_port_in_host_matching is True
    assert config.max_direct_response_body_size_bytes.value == 1048576


def test_vhosts_are_sorted_services_then_the_catch_all():
    assert [v.name for v in route_config().virtual_hosts] == [
        "details.default.svc.cluster.local:9080",
        "productpage.default.svc.cluster.local:9080",
        "ratings.default.svc.cluster.local:9080",
        "reviews.default.svc.cluster.local:9080",
        "allow_any",
    ]
    assert all(v.include_request_attempt_count for v in route_config().virtual_hosts)


def test_domains_for_a_client_in_the_same_namespace():
    vip = MESH.service("reviews").vip
    vhost = by_name(route_config().virtual_hosts, "reviews.default.svc.cluster.local:9080")
    assert list(vhost.domains) == [
        "reviews.default.svc.cluster.local",
        "reviews.default.svc.cluster.local.",  # 1.27+: the absolute FQDN
        "reviews",
        "reviews.default.svc",
        "reviews.default",
        vip,
    ]


def test_domains_for_a_client_in_another_namespace():
    vip = MESH.service("reviews").vip
    outsider = replace(PRODUCTPAGE, namespace="other")
    vhost = by_name(route_config(proxy=outsider).virtual_hosts, "reviews.default.svc.cluster.local:9080")
    assert list(vhost.domains) == ["reviews.default.svc.cluster.local", "reviews.default.svc.cluster.local.",
                                   "reviews.default", "reviews.default.svc", vip]


def test_default_route_has_istios_retry_policy_and_no_timeout():
    vhost = by_name(route_config().virtual_hosts, "reviews.default.svc.cluster.local:9080")
    (route,) = vhost.routes
    assert route.name == "default" and route.match.prefix == "/"
    action = route.route
    assert action.cluster == "outbound|9080||reviews.default.svc.cluster.local"
    assert action.HasField("timeout") and action.timeout.ToSeconds() == 0
    assert action.HasField("max_grpc_timeout") and action.max_grpc_timeout.ToSeconds() == 0
    retry = action.retry_policy
    assert retry.retry_on == "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    assert retry.num_retries.value == 2
    assert not retry.retriable_status_codes  # 1.24+: no default retry on 503
    assert [p.name for p in retry.retry_host_predicate] == ["envoy.retry_host_predicates.previous_hosts"]
    assert retry.host_selection_retry_max_attempts == 5
    assert route.decorator.operation == "reviews.default.svc.cluster.local:9080/*"


def test_allow_any_passes_unknown_hosts_through():
    allow_any = route_config().virtual_hosts[-1]
    assert list(allow_any.domains) == ["*"]
    (route,) = allow_any.routes
    assert route.name == "allow_any"
    assert route.route.cluster == "PassthroughCluster"
    assert route.route.HasField("timeout") and route.route.HasField("max_grpc_timeout")


def test_registry_only_answers_unknown_hosts_with_502():
    closed = MESH.with_mesh(outbound_traffic_policy=REGISTRY_ONLY)
    block_all = route_config(topology=closed).virtual_hosts[-1]
    assert (block_all.name, list(block_all.domains)) == ("block_all", ["*"])
    (route,) = block_all.routes
    assert route.name == "block_all"
    assert route.direct_response.status == 502


def test_tcp_services_get_no_route_config_or_vhost():
    echo = MESH.workload("tcp-echo-v1")
    assert [c.name for c in build_routes(MESH, echo)] == ["9080"]
    assert not any("tcp-echo" in v.name for v in route_config(proxy=echo).virtual_hosts)
