"""The Envoy bootstrap of a sidecar, shaped like Istio's `envoy_bootstrap.json`.

Pure: a workload and the control plane's address in, a JSON-ready dict out. As in Istio, a
local sidecar's `xds-grpc` dials a unix socket, `./etc/istio/proxy/XDS` (a `pipe` address,
relative to Envoy's working directory, the pod's folder): there pilot-agent answers and proxies
to istiod; here the boss answers itself, on one socket per pod that only the sidecar's uid may
open, so the socket is the pod's credential (istiod checks a service-account token instead).
The kind cluster's sidecars dial the boss over TCP (`XdsAddress(host, port)`), where the pod
network isolates it. There is no `agent` cluster and no `0.0.0.0_15021` health listener (both
front pilot-agent's port 15020). The ADS variant is the workload's `xds`: delta (`DELTA_GRPC`,
Istio's default since 1.22) or State of the World (`GRPC`).
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
API_TYPES = {"DELTA": "DELTA_GRPC", "SOTW": "GRPC"}  # Workload.xds -> ads_config.api_type
PROMETHEUS_CLUSTER = "prometheus_stats"


POD_XDS_SOCKET = "etc/istio/proxy/XDS"  # in the pod's folder, as pilot-agent's socket sits in the pod
ENVOY_XDS_PIPE = f"./{POD_XDS_SOCKET}"  # what Envoy dials: relative to its working directory, the pod folder
ADMIN_SOCKET = "admin.sock"  # userspace capture: the admin API as a 0600 socket in the pod's folder
PIPE_MODE = 0o600


@dataclass(frozen=True)
class XdsAddress:
    """Where a sidecar reaches the control plane's ADS server.

    Either a unix socket (`path`, owned by `uid` when given: the only uid that may connect) or
    TCP (`host`, an IP since the cluster is STATIC, and `port`).
    """

    host: str = ""
    port: int = 0
    path: str = ""
    uid: int | None = None

    @property
    def target(self) -> str:
        """The address in gRPC's syntax: `unix:/path` or `host:port`."""
        return f"unix:{self.path}" if self.path else f"{self.host}:{self.port}"


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"protocol": "TCP", "address": host, "port_value": port}}


def _pipe(path: str, mode: int | None = None) -> dict[str, Any]:
    """A unix socket address; `mode` for one Envoy listens on (the admin API)."""
    return {"pipe": {"path": path, **({"mode": mode} if mode is not None else {})}}


def _endpoint_address(xds: XdsAddress) -> dict[str, Any]:
    return _pipe(xds.path) if xds.path else _address(xds.host, xds.port)


def _static_cluster(name: str, address: dict[str, Any], connect_timeout: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": connect_timeout,
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    }


def _xds_cluster(xds: XdsAddress) -> dict[str, Any]:
    """Istio's `xds-grpc`: HTTP/2, keepalives so a dead control plane is noticed, no circuit breaking."""
    cluster = _static_cluster(XDS_CLUSTER, _endpoint_address(xds), "1s")
    unlimited = {"max_connections": 100000, "max_pending_requests": 100000, "max_requests": 100000}
    cluster.update({
        "circuit_breakers": {"thresholds": [
            {"priority": "DEFAULT", **unlimited},
            {"priority": "HIGH", **unlimited},
        ]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {
                    "connection_keepalive": {"interval": "30s", "timeout": "10s"},
                }},
            },
        },
    })
    if not xds.path:  # TCP keepalive means nothing on a unix socket
        cluster["upstream_connection_options"] = {"tcp_keepalive": {"keepalive_time": 300}}
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
    admin_pipe: str = "",
    istio_version: str = ISTIO_VERSION,
) -> dict[str, Any]:
    """The bootstrap of `workload`'s sidecar: its node identity, admin, ADS to `xds`, the stats listener.

    `admin_pipe` puts the admin API on a 0600 unix socket instead of 127.0.0.1:`admin_port`
    (userspace capture, where 127.0.0.1 is every local user's).

    Listeners and clusters of the mesh all come later over ADS (LDS and CDS with no initial fetch
    timeout, as Istio sets them), so the bootstrap only names who the proxy is and where the boss is.
    """
    admin = _pipe(admin_pipe, PIPE_MODE) if admin_pipe else _address("127.0.0.1", admin_port)
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
        "admin": {"address": admin},
        "dynamic_resources": {
            "lds_config": _ads_source(),
            "cds_config": _ads_source(),
            "ads_config": {
                "api_type": API_TYPES[workload.xds],
                "set_node_on_first_message_only": True,
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
            },
        },
        "static_resources": {
            "clusters": [
                _static_cluster(PROMETHEUS_CLUSTER, _pipe(admin_pipe) if admin_pipe else _address(
                    "127.0.0.1", admin_port), "0.250s"),
                _xds_cluster(xds),
            ],
            "listeners": [_prometheus_listener()],
        },
    }
