"""RequestAuthentication → Envoy's `jwt_authn` filter on the inbound HTTP chains, as istiod builds it.

istiod's `convertToEnvoyJwtConfig` (`pilot/pkg/security/authn/policy_applier.go`, 1.30): the jwtRules
of every RequestAuthentication that applies to the workload (root namespace and its own, picked
by `selector`) become providers `origins-<i>` (issuer, audiences, token locations, forwarding,
claim headers, payload in metadata `payload`) with local JWKS; one rule on `/` requires, per
provider, {that provider OR allow_missing} — a request *without* a token passes (an
AuthorizationPolicy asking for `requestPrincipals` then denies it), one with a bad token gets 401
— and, with several providers, OR'ed with each provider alone (`BypassCorsPreflight` on).

Where meshkit differs: keys come only from `jwks` (inline); a rule with only `jwksUri` gets
Istio's fail-closed public-only key (every token rejected) and a warning. Istio's own
`istio_authn` filter, which turns the payload into `request.auth.principal`, is not in upstream
Envoy: AuthorizationPolicy `requestPrincipals` read the `payload` metadata directly (`iss`, `sub`).
"""

from __future__ import annotations

from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from meshkit.model import Topology, Workload

from .authorization import applies
from .values import istio_duration, pack

JWT_AUTHN = "envoy.filters.http.jwt_authn"
PAYLOAD = "payload"  # istiod's EnvoyJwtFilterPayload
# istiod's PublicOnlyJwks idea: a key whose private half exists nowhere, so no token verifies.
NO_KEYS = '{"keys":[]}'


def rules_for(topology: Topology, workload: Workload) -> list[dict]:
    """The jwtRules of the RequestAuthentications that apply to `workload`, by (namespace, name)."""
    chosen = [p for p in topology.istio.request_authentications if applies(p, workload)]
    return [rule for p in sorted(chosen, key=lambda p: (p.namespace, p.name))
            for rule in p.spec.get("jwtRules") or []]


def provider(rule: dict) -> jwt.JwtProvider:
    """One jwtRule as istiod's JwtProvider."""
    out = jwt.JwtProvider(
        issuer=rule["issuer"], audiences=rule.get("audiences", []), forward=rule.get("forwardOriginalToken", False),
        forward_payload_header=rule.get("outputPayloadToHeader", ""), payload_in_metadata=PAYLOAD,
        from_params=rule.get("fromParams", []), from_cookies=rule.get("fromCookies", []),
    )
    out.normalize_payload_in_metadata.SetInParent()
    out.claim_to_headers.extend(jwt.JwtClaimToHeader(header_name=c.get("header", ""), claim_name=c.get("claim", ""))
                                for c in rule.get("outputClaimToHeaders", []))
    out.from_headers.extend(jwt.JwtHeader(name=h["name"], value_prefix=h.get("prefix", ""))
                            for h in rule.get("fromHeaders", []))
    out.local_jwks.inline_string = rule.get("jwks") or NO_KEYS
    if "timeout" in rule:
        istio_duration(rule["timeout"])  # checked, but only a jwksUri fetch would use it
    return out


def jwt_config(rules: list[dict]) -> jwt.JwtAuthentication | None:
    """istiod's `convertToEnvoyJwtConfig`, or None without rules."""
    if not rules:
        return None
    config = jwt.JwtAuthentication(bypass_cors_preflight=True)
    inner, outer = [], []
    for index, rule in enumerate(rules):
        name = f"origins-{index}"
        config.providers[name].CopyFrom(provider(rule))
        inner.append(jwt.JwtRequirement(requires_any=jwt.JwtRequirementOrList(requirements=[
            jwt.JwtRequirement(provider_name=name), jwt.JwtRequirement(allow_missing={})])))
        outer.append(jwt.JwtRequirement(provider_name=name))
    requirement = inner[0] if len(inner) == 1 else jwt.JwtRequirement(requires_any=jwt.JwtRequirementOrList(
        requirements=[*outer, jwt.JwtRequirement(requires_all=jwt.JwtRequirementAndList(requirements=inner))]))
    rule = config.rules.add(requires=requirement)
    rule.match.prefix = "/"
    return config


def http_filters(topology: Topology, workload: Workload) -> list[hcm_pb2.HttpFilter]:
    """The inbound `jwt_authn` filter for `workload` (none without a RequestAuthentication)."""
    config = jwt_config(rules_for(topology, workload))
    return [] if config is None else [hcm_pb2.HttpFilter(name=JWT_AUTHN, typed_config=pack(config))]


