"""The boss's orders in Istio's own language: VirtualService, DestinationRule, ServiceEntry, MeshConfig,
PeerAuthentication and AuthorizationPolicy.

Documents are read exactly as `kubectl apply` would hand them to Istio (apiVersion
`networking.istio.io/v1`, `v1beta1` or `v1alpha3`; `security.istio.io/v1` or `v1beta1` for the
security kinds), checked strictly against the fields Istio's
CRDs define, and kept as plain dicts for the translators. Deprecated fields Istio still accepts
(`percent` in a fault, `mirrorPercent`, `consecutiveErrors`) are accepted too.

>>> docs = parse_istio('''
... apiVersion: networking.istio.io/v1
... kind: VirtualService
... metadata: {name: reviews}
... spec:
...   hosts: [reviews]
...   http:
...   - route:
...     - destination: {host: reviews, subset: v1}
... ''')
>>> docs[0].key
('VirtualService', 'default', 'reviews')
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from . import gateway
from .constants import OUTBOUND_TRAFFIC_POLICIES
from .raw import load_documents
from .schema import ANY, Duration, Enum, Map, Obj, SchemaError, check, nearest

NETWORKING_VERSIONS = ("networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3")
SECURITY_VERSIONS = ("security.istio.io/v1", "security.istio.io/v1beta1")
DEFAULT_NAMESPACE = "default"

# -- schemas (Istio API, networking/v1) --------------------------------------------------------
STRING_MATCH = Obj({"exact": str, "prefix": str, "regex": str})
PERCENT = Obj({"value": float})
PORT_SELECTOR = Obj({"number": int})
DESTINATION = Obj({"host": str, "subset": str, "port": PORT_SELECTOR}, required=("host",))
HEADER_OPS = Obj({"set": Map(str), "add": Map(str), "remove": [str]})
HEADERS = Obj({"request": HEADER_OPS, "response": HEADER_OPS})

HTTP_MATCH = Obj({
    "name": str, "uri": STRING_MATCH, "scheme": STRING_MATCH, "method": STRING_MATCH,
    "authority": STRING_MATCH, "headers": Map(STRING_MATCH), "port": int, "sourceLabels": Map(str),
    "gateways": [str], "queryParams": Map(STRING_MATCH), "ignoreUriCase": bool,
    "withoutHeaders": Map(STRING_MATCH), "sourceNamespace": str, "statPrefix": str,
})
HTTP_ROUTE_DESTINATION = Obj({"destination": DESTINATION, "weight": int, "headers": HEADERS},
                             required=("destination",))
HTTP_ROUTE = Obj({
    "name": str,
    "match": [HTTP_MATCH],
    "route": [HTTP_ROUTE_DESTINATION],
    "redirect": Obj({"uri": str, "authority": str, "port": int, "derivePort": str, "scheme": str,
                     "redirectCode": int}),
    "directResponse": Obj({"status": int, "body": Obj({"string": str, "bytes": str})}),
    "rewrite": Obj({"uri": str, "authority": str,
                    "uriRegexRewrite": Obj({"match": str, "rewrite": str})}),
    "timeout": Duration,
    "retries": Obj({"attempts": int, "perTryTimeout": Duration, "retryOn": str,
                    "retryRemoteLocalities": bool}),
    "fault": Obj({
        "delay": Obj({"fixedDelay": Duration, "exponentialDelay": Duration, "percentage": PERCENT,
                      "percent": int}),
        "abort": Obj({"httpStatus": int, "grpcStatus": str, "http2Error": str, "percentage": PERCENT}),
    }),
    "mirror": DESTINATION,
    "mirrorPercentage": PERCENT,
    "mirrorPercent": int,
    "mirrors": [Obj({"destination": DESTINATION, "percentage": PERCENT})],
    "corsPolicy": ANY,
    "headers": HEADERS,
    "delegate": Obj({"name": str, "namespace": str}),
})
L4_MATCH = Obj({"destinationSubnets": [str], "port": int, "sourceLabels": Map(str), "gateways": [str],
                "sourceNamespace": str})
ROUTE_DESTINATION = Obj({"destination": DESTINATION, "weight": int}, required=("destination",))
VIRTUAL_SERVICE = Obj({
    "hosts": [str],
    "gateways": [str],
    "http": [HTTP_ROUTE],
    "tcp": [Obj({"match": [L4_MATCH], "route": [ROUTE_DESTINATION]})],
    "tls": [Obj({"match": [ANY], "route": [ROUTE_DESTINATION]})],
    "exportTo": [str],
}, required=("hosts",))

LOAD_BALANCER = Obj({
    "simple": Enum(("UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST")),
    "consistentHash": Obj({
        "httpHeaderName": str, "useSourceIp": bool, "httpQueryParameterName": str,
        "httpCookie": Obj({"name": str, "path": str, "ttl": Duration}),
        "ringHash": Obj({"minimumRingSize": int}), "maglev": Obj({"tableSize": int}),
        "minimumRingSize": int,
    }),
    "localityLbSetting": ANY,
    "warmupDurationSecs": Duration,
})
CONNECTION_POOL = Obj({
    "tcp": Obj({"maxConnections": int, "connectTimeout": Duration, "maxConnectionDuration": Duration,
                "idleTimeout": Duration,
                "tcpKeepalive": Obj({"probes": int, "time": Duration, "interval": Duration})}),
    "http": Obj({"http1MaxPendingRequests": int, "http2MaxRequests": int, "maxRequestsPerConnection": int,
                 "maxRetries": int, "idleTimeout": Duration, "maxConcurrentStreams": int,
                 "h2UpgradePolicy": Enum(("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE")),
                 "useClientProtocol": bool}),
})
OUTLIER_DETECTION = Obj({
    "consecutiveErrors": int, "consecutiveGatewayErrors": int, "consecutive5xxErrors": int,
    "consecutiveLocalOriginFailures": int, "splitExternalLocalOriginErrors": bool,
    "interval": Duration, "baseEjectionTime": Duration, "maxEjectionPercent": int, "minHealthPercent": int,
})
CLIENT_TLS = Obj({
    "mode": Enum(("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL")), "clientCertificate": str,
    "privateKey": str, "caCertificates": str, "credentialName": str, "subjectAltNames": [str],
    "sni": str, "insecureSkipVerify": bool,
})
PORT_POLICY = Obj({"port": PORT_SELECTOR, "loadBalancer": LOAD_BALANCER, "connectionPool": CONNECTION_POOL,
                   "outlierDetection": OUTLIER_DETECTION, "tls": CLIENT_TLS})
TRAFFIC_POLICY = Obj({
    "loadBalancer": LOAD_BALANCER, "connectionPool": CONNECTION_POOL, "outlierDetection": OUTLIER_DETECTION,
    "tls": CLIENT_TLS, "portLevelSettings": [PORT_POLICY], "tunnel": ANY, "proxyProtocol": ANY,
})
DESTINATION_RULE = Obj({
    "host": str,
    "trafficPolicy": TRAFFIC_POLICY,
    "subsets": [Obj({"name": str, "labels": Map(str), "trafficPolicy": TRAFFIC_POLICY}, required=("name",))],
    "exportTo": [str],
    "workloadSelector": Obj({"matchLabels": Map(str)}),
}, required=("host",))

SERVICE_ENTRY = Obj({
    "hosts": [str],
    "addresses": [str],
    "ports": [Obj({"number": int, "protocol": str, "name": str, "targetPort": int}, required=("number",))],
    "location": Enum(("MESH_EXTERNAL", "MESH_INTERNAL")),
    "resolution": Enum(("NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN")),
    "endpoints": [Obj({"address": str, "ports": Map(int), "labels": Map(str), "network": str,
                       "locality": str, "weight": int, "serviceAccount": str})],
    "workloadSelector": Obj({"labels": Map(str)}),
    "exportTo": [str],
    "subjectAltNames": [str],
}, required=("hosts",))

MESH_CONFIG = Obj({"outboundTrafficPolicy": Obj({"mode": Enum(OUTBOUND_TRAFFIC_POLICIES)}),
                   "connectTimeout": Duration, "protocolDetectionTimeout": Duration,
                   "accessLogFile": str, "accessLogEncoding": str, "defaultConfig": ANY}, )

# -- schemas (Istio API, security/v1) ----------------------------------------------------------
MTLS_MODES = ("UNSET", "DISABLE", "PERMISSIVE", "STRICT")
WORKLOAD_SELECTOR = Obj({"matchLabels": Map(str)})
PEER_AUTHENTICATION = Obj({
    "selector": WORKLOAD_SELECTOR,
    "mtls": Obj({"mode": Enum(MTLS_MODES)}),
    "portLevelMtls": Map(Obj({"mode": Enum(MTLS_MODES)})),
})
AUTHZ_SOURCE = Obj({key: [str] for key in (
    "principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals", "namespaces",
    "notNamespaces", "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks", "serviceAccounts",
    "notServiceAccounts")})
AUTHZ_OPERATION = Obj({key: [str] for key in (
    "hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths")})
AUTHORIZATION_POLICY = Obj({
    "selector": WORKLOAD_SELECTOR,
    "targetRef": ANY,
    "targetRefs": ANY,
    "action": Enum(("ALLOW", "DENY", "AUDIT", "CUSTOM")),
    "provider": ANY,
    "rules": [Obj({
        "from": [Obj({"source": AUTHZ_SOURCE})],
        "to": [Obj({"operation": AUTHZ_OPERATION})],
        "when": [Obj({"key": str, "values": [str], "notValues": [str]}, required=("key",))],
    })],
})

METADATA = Obj({"name": str, "namespace": str, "labels": Map(str), "annotations": Map(str),
                "resourceVersion": ANY, "uid": ANY, "generation": ANY, "creationTimestamp": ANY,
                "managedFields": ANY}, required=("name",))

SPECS = {"VirtualService": VIRTUAL_SERVICE, "DestinationRule": DESTINATION_RULE, "ServiceEntry": SERVICE_ENTRY,
         "PeerAuthentication": PEER_AUTHENTICATION, "AuthorizationPolicy": AUTHORIZATION_POLICY,
         **gateway.SPECS}  # the front gate's kinds: meshkit/model/gateway.py
SECURITY_KINDS = ("PeerAuthentication", "AuthorizationPolicy")
KINDS = (*SPECS, "MeshConfig")


@dataclass(frozen=True)
class IstioResource:
    """One Istio document: kind, name, namespace and its spec (validated, as written)."""

    kind: str
    name: str
    namespace: str
    spec: dict
    api_version: str
    source: dict

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    @property
    def config_path(self) -> str:
        """What istiod writes into `metadata.filter_metadata.istio.config` of generated xDS."""
        plural = {"VirtualService": "virtual-service", "DestinationRule": "destination-rule",
                  "ServiceEntry": "service-entry", "PeerAuthentication": "peer-authentication",
                  "AuthorizationPolicy": "authorization-policy",
                  **gateway.CONFIG_PLURALS}.get(self.kind, self.kind.lower())
        group, version = self.api_version.rsplit("/", 1) if "/" in self.api_version else ("", self.api_version)
        return f"/apis/{group or 'networking.istio.io'}/{version}/namespaces/{self.namespace}/{plural}/{self.name}"


def is_istio_document(doc: dict) -> bool:
    return "apiVersion" in doc and "kind" in doc


def parse_istio(text: str) -> list[IstioResource]:
    """Parse every document; raise SchemaError listing every problem (nothing half-read)."""
    resources, problems = [], []
    for index, doc in enumerate(load_documents(text)):
        try:
            resources.append(parse_istio_document(doc, index))
        except SchemaError as exc:
            problems.append(str(exc))
    if problems:
        raise SchemaError("\n".join(problems))
    return resources


def parse_istio_document(doc: dict, index: int = 0) -> IstioResource:
    kind, api_version = doc.get("kind"), str(doc.get("apiVersion", ""))
    name = (doc.get("metadata") or {}).get("name", "?") if isinstance(doc.get("metadata"), dict) else "?"
    where = f"document {index + 1} ({kind or 'no kind'} {name})"
    mesh = _mesh_config_of(doc)
    if mesh is not None:
        _raise(where, check(mesh, MESH_CONFIG, "meshConfig"))
        return IstioResource("MeshConfig", "mesh", "istio-system", mesh, api_version, doc)
    kind = gateway.stored_kind(str(kind), api_version)
    if kind not in SPECS:
        hint = nearest(str(kind), KINDS)
        raise SchemaError(f"{where}: kind {kind!r} is not one meshkit knows ({', '.join(KINDS)})"
                          + (f"; did you mean {hint!r}?" if hint else ""))
    versions = SECURITY_VERSIONS if kind in SECURITY_KINDS else gateway.versions_for(kind)
    if api_version not in versions:
        raise SchemaError(f"{where}: apiVersion {api_version!r} is not one of {', '.join(versions)}")
    problems = check(doc.get("metadata"), METADATA, "metadata")
    problems += check(doc.get("spec"), SPECS[kind], "spec")
    extra = sorted(set(doc) - {"apiVersion", "kind", "metadata", "spec", "status"})
    problems += [f"{key}: unknown top-level field" for key in extra]
    _raise(where, problems)
    metadata = doc["metadata"]
    return IstioResource(kind, metadata["name"], metadata.get("namespace", DEFAULT_NAMESPACE),
                         doc["spec"], api_version, doc)


def _mesh_config_of(doc: dict) -> dict | None:
    """MeshConfig as Istio stores it (ConfigMap `istio`, key `mesh`) or in an IstioOperator."""
    kind = doc.get("kind")
    if kind == "MeshConfig":
        return doc.get("spec") or {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
    if kind == "ConfigMap" and (doc.get("metadata") or {}).get("name") == "istio":
        mesh = (doc.get("data") or {}).get("mesh", "")
        loaded = yaml.safe_load(mesh) if isinstance(mesh, str) else mesh
        return loaded or {}
    if kind == "IstioOperator":
        return ((doc.get("spec") or {}).get("meshConfig")) or {}
    return None


def _raise(where: str, problems: list[str]) -> None:
    if problems:
        raise SchemaError(f"{where}:\n  " + "\n  ".join(problems))
