"""Everything istiod would push to one sidecar, keyed by xDS type URL (Istio 1.30 shapes)."""

from __future__ import annotations

from collections.abc import Callable, Collection

from google.protobuf.message import Message

from meshkit.model import Topology, Workload

from . import gateway
from .clusters import build_clusters
from .endpoints import build_endpoints
from .listeners import build_listeners
from .resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, resource_name
from .routes import build_routes
from .scope import for_proxy

BUILDERS: dict[str, Callable[[Topology, Workload], list]] = {
    CLUSTER: build_clusters,
    ENDPOINT: build_endpoints,
    LISTENER: build_listeners,
    ROUTE: build_routes,
}


def generate(topology: Topology, proxy: Workload, types: Collection[str] | None = None) -> dict[str, list[Message]]:
    """CDS, EDS, LDS and RDS resources for `proxy`, in push order (pure: same input, same output);
    only the type URLs in `types` when given (a push that rebuilds only what an edit affects).

    Gateway API resources are first converted to the Istio config istiod derives from them, and a
    gateway (`router`) proxy gets the gateway translation (xds/gateway.py).
    """
    topology = gateway.effective(topology)
    if gateway.is_gateway(proxy):
        built = gateway.generate(topology, proxy)
        return {url: first_of_each_name(built[url]) for url in BUILDERS
                if url in built and (types is None or url in types)}
    topology = for_proxy(topology, proxy)  # exportTo and its Sidecar's outboundTrafficPolicy
    return {url: first_of_each_name(build(topology, proxy)) for url, build in BUILDERS.items()
            if types is None or url in types}


def first_of_each_name(messages: list[Message]) -> list[Message]:
    """One resource per name, the first: two ServiceEntries (or one listing a host twice) that
    declare the same host and port make the same cluster, and istiod keeps the oldest."""
    by_name: dict[str, Message] = {}
    for message in messages:
        by_name.setdefault(resource_name(message), message)
    return list(by_name.values()) if len(by_name) < len(messages) else messages
