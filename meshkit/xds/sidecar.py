"""The `Sidecar` resource: which services a proxy sees, and its own outboundTrafficPolicy.

istiod's SidecarScope (`pilot/pkg/model/sidecar.go`, 1.30): the Sidecar for a workload is the one
in its namespace whose `workloadSelector.labels` pick it, else its namespace's Sidecar without
selector, else the root namespace's (`istio-system`) without selector; none means "see every
service". `egress[].hosts` entries `<namespace>/<dnsName>` (`.` the proxy's namespace, `*` any;
dnsName `*`, `*.suffix` or a host) pick the services whose clusters, listeners and routes the
proxy gets; `outboundTrafficPolicy.mode` replaces the mesh's for this proxy.

Where meshkit differs: egress `port`, `bind` and `captureMode` and the `ingress` listeners are
accepted with a warning and ignored (every egress listener's hosts are simply united).
"""

from __future__ import annotations

from meshkit.model import Topology, Workload
from meshkit.model.constants import ROOT_NAMESPACE
from meshkit.model.istio import IstioResource

from .registry import RegistryService


def sidecar_for(topology: Topology, proxy: Workload) -> IstioResource | None:
    """The Sidecar that applies to `proxy`, in istiod's order of preference."""
    sidecars = topology.istio.of_kind("Sidecar")
    labels = proxy.label_map

    def selector(s: IstioResource) -> dict:
        return (s.spec.get("workloadSelector") or {}).get("labels") or {}

    for s in sidecars:
        wanted = selector(s)
        if s.namespace == proxy.namespace and wanted and all(labels.get(k) == v for k, v in wanted.items()):
            return s
    for namespace in (proxy.namespace, ROOT_NAMESPACE):
        for s in sidecars:
            if s.namespace == namespace and not selector(s):
                return s
    return None


def _host_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return pattern == host


def visible(sidecar: IstioResource | None, proxy: Workload, service: RegistryService) -> bool:
    """Whether the Sidecar's egress hosts let `proxy` see `service` (all visible without Sidecar)."""
    if sidecar is None:
        return True
    for egress in sidecar.spec.get("egress") or []:
        for entry in egress.get("hosts") or []:
            namespace, _, host = entry.partition("/")
            namespace = proxy.namespace if namespace == "." else namespace
            if namespace in ("*", service.namespace) and _host_matches(host, service.hostname):
                return True
    return False


def outbound_traffic_policy(sidecar: IstioResource | None, default: str) -> str:
    """The Sidecar's `outboundTrafficPolicy.mode`, else the mesh's."""
    return ((sidecar.spec.get("outboundTrafficPolicy") or {}).get("mode") if sidecar else None) or default
