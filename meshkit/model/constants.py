"""Names and values shared across the model (Kubernetes DNS domain, Istio policy modes)."""

from ..constants import TRUST_DOMAIN  # noqa: F401  (re-exported: the model's name for it)

CLUSTER_DOMAIN = "svc.cluster.local"

ALLOW_ANY = "ALLOW_ANY"
REGISTRY_ONLY = "REGISTRY_ONLY"
OUTBOUND_TRAFFIC_POLICIES = (ALLOW_ANY, REGISTRY_ONLY)

HTTP = "HTTP"
TCP = "TCP"

ROOT_NAMESPACE = "istio-system"  # meshConfig rootNamespace: policies here apply mesh-wide
