"""The boss's book: what the mesh is made of, and the orders a learner writes."""

from .bookinfo import bookinfo, demo, pod_name
from .topology import (
    ALLOW_ANY,
    HTTP,
    REGISTRY_ONLY,
    TCP,
    MeshConfig,
    Service,
    ServicePort,
    Topology,
    TopologyError,
    Workload,
    labels,
)

__all__ = [
    "ALLOW_ANY", "HTTP", "REGISTRY_ONLY", "TCP", "MeshConfig", "Service", "ServicePort",
    "Topology", "TopologyError", "Workload", "bookinfo", "demo", "labels", "pod_name",
]
