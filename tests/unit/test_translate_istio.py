"""Istio traffic API → xDS: goldens per feature and focused checks of the tricky bits.

Inputs are Istio's own Bookinfo samples (tests/data/istio-bookinfo, unchanged) and small focused
files next to their goldens (tests/golden/xds/istio/*.yaml). Each case pins the four resource
types one sidecar receives; accept an intended change with MESHKIT_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from google.protobuf import json_format

from meshkit.model import REGISTRY_ONLY, Topology, bookinfo
from meshkit.model.config import IstioConfig
from meshkit.model.istio import parse_istio
from meshkit.xds.clusters import build_clusters
from meshkit.xds.endpoints import build_endpoints
from meshkit.xds.generate import generate
from meshkit.xds.listeners import build_listeners
from meshkit.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE
from meshkit.xds.routes import build_routes

from ..documents import document
from .golden import GOLDEN_DIR, assert_golden, messages_json
from .xds_views import TcpProxy, by_name, only_filter, unpack

Cluster = cluster_pb2.Cluster
Header = base_pb2.HeaderValueOption
SAMPLES = Path(__file__).resolve().parent.parent / "data" / "istio-bookinfo"
FOCUSED = GOLDEN_DIR / "xds" / "istio"
FILES = {LISTENER: "listeners", ROUTE: "routes", CLUSTER: "clusters", ENDPOINT: "endpoints"}
REVIEWS = "reviews.default.svc.cluster.local:9080"
RATINGS = "ratings.default.svc.cluster.local:9080"

# focused cases pinned on another sidecar than productpage's
PINNED = {"tcp-weights": "tcp-echo-v1", "peer-authentication": "reviews-v1", "authorization": "reviews-v1",
          "authorization-custom": "reviews-v1", "authorization-negations": "reviews-v1",
          "request-authentication": "reviews-v1"}
# case → (input files, the sidecar whose xDS is pinned)
CASES: dict[str, tuple[tuple[Path, ...], str]] = {
    "destination-rule-all": ((SAMPLES / "destination-rule-all.yaml",), "productpage-v1"),
    "reviews-80-20": (
        (SAMPLES / "destination-rule-all.yaml", SAMPLES / "virtual-service-reviews-80-20.yaml"),
        "productpage-v1",
    ),
    "reviews-test-v2": (
        (SAMPLES / "destination-rule-all.yaml", SAMPLES / "virtual-service-reviews-test-v2.yaml"),
        "productpage-v1",
    ),
    "ratings-test-delay": (
        (SAMPLES / "destination-rule-all.yaml", SAMPLES / "virtual-service-ratings-test-delay.yaml"),
        "reviews-v2",
    ),
    **{
        path.stem: ((path,), PINNED.get(path.stem, "productpage-v1"))
        for path in sorted(FOCUSED.glob("*.yaml"))
    },
}


def with_istio(text: str, topology: Topology | None = None) -> Topology:
    """Bookinfo with the documents applied as the daemon applies them (MeshConfig folded in)."""
    topology = topology or bookinfo()
    resources = parse_istio(text)
    mesh = topology.mesh
    for resource in resources:
        if resource.kind == "MeshConfig":
            mode = resource.spec.get("outboundTrafficPolicy", {}).get("mode", mesh.outbound_traffic_policy)
            mesh = replace(mesh, outbound_traffic_policy=mode)
    return replace(topology, istio=IstioConfig().applied(resources), mesh=mesh)


def case_topology(case: str) -> Topology:
    files, _ = CASES[case]
    return with_istio("\n---\n".join(f.read_text() for f in files))


def case_resources(case: str) -> dict:
    topology = case_topology(case)
    return generate(topology, topology.workload(CASES[case][1]))


@pytest.mark.parametrize("type_url", list(FILES), ids=list(FILES.values()))
@pytest.mark.parametrize("case", list(CASES))
def test_istio_translation_matches_golden(case, type_url):
    assert_golden(f"xds/istio/{case}/{FILES[type_url]}.json", messages_json(case_resources(case)[type_url]))


def vhost(case_or_topology: str | Topology, name: str, proxy: str = "productpage-v1"):
    topology = case_topology(case_or_topology) if isinstance(case_or_topology, str) else case_or_topology
    configs = build_routes(topology, topology.workload(proxy))
    return by_name([v for c in configs for v in c.virtual_hosts], name)


def as_dict(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


# -- DestinationRule ---------------------------------------------------------------------------


def test_subset_clusters_for_every_subset_and_their_endpoints():
    topology = case_topology("destination-rule-all")
    proxy = topology.workload("productpage-v1")
    names = [c.name for c in build_clusters(topology, proxy)]
    assert names[:5] == [
        "outbound|9080||details.default.svc.cluster.local",
        "outbound|9080|v1|details.default.svc.cluster.local",
        "outbound|9080|v2|details.default.svc.cluster.local",
        "outbound|9080||productpage.default.svc.cluster.local",
        "outbound|9080|v1|productpage.default.svc.cluster.local",
    ]
    assert "outbound|9080|v2-mysql-vm|ratings.default.svc.cluster.local" in names
    subset = by_name(build_clusters(topology, proxy), "outbound|9080|v2|reviews.default.svc.cluster.local")
    assert subset.type == Cluster.EDS and subset.eds_cluster_config.service_name == subset.name
    istio = as_dict(subset.metadata)["filter_metadata"]["istio"]
    assert istio["config"] == "/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews"
    assert istio["subset"] == "v2"
    assignments = {a.cluster_name: a for a in build_endpoints(topology, proxy)}
    v2 = assignments["outbound|9080|v2|reviews.default.svc.cluster.local"]
    (locality,) = v2.endpoints
    assert [e.endpoint.address.socket_address.address for e in locality.lb_endpoints] == [
        topology.workload("reviews-v2").ip
    ]
    # a subset no pod matches still gets its cluster and an empty assignment (503 UH, not NC)
    assert not assignments["outbound|9080|v2|details.default.svc.cluster.local"].endpoints


def test_connection_pool_and_outlier_detection_on_cluster_fields():
    clusters = build_clusters(case_topology("traffic-policy"), bookinfo().workload("productpage-v1"))
    default = by_name(clusters, "outbound|9080||reviews.default.svc.cluster.local")
    (limits,) = default.circuit_breakers.thresholds
    assert (limits.max_connections.value, limits.max_pending_requests.value) == (1, 1)
    assert (limits.max_requests.value, limits.max_retries.value) == (1, 3)
    assert default.connect_timeout.ToSeconds() == 2
    assert default.lb_policy == Cluster.ROUND_ROBIN
    keepalive = default.upstream_connection_options.tcp_keepalive
    assert (keepalive.keepalive_probes.value, keepalive.keepalive_time.value) == (3, 7200)
    outlier = default.outlier_detection
    assert (outlier.consecutive_5xx.value, outlier.enforcing_consecutive_5xx.value) == (1, 100)
    assert outlier.HasField("enforcing_success_rate") and outlier.enforcing_success_rate.value == 0
    assert outlier.base_ejection_time.ToSeconds() == 180 and outlier.max_ejection_percent.value == 100
    assert default.common_lb_config.healthy_panic_threshold.value == 0
    # subset v1 overrides only the load balancer; v2 only outlier detection (consecutiveErrors ignored)
    v1 = by_name(clusters, "outbound|9080|v1|reviews.default.svc.cluster.local")
    assert v1.lb_policy == Cluster.RANDOM and v1.outlier_detection.consecutive_5xx.value == 1
    v2 = by_name(clusters, "outbound|9080|v2|reviews.default.svc.cluster.local")
    assert not v2.outlier_detection.HasField("consecutive_5xx")
    assert v2.outlier_detection.consecutive_gateway_failure.value == 0
    assert v2.outlier_detection.enforcing_consecutive_gateway_failure.value == 0
    assert v2.lb_policy == Cluster.ROUND_ROBIN and v2.circuit_breakers.thresholds[0].max_connections.value == 1
    # port-level settings replace the top-level policy: no outlier detection inherited
    ratings = by_name(clusters, "outbound|9080||ratings.default.svc.cluster.local")
    assert ratings.lb_policy == Cluster.RANDOM and not ratings.HasField("outlier_detection")


def test_consistent_hash_sets_ring_and_route_hash_policy():
    topology = case_topology("consistent-hash")
    clusters = build_clusters(topology, topology.workload("productpage-v1"))
    assert by_name(clusters, "outbound|9080||details.default.svc.cluster.local").lb_policy == Cluster.RING_HASH
    ratings = by_name(clusters, "outbound|9080||ratings.default.svc.cluster.local")
    assert ratings.ring_hash_lb_config.minimum_ring_size.value == 4096
    maglev = by_name(clusters, "outbound|9080|v1|ratings.default.svc.cluster.local")
    assert maglev.lb_policy == Cluster.MAGLEV and maglev.maglev_lb_config.table_size.value == 65537
    (route,) = vhost(topology, RATINGS).routes
    assert [h.connection_properties.source_ip for h in route.route.hash_policy] == [True]
    assert not route.route.retry_policy.retry_host_predicate  # dropped for a hashed destination
    (default,) = vhost(topology, "details.default.svc.cluster.local:9080").routes
    assert default.route.hash_policy[0].header.header_name == "x-user"
    assert default.route.retry_policy.retry_host_predicate  # istiod keeps it on the default route


# -- VirtualService ----------------------------------------------------------------------------


def test_weighted_clusters_without_total_weight():
    (route,) = vhost("reviews-80-20", REVIEWS).routes
    weighted = route.route.weighted_clusters
    assert [(c.name, c.weight.value) for c in weighted.clusters] == [
        ("outbound|9080|v1|reviews.default.svc.cluster.local", 80),
        ("outbound|9080|v2|reviews.default.svc.cluster.local", 20),
    ]
    assert not weighted.HasField("total_weight")
    assert route.decorator.operation == "reviews:9080/*"
    assert as_dict(route.metadata)["filter_metadata"]["istio"]["config"] == (
        "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews"
    )


def test_header_match_route_then_catch_all_and_nothing_appended():
    routes = vhost("reviews-test-v2", REVIEWS).routes
    assert [r.route.cluster for r in routes] == [
        "outbound|9080|v2|reviews.default.svc.cluster.local",
        "outbound|9080|v1|reviews.default.svc.cluster.local",
    ]
    (header,) = routes[0].match.headers
    assert (header.name, header.string_match.exact) == ("end-user", "jason")
    assert routes[0].match.case_sensitive.value is True
    assert not routes[1].match.HasField("case_sensitive")  # the rule without match
    assert "default" not in [r.name for r in routes]


def test_only_match_routes_leave_the_rest_to_404():
    routes = vhost("routing", REVIEWS).routes
    # `port: 9999` match dropped on 9080, the `.*` catch-all ends the list
    assert [r.name for r in routes] == ["pinned.exact", "picky", "", "", ""]
    assert routes[-1].match.safe_regex.regex == ".*"


def test_percentages_scale_as_istiod():
    routes = vhost("fault", RATINGS).routes
    fault = [unpack(r.typed_per_filter_config["envoy.filters.http.fault"], fault_pb2.HTTPFault) for r in routes]
    assert (fault[0].abort.http_status, fault[0].abort.percentage.numerator) == (500, 505000)
    assert fault[0].abort.percentage.denominator == 2  # MILLION
    assert not fault[1].abort.HasField("percentage")  # istiod sends none: Envoy aborts 0 % (istio#36303)
    assert (fault[2].delay.percentage.numerator, fault[2].delay.percentage.denominator) == (1000, 2)
    assert fault[2].delay.fixed_delay.ToSeconds() == 2
    (delayed, _) = vhost("ratings-test-delay", RATINGS, proxy="reviews-v2").routes
    sample = unpack(delayed.typed_per_filter_config["envoy.filters.http.fault"], fault_pb2.HTTPFault)
    assert (sample.delay.percentage.numerator, sample.delay.percentage.denominator) == (1000000, 2)  # 100.0 %
    assert sample.delay.fixed_delay.ToSeconds() == 7
    from .test_model import DEPRECATED_PERCENT

    (old,) = vhost(with_istio(DEPRECATED_PERCENT), RATINGS, proxy="reviews-v2").routes
    deprecated = unpack(old.typed_per_filter_config["envoy.filters.http.fault"], fault_pb2.HTTPFault)
    assert (deprecated.delay.percentage.numerator, deprecated.delay.percentage.denominator) == (100, 0)  # HUNDRED


def test_timeout_and_retries():
    health, main = vhost("timeout-retries", REVIEWS).routes
    assert not health.route.HasField("retry_policy")
    assert health.match.case_sensitive.value is False
    assert health.route.timeout.ToSeconds() == 0 and health.route.HasField("max_grpc_timeout")
    assert main.route.timeout.ToMilliseconds() == main.route.max_grpc_timeout.ToMilliseconds() == 500
    retry = main.route.retry_policy
    assert (retry.num_retries.value, retry.per_try_timeout.ToSeconds()) == (3, 2)
    assert retry.retry_on == "gateway-error,connect-failure,retriable-status-codes"
    assert list(retry.retriable_status_codes) == [503]


def test_rewrite_headers_mirror_and_split_headers():
    pinned, picky, moved, gone, _ = vhost("routing", REVIEWS).routes
    action = pinned.route
    assert pinned.match.path == "/reviews/0" and action.prefix_rewrite == "/reviews/1"
    assert action.host_rewrite_literal == "reviews.internal"
    added = [(h.header.key, h.header.value, h.append_action) for h in pinned.request_headers_to_add]
    assert added == [  # set, then add, each sorted; the `host` set became the authority rewrite
        ("x-pinned", "yes", Header.OVERWRITE_IF_EXISTS_OR_ADD),
        ("x-a", "a", Header.APPEND_IF_EXISTS_OR_ADD),
        ("x-trace", "b", Header.APPEND_IF_EXISTS_OR_ADD),
    ]
    assert list(pinned.request_headers_to_remove) == ["x-debug"]
    (mirror,) = action.request_mirror_policies
    assert mirror.cluster == "outbound|9080|v3|reviews.default.svc.cluster.local"
    assert mirror.runtime_fraction.default_value.numerator == 250000
    assert [h.name for h in picky.match.headers] == ["end-user", "x-b", "x-skip", ":method"]
    assert picky.match.headers[0].present_match and picky.match.headers[2].invert_match
    weighted = picky.route.weighted_clusters.clusters
    assert [c.request_headers_to_add[0].header.value for c in weighted] == ["v1", "v2"]  # v3 (weight 0) dropped
    assert moved.redirect.path_redirect == "/reviews" and moved.redirect.response_code == 1  # FOUND
    assert gone.direct_response.status == 410 and gone.direct_response.body.inline_string == "gone"
    other = vhost("routing", "bookinfo.example.com:9080")
    assert list(other.domains) == ["bookinfo.example.com"] and len(other.routes) == 5


def test_source_labels_are_evaluated_per_proxy():
    topology = with_istio(document("snippets/reviews-v2-for-productpage.yaml"))
    (mine,) = vhost(topology, REVIEWS).routes
    assert mine.route.cluster == "outbound|9080|v2|reviews.default.svc.cluster.local"
    # no route applies to reviews-v2's sidecar: istiod keeps the service's default route there
    (theirs,) = vhost(topology, REVIEWS, proxy="reviews-v2").routes
    assert theirs.name == "default"


def test_gateway_only_virtual_service_does_not_reach_sidecars():
    (route,) = vhost(with_istio(document("snippets/reviews-v2-gateway-only.yaml")), REVIEWS).routes
    assert route.name == "default"


def test_tcp_split_on_the_vip_listener():
    topology = case_topology("tcp-weights")
    listeners = build_listeners(topology, topology.workload("tcp-echo-v1"))
    vip = topology.service("tcp-echo").vip
    (chain,) = by_name(listeners, f"{vip}_9000").filter_chains
    proxy = only_filter(chain, TcpProxy)
    assert proxy.stat_prefix == "tcp-echo.default"
    assert [(c.name, c.weight) for c in proxy.weighted_clusters.clusters] == [
        ("outbound|9000|v1|tcp-echo.default.svc.cluster.local", 80),
        ("outbound|9000|v2|tcp-echo.default.svc.cluster.local", 20),
    ]
    assert as_dict(chain.metadata)["filter_metadata"]["istio"]["config"].endswith("/virtual-service/tcp-echo")


# -- ServiceEntry and egress -------------------------------------------------------------------


def test_service_entry_clusters_by_resolution():
    topology = case_topology("service-entry")
    clusters = build_clusters(topology, topology.workload("productpage-v1"))
    static = by_name(clusters, "outbound|8000||outside.example.com")
    assert static.type == Cluster.EDS
    assert as_dict(static.metadata)["filter_metadata"]["istio"]["external"] is True
    dns = by_name(clusters, "outbound|80||httpbin.org")
    assert dns.type == Cluster.STRICT_DNS
    (endpoint,) = dns.load_assignment.endpoints[0].lb_endpoints
    assert endpoint.endpoint.address.socket_address.address == "httpbin.org"
    passthrough = by_name(clusters, "outbound|9443||anything.example.com")
    assert (passthrough.type, passthrough.lb_policy) == (Cluster.ORIGINAL_DST, Cluster.CLUSTER_PROVIDED)
    assignments = {a.cluster_name: a for a in build_endpoints(topology, topology.workload("productpage-v1"))}
    (outside,) = assignments["outbound|8000||outside.example.com"].endpoints[0].lb_endpoints
    assert "envoy.transport_socket_match" not in as_dict(outside.metadata)["filter_metadata"]  # no sidecar mTLS
    (db,) = assignments["outbound|5432||db.example.com"].endpoints[0].lb_endpoints
    assert as_dict(db.metadata)["filter_metadata"]["envoy.transport_socket_match"] == {"tlsMode": "istio"}


def test_service_entry_listeners_and_vhosts():
    topology = case_topology("service-entry")
    names = [listener.name for listener in build_listeners(topology, topology.workload("productpage-v1"))]
    # HTTP ports of entries get 0.0.0.0_<port>; TCP ones a listener per address, or 0.0.0.0 without
    assert names[:6] == [
        "0.0.0.0_80",
        "192.168.10.5_5432",
        "0.0.0.0_8000",
        f"{topology.service('tcp-echo').vip}_9000",
        "0.0.0.0_9080",
        "0.0.0.0_9443",
    ]
    (route,) = vhost(topology, "httpbin.org:80").routes
    assert route.route.cluster == "outbound|80||httpbin.org" and route.route.timeout.ToSeconds() == 3
    assert list(vhost(topology, "outside.example.com:8000").domains) == ["outside.example.com", "outside.example.com."]


def test_https_service_entries_share_a_listener_routed_by_sni():
    topology = case_topology("sni")
    listeners = build_listeners(topology, topology.workload("productpage-v1"))
    listener = by_name(listeners, "0.0.0.0_443")
    chains = listener.filter_chains
    routed = {tuple(c.filter_chain_match.server_names): only_filter(c, TcpProxy).cluster for c in chains}
    assert routed == {("one.example.com",): "outbound|443||one.example.com",
                      ("two.example.com",): "outbound|443||two.example.com"}
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    assert listener.default_filter_chain.name == "PassthroughFilterChain"
    # the VirtualService's tls route: SNI tls.example.com on 8443 → two.example.com's cluster
    (chain,) = by_name(listeners, "0.0.0.0_8443").filter_chains
    assert list(chain.filter_chain_match.server_names) == ["tls.example.com"]
    assert only_filter(chain, TcpProxy).cluster == "outbound|443||two.example.com"
    assert as_dict(chain.metadata)["filter_metadata"]["istio"]["config"].endswith("/virtual-service/tls-split")


def test_registry_only_blocks_undeclared_hosts_until_a_service_entry_declares_them():
    closed = bookinfo().with_mesh(outbound_traffic_policy=REGISTRY_ONLY)
    (config,) = build_routes(closed, closed.workload("productpage-v1"))
    assert config.virtual_hosts[-1].name == "block_all"
    assert "outside.example.com:9080" not in [v.name for v in config.virtual_hosts]
    topology = case_topology("registry-only")
    assert topology.mesh.outbound_traffic_policy == REGISTRY_ONLY
    (config,) = build_routes(topology, topology.workload("productpage-v1"))
    vhosts = [v.name for v in config.virtual_hosts]
    assert "outside.example.com:9080" in vhosts and vhosts[-1] == "block_all"
    assignments = {a.cluster_name: a for a in build_endpoints(topology, topology.workload("productpage-v1"))}
    (endpoint,) = assignments["outbound|9080||outside.example.com"].endpoints[0].lb_endpoints
    assert endpoint.endpoint.address.socket_address.port_value == 8080  # the endpoint's own port


def test_tls_origination_file_secrets_are_read_as_pilot_agent_would(tmp_path):
    from meshkit.xds import secrets

    topology = case_topology("tls-origination")
    clusters = build_clusters(topology, topology.workload("productpage-v1"))
    assert secrets.referenced_file_secrets(clusters) == [
        "file-root:/etc/certs/test-ca.pem",
        "file-cert:/etc/certs/client.pem~/etc/certs/client.key",
        "file-root:system",
    ]
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    root = secrets.file_secret(f"file-root:{ca}")
    assert root.validation_context.trusted_ca.inline_bytes == ca.read_bytes()
    assert secrets.file_secret(f"file-root:{tmp_path}/missing.pem") is None
    # SIMPLE replaces auto-mTLS for an in-mesh service: one transport socket, no socket matches
    ratings = by_name(clusters, "outbound|9080||ratings.default.svc.cluster.local")
    assert ratings.HasField("transport_socket") and not ratings.transport_socket_matches


def test_delegate_rules_are_merged_into_the_root_as_istiod_merges_them():
    routes = vhost("delegate", REVIEWS).routes
    summary = [(r.name, r.match.prefix, [h.name for h in r.match.headers], r.route.cluster.split("|")[2],
                r.route.timeout.ToSeconds()) for r in routes]
    assert summary == [
        ("reviews-api-jason", "/reviews/0", ["end-user"], "v3", 3),  # refines the root's prefix
        ("reviews-api", "/reviews/", [], "v2", 3),  # the delegate's catch-all takes the root's match
        ("", "/", [], "v1", 0),  # /other conflicted with /reviews/ and was dropped
    ]


def test_export_to_hides_config_from_other_namespaces():
    topology = case_topology("export-to")
    resources = generate(topology, topology.workload("productpage-v1"))
    clusters = {c.name: c for c in resources[CLUSTER]}
    assert "outbound|8000||public.example.com" in clusters and "outbound|8000||private.example.com" not in clusters
    assert clusters["outbound|9080||ratings.default.svc.cluster.local"].lb_policy == Cluster.LEAST_REQUEST
    vhosts = [v for c in resources[ROUTE] for v in c.virtual_hosts]
    (route,) = by_name(vhosts, REVIEWS).routes
    assert route.name == "default"  # the VirtualService is exported to `other` only
    outsider = replace(topology.workload("productpage-v1"), namespace="other")
    vhosts = [v for c in generate(topology, outsider)[ROUTE] for v in c.virtual_hosts]
    (route,) = by_name(vhosts, REVIEWS).routes
    assert route.route.cluster == "outbound|9080|v1|reviews.default.svc.cluster.local"  # seen from `other`
