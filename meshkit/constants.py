"""Numbers and names every layer of meshkit agrees on: Istio's well-known ports, the pods' uids,
the capture modes, SPIFFE ids.

The bottom layer: it imports nothing from meshkit, so model, xds, runtime, inspect and the
client side can all use it without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path

# The sidecar's ports, as Istio assigns them (pilot-agent's own 15020/15021 do not exist here).
ADMIN_PORT = 15000  # Envoy admin, on 127.0.0.1 inside the pod
OUTBOUND_PORT = 15001  # virtualOutbound: where istio-init redirects the app's outbound TCP
INBOUND_PORT = 15006  # virtualInbound: where istio-init redirects inbound TCP
XDS_PORT = 15010  # istiod's plaintext gRPC xDS
CONTROL_PORT = 15011  # meshkit's control protocol inside the kind boss's pod (loopback only)
PROMETHEUS_PORT = 15090  # 0.0.0.0_15090: /stats/prometheus
SIDECAR_PORTS = (ADMIN_PORT, OUTBOUND_PORT, INBOUND_PORT, PROMETHEUS_PORT)

PROXY_UID = 1337  # Istio's proxy uid/gid: the capture rules let its own traffic pass
APP_UID = 1000  # any uid but the proxy's: the apps' outbound calls must be captured

# How traffic reaches the sidecars.
IPTABLES = "iptables"  # Istio's REDIRECT rules in the pod's network namespace (needs root)
USERSPACE = "userspace"  # a capture process plays the rules, with PROXY protocol headers (no root)
AUTO = "auto"  # iptables when this process can, userspace otherwise
CAPTURES = (AUTO, IPTABLES, USERSPACE)

TRUST_DOMAIN = "cluster.local"

# Which xDS variant a sidecar speaks to the boss. Istio has served its sidecars delta by default
# since 1.22; `meshkit up --xds sotw` (or $MESHKIT_XDS=sotw) brings back State of the World.
DELTA = "DELTA"  # DeltaAggregatedResources, bootstrap api_type DELTA_GRPC
SOTW = "SOTW"  # StreamAggregatedResources, bootstrap api_type GRPC
XDS_CHOICES = ("delta", "sotw")  # how the CLI and $MESHKIT_XDS spell them
XDS_ENV = "MESHKIT_XDS"


def xds_variant(requested: str | None = None) -> str:
    """DELTA or SOTW for `requested` ("delta"/"sotw", any case), else $MESHKIT_XDS, else DELTA.

    Raises ValueError naming the choices for anything else.
    """
    wanted = (requested or os.environ.get(XDS_ENV) or DELTA).upper()
    if wanted not in (DELTA, SOTW):
        raise ValueError(f"unknown xDS variant {requested or os.environ.get(XDS_ENV)!r}: "
                         f"choose {' or '.join(XDS_CHOICES)} (--xds / ${XDS_ENV})")
    return wanted


def spiffe_id(namespace: str, service_account: str, trust_domain: str = TRUST_DOMAIN) -> str:
    """A workload's identity: `spiffe://cluster.local/ns/default/sa/bookinfo-productpage`."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"

HOME_ENV = "MESHKIT_HOME"


def default_home(home: str | os.PathLike | None = None) -> Path:
    """The mesh's state folder: `home`, else `$MESHKIT_HOME`, else `~/.meshkit` (one rule for every command)."""
    chosen = home or os.environ.get(HOME_ENV) or Path.home() / ".meshkit"
    return Path(chosen).expanduser().resolve()
