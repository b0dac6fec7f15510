"""The names istiod gives sidecar resources (Istio 1.30), in one place.

Learners grep for these strings in config dumps and `istioctl proxy-config` output, so they
follow istiod exactly: `BuildSubsetKey` for clusters (`outbound|9080|v1|reviews...`,
`inbound|9080||` since 1.8), `getListenerName` for listeners (`0.0.0.0_9080`, `10.96.0.14_9000`),
the fixed catch-all names (`InboundPassthroughCluster` since 1.23) and the `;`-terminated stat
prefixes of 1.23+ (`DelimitedStatsPrefix`).
"""

from __future__ import annotations

from meshkit.constants import INBOUND_PORT, OUTBOUND_PORT
from meshkit.model import REGISTRY_ONLY, MeshConfig

# Ports istiod's meshConfig defaults give the capture listeners (proxyListenPort, proxyInboundListenPort).
OUTBOUND_CAPTURE_PORT = OUTBOUND_PORT
INBOUND_CAPTURE_PORT = INBOUND_PORT

WILDCARD = "0.0.0.0"

VIRTUAL_OUTBOUND = "virtualOutbound"
VIRTUAL_INBOUND = "virtualInbound"
VIRTUAL_OUTBOUND_BLACKHOLE_CHAIN = "virtualOutbound-blackhole"
VIRTUAL_OUTBOUND_CATCHALL_CHAIN = "virtualOutbound-catchall-tcp"
VIRTUAL_INBOUND_BLACKHOLE_CHAIN = "virtualInbound-blackhole"
VIRTUAL_INBOUND_CATCHALL_HTTP_CHAIN = "virtualInbound-catchall-http"
VIRTUAL_INBOUND_CATCHALL_TCP_CHAIN = VIRTUAL_INBOUND
PASSTHROUGH_CHAIN = "PassthroughFilterChain"

BLACKHOLE_CLUSTER = "BlackHoleCluster"
PASSTHROUGH_CLUSTER = "PassthroughCluster"
INBOUND_PASSTHROUGH_CLUSTER = "InboundPassthroughCluster"

ALLOW_ANY_VHOST = "allow_any"
BLOCK_ALL_VHOST = "block_all"
DEFAULT_ROUTE = "default"

# Envoy's original source for inbound forwarding; iptables lets 127.0.0.6 on `lo` through uncaptured.
INBOUND_PASSTHROUGH_BIND_IP = "127.0.0.6"


def subset_key(direction: str, port: int, subset: str = "", host: str = "") -> str:
    """istiod's `BuildSubsetKey`: `direction|port|subset|host`."""
    return f"{direction}|{port}|{subset}|{host}"


def outbound_cluster(port: int, fqdn: str, subset: str = "") -> str:
    """`outbound|9080||reviews.default.svc.cluster.local`, or with a DestinationRule subset."""
    return subset_key("outbound", port, subset, fqdn)


def inbound_cluster(target_port: int) -> str:
    """`inbound|9080||`: the 1.8+ inbound cluster (and inline route config) name."""
    return subset_key("inbound", target_port)


def listener_name(bind: str, port: int) -> str:
    """istiod's `getListenerName`: `0.0.0.0_9080`, `10.96.0.14_9000`."""
    return f"{bind}_{port}"


def inbound_vhost(port: int) -> str:
    """`inbound|http|9080` (port 0 for the passthrough vhost)."""
    return f"inbound|http|{port}"


def service_vhost(fqdn: str, port: int) -> str:
    """`reviews.default.svc.cluster.local:9080`: outbound vhost per service port."""
    return f"{fqdn}:{port}"


def route_config_name(port: int) -> str:
    """RDS name of the shared per-port HTTP route configuration: `"9080"`."""
    return str(port)


def stat_prefix(prefix: str) -> str:
    """HCM stat prefix with the 1.23+ `;` delimiter (`outbound_0.0.0.0_9080;`)."""
    return f"{prefix};"


def catch_all_cluster(mesh: MeshConfig) -> str:
    """Where unknown outbound TCP goes: PassthroughCluster (ALLOW_ANY) or BlackHoleCluster (REGISTRY_ONLY)."""
    return BLACKHOLE_CLUSTER if mesh.outbound_traffic_policy == REGISTRY_ONLY else PASSTHROUGH_CLUSTER
