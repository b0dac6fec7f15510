"""AuthorizationPolicy → Envoy's RBAC filters on the inbound chains, as istiod builds them.

istiod's authz builder (`pilot/pkg/security/authz/builder`, `model`):

- the policies that apply to a workload: those in the root namespace (`istio-system`) and in the
  workload's namespace whose `selector.matchLabels` pick it (none = every workload in scope);
- one RBAC filter per action, DENY before AUDIT (Envoy action `LOG`) before ALLOW, each holding
  one Envoy policy per rule named `ns[<ns>]-policy[<name>]-rule[<i>]`. An ALLOW filter is there as
  soon as one ALLOW policy applies, so anything no rule allows is denied (403
  `RBAC: access denied`); an ALLOW policy without rules allows nothing, a DENY one denies nothing;
- a rule: `from` sources OR'd, each source's fields AND'ed, each field's values OR'd →
  `principals`; `to` operations likewise → `permissions`; `when` conditions AND'ed onto both
  (request headers and source facts onto principals, destination facts onto permissions);
- identities: `principals` compare the peer certificate's URI SAN (`spiffe://` + the value; `*`
  prefix / suffix wildcards), `namespaces` match `.*/ns/<ns>/.*` of it. Without mTLS there is no
  peer certificate, so `from` rules never match a plaintext caller.

TCP chains get `envoy.filters.network.rbac` from the same policies where HTTP-only fields
(methods, paths, hosts, request headers) cannot be checked: an ALLOW rule that needs them is
dropped, a DENY rule keeps only its other fields (istiod's "more restrictive" rule for TCP).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.rbac.v3 import rbac_pb2 as rbac
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac
from envoy.type.matcher.v3 import metadata_pb2, path_pb2, regex_pb2, string_pb2, value_pb2

from meshkit.model import Topology, Workload
from meshkit.model.constants import ROOT_NAMESPACE
from meshkit.model.istio import IstioResource

from .values import pack

HTTP_RBAC = "envoy.filters.http.rbac"
NETWORK_RBAC = "envoy.filters.network.rbac"
ACTIONS = (("DENY", rbac.RBAC.DENY), ("AUDIT", rbac.RBAC.LOG), ("ALLOW", rbac.RBAC.ALLOW))
HTTP_ONLY_OPERATION = ("hosts", "notHosts", "methods", "notMethods", "paths", "notPaths")
SPIFFE = "spiffe://"
JWT_AUTHN = "envoy.filters.http.jwt_authn"
JWT_PAYLOAD = "payload"
# istiod's getBadCustomDenyRules: a CUSTOM policy whose provider is unknown denies what it matches
BAD_CUSTOM_SUFFIX = "-deny-due-to-bad-CUSTOM-action"
EXT_AUTHZ_PREFIX = "istio-ext-authz"


def applies(policy: IstioResource, workload: Workload) -> bool:
    """Root-namespace policies reach every namespace; others only their own. A policy with
    `targetRef(s)` binds to a gateway or waypoint, never to a sidecar (istiod's policy matcher)."""
    if policy.namespace not in (ROOT_NAMESPACE, workload.namespace):
        return False
    if policy.spec.get("targetRef") or policy.spec.get("targetRefs"):
        return False
    wanted = (policy.spec.get("selector") or {}).get("matchLabels") or {}
    return all(workload.label_map.get(k) == v for k, v in wanted.items())


def policies_for(topology: Topology, workload: Workload) -> list[IstioResource]:
    return [p for p in topology.istio.authorization_policies if applies(p, workload)]


# -- matchers --------------------------------------------------------------------------------------
def string_match(value: str, *, prefix_of: str = "") -> string_pb2.StringMatcher:
    """Istio's string rule: exact, `prefix*`, `*suffix`, or `*` (present)."""
    if value == "*":
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=".+"))
    if value.endswith("*"):
        return string_pb2.StringMatcher(prefix=prefix_of + value[:-1])
    if value.startswith("*"):
        return string_pb2.StringMatcher(suffix=value[1:])
    return string_pb2.StringMatcher(exact=prefix_of + value)


def _principal_name(value: str) -> rbac.Principal:
    spiffe = "" if value == "*" or value.startswith("*") else SPIFFE
    matcher = string_match(value, prefix_of=spiffe)
    return rbac.Principal(authenticated=rbac.Principal.Authenticated(principal_name=matcher))


def _namespace(value: str) -> rbac.Principal:
    matcher = string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=f".*/ns/{value}/.*"))
    return rbac.Principal(authenticated=rbac.Principal.Authenticated(principal_name=matcher))


def _service_account(value: str) -> rbac.Principal:
    """`serviceAccounts: [ns/sa]` is the principal `cluster.local/ns/<ns>/sa/<sa>`."""
    namespace, _, account = value.partition("/")
    return _principal_name(f"cluster.local/ns/{namespace}/sa/{account}")


def _request_principal(value: str) -> rbac.Principal:
    """`requestPrincipals: [<iss>/<sub>]` on the JWT payload `jwt_authn` keeps (`request_authentication`):
    istiod matches `request.auth.principal` from Istio's `istio_authn` filter, which upstream Envoy
    lacks, so meshkit matches the payload's `iss` and `sub` claims (`*` parts: present)."""
    issuer, _, subject = value.rpartition("/") if "/" in value else (value, "", "*")

    def claim(name: str, pattern: str) -> rbac.Principal:
        matcher = value_pb2.ValueMatcher(present_match=True) if pattern == "*" else value_pb2.ValueMatcher(
            string_match=string_match(pattern))
        return rbac.Principal(metadata=metadata_pb2.MetadataMatcher(
            filter=JWT_AUTHN, path=[metadata_pb2.MetadataMatcher.PathSegment(key=k) for k in (JWT_PAYLOAD, name)],
            value=matcher))

    return rbac.Principal(and_ids=rbac.Principal.Set(ids=[claim("iss", issuer), claim("sub", subject)]))


def _header_id(name: str, value: str) -> rbac.Principal:
    return rbac.Principal(header=rc.HeaderMatcher(name=name, string_match=string_match(value)))


def _cidr(value: str) -> address_pb2.CidrRange:
    address, _, prefix = value.partition("/")
    return address_pb2.CidrRange(address_prefix=address, prefix_len={"value": int(prefix or 32)})


def _or_ids(ids: Sequence[rbac.Principal], negate: bool = False) -> rbac.Principal:
    principal = ids[0] if len(ids) == 1 else rbac.Principal(or_ids=rbac.Principal.Set(ids=ids))
    return rbac.Principal(not_id=principal) if negate else principal


def _or_rules(rules: Sequence[rbac.Permission], negate: bool = False) -> rbac.Permission:
    permission = rules[0] if len(rules) == 1 else rbac.Permission(or_rules=rbac.Permission.Set(rules=rules))
    return rbac.Permission(not_rule=permission) if negate else permission


SOURCE_FIELDS: dict[str, Callable[[str], rbac.Principal]] = {
    "principals": _principal_name,
    "namespaces": _namespace,
    "ipBlocks": lambda v: rbac.Principal(direct_remote_ip=_cidr(v)),
    "remoteIpBlocks": lambda v: rbac.Principal(remote_ip=_cidr(v)),
    "serviceAccounts": _service_account,
    "requestPrincipals": _request_principal,
}
OPERATION_FIELDS: dict[str, Callable[[str], rbac.Permission]] = {
    "hosts": lambda v: rbac.Permission(header=rc.HeaderMatcher(name=":authority", string_match=string_match(v))),
    "ports": lambda v: rbac.Permission(destination_port=int(v)),
    "methods": lambda v: rbac.Permission(header=rc.HeaderMatcher(name=":method", string_match=string_match(v))),
    "paths": lambda v: rbac.Permission(url_path=path_pb2.PathMatcher(path=string_match(v))),
}


def _source(source: dict) -> list[rbac.Principal]:
    ids = []
    for field, make in SOURCE_FIELDS.items():
        for negate, key in ((False, field), (True, "not" + field[0].upper() + field[1:])):
            if source.get(key):
                ids.append(_or_ids([make(v) for v in source[key]], negate))
    return ids


def _operation(operation: dict, tcp: bool) -> list[rbac.Permission]:
    rules = []
    for field, make in OPERATION_FIELDS.items():
        if tcp and field in HTTP_ONLY_OPERATION:
            continue
        for negate, key in ((False, field), (True, "not" + field[0].upper() + field[1:])):
            if operation.get(key):
                rules.append(_or_rules([make(v) for v in operation[key]], negate))
    return rules


def _condition(condition: dict, tcp: bool) -> tuple[list[rbac.Principal], list[rbac.Permission]]:
    """One `when` entry: principals (request/source facts) or permissions (destination facts)."""
    key = condition["key"]
    ids: list[rbac.Principal] = []
    rules: list[rbac.Permission] = []
    for negate, values in ((False, condition.get("values")), (True, condition.get("notValues"))):
        if not values:
            continue
        if key.startswith("request.headers[") and key.endswith("]"):
            if not tcp:
                ids.append(_or_ids([_header_id(key[len("request.headers["):-1], v) for v in values], negate))
        elif key == "source.principal":
            ids.append(_or_ids([_principal_name(v) for v in values], negate))
        elif key == "source.namespace":
            ids.append(_or_ids([_namespace(v) for v in values], negate))
        elif key == "source.ip":
            ids.append(_or_ids([SOURCE_FIELDS["ipBlocks"](v) for v in values], negate))
        elif key == "destination.port":
            rules.append(_or_rules([OPERATION_FIELDS["ports"](v) for v in values], negate))
        elif key == "destination.ip":
            rules.append(_or_rules([rbac.Permission(destination_ip=_cidr(v)) for v in values], negate))
    return ids, rules


def _needs_http(rule: dict) -> bool:
    operations = [to.get("operation") or {} for to in rule.get("to", [])]
    headers = [c for c in rule.get("when", []) if c["key"].startswith("request.")]
    return bool(headers) or any(op.get(f) for op in operations for f in HTTP_ONLY_OPERATION)


def rule_policy(rule: dict, tcp: bool = False) -> rbac.Policy:
    """One AuthorizationPolicy rule as one Envoy RBAC policy."""
    extra_ids: list[rbac.Principal] = []
    extra_rules: list[rbac.Permission] = []
    for condition in rule.get("when", []):
        ids, rules = _condition(condition, tcp)
        extra_ids += ids
        extra_rules += rules

    def principal(ids: list[rbac.Principal]) -> rbac.Principal:
        ids = ids + extra_ids
        return rbac.Principal(and_ids=rbac.Principal.Set(ids=ids)) if ids else rbac.Principal(any=True)

    def permission(rules: list[rbac.Permission]) -> rbac.Permission:
        rules = rules + extra_rules
        return rbac.Permission(and_rules=rbac.Permission.Set(rules=rules)) if rules else rbac.Permission(any=True)

    sources = [f.get("source") or {} for f in rule.get("from", [])]
    operations = [t.get("operation") or {} for t in rule.get("to", [])]
    return rbac.Policy(
        permissions=[permission(_operation(op, tcp)) for op in operations] or [permission([])],
        principals=[principal(_source(src)) for src in sources] or [principal([])],
    )


def _policies(config: rbac.RBAC, chosen: Sequence[IstioResource], tcp: bool, prefix: str = "",
              suffix: str = "", skip_http: bool = False) -> None:
    for policy in sorted(chosen, key=lambda p: (p.namespace, p.name)):
        for index, rule in enumerate(policy.spec.get("rules") or []):
            if skip_http and _needs_http(rule):
                continue
            name = f"{prefix}ns[{policy.namespace}]-policy[{policy.name}]-rule[{index}]{suffix}"
            config.policies[name].CopyFrom(rule_policy(rule, tcp))


def custom_rules(policies: Sequence[IstioResource], tcp: bool = False) -> list[rbac.RBAC]:
    """CUSTOM policies, one DENY config per provider: meshkit has no extension providers, so
    every provider is unknown and istiod fails closed, denying what the rules match."""
    out = []
    custom = [p for p in policies if p.spec.get("action") == "CUSTOM"]
    for provider in sorted({(p.spec.get("provider") or {}).get("name", "") for p in custom}):
        config = rbac.RBAC(action=rbac.RBAC.DENY)
        chosen = [p for p in custom if (p.spec.get("provider") or {}).get("name", "") == provider]
        _policies(config, chosen, tcp, f"{EXT_AUTHZ_PREFIX}-{provider}-", BAD_CUSTOM_SUFFIX)
        if config.policies:
            out.append(config)
    return out


def rules_by_action(policies: Sequence[IstioResource], tcp: bool = False) -> list[rbac.RBAC]:
    """One RBAC config per action present: CUSTOM (as DENY, see `custom_rules`) → DENY → LOG
    (AUDIT) → ALLOW."""
    out = custom_rules(policies, tcp)
    for action, envoy_action in ACTIONS:
        chosen = [p for p in policies if p.spec.get("action", "ALLOW") == action]
        if not chosen:
            continue
        config = rbac.RBAC(action=envoy_action)
        _policies(config, chosen, tcp, skip_http=tcp and action == "ALLOW")
        if action != "ALLOW" and not config.policies:
            continue  # a DENY / AUDIT policy without rules changes nothing
        out.append(config)
    return out


def http_filters(topology: Topology, workload: Workload) -> list[hcm_pb2.HttpFilter]:
    """The inbound HTTP RBAC filters for `workload` (none without policies)."""
    return [
        hcm_pb2.HttpFilter(name=HTTP_RBAC, typed_config=pack(http_rbac.RBAC(rules=rules)))
        for rules in rules_by_action(policies_for(topology, workload))
    ]


def network_filters(topology: Topology, workload: Workload) -> list[listener_components_pb2.Filter]:
    """The inbound TCP RBAC filters for `workload` (stat prefix `tcp.` as istiod's)."""
    return [
        listener_components_pb2.Filter(
            name=NETWORK_RBAC, typed_config=pack(network_rbac.RBAC(rules=rules, stat_prefix="tcp."))
        )
        for rules in rules_by_action(policies_for(topology, workload), tcp=True)
    ]
