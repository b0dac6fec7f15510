"""VirtualService → Envoy routes and tcp_proxy targets, as istiod translates them for sidecars.

Follows `route/route.go` (`BuildHTTPRoutesForVirtualService`, `TranslateRoute`,
`TranslateRouteMatch`, `TranslateFault`, `MirrorPercent`, `ApplyRedirect`) and, for `tcp`,
`buildSidecarOutboundTCPFilterChainOpts`:

- only VirtualServices for the `mesh` gateway reach sidecars (no `gateways`, or `mesh` listed);
- one Envoy route per `match` entry, in order; a rule without `match`, or a match that is a
  catch-all (`prefix: /` or regex `.*`, no header or query match), ends generation. Nothing is
  appended, so an unmatched request gets `404 NR`. Matches with another `port`, or whose
  `sourceLabels` / `sourceNamespace` do not fit the proxy, are left out for that proxy; a match
  naming `gateways` is kept only if they include `mesh` (and then its source labels are not
  checked, as in istiod's `sourceMatchHTTP`);
- header matches sorted by name, then `:method`, `:authority`, `:scheme`; `regex: "*"` (or an
  empty match) is `present_match`; `case_sensitive` is `!ignoreUriCase` on every matched route;
- a destination without `port` goes to the listener port (istiod's HTTP lookup only knows the
  services on that port); `weight: 0` destinations are dropped, no `total_weight`;
- `timeout` → timeout and max_grpc_timeout (both `0s` when unset); `retries` → `retry`;
  `fault` → per-route `envoy.filters.http.fault` with `percentage.value` as a millionth-based
  FractionalPercent (value × 10000 / MILLION) and the deprecated integer `percent` as n / HUNDRED;
  an abort without `percentage` is sent without one, which Envoy reads as 0 % (istiod does the
  same: istio/istio#36303); `mirror` / `mirrors` → request_mirror_policies (100 % by default);
  `rewrite.uri` → prefix_rewrite (also after an exact match, as istiod), `uriRegexRewrite` →
  regex_rewrite, `authority` (or a `host` / `:authority` header set) → host_rewrite_literal;
  `headers` set → OVERWRITE_IF_EXISTS_OR_ADD, add → APPEND_IF_EXISTS_OR_ADD, each group sorted,
  pseudo-headers and `host` dropped, destination-level headers on the route (one destination)
  or on its weighted cluster;
- every route carries `istio.config` metadata (istioctl's VIRTUAL SERVICE column) and a decorator
  `<host>:<port><path>` (or `<vs name>:<port><path>` when the target is not one cluster).

`delegate` rules are replaced by the delegate's merged rules first (`delegate`);
`corsPolicy` → the route's `envoy.filters.http.cors` config (`TranslateCORSPolicy`); `tcp` / `tls`
rules are in `tcp_routes`. Where meshkit does not follow istiod: tcp / tls `destinationSubnets` are
accepted with a warning and ignored, wildcard hosts are ignored; `queryParams` keep the order
written (istiod iterates a Go map); when several VirtualServices name a host the first by
(namespace, name) wins, where istiod takes the oldest.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import NamedTuple

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from meshkit.model import Workload
from meshkit.model.config import IstioConfig, resolve_host
from meshkit.model.istio import IstioResource

from . import delegate, filters, names
from . import destination_rule as dr
from .registry import RegistryService
from .retry import retry_policy
from .values import filter_metadata, istio_duration, pack

MESH_GATEWAY = "mesh"
FractionalPercent = percent_pb2.FractionalPercent
Header = base_pb2.HeaderValueOption
# istiod's grpc.SupportedGRPCStatus.
GRPC_STATUS_NAMES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
)  # fmt: skip
GRPC_STATUS = {name: code for code, name in enumerate(GRPC_STATUS_NAMES)}
REDIRECT_CODES = {
    0: rc.RedirectAction.MOVED_PERMANENTLY,
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


class Context(NamedTuple):
    """What route translation needs to know: the proxy, the listener port, the Istio config."""

    proxy: Workload
    port: int
    istio: IstioConfig


def for_sidecars(istio: IstioConfig) -> list[IstioResource]:
    """VirtualServices bound to the `mesh` gateway (no `gateways` means `mesh`); delegates (no
    `hosts`) only count through the root that names them (`delegate`)."""
    return [vs for vs in istio.virtual_services
            if vs.spec.get("hosts") and MESH_GATEWAY in vs.spec.get("gateways", [MESH_GATEWAY])]


def hosts(vs: IstioResource) -> list[str]:
    """The VirtualService's hosts, short names resolved in its namespace, lower-cased."""
    return [resolve_host(h, vs.namespace).lower() for h in vs.spec.get("hosts", [])]


def naming(istio: IstioConfig, hostname: str) -> list[IstioResource]:
    """The sidecar VirtualServices that name `hostname`, in config order."""
    return [vs for vs in for_sidecars(istio) if hostname in hosts(vs)]


# -- HTTP -----------------------------------------------------------------------------------


def http_routes(vs: IstioResource, ctx: Context) -> list[rc.Route]:
    """istiod's `BuildHTTPRoutesForVirtualService` for one proxy and listener port."""
    out: list[rc.Route] = []
    for http in delegate.merged_http(ctx.istio, vs):
        if not http.get("match"):
            out.append(translate_route(vs, http, None, ctx))
            return out
        for match in http["match"]:
            route = translate_route(vs, http, match, ctx)
            if route is None:
                continue
            out.append(route)
            if is_catch_all(route):
                return out
    return out


def source_matches(match: dict, proxy: Workload) -> bool:
    """istiod's `sourceMatchHTTP`: gateways if named, else source labels and namespace."""
    if match.get("gateways"):
        return MESH_GATEWAY in match["gateways"]
    labels = proxy.label_map
    if any(labels.get(k) != v for k, v in match.get("sourceLabels", {}).items()):
        return False
    return match.get("sourceNamespace", proxy.namespace) == proxy.namespace


def translate_route(vs: IstioResource, http: dict, match: dict | None, ctx: Context) -> rc.Route | None:
    """One Envoy route for one `match` entry (or the whole rule without match); None if it does
    not apply to this proxy and port."""
    if match is not None and (match.get("port", ctx.port) != ctx.port or not source_matches(match, ctx.proxy)):
        return None
    name = http.get("name", "")
    if match is not None and match.get("name"):
        name = f"{name}.{match['name']}"
    route = rc.Route(
        name=name, match=route_match(match), metadata=filter_metadata({"istio": {"config": vs.config_path}})
    )
    authority = add_headers(route, http.get("headers"))
    if "redirect" in http:
        route.redirect.CopyFrom(redirect(http["redirect"], ctx.port))
    elif "directResponse" in http:
        route.direct_response.CopyFrom(direct_response(http["directResponse"]))
    else:
        route.route.CopyFrom(route_action(vs, http, route, authority, ctx))
    route.decorator.operation = operation(route, vs.name, ctx.port)
    fault = translate_fault(http.get("fault"))
    if fault is not None:
        route.typed_per_filter_config[filters.FAULT].CopyFrom(pack(fault))
    if "corsPolicy" in http:
        route.typed_per_filter_config[filters.CORS].CopyFrom(pack(cors_policy(http["corsPolicy"])))
    return route


def cors_policy(spec: dict) -> cors_pb2.CorsPolicy:
    """istiod's `TranslateCORSPolicy`: the per-route config of the (always present) CORS filter."""
    out = cors_pb2.CorsPolicy(
        allow_methods=",".join(spec.get("allowMethods", [])),
        allow_headers=",".join(spec.get("allowHeaders", [])),
        expose_headers=",".join(spec.get("exposeHeaders", [])),
        forward_not_matching_preflights=wrappers_pb2.BoolValue(value=spec.get("unmatchedPreflights") != "IGNORE"),
        filter_enabled={"default_value": {"numerator": 100, "denominator": FractionalPercent.HUNDRED}},
    )
    if "allowOrigins" in spec:
        matchers = (string_matcher(m) for m in spec["allowOrigins"])
        out.allow_origin_string_match.extend(m for m in matchers if m is not None)  # `{}` matches nothing
    else:
        out.allow_origin_string_match.extend(string_pb2.StringMatcher(exact=o) for o in spec.get("allowOrigin", []))
    if "allowCredentials" in spec:
        out.allow_credentials.value = spec["allowCredentials"]
    if "maxAge" in spec:
        out.max_age = str(istio_duration(spec["maxAge"]).seconds)
    return out


def string_matcher(spec: Mapping[str, str]) -> string_pb2.StringMatcher | None:
    """exact / prefix / regex as an Envoy StringMatcher (istiod's `ConvertToEnvoyMatch`)."""
    if "exact" in spec:
        return string_pb2.StringMatcher(exact=spec["exact"])
    if "prefix" in spec:
        return string_pb2.StringMatcher(prefix=spec["prefix"])
    if "regex" in spec:
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=spec["regex"]))
    return None


def is_presence(spec: Mapping[str, str]) -> bool:
    """An empty match, or regex `*` (not RE2: Istio's "header is present"), is `present_match`."""
    return not spec or spec.get("regex") == "*"


def header_matcher(name: str, spec: Mapping[str, str], *, invert: bool = False) -> rc.HeaderMatcher:
    matcher = rc.HeaderMatcher(name=name, invert_match=invert)
    if is_presence(spec):
        matcher.present_match = True
    else:
        matcher.string_match.CopyFrom(string_matcher(spec))
        matcher.treat_missing_header_as_empty = invert
    return matcher


def route_match(match: dict | None) -> rc.RouteMatch:
    """istiod's `TranslateRouteMatch`."""
    out = rc.RouteMatch(prefix="/")
    if match is None:
        return out
    headers = [header_matcher(n, s) for n, s in match.get("headers", {}).items()]
    headers += [header_matcher(n, s, invert=True) for n, s in match.get("withoutHeaders", {}).items()]
    out.headers.extend(sorted(headers, key=lambda h: h.name))
    uri = match.get("uri", {})
    if "exact" in uri:
        out.path = uri["exact"]
    elif "prefix" in uri:
        out.prefix = uri["prefix"]
    elif "regex" in uri:
        out.safe_regex.regex = uri["regex"]
    out.case_sensitive.value = not match.get("ignoreUriCase", False)
    for field, pseudo in (("method", ":method"), ("authority", ":authority"), ("scheme", ":scheme")):
        if field in match:
            out.headers.append(header_matcher(pseudo, match[field]))
    for name, spec in match.get("queryParams", {}).items():
        param = out.query_parameters.add(name=name)
        if is_presence(spec):
            param.present_match = True
        else:
            param.string_match.CopyFrom(string_matcher(spec))
    return out


def is_catch_all(route: rc.Route) -> bool:
    """istiod's `IsCatchAllRoute`: `/` or `.*` with no header or query parameter condition."""
    match = route.match
    path = match.WhichOneof("path_specifier")
    catch_all = (path == "prefix" and match.prefix == "/") or (path == "safe_regex" and match.safe_regex.regex == ".*")
    return catch_all and not match.headers and not match.query_parameters


def destination_cluster(dest: dict, namespace: str, port: int, service: RegistryService | None = None) -> str:
    """istiod's `GetDestinationCluster`: the destination's port, else the service's only port, else
    the listener port."""
    number = dest.get("port", {}).get("number")
    if number is None:
        number = service.ports[0].port if service is not None and len(service.ports) == 1 else port
    return names.outbound_cluster(number, resolve_host(dest["host"], namespace), dest.get("subset", ""))


def destination_hash(dest: dict, namespace: str, istio: IstioConfig) -> rc.RouteAction.HashPolicy | None:
    """The route hash policy a destination's DestinationRule asks for (`HashForHTTPDestination`)."""
    rule = istio.destination_rule_for(resolve_host(dest["host"], namespace))
    return dr.hash_policy(dr.consistent_hash(rule, dest.get("port", {}).get("number"), dest.get("subset", "")))


def route_action(vs: IstioResource, http: dict, route: rc.Route, authority: str, ctx: Context) -> rc.RouteAction:
    """istiod's `applyHTTPRouteDestination`: timeouts, rewrites, mirrors, destinations, retries."""
    action = rc.RouteAction(timeout=istio_duration(http.get("timeout", 0)))
    action.max_grpc_timeout.CopyFrom(action.timeout)
    rewrite = http.get("rewrite", {})
    if "uriRegexRewrite" in rewrite:
        action.regex_rewrite.pattern.regex = rewrite["uriRegexRewrite"]["match"]
        action.regex_rewrite.substitution = rewrite["uriRegexRewrite"]["rewrite"]
    elif rewrite.get("uri"):
        action.prefix_rewrite = rewrite["uri"]
    authority = rewrite.get("authority") or authority
    if authority:
        action.host_rewrite_literal = authority
    action.request_mirror_policies.extend(mirror_policies(http, vs.namespace, ctx.port))
    destinations = http.get("route", [])
    consistent_hash = False
    if len(destinations) == 1:
        dest = destinations[0]
        action.cluster = destination_cluster(dest["destination"], vs.namespace, ctx.port)
        dest_authority = add_headers(route, dest.get("headers"))
        if dest_authority and not action.host_rewrite_literal:
            action.host_rewrite_literal = dest_authority
        hash_policy = destination_hash(dest["destination"], vs.namespace, ctx.istio)
        consistent_hash = hash_policy is not None
    else:
        hash_policy = None
        for dest in destinations:
            if not dest.get("weight"):
                continue
            weighted = action.weighted_clusters.clusters.add(
                name=destination_cluster(dest["destination"], vs.namespace, ctx.port),
                weight=wrappers_pb2.UInt32Value(value=dest["weight"]),
            )
            dest_authority = add_headers(weighted, dest.get("headers"))
            if dest_authority:
                weighted.host_rewrite_literal = dest_authority
            extra = destination_hash(dest["destination"], vs.namespace, ctx.istio)
            if extra is not None:
                action.hash_policy.append(extra)
    if hash_policy is not None:
        action.hash_policy.append(hash_policy)
    policy = retry_policy(http.get("retries"), consistent_hash=consistent_hash)
    if policy is not None:
        action.retry_policy.CopyFrom(policy)
    return action


def header_options(values: Mapping[str, str], append: bool) -> tuple[list[Header], str]:
    """istiod's `translateAppendHeaders`: sorted options without pseudo-headers and `host`, and the
    authority those named (`host` / `:authority`)."""
    action = Header.APPEND_IF_EXISTS_OR_ADD if append else Header.OVERWRITE_IF_EXISTS_OR_ADD
    authority = next((v for k, v in values.items() if k.lower() in ("host", ":authority")), "")
    options = [
        Header(header={"key": k, "value": v}, append_action=action)
        for k, v in sorted(values.items())
        if not k.startswith(":") and k.lower() != "host"
    ]
    return options, authority


def add_headers(target: rc.Route | rc.WeightedCluster.ClusterWeight, headers: dict | None) -> str:
    """Append a `headers` block's operations to a route or weighted cluster; return its authority."""
    if not headers:
        return ""
    authority = ""
    for direction in ("request", "response"):
        ops = headers.get(direction, {})
        set_options, set_authority = header_options(ops.get("set", {}), append=False)
        add_options, add_authority = header_options(ops.get("add", {}), append=True)
        getattr(target, f"{direction}_headers_to_add").extend([*set_options, *add_options])
        removals = [h for h in ops.get("remove", []) if not h.startswith(":") and h.lower() != "host"]
        getattr(target, f"{direction}_headers_to_remove").extend(removals)
        if direction == "request":
            authority = set_authority or add_authority
    return authority


def percentage(value: float) -> FractionalPercent:
    """`percentage.value` as istiod's `translatePercentToFractionalPercent` (× 10000 / MILLION)."""
    return FractionalPercent(numerator=int(value * 10000), denominator=FractionalPercent.MILLION)


def integer_percent(value: int) -> FractionalPercent:
    """A deprecated integer percent as istiod's `translateIntegerToFractionalPercent` (n / HUNDRED)."""
    return FractionalPercent(numerator=value, denominator=FractionalPercent.HUNDRED)


def translate_fault(fault: dict | None) -> fault_pb2.HTTPFault | None:
    """istiod's `TranslateFault`: fixed delays and HTTP/gRPC aborts; None when neither remains."""
    if not fault:
        return None
    out = fault_pb2.HTTPFault()
    delay = fault.get("delay")
    if delay and "fixedDelay" in delay:  # istiod drops exponential delays
        out.delay.CopyFrom(
            common_fault_pb2.FaultDelay(
                fixed_delay=istio_duration(delay["fixedDelay"]),
                percentage=percentage(delay["percentage"].get("value", 0))
                if "percentage" in delay
                else integer_percent(delay.get("percent", 0)),
            )
        )
    abort = fault.get("abort")
    if abort and ("httpStatus" in abort or "grpcStatus" in abort):  # istiod drops http2Error aborts
        if "httpStatus" in abort:
            out.abort.http_status = abort["httpStatus"]
        else:
            out.abort.grpc_status = GRPC_STATUS.get(abort["grpcStatus"], 0)
        if "percentage" in abort:
            out.abort.percentage.CopyFrom(percentage(abort["percentage"].get("value", 0)))
    return out if out.HasField("delay") or out.HasField("abort") else None


def mirror_fraction(spec: dict | None, deprecated: int | None = None) -> FractionalPercent | None:
    """How much to mirror: `percentage` (× 10000 / MILLION), else the deprecated integer, else 100 %;
    an explicit 0 mirrors nothing (istiod's `MirrorPercent` / `MirrorPercentByPolicy`)."""
    if spec is not None:
        return percentage(spec["value"]) if spec.get("value", 0) > 0 else None
    if deprecated is not None:
        return integer_percent(deprecated) if deprecated > 0 else None
    return integer_percent(100)


def mirror_policies(http: dict, namespace: str, port: int) -> list[rc.RouteAction.RequestMirrorPolicy]:
    """`mirror` (with `mirrorPercentage` or `mirrorPercent`) and `mirrors` as request mirror policies."""
    targets = [(m["destination"], mirror_fraction(m.get("percentage"))) for m in http.get("mirrors", [])]
    if "mirror" in http:
        targets.insert(0, (http["mirror"], mirror_fraction(http.get("mirrorPercentage"), http.get("mirrorPercent"))))
    return [
        rc.RouteAction.RequestMirrorPolicy(
            cluster=destination_cluster(dest, namespace, port),
            runtime_fraction={"default_value": fraction},
            trace_sampled=wrappers_pb2.BoolValue(value=False),
        )
        for dest, fraction in targets
        if fraction is not None
    ]


def redirect(spec: dict, port: int) -> rc.RedirectAction:
    """istiod's `ApplyRedirect` for a plaintext sidecar listener."""
    action = rc.RedirectAction(host_redirect=spec.get("authority", ""), path_redirect=spec.get("uri", ""))
    if spec.get("scheme"):
        action.scheme_redirect = spec["scheme"]
    if "port" in spec or "derivePort" in spec:
        number = spec.get("port") or (port if spec.get("derivePort") == "FROM_REQUEST_PORT" else 0)
        scheme = spec.get("scheme") or "http"
        if (number, scheme) not in ((80, "http"), (443, "https")):
            action.port_redirect = number
    action.response_code = REDIRECT_CODES.get(spec.get("redirectCode", 0), rc.RedirectAction.MOVED_PERMANENTLY)
    return action


def direct_response(spec: dict) -> rc.DirectResponseAction:
    """istiod's `ApplyDirectResponse`: status and an inline string or (base64) bytes body."""
    action = rc.DirectResponseAction(status=spec["status"])
    body = spec.get("body", {})
    if "string" in body:
        action.body.inline_string = body["string"]
    elif "bytes" in body:
        action.body.inline_bytes = base64.b64decode(body["bytes"])
    return action


def operation(route: rc.Route, vs_name: str, port: int) -> str:
    """istiod's `GetRouteOperation`: `<host>:<port><path>` for one cluster, else `<vs>:<port><path>`."""
    match = route.match
    path = {"prefix": f"{match.prefix}*", "path": match.path, "safe_regex": match.safe_regex.regex}.get(
        match.WhichOneof("path_specifier") or "", "/*"
    )
    cluster = route.route.cluster if route.HasField("route") else ""
    parts = cluster.split("|")
    if len(parts) == 4 and parts[1].isdigit():
        return f"{parts[3]}:{parts[1]}{path}"
    return f"{vs_name}:{port}{path}"
