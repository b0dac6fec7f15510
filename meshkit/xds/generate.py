"""Everything istiod would push to one sidecar, keyed by xDS type URL (Istio 1.30 shapes)."""

from __future__ import annotations

from google.protobuf.message import Message

from meshkit.model import Topology, Workload

from .clusters import build_clusters
from .endpoints import build_endpoints
from .listeners import build_listeners
from .resources import CLUSTER, ENDPOINT, LISTENER, ROUTE
from .routes import build_routes
from .scope import for_proxy


def generate(topology: Topology, proxy: Workload) -> dict[str, list[Message]]:
    """CDS, EDS, LDS and RDS resources for `proxy`, in push order (pure: same input, same output)."""
    topology = for_proxy(topology, proxy)  # its Sidecar's outboundTrafficPolicy, if any
    return {
        CLUSTER: build_clusters(topology, proxy),
        ENDPOINT: build_endpoints(topology, proxy),
        LISTENER: build_listeners(topology, proxy),
        ROUTE: build_routes(topology, proxy),
    }
