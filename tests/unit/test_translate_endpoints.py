"""EDS translation and the whole per-proxy resource set."""

from __future__ import annotations

from envoy.config.core.v3 import health_check_pb2
from google.protobuf import json_format

from meshkit.model import bookinfo
from meshkit.xds.clusters import build_clusters
from meshkit.xds.endpoints import build_endpoints
from meshkit.xds.generate import generate
from meshkit.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, resource_name

MESH = bookinfo()
PRODUCTPAGE = MESH.workload("productpage-v1")


def test_one_load_assignment_per_eds_cluster():
    eds = [c.name for c in build_clusters(MESH, PRODUCTPAGE) if c.HasField("eds_cluster_config")]
    assert [cla.cluster_name for cla in build_endpoints(MESH, PRODUCTPAGE)] == eds


def test_endpoints_are_pod_ips_on_the_target_port():
    reviews = next(
        cla
        for cla in build_endpoints(MESH, PRODUCTPAGE)
        if cla.cluster_name.endswith("|reviews.default.svc.cluster.local")
    )
    (locality,) = reviews.endpoints
    pods = MESH.endpoints(MESH.service("reviews"))
    assert [
        (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
        for e in locality.lb_endpoints
    ] == [(p.ip, 9080) for p in pods]
    assert {e.health_status for e in locality.lb_endpoints} == {health_check_pb2.HEALTHY}


def test_endpoint_metadata_carries_tls_mode_and_workload_labels():
    reviews = MESH.workload("reviews-v2")
    cla = next(c for c in build_endpoints(MESH, PRODUCTPAGE) if "reviews" in c.cluster_name)
    endpoint = next(e for e in cla.endpoints[0].lb_endpoints if e.endpoint.address.socket_address.address == reviews.ip)
    metadata = json_format.MessageToDict(endpoint.metadata)["filterMetadata"]
    assert metadata == {
        "envoy.transport_socket_match": {"tlsMode": "istio"},
        "istio": {"workload": "reviews-v2;default;reviews;v2;Kubernetes"},
    }


def test_generate_keys_by_type_url_and_is_deterministic():
    first, second = generate(MESH, PRODUCTPAGE), generate(MESH, PRODUCTPAGE)
    assert list(first) == [CLUSTER, ENDPOINT, LISTENER, ROUTE]
    for type_url, messages in first.items():
        names = [resource_name(m) for m in messages]
        assert len(names) == len(set(names)), type_url
        assert [m.SerializeToString(deterministic=True) for m in messages] == [
            m.SerializeToString(deterministic=True) for m in second[type_url]
        ]
