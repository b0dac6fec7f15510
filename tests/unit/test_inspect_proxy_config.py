"""istioctl proxy-config tables over real Envoy 1.40 dumps (tests/fixtures/envoy, see generate.py)."""

from __future__ import annotations

import copy

import pytest

from meshkit.inspect import proxy_config as pc
from meshkit.inspect.dump import to_camel
from meshkit.inspect.tables import render

REVIEWS = "reviews.default.svc.cluster.local"


def rows(df) -> list[list[str]]:
    return df.values.tolist()


def test_listener_rows_match_istioctl(config_dump):
    table = pc.listeners(config_dump)
    assert list(table.columns) == ["ADDRESSES", "PORT", "MATCH", "DESTINATION"]
    assert rows(table) == [
        ["10.96.0.20", "3306", "ALL", "Cluster: outbound|3306||mysqldb.default.svc.cluster.local"],
        ["0.0.0.0", "9080", "Trans: raw_buffer; App: http/1.1,h2c", "Route: 9080"],
        ["0.0.0.0", "9080", "ALL", "PassthroughCluster"],
        ["10.96.0.10", "9153", "Trans: raw_buffer; App: http/1.1,h2c",
         "Route: kube-dns.kube-system.svc.cluster.local:9153"],
        ["10.96.0.10", "9153", "ALL", "Cluster: outbound|9153||kube-dns.kube-system.svc.cluster.local"],
        ["0.0.0.0", "15001", "ALL", "PassthroughCluster"],
        ["0.0.0.0", "15001", "Addr: *:15001", "Non-HTTP/Non-TCP"],
        ["0.0.0.0", "15006", "Addr: *:15006", "Non-HTTP/Non-TCP"],
        ["0.0.0.0", "15006", "Trans: tls; App: istio-http/1.0,istio-http/1.1,istio-h2", "InboundPassthroughCluster"],
        ["0.0.0.0", "15006", "Trans: raw_buffer; App: http/1.1,h2c", "InboundPassthroughCluster"],
        ["0.0.0.0", "15006", "Trans: tls; App: TCP TLS", "InboundPassthroughCluster"],
        ["0.0.0.0", "15006", "Trans: raw_buffer", "InboundPassthroughCluster"],
        ["0.0.0.0", "15006", "Trans: tls", "InboundPassthroughCluster"],
        ["0.0.0.0", "15006",
         "Trans: tls; App: istio,istio-peer-exchange,istio-http/1.0,istio-http/1.1,istio-h2; Addr: *:9080",
         "Cluster: inbound|9080||"],
        ["0.0.0.0", "15006", "Trans: raw_buffer; Addr: *:9080", "Cluster: inbound|9080||"],
        ["0.0.0.0", "15021", "ALL", "Inline Route: /healthz/ready*"],
        ["0.0.0.0", "15090", "ALL", "Inline Route: /stats/prometheus*"],
    ]


def test_listener_render_is_tabwriter_padding_1(config_dump):
    assert render(pc.listeners(config_dump, port=15001)) == (
        "ADDRESSES PORT  MATCH         DESTINATION\n"
        "0.0.0.0   15001 ALL           PassthroughCluster\n"
        "0.0.0.0   15001 Addr: *:15001 Non-HTTP/Non-TCP"
    )


@pytest.mark.parametrize(("filters", "ports"), [
    ({"port": 9080}, {"9080"}),
    ({"address": "10.96.0.10"}, {"9153"}),
    ({"address": "10.96.0.10", "port": 3306}, set()),
    ({"type": "http"}, {"15021", "15090"}),
    ({"type": "HTTP+TCP"}, {"9080", "9153", "15006"}),
    ({"type": "TCP"}, {"3306", "15001"}),
    ({"port": None, "address": None, "type": None}, {"3306", "9080", "9153", "15001", "15006", "15021", "15090"}),
])
def test_listener_filters(config_dump, filters, ports):
    assert set(pc.listeners(config_dump, **filters)["PORT"]) == ports


def test_listener_prefix_ranges_sni_and_alpn_shorthands():
    chains = [
        {"filter_chain_match": {"prefix_ranges": [{"address_prefix": "0.0.0.0", "prefix_len": 0}],
                                "destination_port": 8443, "server_names": ["a.example", "b.example"]},
         "filters": [{"name": pc.TCP_PROXY, "typed_config": {"cluster": "outbound|8443||a.example"}}]},
        {"filter_chain_match": {"application_protocols": ["http/1.0", "http/1.1", "h2c"]},
         "filters": [{"name": pc.HCM, "typed_config": {"route_config": {"virtual_hosts": [
             {"domains": ["a.example", "b"], "routes": [{"match": {"path": "/x"}}, {"match": {"prefix": "/y"}}]},
             {"domains": ["*"], "routes": [{"match": {"safe_regex": {"regex": "^/z$"}}}]}]}}}]},
        {"filter_chain_match": {"application_protocols": ["istio", "istio-http/1.0", "istio-http/1.1",
                                                          "istio-h2"]},
         "filters": [{"name": pc.HCM, "typed_config": {}}]},
    ]
    listener = {"name": "x", "address": {"socket_address": {"address": "10.0.0.1", "port_value": 8443}},
                "additional_addresses": [{"address": {"socket_address": {"address": "fd00::1"}}}],
                "filter_chains": chains}
    dump = {"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                         "static_listeners": [{"listener": listener}]}]}
    assert rows(pc.listeners(dump, address="FD00::1")) == [  # by DESTINATION, descending
        ["10.0.0.1,fd00::1", "8443", "App: HTTP", "Inline Route: a.example/b /x, /y*; regex ^/z$"],
        ["10.0.0.1,fd00::1", "8443", "App: Istio HTTP Plain", "HTTP"],
        ["10.0.0.1,fd00::1", "8443", "SNI: a.example,b.example; Addr: 0.0.0.0/0:8443",
         "Cluster: outbound|8443||a.example"],
    ]


def test_route_rows_match_istioctl(config_dump):
    # Envoy lists RDS configs in hash order; istioctl's sort only orders numeric names among
    # themselves, so where kube-dns's row lands depends on the dump (see the sorting test).
    vs = "reviews.default"
    table = rows(pc.routes(config_dump))
    kube_dns = "kube-dns.kube-system.svc.cluster.local:9153"
    assert table.pop(next(i for i, row in enumerate(table) if row[0] == kube_dns)) == [
        kube_dns, kube_dns, "*", "/*", ""]
    assert table == [
        ["9080", "details.default.svc.cluster.local:9080", "details, details.default + 1 more...", "/*", ""],
        ["9080", "productpage.default.svc.cluster.local:9080", "productpage, productpage.default + 1 more...",
         "/*", ""],
        ["9080", "ratings.default.svc.cluster.local:9080", "ratings, ratings.default + 1 more...", "/ratings/0",
         "ratings.default"],
        ["9080", "ratings.default.svc.cluster.local:9080", "ratings, ratings.default + 1 more...",
         "regex /ratings/[0-9]+", "ratings.default"],
        ["9080", f"{REVIEWS}:9080", "reviews, reviews.default + 1 more...", "/*", vs],
        ["9080", f"{REVIEWS}:9080", "reviews, reviews.default + 1 more...", "/*", vs],
        ["InboundPassthroughCluster", "inbound|http|0", "*", "/*", ""],
        ["", "backend", "*", "/healthz/ready*", ""],
        ["", "backend", "*", "/stats/prometheus*", ""],
        ["InboundPassthroughCluster", "inbound|http|0", "*", "/*", ""],
        ["inbound|9080||", "inbound|http|9080", "*", "/*", ""],
        ["inbound|9080||", "inbound|http|9080", "*", "/*", ""],
    ]


def test_route_name_filter_and_allow_any_hidden(config_dump):
    table = pc.routes(config_dump, name="9080")
    assert set(table["NAME"]) == {"9080"}
    assert "allow_any" not in set(table["VHOST NAME"])
    assert pc.routes(config_dump, name="nope").empty


def test_route_render_padding_5_and_empty_vhost_404():
    config = {"name": "80", "virtual_hosts": [
        {"name": "httpbin.org:80", "domains": ["httpbin.org"]},
        {"name": "x:80", "domains": ["x.ns.svc.cluster.local", "x.ns", "x.ns.svc", "x.ns:80", "10.0.0.9"],
         "routes": [{"match": {"path_separated_prefix": "/api"},
                     "metadata": {"filter_metadata": {"istio": {"config": "/some/other/path"}}}}]}]}
    dump = {"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
                         "dynamic_route_configs": [{"route_config": config}]}]}
    assert render(pc.routes(dump)) == (
        "NAME     VHOST NAME         DOMAINS            MATCH               VIRTUAL SERVICE\n"
        "80       httpbin.org:80     httpbin.org        /*                  404\n"
        "80       x:80               x.ns, 10.0.0.9     PathPrefix:/api     <unknown>"
    )


def test_route_configs_numeric_names_sort_among_numeric_neighbours():
    names = ["9080", "80", "b.ns.svc.cluster.local:8000", "443", "15010", "inbound|80||"]
    dump = {"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs": [
        {"route_config": {"name": n, "virtual_hosts": [{"name": "v", "domains": ["*"]}]}} for n in names]}]}
    assert list(pc.routes(dump)["NAME"]) == ["80", "9080", "b.ns.svc.cluster.local:8000", "443", "15010",
                                             "inbound|80||"]


def test_cluster_rows_match_istioctl(config_dump):
    table = pc.clusters(config_dump)
    assert list(table.columns) == ["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"]
    assert rows(table) == [
        ["", "9080", "-", "inbound", "ORIGINAL_DST", ""],
        ["BlackHoleCluster", "-", "-", "-", "STATIC", ""],
        ["InboundPassthroughCluster", "-", "-", "-", "ORIGINAL_DST", ""],
        ["PassthroughCluster", "-", "-", "-", "ORIGINAL_DST", ""],
        ["agent", "-", "-", "-", "STATIC", ""],
        ["details.default.svc.cluster.local", "9080", "-", "outbound", "EDS", ""],
        ["kube-dns.kube-system.svc.cluster.local", "9153", "-", "outbound", "EDS", ""],
        ["mysqldb.default.svc.cluster.local", "3306", "-", "outbound", "EDS", ""],
        ["productpage.default.svc.cluster.local", "9080", "-", "outbound", "EDS", ""],
        ["prometheus_stats", "-", "-", "-", "STATIC", ""],
        ["ratings.default.svc.cluster.local", "9080", "-", "outbound", "EDS", ""],
        [REVIEWS, "9080", "-", "outbound", "EDS", "reviews.default"],
        [REVIEWS, "9080", "v1", "outbound", "EDS", "reviews.default"],
        [REVIEWS, "9080", "v2", "outbound", "EDS", "reviews.default"],
        [REVIEWS, "9080", "v3", "outbound", "EDS", "reviews.default"],
        ["sds-grpc", "-", "-", "-", "STATIC", ""],
        ["xds-grpc", "-", "-", "-", "STATIC", ""],
    ]


@pytest.mark.parametrize(("filters", "expected"), [
    ({"fqdn": "reviews", "subset": "v2"}, [[REVIEWS, "9080", "v2", "outbound", "EDS", "reviews.default"]]),
    ({"direction": "inbound"}, [["", "9080", "-", "inbound", "ORIGINAL_DST", ""]]),
    ({"port": 3306}, [["mysqldb.default.svc.cluster.local", "3306", "-", "outbound", "EDS", ""]]),
])
def test_cluster_filters(config_dump, filters, expected):
    assert rows(pc.clusters(config_dump, **filters)) == expected


def test_cluster_render_keeps_trailing_padding_of_empty_last_cell(config_dump):
    assert render(pc.clusters(config_dump, fqdn="reviews", subset="v1")).splitlines() == [
        "SERVICE FQDN                          PORT     SUBSET     DIRECTION     TYPE     DESTINATION RULE",
        f"{REVIEWS}     9080     v1         outbound      EDS      reviews.default",
    ]
    assert render(pc.clusters(config_dump, fqdn="Passthrough")).splitlines()[1] == (
        "InboundPassthroughCluster     -        -          -             ORIGINAL_DST     ")


def test_endpoint_rows_match_istioctl(clusters_json):
    table = pc.endpoints(clusters_json)
    assert list(table.columns) == ["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"]
    assert rows(table)[:5] == [
        ["10.244.0.11:9080", "HEALTHY", "OK", "outbound|9080||details.default.svc.cluster.local"],
        ["10.244.0.12:9080", "HEALTHY", "OK", "outbound|9080||productpage.default.svc.cluster.local"],
        ["10.244.0.13:9080", "UNHEALTHY", "OK", "outbound|9080||ratings.default.svc.cluster.local"],
        ["10.244.0.14:9080", "HEALTHY", "OK", f"outbound|9080|v1|{REVIEWS}"],
        ["10.244.0.14:9080", "HEALTHY", "OK", f"outbound|9080||{REVIEWS}"],
    ]
    # Sorted by address as a string: "10.244.0.2" after "10.244.0.16"; pipes print as unix://.
    assert list(table["ENDPOINT"])[8:] == [
        "10.244.0.16:9080", "10.244.0.2:9153", "10.244.0.30:3306", "127.0.0.1:15000", "127.0.0.1:15020",
        "unix://./etc/istio/proxy/XDS", "unix://./var/run/secrets/workload-spiffe-uds/socket"]


@pytest.mark.parametrize(("filters", "endpoints"), [
    ({"status": "unhealthy"}, ["10.244.0.13:9080"]),
    ({"cluster": f"OUTBOUND|9080|V2|{REVIEWS}"}, ["10.244.0.15:9080"]),
    ({"address": "127.0.0.1", "port": 15020}, ["127.0.0.1:15020"]),
])
def test_endpoint_filters(clusters_json, filters, endpoints):
    assert list(pc.endpoints(clusters_json, **filters)["ENDPOINT"]) == endpoints


def test_endpoint_outlier_and_internal_address():
    data = {"cluster_statuses": [{"name": "c", "host_statuses": [
        {"address": {"envoy_internal_address": {"server_listener_name": "main_internal", "endpoint_id": "e1"}},
         "health_status": {"eds_health_status": "DRAINING", "failed_outlier_check": True}},
        {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}}, "health_status": {}}]}]}
    assert rows(pc.endpoints(data)) == [
        ["10.0.0.1:80", "UNKNOWN", "OK", "c"], ["envoy://main_internal/e1", "DRAINING", "FAILED", "c"]]


def test_resources_are_the_filtered_protos_in_camel_case(config_dump):
    [cluster] = pc.resources(config_dump, "clusters", fqdn="reviews", subset="v1")
    assert "@type" not in cluster
    assert cluster["name"] == f"outbound|9080|v1|{REVIEWS}"
    assert cluster["edsClusterConfig"]["serviceName"] == cluster["name"]
    assert cluster["metadata"]["filterMetadata"]["istio"]["config"].endswith("/destination-rule/reviews")
    [listener] = pc.resources(config_dump, "listeners", port=15001)
    assert listener["useOriginalDst"] is True
    proxy = listener["filterChains"][0]["filters"][0]["typedConfig"]
    assert proxy["@type"].endswith(".TcpProxy") and proxy["statPrefix"] == "BlackHoleCluster"
    assert [r["name"] for r in pc.resources(config_dump, "routes", name="9080")] == ["9080"]


def test_resources_endpoints_keep_clusters_with_a_matching_host(clusters_json):
    found = pc.resources(clusters_json, "endpoints", status="UNHEALTHY")
    assert [c["name"] for c in found] == ["outbound|9080||ratings.default.svc.cluster.local"]
    assert found[0]["hostStatuses"][0]["healthStatus"]["edsHealthStatus"] == "UNHEALTHY"


def test_resources_reject_unknown_kind_or_filter(config_dump):
    with pytest.raises(ValueError, match="unknown kind"):
        pc.resources(config_dump, "secrets")
    with pytest.raises(TypeError, match="fqdn"):
        pc.resources(config_dump, "listeners", fqdn="x")


@pytest.mark.parametrize(("snake", "camel"), [
    pytest.param({"http2_protocol_options": {}},
                 {"http2ProtocolOptions": {}}, id="field-name"),
    pytest.param({"metadata": {"filter_metadata": {"istio": {"some_key": 1}}, "typed_filter_metadata": {
                  "envoy.lb": {"@type": "type.googleapis.com/x.Y", "hash_key": "k"}}}},
                 {"metadata": {"filterMetadata": {"istio": {"some_key": 1}}, "typedFilterMetadata": {
                  "envoy.lb": {"@type": "type.googleapis.com/x.Y", "hashKey": "k"}}}}, id="metadata-struct-and-map"),
    pytest.param({"typed_per_filter_config": {
                  "envoy.filters.http.fault": {"@type": "t", "abort": {"http_status": 503}}}},
                 {"typedPerFilterConfig": {
                  "envoy.filters.http.fault": {"@type": "t", "abort": {"httpStatus": 503}}}},
                 id="per-filter-config-map"),
    pytest.param({"rules": {"policies": {"ns[foo]-policy[a_b]": {"permissions": [{"any": True}]}}}},
                 {"rules": {"policies": {"ns[foo]-policy[a_b]": {"permissions": [{"any": True}]}}}},
                 id="rbac-policy-names"),
    pytest.param({"transport_socket_matches": [{"match": {"tlsMode": "istio", "a_b": 1}, "transport_socket": {}}]},
                 {"transportSocketMatches": [{"match": {"tlsMode": "istio", "a_b": 1}, "transportSocket": {}}]},
                 id="transport-socket-match-struct"),
    pytest.param({"node": {"metadata": {"ISTIO_VERSION": "1.26.0"}}},
                 {"node": {"metadata": {"ISTIO_VERSION": "1.26.0"}}}, id="node-metadata-struct"),
    pytest.param({"typed_config": {"@type": "type.googleapis.com/udpa.type.v1.TypedStruct", "type_url": "u",
                                   "value": {"keep_me": 1}}},
                 {"typedConfig": {"@type": "type.googleapis.com/udpa.type.v1.TypedStruct", "typeUrl": "u",
                                  "value": {"keep_me": 1}}}, id="typed-struct-value"),
])
def test_to_camel_renames_fields_not_data(snake, camel):
    before = copy.deepcopy(snake)
    assert to_camel(snake) == camel
    assert snake == before


@pytest.mark.parametrize(("domains", "shown"), [
    ([], ""),
    (["example.com"], "example.com"),
    (["example.com", "example.com:8080"], "example.com"),
    (["example.com", "example.com:8080", "1.2.3.4", "1.2.3.4:8080"], "example.com, 1.2.3.4"),
    (["example.com", "[fd00:10:96::7fc7]", "[fd00:10:96::7fc7]:8080"], "example.com, [fd00:10:96::7fc7]"),
    (["example.com", "www.example.com", "www.example.com:8080", "[fd00:10:96::7fc7]"],
     "example.com, www.example.com + 1 more..."),
    ([f"{REVIEWS}.", REVIEWS, "reviews", "reviews.default.svc", "reviews.default", "10.96.0.14"],
     f"{REVIEWS}., reviews + 2 more..."),  # 1.27+ trailing-dot FQDN is not unexpanded
])
def test_route_domains_cell(domains, shown):
    config = {"name": "80", "virtual_hosts": [{"name": "v", "domains": domains, "routes": [{"match": {}}]}]}
    dump = {"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
                         "static_route_configs": [{"route_config": config}]}]}
    assert pc.routes(dump)["DOMAINS"].tolist() == [shown]
