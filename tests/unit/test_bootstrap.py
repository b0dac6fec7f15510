"""The sidecar bootstrap is a valid Envoy v3 Bootstrap that Envoy 1.40 itself accepts."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2

# The Any payloads the bootstrap carries must be known to the descriptor pool for a strict parse.
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2  # noqa: F401
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401
from google.protobuf import json_format

from meshkit.constants import xds_variant
from meshkit.model import bookinfo
from meshkit.runtime.bootstrap import ENVOY_XDS_PIPE, XdsAddress, envoy_bootstrap
from meshkit.runtime.envoy import find_envoy
from meshkit.runtime.errors import RuntimeProblem

XDS = XdsAddress("10.244.7.1", 15010)


@pytest.fixture
def reviews_v2():
    return bookinfo("10.244.7.0/24").workload("reviews-v2")


def test_parses_strictly_into_bootstrap(reviews_v2):
    message = json_format.ParseDict(envoy_bootstrap(reviews_v2, XDS), bootstrap_pb2.Bootstrap())
    assert message.node.id == reviews_v2.node_id
    assert message.node.id.startswith("sidecar~10.244.7.")
    assert message.node.cluster == "reviews.default"
    assert message.admin.address.socket_address.address == "127.0.0.1"
    assert message.admin.address.socket_address.port_value == 15000


def test_node_metadata_as_istio(reviews_v2):
    meta = envoy_bootstrap(reviews_v2, XDS, istio_version="1.99.0")["node"]["metadata"]
    assert meta["NAMESPACE"] == "default"
    assert meta["LABELS"] == {"app": "reviews", "version": "v2"}
    assert meta["INSTANCE_IPS"] == reviews_v2.ip
    assert meta["WORKLOAD_NAME"] == "reviews-v2"
    assert meta["SERVICE_ACCOUNT"] == "bookinfo-reviews"
    assert meta["INTERCEPTION_MODE"] == "REDIRECT"
    assert meta["CLUSTER_ID"] == "Kubernetes"
    assert meta["ISTIO_VERSION"] == "1.99.0"


def test_ads_and_static_resources(reviews_v2):
    boot = envoy_bootstrap(reviews_v2, XDS)
    dynamic = boot["dynamic_resources"]
    assert dynamic["ads_config"]["api_type"] == "DELTA_GRPC"  # Istio's default since 1.22
    assert dynamic["ads_config"]["set_node_on_first_message_only"] is True
    for source in ("lds_config", "cds_config"):
        assert dynamic[source] == {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}
    clusters = {c["name"]: c for c in boot["static_resources"]["clusters"]}
    assert set(clusters) == {"xds-grpc", "prometheus_stats"}
    xds_address = clusters["xds-grpc"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert xds_address["address"]["socket_address"] == {
        "protocol": "TCP", "address": "10.244.7.1", "port_value": 15010,
    }
    assert [listener["name"] for listener in boot["static_resources"]["listeners"]] == ["0.0.0.0_15090"]


def test_the_workload_chooses_delta_or_state_of_the_world(reviews_v2):
    sotw = envoy_bootstrap(replace(reviews_v2, xds="SOTW"), XDS)["dynamic_resources"]["ads_config"]
    delta = envoy_bootstrap(replace(reviews_v2, xds="DELTA"), XDS)["dynamic_resources"]["ads_config"]
    assert (sotw["api_type"], delta["api_type"]) == ("GRPC", "DELTA_GRPC")


def test_unknown_xds_variants_are_refused_with_the_choices(monkeypatch):
    monkeypatch.delenv("MESHKIT_XDS", raising=False)
    assert (xds_variant(), xds_variant("sotw"), xds_variant("Delta")) == ("DELTA", "SOTW", "DELTA")
    monkeypatch.setenv("MESHKIT_XDS", "sotw")
    assert xds_variant() == "SOTW"
    with pytest.raises(ValueError, match="choose delta or sotw"):
        xds_variant("incremental")


def test_envoy_validates_it(reviews_v2, tmp_path):
    try:
        envoy = find_envoy()
    except RuntimeProblem as problem:
        pytest.skip(str(problem))
    config = tmp_path / "bootstrap.json"
    config.write_text(json.dumps(envoy_bootstrap(reviews_v2, XDS)))
    result = subprocess.run(
        [str(envoy), "--mode", "validate", "-c", str(config), "--log-level", "error"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_local_sidecar_dials_its_pods_socket_and_envoy_validates_it(reviews_v2, tmp_path):
    """As in an Istio pod: `xds-grpc` is a pipe to ./etc/istio/proxy/XDS; admin may be a 0600 pipe too."""
    boot = envoy_bootstrap(reviews_v2, XdsAddress(path=ENVOY_XDS_PIPE), admin_pipe="./admin.sock")
    clusters = {c["name"]: c for c in boot["static_resources"]["clusters"]}
    [xds] = clusters["xds-grpc"]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert xds["endpoint"]["address"] == {"pipe": {"path": "./etc/istio/proxy/XDS"}}
    assert "upstream_connection_options" not in clusters["xds-grpc"]  # no TCP keepalive on a unix socket
    assert boot["admin"]["address"] == {"pipe": {"path": "./admin.sock", "mode": 0o600}}
    [stats] = clusters["prometheus_stats"]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert stats["endpoint"]["address"] == {"pipe": {"path": "./admin.sock"}}  # 15090 reads the admin socket
    json_format.ParseDict(boot, bootstrap_pb2.Bootstrap())
    try:
        envoy = find_envoy()
    except RuntimeProblem as problem:
        pytest.skip(str(problem))
    config = tmp_path / "bootstrap.json"
    config.write_text(json.dumps(boot))
    result = subprocess.run([str(envoy), "--mode", "validate", "-c", str(config), "--log-level", "error"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
