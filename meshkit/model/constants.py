"""Names and values shared across the model (Kubernetes DNS domain, Istio policy modes)."""

CLUSTER_DOMAIN = "svc.cluster.local"

ALLOW_ANY = "ALLOW_ANY"
REGISTRY_ONLY = "REGISTRY_ONLY"
OUTBOUND_TRAFFIC_POLICIES = (ALLOW_ANY, REGISTRY_ONLY)

HTTP = "HTTP"
TCP = "TCP"

ROOT_NAMESPACE = "istio-system"  # meshConfig rootNamespace: policies here apply mesh-wide
TRUST_DOMAIN = "cluster.local"
