"""Real Envoy 1.40 accepts every generated resource (`envoy --mode validate`: no ports, no connections).

Validate mode builds listeners, filter chains, HCMs, routes and clusters exactly as a running
Envoy would, but only from the bootstrap. So each proxy's translation is checked twice:

- *as pushed*: every listener and cluster unchanged as static resources, next to an ADS config
  (a never-contacted pipe) so the RDS and EDS subscriptions they name are checked too;
- *inlined*: each RDS name replaced by the generated RouteConfiguration of that name, each EDS
  cluster made STATIC with its generated ClusterLoadAssignment, and each SDS reference
  (`default`, `ROOTCA`) answered by the generated Secret as a static secret, so every route
  config, load assignment and secret goes through Envoy's validation as well (with the SDS
  references left on ADS, Envoy 1.40's validate mode crashes on STATIC clusters whose endpoints
  pick a TLS transport socket).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TypeVar

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

from meshkit.model import ALLOW_ANY, REGISTRY_ONLY, bookinfo
from meshkit.runtime.envoy import find_envoy
from meshkit.runtime.errors import RuntimeProblem
from meshkit.xds import filters, secrets
from meshkit.xds.ca import CertificateAuthority
from meshkit.xds.generate import generate
from meshkit.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET

from .test_translate_istio import CASES, case_resources
from .xds_views import HCM

ADS_CLUSTER = "xds-grpc"
M = TypeVar("M", bound=Message)
CA = CertificateAuthority()


@pytest.fixture(scope="module")
def envoy() -> Path:
    try:
        return find_envoy()
    except RuntimeProblem as problem:
        pytest.skip(str(problem))


def as_dict(message: Message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def static_sds(value: object, names: set[str]) -> object:
    """The JSON with every SDS reference's `sds_config` dropped: a bare name is a static secret."""
    if isinstance(value, dict):
        return {k: static_sds(v, names) for k, v in value.items()
                if not (k == "sds_config" and value.get("name") in names)}
    if isinstance(value, list):
        return [static_sds(v, names) for v in value]
    return value


def workload_secrets(clusters: list[Message] = ()) -> list[Message]:
    """`default` and `ROOTCA`, plus what pilot-agent would read for each DestinationRule file secret."""
    cert = CA.issue("default", "bookinfo-productpage")
    out = secrets.build_secrets(cert, CA.root_pem)
    for name in secrets.referenced_file_secrets(clusters):
        root = name.startswith(secrets.FILE_ROOT)
        secret = secrets.root_secret(CA.root_pem) if root else secrets.workload_secret(cert)
        secret.name = name
        out.append(secret)
    return out


def bootstrap(listeners: list[Message], clusters: list[Message], secrets_: list[Message] | None = None) -> dict:
    """A bootstrap holding the resources statically, with an ADS source that is never contacted."""
    ads = {
        "name": ADS_CLUSTER,
        "type": "STATIC",
        "load_assignment": {
            "cluster_name": ADS_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"pipe": {"path": "/nonexistent/xds"}}}}]}],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
    }
    config = {
        "node": {"id": "sidecar~10.244.0.10~validate.default~default.svc.cluster.local", "cluster": "validate"},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": ADS_CLUSTER}}],
            }
        },
        "static_resources": {
            "listeners": [as_dict(m) for m in listeners],
            "clusters": [*(as_dict(m) for m in clusters), ads],
        },
    }
    if secrets_ is not None:
        config = static_sds(config, {s.name for s in secrets_})
        config["static_resources"]["secrets"] = [as_dict(m) for m in secrets_]
    return config


def copies(messages: list[M]) -> list[M]:
    """Deep copies of the messages, to edit without touching the generated ones."""
    out = []
    for message in messages:
        copy = type(message)()
        copy.CopyFrom(message)
        out.append(copy)
    return out


def inline_routes(listeners: list[Message], routes: list[Message]) -> list[Message]:
    """Copies of the listeners whose HCMs carry the named route config inline instead of RDS."""
    by_name = {r.name: r for r in routes}
    out = copies(listeners)
    for listener in out:
        for chain in [*listener.filter_chains, listener.default_filter_chain]:
            for network_filter in chain.filters:
                if network_filter.name != filters.HCM:
                    continue
                hcm = HCM()
                network_filter.typed_config.Unpack(hcm)
                if hcm.HasField("rds"):
                    hcm.route_config.CopyFrom(by_name.pop(hcm.rds.route_config_name))
                    network_filter.typed_config.Pack(hcm)
    assert not by_name, f"route configs no listener asks for: {sorted(by_name)}"
    return out


def static_endpoints(clusters: list[Message], assignments: list[Message]) -> list[Message]:
    """Copies of the clusters with each EDS cluster turned STATIC around its load assignment."""
    by_name = {a.cluster_name: a for a in assignments}
    out = copies(clusters)
    for cluster in out:
        if cluster.type == cluster_pb2.Cluster.EDS:
            cluster.load_assignment.CopyFrom(by_name.pop(cluster.eds_cluster_config.service_name))
            cluster.ClearField("eds_cluster_config")
            cluster.type = cluster_pb2.Cluster.STATIC
    assert not by_name, f"load assignments for no cluster: {sorted(by_name)}"
    return out


def validate(envoy: Path, config: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(config))
    return subprocess.run(
        [str(envoy), "--mode", "validate", "-c", str(path), "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_envoy_accepts(envoy: Path, resources: dict, tmp_path: Path) -> None:
    """Both bootstraps (as pushed, and with routes and endpoints inlined) pass `--mode validate`."""
    as_pushed = bootstrap(resources[LISTENER], resources[CLUSTER])
    inlined = bootstrap(
        inline_routes(resources[LISTENER], resources[ROUTE]),
        static_endpoints(resources[CLUSTER], resources[ENDPOINT]),
        resources.get(SECRET) or workload_secrets(resources[CLUSTER]),
    )
    for name, config in (("as pushed", as_pushed), ("inlined", inlined)):
        result = validate(envoy, config, tmp_path)
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
        assert "OK" in result.stdout


@pytest.mark.parametrize("policy", [ALLOW_ANY, REGISTRY_ONLY])
@pytest.mark.parametrize("deployment", ["productpage-v1", "reviews-v2", "tcp-echo-v1"])
def test_envoy_accepts_the_translation(envoy, tmp_path, deployment, policy):
    mesh = bookinfo().with_mesh(outbound_traffic_policy=policy)
    assert_envoy_accepts(envoy, generate(mesh, mesh.workload(deployment)), tmp_path)


@pytest.mark.parametrize("case", list(CASES))
def test_envoy_accepts_every_istio_golden_input(envoy, tmp_path, case):
    """Each VirtualService / DestinationRule / ServiceEntry golden input, as Envoy 1.40 would load it."""
    assert_envoy_accepts(envoy, case_resources(case), tmp_path)


def test_validation_really_rejects_a_bad_listener(envoy, tmp_path):
    """The harness can fail: two identical filter chain matches are a NACK-worthy listener."""
    mesh = bookinfo()
    resources = generate(mesh, mesh.workload("productpage-v1"))
    listeners = resources[LISTENER]
    virtual_inbound = listeners[-1]
    virtual_inbound.filter_chains.append(virtual_inbound.filter_chains[-1])
    result = validate(envoy, bootstrap(listeners, resources[CLUSTER]), tmp_path)
    assert result.returncode != 0
    assert "duplicate matcher" in result.stderr
