"""xDS resource types: their type URLs, short names, push order and how each names itself."""

from __future__ import annotations

from google.protobuf.message import Message

from ..model.envoy_types import BY_SHORT_NAME, CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, SHORT_NAMES

# Make-before-break, as istiod pushes: clusters and their endpoints before the listeners and
# routes that point at them (pilot/pkg/xds/ads.go PushOrder).
PUSH_ORDER = (CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET)

# SotW responses for these types must carry every resource: a missing one is a deletion.
WILDCARD_TYPES = (CLUSTER, LISTENER)


__all__ = [
    "BY_SHORT_NAME", "CLUSTER", "ENDPOINT", "LISTENER", "PUSH_ORDER", "ROUTE", "SECRET", "SHORT_NAMES",
    "WILDCARD_TYPES", "resource_name", "type_url",
]


def type_url(message: Message) -> str:
    return "type.googleapis.com/" + message.DESCRIPTOR.full_name


def resource_name(message: Message) -> str:
    """The name a resource is known by in xDS (`cluster_name` for a ClusterLoadAssignment)."""
    if type_url(message) == ENDPOINT:
        return message.cluster_name  # type: ignore[attr-defined]
    return message.name  # type: ignore[attr-defined]
