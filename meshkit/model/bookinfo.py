"""The demo mesh: Istio's Bookinfo in namespace `default`, plus a TCP echo service.

productpage-v1 calls details-v1 and reviews (v1, v2, v3); reviews-v2 and -v3 call ratings-v1.
tcp-echo-v1 answers raw TCP on port 9000, for tcp_proxy lessons. `outsider` is a pod in `default`
without a sidecar (no capture, no Envoy, no app, no Service): a stranger at the door, whose
plaintext requests STRICT mTLS refuses and AuthorizationPolicies judge without an identity.

With `ingress=True` (the demo the runtimes start) the mesh also has the front gate of Istio's
default profile, `istio-ingressgateway` in `istio-system` (an Envoy in router mode, no app; its
Service maps 80 → 8080 and 443 → 8443, plus the 15021 status port), and the per-version Services
Istio's Gateway API guide adds (`reviews-v1` ..., samples/bookinfo/platform/kube/bookinfo-versions.yaml).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from ipaddress import IPv4Network

from .topology import HTTP, ROUTER, TCP, MeshConfig, Service, ServicePort, Topology, Workload, labels

NAMESPACE = "default"
HTTP_PORT = 9080
OUTSIDER = "outsider"
TCP_ECHO_PORT = 9000

DEFAULT_POD_SUBNET = "10.244.0.0/24"
DEFAULT_SERVICE_SUBNET = "10.96.0.0/24"

# (service, versions, service account, ports)
_APPS = (
    ("productpage", ("v1",), "bookinfo-productpage", (ServicePort("http", HTTP_PORT, HTTP_PORT, HTTP),)),
    ("details", ("v1",), "bookinfo-details", (ServicePort("http", HTTP_PORT, HTTP_PORT, HTTP),)),
    ("reviews", ("v1", "v2", "v3"), "bookinfo-reviews", (ServicePort("http", HTTP_PORT, HTTP_PORT, HTTP),)),
    ("ratings", ("v1",), "bookinfo-ratings", (ServicePort("http", HTTP_PORT, HTTP_PORT, HTTP),)),
    ("tcp-echo", ("v1",), "tcp-echo", (ServicePort("tcp", TCP_ECHO_PORT, TCP_ECHO_PORT, TCP),)),
)

# Which Services each app calls (bookinfo.py's handlers): reviews-v1 shows no stars, so never calls ratings.
CALLS = {"productpage-v1": ("details", "reviews"), "reviews-v2": ("ratings",), "reviews-v3": ("ratings",)}
INGRESS_NAMESPACE = "istio-system"
INGRESS = "istio-ingressgateway"
INGRESS_LABELS = {"app": INGRESS, "istio": "ingressgateway"}
INGRESS_ACCOUNT = "istio-ingressgateway-service-account"
# Istio's default profile: the gateway pod listens on unprivileged ports behind the Service's 80/443.
INGRESS_PORTS = (
    ServicePort("status-port", 15021, 15021, TCP),
    ServicePort("http2", 80, 8080, HTTP),
    ServicePort("https", 443, 8443, TCP),
)
# samples/bookinfo/platform/kube/bookinfo-versions.yaml: one Service per Deployment.
VERSION_SERVICES = ("reviews-v1", "reviews-v2", "reviews-v3", "productpage-v1", "ratings-v1", "details-v1")

# Kubernetes draws pod-name suffixes from this alphabet (no vowels, no look-alikes).
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def name_chars(text: str, length: int, skip: int = 0) -> str:
    """`length` characters of Kubernetes' name alphabet drawn from `text`'s hash (stable across runs)."""
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[skip:skip + length])


def pod_name(deployment: str) -> str:
    """A Kubernetes-looking, deterministic pod name: `reviews-v2-6b746f74dc-9rlmh`."""
    return f"{deployment}-{name_chars(deployment, 10)}-{name_chars(deployment, 5, skip=10)}"


def addresses(subnet: str) -> Iterator[str]:
    """Host addresses of `subnet` from .10 up: .1-.9 are left for the bridge and other infrastructure."""
    hosts = IPv4Network(subnet).hosts()
    for _ in range(9):
        next(hosts)
    return (str(h) for h in hosts)


def bookinfo(
    pod_subnet: str = DEFAULT_POD_SUBNET,
    service_subnet: str = DEFAULT_SERVICE_SUBNET,
    mesh: MeshConfig | None = None,
    outsider: bool = True,
    ingress: bool = False,
) -> Topology:
    """The Bookinfo topology with pod IPs from `pod_subnet` (.10 up) and VIPs from `service_subnet`."""
    pod_ips, vips = addresses(pod_subnet), addresses(service_subnet)
    services, workloads = [], []
    for name, versions, account, ports in _APPS:
        services.append(
            Service(name, NAMESPACE, next(vips), ports, labels({"app": name}))
        )
        for version in versions:
            workloads.append(
                Workload(
                    name=pod_name(f"{name}-{version}"),
                    namespace=NAMESPACE,
                    ip=next(pod_ips),
                    labels=labels({"app": name, "version": version}),
                    service_account=account,
                    ports=tuple(p.target_port for p in ports),
                    calls=CALLS.get(f"{name}-{version}", ()),
                )
            )
    if outsider:
        workloads.append(Workload(name=OUTSIDER, namespace=NAMESPACE, ip=next(pod_ips),
                                  labels=labels({"app": OUTSIDER}), service_account="default", ports=(),
                                  sidecar=False))
    if ingress:
        for name in VERSION_SERVICES:
            app, version = name.rsplit("-", 1)
            services.append(Service(name, NAMESPACE, str(next(vips)),
                                    (ServicePort("http", HTTP_PORT, HTTP_PORT, HTTP),),
                                    labels({"app": app, "version": version})))
        services.append(Service(INGRESS, INGRESS_NAMESPACE, str(next(vips)), INGRESS_PORTS, labels(INGRESS_LABELS)))
        workloads.append(Workload(name=pod_name(INGRESS), namespace=INGRESS_NAMESPACE, ip=str(next(pod_ips)),
                                  labels=labels(INGRESS_LABELS), service_account=INGRESS_ACCOUNT, ports=(),
                                  kind=ROUTER))
    return Topology(tuple(services), tuple(workloads), mesh or MeshConfig())


def demo(pod_subnet: str = DEFAULT_POD_SUBNET) -> Topology:
    """The mesh `meshkit up` boots: Bookinfo behind Istio's default front gate (`istio-ingressgateway`)."""
    return bookinfo(pod_subnet=pod_subnet, ingress=True)
