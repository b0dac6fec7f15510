"""CDS translation: Istio's cluster names, types and defaults, in istiod's order."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import json_format

from meshkit.model import bookinfo
from meshkit.xds.clusters import build_clusters

from .xds_views import by_name, unpack

Cluster = cluster_pb2.Cluster
MESH = bookinfo()


def clusters_of(deployment: str, topology=MESH):
    return build_clusters(topology, topology.workload(deployment))


def test_cluster_names_and_order():
    assert [c.name for c in clusters_of("reviews-v2")] == [
        "outbound|9080||details.default.svc.cluster.local",
        "outbound|9080||productpage.default.svc.cluster.local",
        "outbound|9080||ratings.default.svc.cluster.local",
        "outbound|9080||reviews.default.svc.cluster.local",
        "outbound|9000||tcp-echo.default.svc.cluster.local",
        "BlackHoleCluster",
        "PassthroughCluster",
        "inbound|9080||",
        "InboundPassthroughCluster",
    ]
    assert [c.name for c in clusters_of("tcp-echo-v1")][-2] == "inbound|9000||"


def test_outbound_cluster_is_eds_over_ads():
    name = "outbound|9080||reviews.default.svc.cluster.local"
    cluster = by_name(clusters_of("productpage-v1"), name)
    assert cluster.type == Cluster.EDS
    assert cluster.eds_cluster_config.service_name == name
    source = cluster.eds_cluster_config.eds_config
    assert source.HasField("ads") and source.HasField("initial_fetch_timeout")
    assert cluster.connect_timeout.ToSeconds() == 10
    assert cluster.lb_policy == Cluster.LEAST_REQUEST
    assert cluster.alt_stat_name == name + ";"
    (thresholds,) = cluster.circuit_breakers.thresholds
    assert thresholds.max_connections.value == thresholds.max_requests.value == 4294967295
    assert thresholds.max_pending_requests.value == thresholds.max_retries.value == 4294967295
    assert json_format.MessageToDict(cluster.metadata)["filterMetadata"]["istio"] == {
        "services": [{"host": "reviews.default.svc.cluster.local", "name": "reviews", "namespace": "default"}]
    }


def test_mesh_connect_timeout_reaches_every_cluster():
    slow = MESH.with_mesh(connect_timeout_s=2.5)
    assert {c.connect_timeout.ToNanoseconds() for c in clusters_of("productpage-v1", slow)} == {2_500_000_000}


def test_catch_all_clusters():
    clusters = clusters_of("productpage-v1")
    blackhole = by_name(clusters, "BlackHoleCluster")
    assert blackhole.type == Cluster.STATIC and not blackhole.HasField("load_assignment")
    passthrough = by_name(clusters, "PassthroughCluster")
    assert (passthrough.type, passthrough.lb_policy) == (Cluster.ORIGINAL_DST, Cluster.CLUSTER_PROVIDED)
    options = unpack(
        passthrough.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"],
        http_protocol_options_pb2.HttpProtocolOptions,
    )
    assert options.HasField("use_downstream_protocol_config")
    assert options.common_http_protocol_options.idle_timeout.ToSeconds() == 300


def test_inbound_clusters_forward_from_127_0_0_6():
    clusters = clusters_of("productpage-v1")
    for name in ("inbound|9080||", "InboundPassthroughCluster"):
        cluster = by_name(clusters, name)
        assert (cluster.type, cluster.lb_policy) == (Cluster.ORIGINAL_DST, Cluster.CLUSTER_PROVIDED)
        assert cluster.upstream_bind_config.source_address.address == "127.0.0.6"
