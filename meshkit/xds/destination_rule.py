"""DestinationRule → cluster fields and route hash policies, as istiod applies them.

istiod picks the policy for a cluster in three steps (`util.GetPortLevelTrafficPolicy`,
`MergeSubsetTrafficPolicy`, `model.MergeTrafficPolicy`): a `portLevelSettings` entry for the
port *replaces* the top-level policy (unset parts fall back to defaults, not to the top level);
a subset's own policy then overrides section by section (connectionPool, outlierDetection,
loadBalancer, tls), wholesale when the subset has port-level settings for the port. The result
goes onto the cluster as `applyTrafficPolicy` does (`cluster_traffic_policy.go`):

- connectionPool: circuit-breaker thresholds start "unlimited" (2^32-1, `track_remaining`);
  `http2MaxRequests` → max_requests, `http1MaxPendingRequests` → max_pending_requests,
  `maxRetries` → max_retries, `tcp.maxConnections` → max_connections (each only when > 0);
  `tcp.connectTimeout` → connect_timeout; `tcpKeepalive` → upstream_connection_options;
  `http.idleTimeout` (else `tcp.idleTimeout`), `maxRequestsPerConnection`, `maxConnectionDuration`
  → HttpProtocolOptions.common_http_protocol_options; `useClientProtocol` → use_downstream_protocol;
- outlierDetection: `consecutive5xxErrors` / `consecutiveGatewayErrors` with 100 % (or 0 %)
  enforcement, success-rate ejection off, `interval`, `baseEjectionTime`, `maxEjectionPercent`,
  and `minHealthPercent` (default 0) as the healthy panic threshold. The deprecated
  `consecutiveErrors` is accepted but ignored, as istiod has done since 1.7 (istio/istio#24087);
- loadBalancer: LEAST_CONN and LEAST_REQUEST → LEAST_REQUEST, RANDOM, ROUND_ROBIN, PASSTHROUGH →
  ORIGINAL_DST, unset → LEAST_REQUEST; `warmupDurationSecs` → slow start; `consistentHash` →
  RING_HASH (minimum ring 1024 unless set) or MAGLEV, plus a route `hash_policy` built here.

`tls` is built in `clusters.upstream_tls` (ISTIO_MUTUAL, DISABLE, SIMPLE and MUTUAL with files or
`credentialName`, auto-mTLS). Where meshkit does not follow istiod: `localityLbSetting`,
`tunnel` and `proxyProtocol` are accepted with a warning and ignored; the DR for
a host is the first by (namespace, name), where istiod takes the oldest.
"""

from __future__ import annotations

from collections.abc import Callable

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import protocol_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from meshkit.model.istio import IstioResource

from .values import istio_duration, pack

Cluster = cluster_pb2.Cluster
ClusterPolicy = Callable[[Cluster], None]

UNLIMITED = 2**32 - 1
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
DEFAULT_MINIMUM_RING_SIZE = 1024
SECTIONS = ("connectionPool", "outlierDetection", "loadBalancer", "tls")


def port_level(policy: dict | None, port: int) -> tuple[dict | None, bool]:
    """The `portLevelSettings` entry for `port` (and True), else the policy itself (and False)."""
    for setting in (policy or {}).get("portLevelSettings", []):
        if setting.get("port", {}).get("number") == port:
            return {k: v for k, v in setting.items() if k in SECTIONS}, True
    return policy, False


def effective_policy(rule: IstioResource | None, port: int, subset: dict | None = None) -> dict:
    """The traffic policy for one cluster of `rule`: port level first, then the subset's override."""
    policy, _ = port_level(rule.spec.get("trafficPolicy") if rule else None, port)
    if subset is None or not subset.get("trafficPolicy"):
        return dict(policy or {})
    own, wholesale = port_level(subset["trafficPolicy"], port)
    merged = dict(policy or {})
    for section in SECTIONS:
        if section in own or wholesale:
            merged.pop(section, None)
            if section in own:
                merged[section] = own[section]
    return merged


def subsets(rule: IstioResource | None) -> list[dict]:
    """The rule's subsets in the order written (one extra cluster per subset and port)."""
    return list(rule.spec.get("subsets", [])) if rule else []


def _thresholds(settings: dict) -> circuit_breaker_pb2.CircuitBreakers.Thresholds:
    http, tcp = settings.get("http") or {}, settings.get("tcp") or {}
    limits = {
        "max_connections": tcp.get("maxConnections", 0),
        "max_pending_requests": http.get("http1MaxPendingRequests", 0),
        "max_requests": http.get("http2MaxRequests", 0),
        "max_retries": http.get("maxRetries", 0),
    }
    return circuit_breaker_pb2.CircuitBreakers.Thresholds(
        **{name: wrappers_pb2.UInt32Value(value=v if v > 0 else UNLIMITED) for name, v in limits.items()},
        track_remaining=True,
    )


def _http_options(settings: dict) -> hpo.HttpProtocolOptions | None:
    """The HttpProtocolOptions a connection pool asks for, or None when it sets none of them."""
    http, tcp = settings.get("http") or {}, settings.get("tcp") or {}
    common = protocol_pb2.HttpProtocolOptions()
    idle = http.get("idleTimeout", tcp.get("idleTimeout"))
    if idle is not None:
        common.idle_timeout.CopyFrom(istio_duration(idle))
    if http.get("maxRequestsPerConnection", 0) > 0:
        common.max_requests_per_connection.value = http["maxRequestsPerConnection"]
    if "maxConnectionDuration" in tcp:
        common.max_connection_duration.CopyFrom(istio_duration(tcp["maxConnectionDuration"]))
    options = hpo.HttpProtocolOptions()
    if common.ListFields():
        options.common_http_protocol_options.CopyFrom(common)
    if http.get("useClientProtocol"):
        options.use_downstream_protocol_config.http_protocol_options.SetInParent()
        options.use_downstream_protocol_config.http2_protocol_options.SetInParent()
    elif options.ListFields():
        # Envoy requires an upstream protocol; istiod's clusterWrapper.build() fills HTTP/1.1.
        options.explicit_http_config.http_protocol_options.SetInParent()
    return options if options.ListFields() else None


def auto_sni(cluster: Cluster, *, validate_san: bool) -> None:
    """istiod's `setAutoSniAndAutoSanValidation`: SNI (and the SAN checked) from the request's Host."""
    options = hpo.HttpProtocolOptions()
    existing = cluster.typed_extension_protocol_options.get(HTTP_PROTOCOL_OPTIONS)
    if existing is not None:
        existing.Unpack(options)
    options.upstream_http_protocol_options.auto_sni = True
    options.upstream_http_protocol_options.auto_san_validation = validate_san
    if not options.HasField("use_downstream_protocol_config") and not options.HasField("explicit_http_config"):
        options.explicit_http_config.http_protocol_options.SetInParent()
    cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(pack(options))


def connection_pool(settings: dict) -> ClusterPolicy:
    """`connectionPool` onto circuit breakers, connect timeout, keepalive and HTTP options."""

    def apply(cluster: Cluster) -> None:
        cluster.circuit_breakers.ClearField("thresholds")
        cluster.circuit_breakers.thresholds.append(_thresholds(settings))
        tcp = settings.get("tcp") or {}
        if "connectTimeout" in tcp:
            cluster.connect_timeout.CopyFrom(istio_duration(tcp["connectTimeout"]))
        if "tcpKeepalive" in tcp:
            keepalive = cluster.upstream_connection_options.tcp_keepalive
            keepalive.SetInParent()
            spec = tcp["tcpKeepalive"]
            if spec.get("probes", 0) > 0:
                keepalive.keepalive_probes.value = spec["probes"]
            if "time" in spec:
                keepalive.keepalive_time.value = istio_duration(spec["time"]).seconds
            if "interval" in spec:
                keepalive.keepalive_interval.value = istio_duration(spec["interval"]).seconds
        options = _http_options(settings)
        if options is not None:
            cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(pack(options))

    return apply


def _enforced(detection: outlier_detection_pb2.OutlierDetection, count: str, enforcing: str, value: int) -> None:
    getattr(detection, count).value = value
    getattr(detection, enforcing).value = 100 if value > 0 else 0


def outlier_detection(settings: dict) -> ClusterPolicy:
    """`outlierDetection` as istiod's `applyOutlierDetection` maps it."""

    def apply(cluster: Cluster) -> None:
        detection = cluster.outlier_detection
        detection.enforcing_success_rate.value = 0
        if "consecutive5xxErrors" in settings:
            _enforced(detection, "consecutive_5xx", "enforcing_consecutive_5xx", settings["consecutive5xxErrors"])
        if "consecutiveGatewayErrors" in settings:
            _enforced(
                detection,
                "consecutive_gateway_failure",
                "enforcing_consecutive_gateway_failure",
                settings["consecutiveGatewayErrors"],
            )
        for field, name in (("interval", "interval"), ("baseEjectionTime", "base_ejection_time")):
            if field in settings:
                getattr(detection, name).CopyFrom(istio_duration(settings[field]))
        if settings.get("maxEjectionPercent", 0) > 0:
            detection.max_ejection_percent.value = settings["maxEjectionPercent"]
        if settings.get("splitExternalLocalOriginErrors"):
            detection.split_external_local_origin_errors = True
            if settings.get("consecutiveLocalOriginFailures", 0) > 0:
                detection.consecutive_local_origin_failure.value = settings["consecutiveLocalOriginFailures"]
                detection.enforcing_consecutive_local_origin_failure.value = 100
            detection.enforcing_local_origin_success_rate.value = 0
        cluster.common_lb_config.healthy_panic_threshold.CopyFrom(
            percent_pb2.Percent(value=settings.get("minHealthPercent", 0))
        )

    return apply


SIMPLE_LB = {
    "LEAST_CONN": Cluster.LEAST_REQUEST,
    "LEAST_REQUEST": Cluster.LEAST_REQUEST,
    "RANDOM": Cluster.RANDOM,
    "ROUND_ROBIN": Cluster.ROUND_ROBIN,
}


def load_balancer(settings: dict) -> ClusterPolicy:
    """`loadBalancer` as istiod's `applyLoadBalancer` and `ApplyRingHashLoadBalancer` map it."""

    def apply(cluster: Cluster) -> None:
        if cluster.type == Cluster.ORIGINAL_DST:
            cluster.lb_policy = Cluster.CLUSTER_PROVIDED
            return
        simple = settings.get("simple", "")
        if simple == "PASSTHROUGH":
            cluster.type = Cluster.ORIGINAL_DST
            cluster.lb_policy = Cluster.CLUSTER_PROVIDED
            cluster.ClearField("eds_cluster_config")
            cluster.ClearField("load_assignment")
            return
        cluster.lb_policy = SIMPLE_LB.get(simple, Cluster.LEAST_REQUEST)
        if "warmupDurationSecs" in settings and cluster.lb_policy in (Cluster.ROUND_ROBIN, Cluster.LEAST_REQUEST):
            config = (
                cluster.round_robin_lb_config
                if cluster.lb_policy == Cluster.ROUND_ROBIN
                else cluster.least_request_lb_config
            )
            config.slow_start_config.slow_start_window.CopyFrom(istio_duration(settings["warmupDurationSecs"]))
        _consistent_hash(cluster, settings.get("consistentHash"))

    return apply


def _consistent_hash(cluster: Cluster, spec: dict | None) -> None:
    if spec is None:
        return
    if "maglev" in spec:
        cluster.lb_policy = Cluster.MAGLEV
        if spec["maglev"].get("tableSize"):
            cluster.maglev_lb_config.table_size.value = spec["maglev"]["tableSize"]
    elif "ringHash" in spec:
        cluster.lb_policy = Cluster.RING_HASH
        if spec["ringHash"].get("minimumRingSize"):
            cluster.ring_hash_lb_config.minimum_ring_size.value = spec["ringHash"]["minimumRingSize"]
    else:
        cluster.lb_policy = Cluster.RING_HASH
        size = spec.get("minimumRingSize") or DEFAULT_MINIMUM_RING_SIZE
        cluster.ring_hash_lb_config.minimum_ring_size.value = size


def traffic_policy(policy: dict) -> list[ClusterPolicy]:
    """The cluster changes for an effective policy, in `applyTrafficPolicy`'s order."""
    changes = [connection_pool(policy.get("connectionPool") or {})]
    if "outlierDetection" in policy:
        changes.append(outlier_detection(policy["outlierDetection"]))
    changes.append(load_balancer(policy.get("loadBalancer") or {}))
    return changes


def config_metadata(rule: IstioResource, subset: str = "") -> ClusterPolicy:
    """`istio.config` (and `istio.subset`) metadata, which istioctl's DESTINATION RULE column reads."""

    def apply(cluster: Cluster) -> None:
        istio = cluster.metadata.filter_metadata["istio"]
        istio.update({"config": rule.config_path})
        if subset:
            istio.update({"subset": subset})

    return apply


def consistent_hash(rule: IstioResource | None, port: int | None, subset: str = "") -> dict | None:
    """The consistentHash a route to (`port`, `subset`) hashes for (`HashForHTTPDestination`).

    Precedence: the subset's port-level setting, the subset's own, the rule's port-level one, the rule's.
    """
    if rule is None:
        return None

    def port_hash(policy: dict | None) -> dict | None:
        if port is None:
            return None
        for setting in (policy or {}).get("portLevelSettings", []):
            if setting.get("port", {}).get("number") == port:
                return (setting.get("loadBalancer") or {}).get("consistentHash")
        return None

    top = rule.spec.get("trafficPolicy")
    chosen = (top or {}).get("loadBalancer", {}).get("consistentHash")
    candidates = [port_hash(top)]
    for entry in subsets(rule):
        if entry.get("name") == subset:
            own = entry.get("trafficPolicy")
            candidates = [port_hash(own), (own or {}).get("loadBalancer", {}).get("consistentHash"), *candidates]
            break
    return next((c for c in candidates if c is not None), chosen)


def hash_policy(spec: dict | None) -> rc.RouteAction.HashPolicy | None:
    """istiod's `ConsistentHashToHashPolicy`: header, cookie, source IP or query parameter."""
    if not spec:
        return None
    if "httpHeaderName" in spec:
        return rc.RouteAction.HashPolicy(header={"header_name": spec["httpHeaderName"]})
    if "httpCookie" in spec:
        cookie = spec["httpCookie"]
        policy = rc.RouteAction.HashPolicy(cookie={"name": cookie["name"], "path": cookie.get("path", "")})
        if "ttl" in cookie:
            policy.cookie.ttl.CopyFrom(istio_duration(cookie["ttl"]))
        return policy
    if "useSourceIp" in spec:
        return rc.RouteAction.HashPolicy(connection_properties={"source_ip": spec["useSourceIp"]})
    if "httpQueryParameterName" in spec:
        return rc.RouteAction.HashPolicy(query_parameter={"name": spec["httpQueryParameterName"]})
    return None
