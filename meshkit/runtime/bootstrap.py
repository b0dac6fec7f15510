"""The Envoy bootstrap of a sidecar, shaped like Istio's `envoy_bootstrap.json`.

Pure: a workload and the control plane's address in, a JSON-ready dict out. What differs from
Istio, on purpose: there is no pilot-agent here, so `xds-grpc` dials the control plane over TCP
directly (Istio dials the agent's UDS, which proxies to istiod) and there is no `agent` cluster
and no `0.0.0.0_15021` health listener (both front pilot-agent's port 15020). SotW `GRPC` is used,
as the kit's ADS server speaks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..constants import ADMIN_PORT, PROMETHEUS_PORT
from ..model import Workload

ISTIO_VERSION = "1.30.3"  # the istiod release the translation follows (docs/istio-differences.md)
CLUSTER_ID = "Kubernetes"
MESH_ID = "cluster.local"

XDS_CLUSTER = "xds-grpc"
PROMETHEUS_CLUSTER = "prometheus_stats"


@dataclass(frozen=True)
class XdsAddress:
    """Where a sidecar reaches the control plane's ADS server (an IP: the cluster is STATIC)."""

    host: str
    port: int


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"protocol": "TCP", "address": host, "port_value": port}}


def _static_cluster(name: str, host: str, port: int, connect_timeout: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": connect_timeout,
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(host, port)}}]}],
        },
    }


def _xds_cluster(xds: XdsAddress) -> dict[str, Any]:
    """Istio's `xds-grpc`: HTTP/2, keepalives so a dead control plane is noticed, no circuit breaking."""
    cluster = _static_cluster(XDS_CLUSTER, xds.host, xds.port, "1s")
    unlimited = {"max_connections": 100000, "max_pending_requests": 100000, "max_requests": 100000}
    cluster.update({
        "circuit_breakers": {"thresholds": [
            {"priority": "DEFAULT", **unlimited},
            {"priority": "HIGH", **unlimited},
        ]},
        "upstream_connection_options": {"tcp_keepalive": {"keepalive_time": 300}},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {
                    "connection_keepalive": {"interval": "30s", "timeout": "10s"},
                }},
            },
        },
    })
    return cluster


def _ads_source() -> dict[str, Any]:
    return {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}


def _prometheus_listener() -> dict[str, Any]:
    """Istio's `0.0.0.0_15090`: `/stats/prometheus` served from the admin port, outside the mesh config."""
    return {
        "name": f"0.0.0.0_{PROMETHEUS_PORT}",
        "address": _address("0.0.0.0", PROMETHEUS_PORT),
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/"
                         "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "codec_type": "AUTO",
                "stat_prefix": "stats",
                "route_config": {"virtual_hosts": [{
                    "name": "backend",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/stats/prometheus"},
                                "route": {"cluster": PROMETHEUS_CLUSTER}}],
                }]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                }}],
            },
        }]}],
    }


def envoy_bootstrap(
    workload: Workload,
    xds: XdsAddress,
    *,
    admin_port: int = ADMIN_PORT,
    istio_version: str = ISTIO_VERSION,
) -> dict[str, Any]:
    """The bootstrap of `workload`'s sidecar: its node identity, admin, ADS to `xds`, the stats listener.

    Listeners and clusters of the mesh all come later over ADS (LDS and CDS with no initial fetch
    timeout, as Istio sets them), so the bootstrap only names who the proxy is and where the boss is.
    """
    return {
        "node": {
            "id": workload.node_id,
            "cluster": workload.node_cluster,
            "metadata": {
                "NAME": workload.name,
                "NAMESPACE": workload.namespace,
                "LABELS": workload.label_map,
                "INSTANCE_IPS": workload.ip,
                "WORKLOAD_NAME": workload.deployment,
                "SERVICE_ACCOUNT": workload.service_account,
                "INTERCEPTION_MODE": "REDIRECT",
                "CLUSTER_ID": CLUSTER_ID,
                "ISTIO_VERSION": istio_version,
                "MESH_ID": MESH_ID,
            },
        },
        "admin": {"address": _address("127.0.0.1", admin_port)},
        "dynamic_resources": {
            "lds_config": _ads_source(),
            "cds_config": _ads_source(),
            "ads_config": {
                "api_type": "GRPC",
                "set_node_on_first_message_only": True,
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
            },
        },
        "static_resources": {
            "clusters": [
                _static_cluster(PROMETHEUS_CLUSTER, "127.0.0.1", admin_port, "0.250s"),
                _xds_cluster(xds),
            ],
            "listeners": [_prometheus_listener()],
        },
    }
