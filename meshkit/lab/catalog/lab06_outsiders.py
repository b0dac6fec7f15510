"""Lab 06 — keep outsiders out: ALLOW_ANY vs REGISTRY_ONLY, PassthroughCluster vs BlackHoleCluster,
ServiceEntry, and what a client sees.

The "outside world" is two addresses no Service declares, named by `outside()` — the one place
to change when meshkit grows a real outside server. Until then they are stand-ins inside the
mesh, called by IP: the details pod on 9080 (HTTP, "legacy.example.com") and the tcp-echo pod on
9000 (TCP, "echo.example.com"; `setup` relaxes its sidecar's listener filters, lab 03's fix, so it
answers short lines like a plain server). Checks send real requests from productpage: ex1 closes the door
(REGISTRY_ONLY: the HTTP call gets 502, the TCP one is reset), ex2 and ex3 let each outsider in
again with a ServiceEntry while the door stays closed for everything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..spec import Exercise, LabSpec, Verdict
from ._common import catch_all, listener, pod_ip, route_config, service_entry, service_entry_solution
from .lab03_lds import apply_echo

if TYPE_CHECKING:
    from ...client import Mesh

POD = "productpage-v1"


def outside(mesh: Mesh) -> dict:
    """The outsiders this lab calls: stand-ins inside the mesh (pod IPs no Service declares).

    meshkit's outside-world server (`mesh.outside()`) answers HTTP only, and this lab also needs a TCP
    echo; switching the HTTP outsider to it means changing only this function."""
    return {
        "http": {"host": "legacy.example.com", "ip": pod_ip(mesh, "details-v1"), "port": 9080,
                 "path": "/details/0"},
        "tcp": {"host": "echo.example.com", "ip": pod_ip(mesh, "tcp-echo-v1"), "port": 9000},
    }


def stand_in(mesh: Mesh) -> None:
    """Make the TCP stand-in answer short lines like a plain server: tcp-echo's own sidecar would
    otherwise hold them in its listener filters (lab 03, ex2). Drop this with a real outside server."""
    apply_echo(mesh)


def http_url(mesh: Mesh) -> str:
    target = outside(mesh)["http"]
    return f"http://{target['ip']}:{target['port']}{target['path']}"


def http_entry(mesh: Mesh) -> str:
    return service_entry("legacy", outside(mesh)["http"], "HTTP", "STATIC")


def tcp_entry(mesh: Mesh) -> str:
    return service_entry("echo-outside", outside(mesh)["tcp"], "TCP", "NONE")


def knock(mesh: Mesh, ip: str, port: int, tries: int = 3) -> dict:
    """One TCP line to ip:port from productpage; tried up to `tries` times (a refusal fails every time)."""
    reply: dict = {}
    for _ in range(tries):
        reply = mesh.tcp(POD, ip, port, "knock knock\n")
        if reply["reply"]:
            break
    return reply


def door(mesh: Mesh) -> str:
    return catch_all(route_config(mesh, POD))


def check_closed(mesh: Mesh) -> Verdict:
    if door(mesh) == "allow_any":
        return Verdict.not_yet("productpage's route configuration 9080 still ends with allow_any: the door is open")
    if door(mesh) != "block_all":
        return Verdict.wrong("route configuration 9080 has no catch-all virtual host the boss would make; "
                             "use the mesh-wide policy rather than a hand-made route")
    # reviews-v2's pod IP: an address no exercise declares, so this holds after ex2 and ex3 too
    row = mesh.curl_rows(POD, f"http://{pod_ip(mesh, 'reviews-v2')}:9080/reviews/0", timeout=3.0)[0]
    if row["status"] != 502:
        return Verdict.wrong(f"a call to an undeclared pod IP got {row['status']} instead of the lieutenant's "
                             "refusal (502); read its flags and upstream_cluster")
    return Verdict.done("REGISTRY_ONLY: unknown HTTP hosts get 502 from block_all, "
                        "unknown TCP goes to BlackHoleCluster")


def check_http_entry(mesh: Mesh) -> Verdict:
    row = mesh.curl_rows(POD, http_url(mesh), timeout=3.0)[0]
    if row["status"] == 502 or row["upstream_cluster"] == "PassthroughCluster":
        return Verdict.not_yet("the HTTP outsider is " + ("still refused (502)" if row["status"] == 502 else
                               "reached through PassthroughCluster: nobody declared it yet"))
    if door(mesh) != "block_all":
        return Verdict.wrong("the outsider answers, but the door is open again (allow_any): keep REGISTRY_ONLY "
                             "and declare the host instead")
    if row["status"] != 200:
        return Verdict.wrong(f"the outsider answered {row['status']} (flags {row['flags']}): UH means the entry's "
                             "cluster has no endpoints — check `endpoints` and `resolution`")
    if not str(row["upstream_cluster"]).startswith("outbound|"):
        return Verdict.wrong("the request did not go through a cluster of its own; read upstream_cluster")
    return Verdict.done("declared with a ServiceEntry: its own virtual host and cluster, the door still closed")


def check_tcp_entry(mesh: Mesh) -> Verdict:
    target = outside(mesh)["tcp"]
    reply = knock(mesh, target["ip"], target["port"])
    own = listener(mesh, POD, f"{target['ip']}_{target['port']}")
    if not reply["reply"]:
        return Verdict.not_yet("the TCP outsider's connection is still closed without an answer")
    if own is None:
        return Verdict.not_yet("the TCP outsider answers through the catch-all (PassthroughCluster): declare it "
                               "with REGISTRY_ONLY on")
    if door(mesh) != "block_all":
        return Verdict.wrong("the door is open again (allow_any): keep REGISTRY_ONLY")
    return Verdict.done("the TCP outsider has its own listener and cluster; every other unknown TCP still hits "
                        "BlackHoleCluster")


LAB = LabSpec(
    name="06-outsiders",
    title="Keep outsiders out: REGISTRY_ONLY, BlackHoleCluster and ServiceEntry",
    minutes=35,
    objectives=(
        "Compare outboundTrafficPolicy ALLOW_ANY and REGISTRY_ONLY in the xDS they produce",
        "Tell PassthroughCluster from BlackHoleCluster and find each in listeners, routes and stats",
        "Predict exactly what a client sees: 200, 502, a reset, 404 NR",
        "Let one outsider in with a ServiceEntry, HTTP and TCP",
    ),
    setup=stand_in,
    exercises=(
        Exercise(
            id="ex1",
            title="Close the door: REGISTRY_ONLY",
            check=check_closed,
            hints=(
                "It is a mesh-wide setting, not a route you write: meshConfig `outboundTrafficPolicy.mode`.",
                "`mesh.set_outbound_traffic_policy(...)` takes ALLOW_ANY or REGISTRY_ONLY.",
                "`mesh.set_outbound_traffic_policy(\"REGISTRY_ONLY\")`, then call the outsiders again.",
            ),
            solution='mesh.set_outbound_traffic_policy("REGISTRY_ONLY")',
            apply=lambda mesh: mesh.set_outbound_traffic_policy("REGISTRY_ONLY"),
        ),
        Exercise(
            id="ex2",
            title="Let the HTTP outsider in",
            check=check_http_entry,
            hints=(
                "A ServiceEntry adds a host to the boss's registry; the boss then builds a virtual host and a "
                "cluster for it, ahead of block_all.",
                "The client calls it by IP, so the entry needs `addresses: [<ip>]` (the IP becomes one of the "
                "virtual host's domains) and a port with `protocol: HTTP`.",
                "hosts [legacy.example.com], addresses [ip], location MESH_EXTERNAL, ports [{number: 9080, name: "
                "http, protocol: HTTP}], resolution STATIC, endpoints [{address: ip}].",
            ),
            solution=service_entry_solution("web", "OUTSIDE['http']", "legacy", "HTTP", "STATIC"),
            apply=lambda mesh: mesh.apply(http_entry(mesh)),
        ),
        Exercise(
            id="ex3",
            title="Let the TCP outsider in",
            check=check_tcp_entry,
            hints=(
                "For TCP there is no Host header: the lieutenant can only go by destination IP and port.",
                "A ServiceEntry with `addresses: [<ip>]` and a TCP port makes the boss add a listener "
                "`<ip>_<port>` with tcp_proxy to the entry's cluster.",
                "hosts [echo.example.com], addresses [ip], ports [{number: 9000, name: tcp, protocol: TCP}], "
                "resolution NONE (send to the original destination).",
            ),
            solution=service_entry_solution("echo", "OUTSIDE['tcp']", "echo-outside", "TCP", "NONE"),
            apply=lambda mesh: mesh.apply(tcp_entry(mesh)),
        ),
    ),
    notes=(
        "The outsiders are stand-ins inside the mesh (pod IPs no Service declares); meshkit's outside-world "
        "server (`mesh.outside()`, used by the egress tests) could replace the HTTP one by changing `outside()`.",
        "No DNS: meshkit's curl resolves Service names and IPs only, so outsiders are called by IP.",
        "Istio's istio.stats would count blocked calls as istio_requests_total{destination_service_name="
        "\"BlackHoleCluster\"}; meshkit reads Envoy's own cluster counters instead.",
    ),
)
