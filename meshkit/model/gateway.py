"""The front gate's kinds: Istio's `Gateway` and the Kubernetes Gateway API as Istio implements it.

- `Gateway` (networking.istio.io): servers (port, hosts, tls) on the gateway pods its `selector`
  picks; VirtualServices bind to it by name in `gateways:`.
- `gateway.networking.k8s.io` `Gateway` (stored as kind `KubernetesGateway`, Istio's
  `gvk.KubernetesGateway`, so that a Gateway API Gateway and an Istio Gateway of the same name
  can live side by side, as they do in a cluster), `HTTPRoute`, `GRPCRoute`, `TCPRoute`.
- `Service` (v1) documents naming a Service the demo already has (Istio's guides
  `kubectl apply` bookinfo-versions.yaml): accepted and kept, they change nothing.

Checked as strictly as the other kinds: a typo in a field is named with its nearest spelling.
"""

from __future__ import annotations

from .schema import ANY, Enum, Map, Obj

ISTIO_GATEWAY = "Gateway"
KUBERNETES_GATEWAY = "KubernetesGateway"
HTTP_ROUTE, GRPC_ROUTE, TCP_ROUTE = "HTTPRoute", "GRPCRoute", "TCPRoute"
ROUTE_KINDS = (HTTP_ROUTE, GRPC_ROUTE, TCP_ROUTE)
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
GATEWAY_API_VERSIONS = tuple(f"{GATEWAY_API_GROUP}/{v}" for v in ("v1", "v1beta1", "v1alpha2"))
SERVICE = "Service"
# The Gateway API kinds as documents spell them -> as the boss stores them.
GATEWAY_API_KINDS = {"Gateway": KUBERNETES_GATEWAY, HTTP_ROUTE: HTTP_ROUTE, GRPC_ROUTE: GRPC_ROUTE,
                     TCP_ROUTE: TCP_ROUTE}
ISTIO_CLASS = "istio"
CONTROLLER = "istio.io/gateway-controller"

# -- Istio Gateway (networking/v1 Gateway) -----------------------------------------------------
TLS_MODES = ("PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL")
SERVER_TLS = Obj({
    "httpsRedirect": bool, "mode": Enum(TLS_MODES), "serverCertificate": str, "privateKey": str,
    "caCertificates": str, "caCrl": str, "credentialName": str, "credentialNames": [str],
    "subjectAltNames": [str], "verifyCertificateSpki": [str], "verifyCertificateHash": [str],
    "minProtocolVersion": str, "maxProtocolVersion": str, "cipherSuites": [str],
    "tlsCertificates": ANY,
})
SERVER = Obj({
    "port": Obj({"number": int, "protocol": str, "name": str, "targetPort": int}, required=("number", "protocol")),
    "bind": str, "hosts": [str], "tls": SERVER_TLS, "defaultEndpoint": str, "name": str,
}, required=("port", "hosts"))
GATEWAY = Obj({"selector": Map(str), "servers": [SERVER]}, required=("servers",))

# -- Gateway API (v1) ----------------------------------------------------------------------------
PARENT_REF = Obj({"group": str, "kind": str, "namespace": str, "name": str, "sectionName": str, "port": int},
                 required=("name",))
BACKEND_REF = Obj({"group": str, "kind": str, "name": str, "namespace": str, "port": int, "weight": int,
                   "filters": [ANY]}, required=("name",))
HEADER_MATCH = Obj({"type": Enum(("Exact", "RegularExpression")), "name": str, "value": str},
                   required=("name", "value"))
HTTP_ROUTE_MATCH = Obj({
    "path": Obj({"type": Enum(("Exact", "PathPrefix", "RegularExpression")), "value": str}),
    "headers": [HEADER_MATCH], "queryParams": [HEADER_MATCH], "method": str,
})
HEADER_MODIFIER = Obj({"set": [Obj({"name": str, "value": str})], "add": [Obj({"name": str, "value": str})],
                       "remove": [str]})
HTTP_FILTER = Obj({
    "type": Enum(("RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite",
                  "RequestMirror", "ExtensionRef", "CORS")),
    "requestHeaderModifier": HEADER_MODIFIER, "responseHeaderModifier": HEADER_MODIFIER,
    "requestRedirect": Obj({"scheme": str, "hostname": str, "path": ANY, "port": int, "statusCode": int}),
    "urlRewrite": Obj({"hostname": str, "path": Obj({"type": str, "replaceFullPath": str,
                                                     "replacePrefixMatch": str})}),
    "requestMirror": Obj({"backendRef": BACKEND_REF, "percent": int, "fraction": ANY}),
    "extensionRef": ANY, "cors": ANY,
}, required=("type",))
ROUTE_COMMON = {"parentRefs": [PARENT_REF], "hostnames": [str]}
HTTP_ROUTE_SPEC = Obj({**ROUTE_COMMON, "rules": [Obj({
    "name": str, "matches": [HTTP_ROUTE_MATCH], "filters": [HTTP_FILTER], "backendRefs": [BACKEND_REF],
    "timeouts": Obj({"request": str, "backendRequest": str}), "retry": ANY, "sessionPersistence": ANY,
})]})
GRPC_ROUTE_SPEC = Obj({**ROUTE_COMMON, "rules": [Obj({
    "name": str,
    "matches": [Obj({"method": Obj({"type": Enum(("Exact", "RegularExpression")), "service": str,
                                    "method": str}),
                     "headers": [HEADER_MATCH]})],
    "filters": [HTTP_FILTER], "backendRefs": [BACKEND_REF], "sessionPersistence": ANY,
})]})
TCP_ROUTE_SPEC = Obj({"parentRefs": [PARENT_REF], "rules": [Obj({"name": str, "backendRefs": [BACKEND_REF]})]})
LISTENER = Obj({
    "name": str, "hostname": str, "port": int,
    "protocol": Enum(("HTTP", "HTTPS", "TLS", "TCP", "UDP")),
    "tls": Obj({"mode": Enum(("Terminate", "Passthrough")), "certificateRefs": [Obj({
        "group": str, "kind": str, "name": str, "namespace": str}, required=("name",))], "options": Map(str)}),
    "allowedRoutes": Obj({"namespaces": Obj({"from": Enum(("All", "Same", "Selector")), "selector": ANY}),
                          "kinds": [Obj({"group": str, "kind": str})]}),
}, required=("name", "port", "protocol"))
KUBERNETES_GATEWAY_SPEC = Obj({
    "gatewayClassName": str, "listeners": [LISTENER], "addresses": [ANY], "infrastructure": ANY,
}, required=("gatewayClassName", "listeners"))

# -- Service (core/v1), only to recognise the guides' own files ------------------------------------
SERVICE_SPEC = Obj({
    "ports": [Obj({"port": int, "name": str, "targetPort": ANY, "protocol": str, "appProtocol": str})],
    "selector": Map(str), "type": str, "clusterIP": str,
})

SPECS = {ISTIO_GATEWAY: GATEWAY, KUBERNETES_GATEWAY: KUBERNETES_GATEWAY_SPEC, HTTP_ROUTE: HTTP_ROUTE_SPEC,
         GRPC_ROUTE: GRPC_ROUTE_SPEC, TCP_ROUTE: TCP_ROUTE_SPEC, SERVICE: SERVICE_SPEC}
CONFIG_PLURALS = {ISTIO_GATEWAY: "gateways", KUBERNETES_GATEWAY: "gateways", HTTP_ROUTE: "httproutes",
                  GRPC_ROUTE: "grpcroutes", TCP_ROUTE: "tcproutes", SERVICE: "services"}


def stored_kind(kind: str, api_version: str) -> str:
    """The kind the boss stores a document under: a Gateway API `Gateway` is `KubernetesGateway`."""
    if api_version.split("/")[0] == GATEWAY_API_GROUP:
        return GATEWAY_API_KINDS.get(kind, kind)
    return kind


def versions_for(kind: str) -> tuple[str, ...]:
    """The apiVersions a stored kind is accepted under."""
    if kind in GATEWAY_API_KINDS.values():
        return GATEWAY_API_VERSIONS
    if kind == SERVICE:
        return ("v1",)
    return ("networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3")
