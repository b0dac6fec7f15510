"""ServiceEntry → registry services, as istiod's serviceentry registry converts them (`conversion.go`).

Each host becomes one service with the entry's ports; `resolution` picks how its clusters find
endpoints (STATIC → EDS, DNS → STRICT_DNS, DNS_ROUND_ROBIN → LOGICAL_DNS, NONE → ORIGINAL_DST)
and `location` MESH_EXTERNAL marks it external. Endpoints come from `endpoints`, else from the
pods a `workloadSelector` picks, else (DNS resolutions only) from the host name itself. An
endpoint only carries Istio's mTLS metadata when it has a service account or a
`security.istio.io/tlsMode: istio` label, exactly as istiod decides (`getTLSModeFromWorkloadEntry`).

Where meshkit does not follow istiod:
- one service per host holding every address (istiod makes one per host × address, then merges
  them by host for clusters and routes, which comes to the same xDS for plain IPs); CIDR
  addresses other than /32 are kept as written but listeners are built on plain addresses only;
- port protocols HTTP, HTTP2, GRPC and GRPC-WEB are served as HTTP/1.1 routes (no h2 upstream
  options), everything else (and no protocol: meshkit has no protocol sniffing) as TCP; TLS and
  HTTPS ports are TCP ports routed by SNI (`tls_ports`, see `listeners`), as istiod's;
- `exportTo` is ignored (every entry is visible everywhere).
"""

from __future__ import annotations

from meshkit.model import HTTP, TCP, ServicePort, Topology, labels
from meshkit.model.istio import IstioResource

from .registry import DNS, DNS_ROUND_ROBIN, NONE, Member, RegistryService, pod_member

HTTP_PROTOCOLS = ("HTTP", "HTTP2", "GRPC", "GRPC-WEB")
TLS_PROTOCOLS = ("TLS", "HTTPS")
MESH_EXTERNAL = "MESH_EXTERNAL"
TLS_MODE_LABEL = "security.istio.io/tlsMode"


def service_port(port: dict) -> ServicePort:
    """A ServiceEntry port: `targetPort` defaults to the port number."""
    protocol = HTTP if str(port.get("protocol", "")).upper() in HTTP_PROTOCOLS else TCP
    return ServicePort(port.get("name", ""), port["number"], port.get("targetPort") or port["number"], protocol)


def endpoint_member(entry: IstioResource, index: int, endpoint: dict) -> Member:
    """`endpoints[i]` as istiod's WorkloadEntry `<entry>-<i>` (its telemetry workload name)."""
    endpoint_labels = endpoint.get("labels", {})
    mtls = endpoint_labels.get(TLS_MODE_LABEL, "istio" if endpoint.get("serviceAccount") else "") == "istio"
    return Member(
        address=endpoint["address"],
        labels=labels(endpoint_labels),
        workload=f"{entry.name}-{index}",
        namespace=entry.namespace,
        istio_mtls=mtls,
        port_map=tuple(sorted(endpoint.get("ports", {}).items())),
        weight=endpoint.get("weight") or 1,
        service_account=endpoint.get("serviceAccount", ""),
    )


def members(topology: Topology, entry: IstioResource, host: str, resolution: str) -> tuple[Member, ...]:
    """Endpoints, else selected pods, else (DNS) the host itself (`convertServiceEntryToInstances`)."""
    spec = entry.spec
    if spec.get("endpoints"):
        return tuple(endpoint_member(entry, i, e) for i, e in enumerate(spec["endpoints"]))
    selector = (spec.get("workloadSelector") or {}).get("labels")
    if selector is not None:
        return tuple(
            pod_member(w)
            for w in sorted(topology.workloads, key=lambda w: w.name)
            if w.namespace == entry.namespace and all(w.label_map.get(k) == v for k, v in selector.items())
        )
    if resolution in (DNS, DNS_ROUND_ROBIN):
        return (Member(host, (), entry.name, entry.namespace, istio_mtls=False),)
    return ()


def single_ip(address: str) -> str:
    """`10.0.0.1/32` is the address `10.0.0.1`, as istiod normalises full-length prefixes."""
    ip, _, bits = address.partition("/")
    return ip if bits in ("32", "128") else address


def services(topology: Topology) -> list[RegistryService]:
    """One registry service per host of every ServiceEntry, in config order."""
    out = []
    for entry in topology.istio.service_entries:
        spec = entry.spec
        resolution = spec.get("resolution", NONE)
        for host in spec.get("hosts", []):
            out.append(
                RegistryService(
                    hostname=host,
                    namespace=entry.namespace,
                    addresses=tuple(single_ip(a) for a in spec.get("addresses", [])),
                    ports=tuple(service_port(p) for p in spec.get("ports", [])),
                    resolution=resolution,
                    mesh_external=spec.get("location", MESH_EXTERNAL) == MESH_EXTERNAL,
                    members=members(topology, entry, host, resolution),
                    tls_ports=tuple(p["number"] for p in spec.get("ports", [])
                                    if str(p.get("protocol", "")).upper() in TLS_PROTOCOLS),
                )
            )
    return out
