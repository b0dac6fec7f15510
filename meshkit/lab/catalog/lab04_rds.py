"""Lab 04 — RDS: route configurations, virtual hosts and domains, matches, timeouts.

All three exercises edit productpage's RouteConfiguration "9080" (kept complete, as istiod's is)
and are checked with real requests from productpage: ex1 sends Mobile user agents to reviews-v2
(the source article's example), ex2 bounds the wait for reviews with a route timeout, ex3 replaces
the catch-all `allow_any` virtual host with a `block_all` one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..spec import Exercise, LabSpec, Verdict
from ._common import dump_yaml, pod_ip, route_config, seconds, vhost

if TYPE_CHECKING:
    from ...client import Mesh

POD = "productpage-v1"
REVIEWS_URL = "http://reviews:9080/reviews/0"
MOBILE = "outbound|9080|mobile|reviews.default.svc.cluster.local"
MOBILE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
             "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SERVICES = ("details", "productpage", "ratings", "reviews")


def lost_vhosts(config: dict | None) -> list[str]:
    """Service virtual hosts missing from a "9080" route config (it must stay complete)."""
    return [name for name in SERVICES if vhost(config, f"{name}.") is None]


# -- ex1: mobile users to v2 ---------------------------------------------------------------------
def mobile_resources(mesh: Mesh) -> list[dict]:
    """The subset cluster, its endpoints (reviews-v2 only) and "9080" with a header-matched route."""
    mobile_cluster = {
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": MOBILE,
        "type": "EDS",
        "eds_cluster_config": {"service_name": MOBILE, "eds_config": {"ads": {}, "resource_api_version": "V3"}},
        "connect_timeout": "10s",
        "lb_policy": "LEAST_REQUEST",
    }
    endpoints = {
        "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
        "cluster_name": MOBILE,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
            "address": pod_ip(mesh, "reviews-v2"), "port_value": 9080}}}}]}],
    }
    routes = route_config(mesh, POD)
    assert routes is not None
    reviews = vhost(routes, "reviews.")
    assert reviews is not None
    reviews["routes"] = [r for r in reviews["routes"] if r.get("name") != "mobile"]
    reviews["routes"].insert(0, {
        "name": "mobile",
        "match": {"prefix": "/", "headers": [
            {"name": "user-agent", "string_match": {"safe_regex": {"regex": ".*Mobile.*"}}}]},
        "route": {"cluster": MOBILE, "timeout": "0s"},
    })
    return [mobile_cluster, endpoints, routes]


def apply_mobile(mesh: Mesh) -> None:
    mesh.apply(dump_yaml(*mobile_resources(mesh)), pods=[POD])


def header_routes(config: dict | None) -> list[dict]:
    reviews = vhost(config, "reviews.") or {}
    return [r for r in reviews.get("routes", []) if r.get("match", {}).get("headers")]


def check_mobile(mesh: Mesh) -> Verdict:
    config = route_config(mesh, POD)
    if not header_routes(config):
        return Verdict.not_yet("no route in productpage's reviews virtual host looks at a header yet")
    lost = lost_vhosts(config)
    if lost:
        return Verdict.wrong(f"route configuration 9080 lost the virtual hosts for {', '.join(lost)}: "
                             "start from the live config and change only the reviews virtual host")
    v2 = pod_ip(mesh, "reviews-v2")
    mobile = mesh.curl_rows(POD, REVIEWS_URL, headers={"user-agent": MOBILE_UA}, n=6)
    failed = [r for r in mobile if not answered(r)]
    if failed:
        row = failed[0]
        return Verdict.wrong(f"a Mobile request got status {row['status']} (flags {row['flags']}): NC means the "
                             "route names a cluster Envoy does not have, UH a cluster without endpoints")
    if any(host_ip(r) != v2 for r in mobile):
        return Verdict.wrong("some Mobile requests went to another reviews pod: does the header route come "
                             "first, and does its cluster hold only reviews-v2's endpoint?")
    desktop = mesh.curl_rows(POD, REVIEWS_URL, headers={"user-agent": DESKTOP_UA}, n=8)
    if not all(answered(r) for r in desktop):
        return Verdict.wrong("requests without Mobile in the user agent fail now: keep the default route after yours")
    if all(host_ip(r) == v2 for r in desktop):
        return Verdict.wrong("desktop requests also all went to v2: the header match should only catch 'Mobile'")
    return Verdict.done("6 of 6 Mobile requests reached reviews-v2; desktop requests still spread over the pods")


def answered(row: dict) -> bool:
    """Reached an upstream: a 200, or a 504 UT from a route timeout (lab exercise 2)."""
    return row["status"] == 200 or (row["status"] == 504 and "UT" in str(row["flags"]))


def host_ip(row: dict) -> str:
    return str(row.get("upstream_host") or "").rsplit(":", 1)[0]


# -- ex2: a timeout ------------------------------------------------------------------------------
def slow_ratings(mesh: Mesh, delay: str = "1.5s") -> None:
    """Make ratings slow as seen from reviews v2 and v3 (a fault delay on their outbound route)."""
    for pod in ("reviews-v2", "reviews-v3"):
        config = route_config(mesh, pod)
        assert config is not None
        for route in (vhost(config, "ratings.") or {}).get("routes", []):
            route["typed_per_filter_config"] = {"envoy.filters.http.fault": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
                "delay": {"fixed_delay": delay, "percentage": {"numerator": 100, "denominator": "HUNDRED"}},
            }}
        mesh.apply(dump_yaml(config), pods=[pod])


def timeout_config(mesh: Mesh, timeout: str = "0.5s") -> dict:
    config = route_config(mesh, POD)
    assert config is not None
    for route in (vhost(config, "reviews.") or {}).get("routes", []):
        route["route"]["timeout"] = timeout
    return config


def apply_timeout(mesh: Mesh) -> None:
    mesh.apply(dump_yaml(timeout_config(mesh)), pods=[POD])


def check_timeout(mesh: Mesh) -> Verdict:
    config = route_config(mesh, POD)
    reviews = vhost(config, "reviews.")
    if reviews is None:
        return Verdict.wrong("productpage's route configuration 9080 has no reviews virtual host any more")
    default = [r for r in reviews.get("routes", []) if not r.get("match", {}).get("headers")]
    if not default:
        return Verdict.wrong("the reviews virtual host has no route without a header match: keep the default route")
    values = [seconds(r.get("route", {}).get("timeout")) for r in default]
    if all(v in (None, 0.0) for v in values):
        return Verdict.not_yet("the default reviews route still has timeout 0s (wait forever), as istiod sets it")
    if any(v is None or v == 0.0 or v > 1.0 for v in values):
        return Verdict.wrong("the route's timeout is longer than the one second the task allows")
    lost = lost_vhosts(config)
    if lost:
        return Verdict.wrong(f"route configuration 9080 lost the virtual hosts for {', '.join(lost)}")
    rows = mesh.curl_rows(POD, REVIEWS_URL, headers={"user-agent": DESKTOP_UA}, n=4)
    slow = [r for r in rows if r["elapsed_ms"] > 1200]
    if slow:
        return Verdict.wrong("a request took longer than 1.2 s: is the timeout on the route that desktop "
                             "requests take?")
    if any(r["status"] not in (200, 504) for r in rows):
        return Verdict.wrong("requests to reviews fail with something other than a timeout; read the flags column")
    return Verdict.done("no caller waits longer than the route allows; a slow answer becomes 504 UT")


# -- ex3: block unknown hosts --------------------------------------------------------------------
def block_all_config(mesh: Mesh) -> dict:
    config = route_config(mesh, POD)
    assert config is not None
    config["virtual_hosts"] = [v for v in config["virtual_hosts"] if v["name"] not in ("allow_any", "block_all")]
    config["virtual_hosts"].append({
        "name": "block_all", "domains": ["*"],
        "routes": [{"name": "block_all", "match": {"prefix": "/"}, "direct_response": {"status": 502}}],
    })
    return config


def apply_block(mesh: Mesh) -> None:
    mesh.apply(dump_yaml(block_all_config(mesh)), pods=[POD])


def check_block(mesh: Mesh) -> Verdict:
    config = route_config(mesh, POD)
    unknown = mesh.curl_rows(POD, f"http://{pod_ip(mesh, 'reviews-v2')}:9080/reviews/0")[0]
    if unknown["status"] == 200 and unknown["upstream_cluster"] == "PassthroughCluster":
        return Verdict.not_yet("a request to a pod IP (a host no virtual host names) still passes through")
    lost = lost_vhosts(config)
    if lost:
        return Verdict.wrong(f"route configuration 9080 lost the virtual hosts for {', '.join(lost)}")
    known = mesh.curl_rows(POD, "http://details:9080/details/0")[0]
    if known["status"] != 200:
        return Verdict.wrong(f"requests to details fail now (status {known['status']}): only unknown hosts "
                             "should be blocked")
    if unknown["status"] == 404:
        return Verdict.wrong("the unknown host got 404 (flag NR): no virtual host matched it at all. Add a "
                             "catch-all virtual host that answers by itself")
    if unknown["status"] != 502:
        return Verdict.wrong(f"the unknown host got status {unknown['status']}; the task asks for Envoy's own 502, "
                             "without calling any upstream")
    return Verdict.done("known Services still work; an unknown host gets 502 from Envoy itself")


LAB = LabSpec(
    name="04-rds",
    title="RDS: routes, virtual hosts and domains",
    minutes=40,
    objectives=(
        "Read a RouteConfiguration: virtual hosts, domains, routes, matches, actions",
        "Understand why the Host header picks the virtual host, and what 404 NR means",
        "Route by a request header to a subset (the Mobile user-agent example)",
        "Read and change timeouts and retries on a route",
    ),
    exercises=(
        Exercise(
            id="ex1",
            title="Send Mobile users to reviews-v2",
            check=check_mobile,
            hints=(
                "Three resources: a Cluster for the 'mobile' subset, its ClusterLoadAssignment with only "
                "reviews-v2's endpoint, and route configuration 9080 with one more route.",
                "The new route goes first in the reviews virtual host: `match: {prefix: /, headers: [{name: "
                "user-agent, string_match: {safe_regex: {regex: '.*Mobile.*'}}}]}`, `route: {cluster: <yours>}`.",
                "Start from `live_route('productpage-v1')`, insert the route with `routes.insert(0, ...)`, and "
                "apply all three documents together to productpage-v1 (the boss sends CDS, EDS, then RDS).",
            ),
            solution=("v2_ip = pod_ip('reviews-v2')\n"
                      f"MOBILE = '{MOBILE}'\n"
                      "cluster = {'@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', 'name': MOBILE,\n"
                      "           'type': 'EDS', 'connect_timeout': '10s', 'lb_policy': 'LEAST_REQUEST',\n"
                      "           'eds_cluster_config': {'service_name': MOBILE,\n"
                      "                                  'eds_config': {'ads': {}, 'resource_api_version': 'V3'}}}\n"
                      "endpoints = {'@type': 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',\n"
                      "             'cluster_name': MOBILE, 'endpoints': [{'lb_endpoints': [{'endpoint': {'address':\n"
                      "                 {'socket_address': {'address': v2_ip, 'port_value': 9080}}}}]}]}\n"
                      "routes = live_route('productpage-v1')\n"
                      "reviews = next(v for v in routes['virtual_hosts'] if v['name'].startswith('reviews.'))\n"
                      "reviews['routes'].insert(0, {'name': 'mobile',\n"
                      "    'match': {'prefix': '/', 'headers': [{'name': 'user-agent',\n"
                      "              'string_match': {'safe_regex': {'regex': '.*Mobile.*'}}}]},\n"
                      "    'route': {'cluster': MOBILE, 'timeout': '0s'}})\n"
                      "mesh.apply(yaml.safe_dump_all([cluster, endpoints, routes]), pods=['productpage-v1'])"),
            apply=apply_mobile,
        ),
        Exercise(
            id="ex2",
            title="Don't wait for slow reviews longer than 0.5 s",
            check=check_timeout,
            hints=(
                "istiod sets `timeout: 0s` on every route: wait as long as it takes. The route's `timeout` "
                "bounds the whole request, retries included.",
                "In productpage's route configuration 9080, the reviews virtual host's routes each have a "
                "`route.timeout`; set it on the default one (and on yours, if you like).",
                "`for r in reviews['routes']: r['route']['timeout'] = '0.5s'`, then apply 9080 to productpage-v1.",
            ),
            solution=("routes = live_route('productpage-v1')\n"
                      "reviews = next(v for v in routes['virtual_hosts'] if v['name'].startswith('reviews.'))\n"
                      "for r in reviews['routes']:\n"
                      "    r['route']['timeout'] = '0.5s'\n"
                      "mesh.apply(yaml.safe_dump(routes), pods=['productpage-v1'])"),
            apply=apply_timeout,
        ),
        Exercise(
            id="ex3",
            title="Refuse hosts nobody declared",
            check=check_block,
            hints=(
                "A request's Host header picks the virtual host. The last one, `allow_any`, has domains ['*'] "
                "and sends everything else to PassthroughCluster.",
                "Replace `allow_any` with a virtual host `block_all` (domains ['*']) whose only route answers "
                "by itself: `direct_response: {status: 502}`.",
                "Keep every Service virtual host; only the catch-all changes. Try it with a pod IP as the host: "
                "`mesh.curl('productpage-v1', f'http://{pod_ip(\"reviews-v2\")}:9080/reviews/0')`.",
            ),
            solution=("routes = live_route('productpage-v1')\n"
                      "routes['virtual_hosts'] = [v for v in routes['virtual_hosts'] if v['name'] != 'allow_any']\n"
                      "routes['virtual_hosts'].append({'name': 'block_all', 'domains': ['*'], 'routes': [\n"
                      "    {'name': 'block_all', 'match': {'prefix': '/'}, 'direct_response': {'status': 502}}]})\n"
                      "mesh.apply(yaml.safe_dump(routes), pods=['productpage-v1'])"),
            apply=apply_block,
        ),
    ),
    notes=(
        "Here routes are written as raw Envoy resources; lab 07 writes the same thing the Istio way "
        "(VirtualService + DestinationRule) and lets the boss generate it.",
        "istiod's vhost domains in 1.27 also include the absolute FQDN with a trailing dot.",
        "Istio's HCM also runs istio.metadata_exchange, istio.alpn and istio.stats HTTP filters; upstream "
        "Envoy has none of them, so meshkit's HCM runs fault, cors and router only.",
    ),
)
