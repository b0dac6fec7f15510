"""The boss's orders in Istio's own language: VirtualService, DestinationRule, ServiceEntry, MeshConfig,
PeerAuthentication, AuthorizationPolicy and RequestAuthentication.

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

import re
from dataclasses import dataclass

from . import gateway
from .checks import ADDRESS as ENDPOINT_ADDRESS
from .checks import BASE64, CIDR, HOST, MATCH_REGEX, PORT_TEXT, REGEX, object_name_problems
from .constants import OUTBOUND_TRAFFIC_POLICIES
from .documents import load_documents, load_yaml_all
from .schema import (
    ANY,
    PERCENTAGE,
    PORT,
    Duration,
    DurationOf,
    Enum,
    Int,
    Map,
    ModelError,
    Obj,
    SchemaError,
    Text,
    conform,
    describe,
    nearest,
    shown,
)

NETWORKING_VERSIONS = ("networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3")
SECURITY_VERSIONS = ("security.istio.io/v1", "security.istio.io/v1beta1")
DEFAULT_NAMESPACE = "default"
KEEPALIVE = DurationOf(2**32 - 1)  # Envoy takes keepalive times as whole seconds in a uint32

# -- schemas (Istio API, networking/v1) --------------------------------------------------------
STRING_MATCH = Obj({"exact": str, "prefix": str, "regex": MATCH_REGEX})  # regex "*": the header is present
URI_MATCH = Obj({"exact": str, "prefix": str, "regex": REGEX})
PERCENT = Obj({"value": PERCENTAGE})
PORT_SELECTOR = Obj({"number": PORT})
DESTINATION = Obj({"host": HOST, "subset": str, "port": PORT_SELECTOR}, required=("host",))
WEIGHT = Int(0, 100)
HTTP_STATUS = Int(200, 599)
HEADER_OPS = Obj({"set": Map(str), "add": Map(str), "remove": [str]})
HEADERS = Obj({"request": HEADER_OPS, "response": HEADER_OPS})

HTTP_MATCH = Obj({
    "name": str, "uri": URI_MATCH, "scheme": STRING_MATCH, "method": STRING_MATCH,
    "authority": STRING_MATCH, "headers": Map(STRING_MATCH), "port": PORT, "sourceLabels": Map(str),
    "gateways": [str], "queryParams": Map(STRING_MATCH), "ignoreUriCase": bool,
    "withoutHeaders": Map(STRING_MATCH), "sourceNamespace": str, "statPrefix": str,
})
HTTP_ROUTE_DESTINATION = Obj({"destination": DESTINATION, "weight": WEIGHT, "headers": HEADERS},
                             required=("destination",))
HTTP_ROUTE = Obj({
    "name": str,
    "match": [HTTP_MATCH],
    "route": [HTTP_ROUTE_DESTINATION],
    "redirect": Obj({"uri": str, "authority": str, "port": PORT,
                     "derivePort": Enum(("FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT")), "scheme": str,
                     "redirectCode": Int(0, 399)}),
    "directResponse": Obj({"status": HTTP_STATUS, "body": Obj({"string": str, "bytes": BASE64})}, required=("status",)),
    "rewrite": Obj({"uri": str, "authority": str,
                    "uriRegexRewrite": Obj({"match": REGEX, "rewrite": str}, required=("match", "rewrite"))}),
    "timeout": Duration,
    "retries": Obj({"attempts": int, "perTryTimeout": Duration, "retryOn": str,
                    "retryRemoteLocalities": bool}),
    "fault": Obj({
        "delay": Obj({"fixedDelay": Duration, "exponentialDelay": Duration, "percentage": PERCENT,
                      "percent": WEIGHT}),
        "abort": Obj({"httpStatus": HTTP_STATUS, "grpcStatus": str, "http2Error": str, "percentage": PERCENT}),
    }),
    "mirror": DESTINATION,
    "mirrorPercentage": PERCENT,
    "mirrorPercent": WEIGHT,
    "mirrors": [Obj({"destination": DESTINATION, "percentage": PERCENT})],
    "corsPolicy": Obj({"allowOrigins": [STRING_MATCH], "allowOrigin": [str], "allowMethods": [str],
                       "allowHeaders": [str], "exposeHeaders": [str], "maxAge": Duration, "allowCredentials": bool,
                       "unmatchedPreflights": Enum(("UNSPECIFIED", "FORWARD", "IGNORE"))}),
    "headers": HEADERS,
    "delegate": Obj({"name": str, "namespace": str}),
})
L4_MATCH = Obj({"destinationSubnets": [CIDR], "port": PORT, "sourceLabels": Map(str), "gateways": [str],
                "sourceNamespace": str})
TLS_MATCH = Obj({"sniHosts": [str], "destinationSubnets": [str], "port": int, "sourceLabels": Map(str),
                 "gateways": [str], "sourceNamespace": str}, required=("sniHosts",))
ROUTE_DESTINATION = Obj({"destination": DESTINATION, "weight": WEIGHT}, required=("destination",))
VIRTUAL_SERVICE = Obj({
    "hosts": [HOST],
    "gateways": [str],
    "http": [HTTP_ROUTE],
    "tcp": [Obj({"match": [L4_MATCH], "route": [ROUTE_DESTINATION]})],
    "tls": [Obj({"match": [TLS_MATCH], "route": [ROUTE_DESTINATION]})],
    "exportTo": [str],
})  # no `hosts`: a delegate, reached through a root's `http[].delegate`

LOAD_BALANCER = Obj({
    "simple": Enum(("UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST")),
    "consistentHash": Obj({
        "httpHeaderName": str, "useSourceIp": bool, "httpQueryParameterName": str,
        "httpCookie": Obj({"name": str, "path": str, "ttl": Duration}, required=("name",)),
        "ringHash": Obj({"minimumRingSize": int}), "maglev": Obj({"tableSize": int}),
        "minimumRingSize": int,
    }),
    "localityLbSetting": ANY,
    "warmupDurationSecs": Duration,
})
CONNECTION_POOL = Obj({
    "tcp": Obj({"maxConnections": int, "connectTimeout": Duration, "maxConnectionDuration": Duration,
                "idleTimeout": Duration,
                "tcpKeepalive": Obj({"probes": int, "time": KEEPALIVE, "interval": KEEPALIVE})}),
    "http": Obj({"http1MaxPendingRequests": int, "http2MaxRequests": int, "maxRequestsPerConnection": int,
                 "maxRetries": int, "idleTimeout": Duration, "maxConcurrentStreams": int,
                 "h2UpgradePolicy": Enum(("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE")),
                 "useClientProtocol": bool}),
})
OUTLIER_DETECTION = Obj({
    "consecutiveErrors": int, "consecutiveGatewayErrors": int, "consecutive5xxErrors": int,
    "consecutiveLocalOriginFailures": int, "splitExternalLocalOriginErrors": bool,
    "interval": Duration, "baseEjectionTime": Duration, "maxEjectionPercent": WEIGHT, "minHealthPercent": WEIGHT,
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
    "host": HOST,
    "trafficPolicy": TRAFFIC_POLICY,
    "subsets": [Obj({"name": str, "labels": Map(str), "trafficPolicy": TRAFFIC_POLICY}, required=("name",))],
    "exportTo": [str],
    "workloadSelector": Obj({"matchLabels": Map(str)}),
}, required=("host",))

SERVICE_ENTRY = Obj({
    "hosts": [HOST],
    "addresses": [CIDR],
    "ports": [Obj({"number": PORT, "protocol": str, "name": str, "targetPort": PORT}, required=("number",))],
    "location": Enum(("MESH_EXTERNAL", "MESH_INTERNAL")),
    "resolution": Enum(("NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN")),
    "endpoints": [Obj({"address": ENDPOINT_ADDRESS, "ports": Map(PORT), "labels": Map(str), "network": str,
                       "locality": str, "weight": int, "serviceAccount": str}, required=("address",))],
    "workloadSelector": Obj({"labels": Map(str)}),
    "exportTo": [str],
    "subjectAltNames": [str],
}, required=("hosts",))

SIDECAR = Obj({
    "workloadSelector": Obj({"labels": Map(str)}),
    "egress": [Obj({"port": Obj({"number": int, "protocol": str, "name": str, "targetPort": int}), "bind": str,
                    "captureMode": Enum(("DEFAULT", "IPTABLES", "NONE")), "hosts": [str]}, required=("hosts",))],
    "ingress": ANY,
    "outboundTrafficPolicy": Obj({"mode": Enum(OUTBOUND_TRAFFIC_POLICIES), "egressProxy": ANY}),
    "inboundConnectionPool": ANY,
})

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
# Namespaces are matched with a regex built around the name: keep them names (or Istio's `*` forms).
NAMESPACE_PATTERN = Text(
    lambda v: None if re.fullmatch(r"\*|\*?[a-z0-9]([-a-z0-9]*[a-z0-9])?\*?", v)
    else f"{v[:60]!r} is not a namespace name (lowercase letters, digits, '-'; '*' at either end)",
    "a namespace")
AUTHZ_SOURCE = Obj({
    **{key: [str] for key in ("principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals",
                              "serviceAccounts", "notServiceAccounts")},
    **{key: [NAMESPACE_PATTERN] for key in ("namespaces", "notNamespaces")},
    **{key: [CIDR] for key in ("ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks")},
})
AUTHZ_OPERATION = Obj({
    **{key: [str] for key in ("hosts", "notHosts", "methods", "notMethods", "paths", "notPaths")},
    **{key: [PORT_TEXT] for key in ("ports", "notPorts")},
})
# `when` values whose key gives them a meaning the translator relies on.
CONDITION_VALUES = {"source.ip": CIDR, "remote.ip": CIDR, "destination.ip": CIDR, "destination.port": PORT_TEXT,
                    "source.namespace": NAMESPACE_PATTERN}
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

JWT_RULE = Obj({
    "issuer": str, "audiences": [str], "jwksUri": str, "jwks": str,
    "fromHeaders": [Obj({"name": str, "prefix": str}, required=("name",))], "fromParams": [str],
    "fromCookies": [str], "outputPayloadToHeader": str, "forwardOriginalToken": bool,
    "outputClaimToHeaders": [Obj({"header": str, "claim": str})], "timeout": Duration,
}, required=("issuer",))
REQUEST_AUTHENTICATION = Obj({"selector": WORKLOAD_SELECTOR, "targetRef": ANY, "targetRefs": ANY,
                              "jwtRules": [JWT_RULE]})

METADATA = Obj({"name": str, "namespace": str, "labels": Map(str), "annotations": Map(str),
                "resourceVersion": ANY, "uid": ANY, "generation": ANY, "creationTimestamp": ANY,
                "managedFields": ANY}, required=("name",))

SPECS = {"VirtualService": VIRTUAL_SERVICE, "DestinationRule": DESTINATION_RULE, "ServiceEntry": SERVICE_ENTRY,
         "Sidecar": SIDECAR,
         "PeerAuthentication": PEER_AUTHENTICATION, "AuthorizationPolicy": AUTHORIZATION_POLICY,
         "RequestAuthentication": REQUEST_AUTHENTICATION,
         **gateway.SPECS}  # the front gate's kinds: meshkit/model/gateway.py
SECURITY_KINDS = ("PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication")
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
                  "RequestAuthentication": "request-authentication",
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
    """One document as an IstioResource, or SchemaError naming the document, every field at fault and the fix."""
    kind, api_version = doc.get("kind"), doc.get("apiVersion", "")
    where = document_label(doc, index)
    mesh = _mesh_config_of(doc, where)
    if mesh is not None:
        spec, problems = conform(mesh, MESH_CONFIG, "meshConfig")
        _raise(where, problems)
        return IstioResource("MeshConfig", "mesh", "istio-system", spec, str(api_version), doc)
    if isinstance(kind, str):
        kind = gateway.stored_kind(kind, str(api_version))
    if not isinstance(kind, str) or kind not in SPECS:
        hint = nearest(str(kind), KINDS)
        raise SchemaError(f"{where}: kind {shown(kind)} is not one meshkit knows ({', '.join(KINDS)})"
                          + (f"; did you mean {hint!r}?" if hint else ""))
    versions = SECURITY_VERSIONS if kind in SECURITY_KINDS else gateway.versions_for(kind)
    if api_version not in versions:
        hint = nearest(str(api_version), versions)
        raise SchemaError(f"{where}: apiVersion {shown(api_version)} is not one of {', '.join(versions)}"
                          + (f"; did you mean {hint!r}?" if hint else ""))
    metadata, problems = conform(doc.get("metadata"), METADATA, "metadata")
    spec, spec_problems = conform({} if doc.get("spec") is None else doc["spec"], SPECS[kind], "spec")
    problems += spec_problems
    extra = sorted(str(key) for key in set(doc) - {"apiVersion", "kind", "metadata", "spec", "status"})
    problems += [f"{key}: unknown top-level field" for key in extra]
    if not problems:
        namespace = metadata.get("namespace", DEFAULT_NAMESPACE)  # type: ignore[union-attr]
        problems += object_name_problems(metadata["name"], namespace)  # type: ignore[index]
        problems += _semantic_problems(kind, spec)  # type: ignore[arg-type]
    _raise(where, problems)
    return IstioResource(kind, metadata["name"], namespace, spec, api_version, doc)  # type: ignore[index]


def document_label(doc: dict, index: int) -> str:
    """`document 2 (VirtualService reviews)`: how every message names the document at fault."""
    kind = doc.get("kind") or doc.get("@type") or "no kind"
    metadata = doc.get("metadata")
    name = metadata.get("name", "?") if isinstance(metadata, dict) else doc.get("name", "?")
    return f"document {index + 1} ({shown(kind, 60, quote=False)} {shown(name, 60, quote=False)})"



def _semantic_problems(kind: str, spec: dict) -> list[str]:
    """What the schema cannot see: one StringMatch form at a time, `when` values their key types."""
    problems = []
    if kind == "ServiceEntry" and not spec.get("hosts"):  # a VirtualService without hosts is a delegate
        problems.append(f"spec.hosts: list at least one host (Istio: \"{HOSTS_RULE[kind]}\")")
    if kind == "VirtualService" and not spec.get("hosts") and spec.get("gateways"):
        problems.append("spec.gateways: a delegate VirtualService (no hosts) takes no gateways (Istio: "
                        "\"delegate virtual service must have no gateways specified\")")
    if kind == "VirtualService":
        for i, http in enumerate(spec.get("http", [])):
            if not (http.get("route") or "redirect" in http or "directResponse" in http or "delegate" in http):
                problems.append(f"spec.http[{i}]: give it a route, a redirect, a directResponse or a delegate "
                                "(Istio: \"http route or redirect or delegate is required\")")
            for j, match in enumerate(http.get("match", [])):
                for field, value in match.items():
                    for key, string_match in (value.items() if field in MULTI_MATCHES else [("", value)]):
                        if field in STRING_MATCHES + MULTI_MATCHES and len(string_match) > 1:
                            path = f"spec.http[{i}].match[{j}].{field}" + (f".{key}" if key else "")
                            problems.append(f"{path}: give one of exact, prefix or regex, not {len(string_match)}")
    if kind == "DestinationRule":
        names = [subset.get("name") for subset in spec.get("subsets", [])]
        for twice in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"spec.subsets: the name {twice!r} is used more than once (Istio: \"duplicate subset "
                            f"names: {twice}\"); give each subset its own name")
    if kind == "AuthorizationPolicy":
        for i, rule in enumerate(spec.get("rules", [])):
            for j, condition in enumerate(rule.get("when", [])):
                test = CONDITION_VALUES.get(condition["key"])
                for field in ("values", "notValues"):
                    for k, value in enumerate(condition.get(field, []) if test else []):
                        problem = test.test(value)  # type: ignore[union-attr]
                        if problem:
                            problems.append(f"spec.rules[{i}].when[{j}].{field}[{k}]: {problem}")
    return problems


HOSTS_RULE = {"ServiceEntry": "service entry must have at least one host"}
STRING_MATCHES = ("uri", "scheme", "method", "authority")
MULTI_MATCHES = ("headers", "queryParams", "withoutHeaders")


def _mesh_config_of(doc: dict, where: str) -> dict | None:
    """MeshConfig as Istio stores it (ConfigMap `istio`, key `mesh`) or in an IstioOperator."""
    kind = doc.get("kind")
    if kind == "MeshConfig":
        return doc.get("spec") or {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
    metadata = doc.get("metadata")
    if kind == "ConfigMap" and isinstance(metadata, dict) and metadata.get("name") == "istio":
        data = doc.get("data") or {}
        mesh = data.get("mesh", "") if isinstance(data, dict) else None
        if not isinstance(mesh, str):
            raise SchemaError(f"{where}: data.mesh: expected the mesh config as a YAML string (mesh: |-), "
                              f"got {describe(mesh)}")
        try:
            loaded = load_yaml_all(mesh)
        except ModelError as exc:
            raise SchemaError(f"{where}: data.mesh: {exc}") from None
        if len(loaded) > 1:
            raise SchemaError(f"{where}: data.mesh: holds {len(loaded)} YAML documents; give one")
        return (loaded[0] if loaded else None) or {}
    if kind == "IstioOperator":
        spec = doc.get("spec")
        return (spec.get("meshConfig") if isinstance(spec, dict) else spec) or {}
    return None


MAX_PROBLEMS = 20


def _raise(where: str, problems: list[str]) -> None:
    if problems:
        listed = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            listed.append(f"... and {len(problems) - MAX_PROBLEMS} more problems")
        raise SchemaError(f"{where}:\n  " + "\n  ".join(listed))
