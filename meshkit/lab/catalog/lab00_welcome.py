"""Lab 00 — welcome: the boss and the lieutenants, what runs where, and an environment check.

The exercises ask the learner to *find* things in the running mesh and write them into notebook
variables; each check compares the answer with what the sidecars' Envoys report right now.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..spec import Exercise, LabSpec, Verdict
from ._common import answer, pod_ip, route_config, set_answers, vhost

if TYPE_CHECKING:
    from ...client import Mesh


def envoy_version(mesh: Mesh, pod: str = "productpage-v1") -> str:
    """"1.40.0" from `/server_info` (its `version` is sha/VERSION/status/build/ssl)."""
    info = json.loads(mesh.admin(pod, "/server_info"))
    return str(info["version"]).split("/")[1]


def check_version(mesh: Mesh) -> Verdict:
    given = answer("envoy_version")
    if given is None:
        return Verdict.not_yet("set `envoy_version` to the version string the sidecar reports")
    live = envoy_version(mesh)
    text = str(given).strip().lstrip("v")
    if text == live or (text.count(".") == 1 and live.startswith(text + ".")):
        return Verdict.done(f"every sidecar here runs Envoy {live}")
    return Verdict.wrong("that is not what the sidecar says: read the `version` field of "
                         "`mesh.admin('productpage-v1', '/server_info')` (it has several parts "
                         "separated by '/'; the release number is one of them)")


def live_reviews_vip(mesh: Mesh) -> str:
    """The reviews Service VIP, as productpage's Envoy knows it (the last domain of its vhost)."""
    host = vhost(route_config(mesh, "productpage-v1"), "reviews.") or {}
    ips = [d for d in host.get("domains", []) if d.replace(".", "").isdigit()]
    return ips[0] if ips else ""


def check_addresses(mesh: Mesh) -> Verdict:
    vip, ip = answer("reviews_vip"), answer("reviews_v2_ip")
    if vip is None and ip is None:
        return Verdict.not_yet("set `reviews_vip` and `reviews_v2_ip`")
    problems = []
    if str(vip).strip() != live_reviews_vip(mesh):
        problems.append("`reviews_vip` is not the Service's virtual IP (look at /etc/hosts inside a pod: "
                        "`mesh.pod_info('productpage-v1', 'hosts')`)")
    if str(ip).strip() != pod_ip(mesh, "reviews-v2"):
        problems.append("`reviews_v2_ip` is not the reviews-v2 pod's own address (look at "
                        "`mesh.pod_info('reviews-v2', 'addresses')`, the eth0 line)")
    if problems:
        return Verdict.wrong("; ".join(problems))
    return Verdict.done("the VIP belongs to no process: only iptables and Envoy know it; the pod IP is real")


def boss_address(mesh: Mesh, pod: str = "productpage-v1") -> str:
    dump = mesh.pc.config_dump(pod, include_eds=False)
    boot = next(c["bootstrap"] for c in dump["configs"] if "bootstrap" in c)
    for static in boot["static_resources"]["clusters"]:
        if static["name"] == "xds-grpc":
            address = static["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            if "pipe" in address:  # the pod's own socket, as istioctl pc endpoint prints it
                return "unix://" + address["pipe"]["path"]
            return f"{address['socket_address']['address']}:{address['socket_address']['port_value']}"
    return ""


def check_boss(mesh: Mesh) -> Verdict:
    given = answer("boss_address")
    if given is None:
        return Verdict.not_yet("set `boss_address` to where the sidecars dial the boss")
    if str(given).strip() == boss_address(mesh):
        return Verdict.done("that is where every lieutenant dials the boss (cluster xds-grpc)")
    if ":" not in str(given):
        return Verdict.wrong("write it as Envoy does (\"IP:port\" or \"unix://path\"): the endpoint of one "
                             "cluster, not just an IP")
    return Verdict.wrong("that is not where the sidecars call; find the cluster named xds-grpc in "
                         "`mesh.pc.endpoints('productpage-v1')` and copy its ENDPOINT")


LAB = LabSpec(
    name="00-welcome",
    title="Welcome: the boss and the lieutenants",
    minutes=20,
    objectives=(
        "Tell the story: istiod plans and gives orders, the Envoy sidecars do the work",
        "Find where everything runs: pods, network namespaces, addresses, the control socket",
        "Check the environment: Envoy version, every sidecar SYNCED, a request through the chain",
    ),
    exercises=(
        Exercise(
            id="ex1",
            title="Which Envoy is the lieutenant?",
            check=check_version,
            hints=(
                "Every Envoy answers on its admin API; `mesh.admin(pod, path)` reads it from inside the pod.",
                "`/server_info` is JSON. Parse it with `json.loads` and look at the `version` field.",
                "The `version` field looks like `<git sha>/<release>/Clean/RELEASE/BoringSSL`; "
                "`.split('/')[1]` gives the release.",
            ),
            solution=("import json\n"
                      "info = json.loads(mesh.admin('productpage-v1', '/server_info'))\n"
                      "envoy_version = info['version'].split('/')[1]"),
            apply=set_answers(envoy_version=envoy_version),
        ),
        Exercise(
            id="ex2",
            title="A Service address and a pod address",
            check=check_addresses,
            hints=(
                "A Service has a virtual IP (VIP) that pods find by name; a pod has its own IP on eth0.",
                "`mesh.pod_info('productpage-v1', 'hosts')` shows the names a pod resolves; "
                "`mesh.pod_info('reviews-v2', 'addresses')` shows the pod's interfaces.",
                "Or read them from the mesh model: `mesh.topology()['services']` has each `vip`, "
                "`mesh.topology()['workloads']` each pod's `ip`.",
            ),
            solution=("topo = mesh.topology()\n"
                      "reviews_vip = next(s['vip'] for s in topo['services'] if s['name'] == 'reviews')\n"
                      "reviews_v2_ip = next(w['ip'] for w in topo['workloads'] if w['deployment'] == 'reviews-v2')"),
            apply=set_answers(reviews_vip=live_reviews_vip, reviews_v2_ip=lambda m: pod_ip(m, "reviews-v2")),
        ),
        Exercise(
            id="ex3",
            title="Where do the lieutenants call the boss?",
            check=check_boss,
            hints=(
                "The sidecar learns the boss's address from its bootstrap, as a static cluster.",
                "`mesh.pc.endpoints('productpage-v1')` lists every cluster's endpoints, static ones too.",
                "The cluster is called `xds-grpc`; its ENDPOINT is the answer.",
            ),
            solution=("eps = mesh.pc.endpoints('productpage-v1')\n"
                      "boss_address = eps[eps.CLUSTER == 'xds-grpc'].ENDPOINT.iloc[0]"),
            apply=set_answers(boss_address=boss_address),
        ),
    ),
    notes=(
        "No pilot-agent: Envoy dials the boss itself on its pod's unix socket ./etc/istio/proxy/XDS "
        "(cluster xds-grpc), where in Istio pilot-agent answers and proxies to istiod over TLS; on kind it "
        "dials the boss over TCP. The boss speaks delta xDS by default, as istiod does.",
        "No istiod, no Kubernetes: a Python control plane reads a Bookinfo topology and plays istiod.",
        "Pods are Linux network namespaces on one host, with Istio's own iptables rules.",
    ),
    runtime_notes=(
        ("kind", "pods are real Kubernetes pods; `mesh.home` is where `meshkit cluster up` keeps its files, and "
                 "the boss is reached through a port-forward on 127.0.0.1, not through control.sock"),
        ("kind", "`pod_info(pod, 'hosts')`: Kubernetes names Services by DNS, not /etc/hosts; the view "
                 "adds what the cluster DNS answers for each Service"),
        ("kind", "`pod_info(pod, 'sockets')` has no process column (the app container may not see "
                 "Envoy's processes); the ports are the same"),
    ),
)
