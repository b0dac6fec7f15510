"""xDS resource types: their type URLs, short names, push order and how each names itself."""

from __future__ import annotations

from google.protobuf.message import Message

CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

# Make-before-break, as istiod pushes: clusters and their endpoints before the listeners and
# routes that point at them (pilot/pkg/xds/ads.go PushOrder).
PUSH_ORDER = (CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET)

SHORT_NAMES = {CLUSTER: "CDS", ENDPOINT: "EDS", LISTENER: "LDS", ROUTE: "RDS", SECRET: "SDS"}
BY_SHORT_NAME = {v: k for k, v in SHORT_NAMES.items()}

# SotW responses for these types must carry every resource: a missing one is a deletion.
WILDCARD_TYPES = (CLUSTER, LISTENER)


def type_url(message: Message) -> str:
    return "type.googleapis.com/" + message.DESCRIPTOR.full_name


def resource_name(message: Message) -> str:
    """The name a resource is known by in xDS (`cluster_name` for a ClusterLoadAssignment)."""
    if type_url(message) == ENDPOINT:
        return message.cluster_name  # type: ignore[attr-defined]
    return message.name  # type: ignore[attr-defined]
