"""Lab 11 — the front gate: the boss opens a door to the outside world.

Until now every request started inside the mesh. `istio-ingressgateway` (namespace
`istio-system`) is an Envoy with no app beside it, in router mode, that nothing captures: its
listeners are bound for real, and only the boss's Gateway orders give it any. ex1 opens it with
Istio's own `bookinfo-gateway.yaml` (a Gateway + a VirtualService bound to it), checked with real
requests from the outsider pod and from this machine; ex2 does the same with the Kubernetes Gateway
API, where a Gateway makes the boss deploy a gate of its own (`bookinfo-gateway-istio`); ex3 adds
TLS at the gate with a certificate the boss issues for a `credentialName`.
"""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from ..spec import Check, Exercise, LabSpec, Verdict
from ..waiting import retry_wrong
from ._common import listener

if TYPE_CHECKING:
    from ...client import Mesh

GATE = "istio-ingressgateway"
GATE_URL = "http://istio-ingressgateway.istio-system/productpage"
API_GATE = "bookinfo-gateway-istio"
API_GATE_URL = f"http://{API_GATE}.default/productpage"
HOST = "bookinfo.example.com"
SETTLE_S = 12.0

GATEWAY_YAML = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: bookinfo-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bookinfo
spec:
  hosts: ["*"]
  gateways: [bookinfo-gateway]
  http:
  - match:
    - uri: {exact: /productpage}
    - uri: {prefix: /static}
    - uri: {exact: /login}
    - uri: {exact: /logout}
    - uri: {prefix: /api/v1/products}
    route:
    - destination:
        host: productpage
        port: {number: 9080}
"""

GATEWAY_API_YAML = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: bookinfo-gateway
spec:
  gatewayClassName: istio
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: bookinfo
spec:
  parentRefs:
  - name: bookinfo-gateway
  rules:
  - matches:
    - path: {type: Exact, value: /productpage}
    - path: {type: PathPrefix, value: /static}
    backendRefs:
    - name: productpage
      port: 9080
"""

TLS_YAML = f"""\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: bookinfo-https
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    tls: {{mode: SIMPLE, credentialName: bookinfo-credential}}
    hosts: [{HOST}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bookinfo-https
spec:
  hosts: [{HOST}]
  gateways: [bookinfo-https]
  http:
  - route:
    - destination: {{host: productpage, port: {{number: 9080}}}}
"""


def eventually(check: Check) -> Check:
    """Re-check a "wrong" verdict for a few seconds: a new gateway pod needs a moment to connect."""
    return retry_wrong(check, SETTLE_S)


def gate_listeners(mesh: Mesh, pod: str = GATE) -> list[str]:
    """The names of the listeners the gate's Envoy holds from the boss (the bootstrap's stats listener aside)."""
    from ...inspect import dump

    return [held["name"] for held in dump.listeners(mesh.pc.config_dump(pod, include_eds=False))
            if not held.get("name", "").endswith("_15090")]


def status_from(mesh: Mesh, pod: str, url: str) -> int | str:
    row = mesh.curl_rows(pod, url, n=1)[0]
    return row["status"]


# -- ex1: Gateway + VirtualService ------------------------------------------------------------------
def check_gateway(mesh: Mesh) -> Verdict:
    """The outsider and this machine reach the product page through istio-ingressgateway."""
    if not gate_listeners(mesh):
        return Verdict.not_yet("istio-ingressgateway holds no listener from the boss yet: no Gateway selects it")
    status = status_from(mesh, "outsider", GATE_URL)
    if status != 200:
        return Verdict.wrong(f"the outsider got {status} from {GATE_URL}: is a VirtualService bound to your Gateway "
                             "(its `gateways:` list), and does it route /productpage to productpage port 9080?")
    gate = mesh.ingress()
    try:
        with urllib.request.urlopen(gate["url"] + "/productpage", timeout=5) as reply:
            host_status = reply.status
    except (urllib.error.URLError, OSError) as exc:
        return Verdict.wrong(f"the outsider gets in, but this machine does not ({exc})")
    if host_status != 200:
        return Verdict.wrong(f"this machine got {host_status} from {gate['url']}/productpage")
    return Verdict.done(f"the outsider and this machine ({gate['url']}) both reached the product page")


def apply_gateway(mesh: Mesh) -> None:
    mesh.apply(GATEWAY_YAML)


# -- ex2: the Gateway API ---------------------------------------------------------------------------
def check_gateway_api(mesh: Mesh) -> Verdict:
    """A Gateway API Gateway of class istio, its own gate deployed, an HTTPRoute answering through it."""
    pods = {w["deployment"] for w in mesh.topology()["workloads"]}
    if API_GATE not in pods:
        return Verdict.not_yet(f"there is no {API_GATE} pod: no Gateway (gateway.networking.k8s.io) of class istio")
    routes = mesh.get("HTTPRoute")
    if not routes:
        return Verdict.not_yet("the gate is deployed; no HTTPRoute is attached to it yet")
    status = status_from(mesh, "outsider", API_GATE_URL)
    if status != 200:
        accepted = [c for r in routes for p in r.get("status", {}).get("parents", []) for c in p["conditions"]
                    if c["status"] != "True"]
        why = f" ({accepted[0]['type']}: {accepted[0]['message']})" if accepted else ""
        return Verdict.wrong(f"the outsider got {status} from {API_GATE_URL}: read the HTTPRoute's status{why}")
    return Verdict.done(f"{API_GATE} answered the product page: the boss deployed a gate for your Gateway")


def apply_gateway_api(mesh: Mesh) -> None:
    mesh.apply(GATEWAY_API_YAML)


# -- ex3: TLS at the gate -------------------------------------------------------------------------------
def https_status(mesh: Mesh) -> tuple[int, list[str]]:
    """(status, DNS names of the certificate) of GET https://bookinfo.example.com/productpage at the gate."""
    from cryptography import x509

    gate = mesh.ingress()
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the names are checked below
    with socket.create_connection((gate["address"], gate["https_port"]), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=HOST) as tls:
        der = tls.getpeercert(binary_form=True) or b""
        tls.sendall(f"GET /productpage HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        status = int(tls.recv(64).split(b" ")[1])
    cert = x509.load_der_x509_certificate(der)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return status, names.get_values_for_type(x509.DNSName)


def check_tls(mesh: Mesh) -> Verdict:
    """HTTPS for bookinfo.example.com terminates at the gate with a certificate for that name."""
    held = listener(mesh, GATE, "0.0.0.0_8443")
    if held is None:
        return Verdict.not_yet("istio-ingressgateway has no listener on 8443 yet: no HTTPS server (port 443)")
    try:
        status, names = https_status(mesh)
    except (OSError, ssl.SSLError, ValueError, IndexError) as exc:
        return Verdict.wrong(f"the TLS handshake for {HOST} failed ({exc}): is the server's tls mode SIMPLE with a "
                             "credentialName, and its hosts the name you connect to?")
    if HOST not in names:
        return Verdict.wrong(f"the gate presented a certificate for {names}, not for {HOST}")
    if status != 200:
        return Verdict.wrong(f"TLS works, but the request got {status}: bind a VirtualService for {HOST} "
                             "to the HTTPS Gateway")
    return Verdict.done(f"https://{HOST} answered 200 with a certificate the boss issued for {names}")


def apply_tls(mesh: Mesh) -> None:
    mesh.apply(TLS_YAML)


LAB = LabSpec(
    name="11-front-gate",
    title="The front gate: Gateway, VirtualService and the Gateway API",
    objectives=(
        "Open istio-ingressgateway with a Gateway and a VirtualService bound to it, and reach it from outside",
        "Read what a gateway's Envoy holds: 0.0.0.0_8080, route configuration http.8080, one vhost per host",
        "Do the same with the Kubernetes Gateway API, where a Gateway brings its own deployment",
        "Terminate TLS at the gate with a credentialName certificate",
    ),
    exercises=(
        Exercise(
            id="ex1", title="Open the front gate", check=eventually(check_gateway),
            hints=(
                "A Gateway picks the gateway pods by `selector` (istio-ingressgateway carries `istio: ingressgateway`) "
                "and lists servers: a port (number, name, protocol) and the hosts it accepts.",
                "A VirtualService reaches the gate only when its `gateways:` names the Gateway; with `hosts: ['*']` "
                "it serves any Host header.",
                "Istio's samples/bookinfo/networking/bookinfo-gateway.yaml is exactly this: server port 8080 HTTP, "
                "hosts '*', and a VirtualService routing /productpage, /static ... to productpage port 9080.",
            ),
            solution=f"mesh.apply('''{GATEWAY_YAML}''')", apply=apply_gateway, deadline_s=15.0,
        ),
        Exercise(
            id="ex2", title="The same door with the Gateway API", check=eventually(check_gateway_api),
            hints=(
                "Gateway API resources are `apiVersion: gateway.networking.k8s.io/v1`: a Gateway with "
                "`gatewayClassName: istio` and listeners, and an HTTPRoute whose parentRefs name the Gateway.",
                "Istio deploys a gate per Gateway, named `<gateway>-istio`; `meshkit get httproute -o yaml` "
                "shows whether your route was Accepted and its backends resolved.",
                "Istio's samples/bookinfo/gateway-api/bookinfo-gateway.yaml: a listener `http` on port 80, an "
                "HTTPRoute with path matches and a backendRef productpage port 9080.",
            ),
            solution=f"mesh.apply('''{GATEWAY_API_YAML}''')", apply=apply_gateway_api, deadline_s=20.0,
        ),
        Exercise(
            id="ex3", title="TLS at the gate", check=eventually(check_tls),
            hints=(
                "An HTTPS server is a server with `protocol: HTTPS` and a `tls` block; the gate listens on the "
                "Service port's targetPort (443 → 8443).",
                "`tls: {mode: SIMPLE, credentialName: ...}` terminates TLS with the certificate in that credential; "
                "here the boss issues one for the server's hosts.",
                f"Server port 443 HTTPS, hosts [{HOST}], and a VirtualService for {HOST} bound to this Gateway.",
            ),
            solution=f"mesh.apply('''{TLS_YAML}''')", apply=apply_tls, deadline_s=15.0,
        ),
    ),
    minutes=35,
    notes=(
        "Istio's gateway is pilot-agent + Envoy in a Deployment of its own; meshkit starts Envoy alone (no "
        "15021 health listener: nothing answers the status port).",
        "In a cluster the credential is a Kubernetes Secret you create; here the boss is the CA and issues a "
        "certificate for the server's hosts into SDS `kubernetes://<credentialName>`.",
        "The Gateway API is converted as istiod converts it (internal Gateways `<gw>~istio-autogenerated-k8s-"
        "gateway~<listener>` and VirtualServices); route precedence sorting across routes is not followed.",
    ),
    runtime_notes=(
        ("kind", "the Gateway API's automated deployment needs the local runtime: on kind apply the "
                 "Deployment with kubectl"),
    ),
)
