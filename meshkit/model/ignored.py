"""Fields meshkit accepts (they are valid Istio) but does not translate, each named in a warning.

Istio's schemas are checked strictly (`istio`), so a typo is refused; a valid field meshkit has
no translation for is accepted, like istiod would, but never silently: `ignored_fields` returns
one line per occurrence, which `meshkit apply` prints with the push. `IGNORED` is the list; the
unit test walking the schemas (tests/unit/test_model.py) checks that every accepted field is
either translated (a golden input or test uses it) or listed here.
"""

from __future__ import annotations

from collections.abc import Iterator

from .istio import IstioResource

# Where a DestinationRule holds a traffic policy.
_POLICIES = ("spec.trafficPolicy", "spec.trafficPolicy.portLevelSettings[]", "spec.subsets[].trafficPolicy",
             "spec.subsets[].trafficPolicy.portLevelSettings[]")
_ISTIOD_DROPS = "istiod drops it too (no Envoy config)"

# (kind, field path, why): `[]` steps into every list item.
IGNORED: tuple[tuple[str, str, str], ...] = (
    ("VirtualService", "spec.http[].match[].statPrefix", "per-route stats need Istio's stats filter"),
    ("VirtualService", "spec.http[].fault.delay.exponentialDelay", _ISTIOD_DROPS),
    ("VirtualService", "spec.http[].fault.abort.http2Error", _ISTIOD_DROPS),
    ("VirtualService", "spec.tcp[].match[].destinationSubnets", "the match is left out (no CIDR chains)"),
    ("VirtualService", "spec.tls[].match[].destinationSubnets", "the match is left out (no CIDR chains)"),
    *(("DestinationRule", f"{where}.{field}", why) for where in _POLICIES for field, why in (
        ("loadBalancer.localityLbSetting", "meshkit's endpoints carry no locality"),
        ("connectionPool.http.h2UpgradePolicy", "clusters speak HTTP/1.1 upstream"),
        ("connectionPool.http.maxConcurrentStreams", "clusters speak HTTP/1.1 upstream"),
        ("tunnel", "no HTTP CONNECT tunnelling"),
        ("proxyProtocol", "no PROXY protocol upstream"),
    )),
    ("DestinationRule", "spec.workloadSelector", "the rule applies to every proxy (only credentialName "
                                                 "reads it, as istiod)"),
    ("ServiceEntry", "spec.endpoints[].network", "meshkit has one network"),
    ("ServiceEntry", "spec.endpoints[].locality", "meshkit's endpoints carry no locality"),
    ("ServiceEntry", "spec.subjectAltNames", "upstream TLS verifies the DestinationRule's subjectAltNames only"),
    ("RequestAuthentication", "spec.jwtRules[].jwksUri", "no JWKS is fetched: give the keys inline in `jwks` "
                                                      "(without them every token is rejected, as istiod's "
                                                      "fail-closed fallback)"),
    ("RequestAuthentication", "spec.jwtRules[].timeout", "it only bounds fetching a jwksUri"),
    ("RequestAuthentication", "spec.targetRef", "it binds to a gateway or waypoint: no sidecar gets it"),
    ("RequestAuthentication", "spec.targetRefs", "it binds to a gateway or waypoint: no sidecar gets it"),
    ("AuthorizationPolicy", "spec.targetRef", "it binds to a gateway or waypoint: no sidecar gets it"),
    ("AuthorizationPolicy", "spec.targetRefs", "it binds to a gateway or waypoint: no sidecar gets it"),
    ("Sidecar", "spec.ingress", "inbound listeners follow the pod's Services"),
    ("Sidecar", "spec.egress[].port", "egress hosts scope every port"),
    ("Sidecar", "spec.egress[].bind", "egress hosts scope every port"),
    ("Sidecar", "spec.egress[].captureMode", "capture is the mesh's"),
    ("Sidecar", "spec.outboundTrafficPolicy.egressProxy", "no egress proxy"),
    ("Sidecar", "spec.inboundConnectionPool", "inbound clusters keep unlimited circuit breakers"),
    ("MeshConfig", "connectTimeout", "clusters keep the 10s default"),
    ("MeshConfig", "protocolDetectionTimeout", "listeners keep the 0s default"),
    ("MeshConfig", "accessLogFile", "sidecars always log JSON to /dev/stdout"),
    ("MeshConfig", "accessLogEncoding", "sidecars always log JSON to /dev/stdout"),
    ("MeshConfig", "defaultConfig", "there is no pilot-agent to read ProxyConfig"),
    *(("Gateway", f"spec.servers[].tls.{field}", "the gate's certificates come from the boss's CA (credentialName)")
      for field in ("serverCertificate", "caCrl", "verifyCertificateSpki", "verifyCertificateHash",
                    "minProtocolVersion", "maxProtocolVersion", "cipherSuites", "tlsCertificates")),
    ("Gateway", "spec.servers[].defaultEndpoint", "meshkit's gate forwards to Services, not to a local endpoint"),
    ("KubernetesGateway", "spec.infrastructure", "the automated deployment takes meshkit's own labels and ports"),
    *((kind, path, why) for kind in ("HTTPRoute", "GRPCRoute") for path, why in (
        ("spec.rules[].filters[].extensionRef", "no extension filters in upstream Envoy's meshkit build"),
        ("spec.rules[].sessionPersistence", "no session affinity from the Gateway API yet"))),
    ("HTTPRoute", "spec.rules[].timeouts.backendRequest", "only the request timeout is translated"),
)
def occurrences(value: object, path: str) -> Iterator[str]:
    """The concrete paths (`spec.http[0].corsPolicy`) where `path` is present in `value`."""
    head, _, rest = path.partition(".")
    listed = head.endswith("[]")
    key = head.removesuffix("[]")
    if not isinstance(value, dict) or key not in value:
        return
    found = value[key]
    items = list(enumerate(found)) if listed and isinstance(found, list) else [(None, found)]
    for index, item in items:
        here = key if index is None else f"{key}[{index}]"
        if not rest:
            yield here
        else:
            yield from (f"{here}.{deeper}" for deeper in occurrences(item, rest))


def ignored_fields(resource: IstioResource) -> list[str]:
    """One warning per field of `resource` that meshkit accepts but does not translate."""
    spec = resource.spec if resource.kind == "MeshConfig" else {"spec": resource.spec}
    out = [f"{where}: accepted, but meshkit ignores it ({why})"
           for kind, path, why in IGNORED if kind == resource.kind
           for where in occurrences(spec, path)]
    return out
