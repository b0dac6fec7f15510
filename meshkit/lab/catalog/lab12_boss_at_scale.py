"""Lab 12 — the boss at scale: what a push costs, delta xDS, and Sidecar scoping.

ex1 measures one CDS-heavy edit (a DestinationRule adding subsets to reviews) on a delta pod and
on a pod switched to State of the World for the occasion (`mesh.set_xds`), from the push record's
`bytes`; ex2 gives productpage a `Sidecar` whose egress hosts are the two Services its app calls,
checked from the clusters its Envoy holds and from real requests. The setup puts every sidecar
back on delta xDS and removes any Sidecar, so `lab.reset()` undoes both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

from ...errors import MeshError
from ...inspect import dump
from ..spec import Exercise, LabSpec, Verdict
from ._common import answer, istio

if TYPE_CHECKING:
    from ...client import Mesh

DELTA_POD, SOTW_POD, SCOPED = "productpage-v1", "details-v1", "productpage-v1"
CALLS = ("details", "reviews")  # the Services productpage's app calls
SUBSETS = istio("DestinationRule", "reviews", {"host": "reviews", "subsets": [
    {"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}},
    {"name": "v3", "labels": {"version": "v3"}}]})
SIDECAR = yaml.safe_dump({
    "apiVersion": "networking.istio.io/v1", "kind": "Sidecar", "metadata": {"name": "productpage"},
    "spec": {"workloadSelector": {"labels": {"app": "productpage"}},
             "egress": [{"hosts": [f"./{name}.default.svc.cluster.local" for name in CALLS]}]},
}, sort_keys=False)


def pod_name(mesh: Mesh, deployment: str) -> str:
    """The full pod name behind a Deployment name (push records and status rows use it)."""
    for workload in mesh.topology()["workloads"]:
        if deployment in (workload["name"], workload["deployment"]):
            return workload["name"]
    raise KeyError(deployment)


def all_delta(mesh: Mesh) -> None:
    """Every sidecar back on delta xDS, and no Sidecar resource: this lab's starting state."""
    for row in mesh.status_rows():
        if row["xds"] != "DELTA":
            mesh.set_xds(row["pod"], "delta")
    try:
        sidecars = mesh.get("Sidecar")
    except MeshError:  # a boss without the Sidecar kind has none to remove
        sidecars = []
    if sidecars:
        mesh.delete(yaml.safe_dump_all(sidecars, sort_keys=False))


# -- ex1: the same edit, delta and SotW ------------------------------------------------------------
def both_ways(push: dict) -> tuple[list[int], list[int]]:
    """The bytes a push sent to its delta pods and to its SotW pods."""
    sizes, variants = push.get("bytes") or {}, push.get("xds") or {}
    delta = [n for pod, n in sizes.items() if variants.get(pod) == "DELTA"]
    sotw = [n for pod, n in sizes.items() if variants.get(pod) == "SOTW"]
    return delta, sotw


def cds_pushes(mesh: Mesh) -> list[dict]:
    """Pushes that changed clusters and reached pods of both variants."""
    found = []
    for push in mesh.history_rows():
        delta, sotw = both_ways(push)
        if delta and sotw and any(c["type"] == "CDS" for c in push.get("changes", [])):
            found.append(push)
    return found


def measure(mesh: Mesh) -> None:
    """What the solution does: one pod on SotW, the subsets edit, the two sizes kept, delta again."""
    import sys

    mesh.set_xds(SOTW_POD, "sotw")
    if mesh.get("DestinationRule"):
        mesh.delete(SUBSETS)
    push = mesh.apply(SUBSETS)
    main = sys.modules["__main__"]
    main.delta_bytes = push["bytes"][pod_name(mesh, DELTA_POD)]  # type: ignore[attr-defined]
    main.sotw_bytes = push["bytes"][pod_name(mesh, SOTW_POD)]  # type: ignore[attr-defined]
    mesh.set_xds(SOTW_POD, "delta")


def check_measure(mesh: Mesh) -> Verdict:
    delta, sotw = answer("delta_bytes"), answer("sotw_bytes")
    if delta is None or sotw is None:
        return Verdict.not_yet("delta_bytes and sotw_bytes are not set yet")
    if not all(isinstance(v, int) and v > 0 for v in (delta, sotw)):
        return Verdict.wrong("both answers should be whole numbers of bytes, read from one push's `bytes`")
    pushes = cds_pushes(mesh)
    if not pushes:
        return Verdict.wrong("no push yet changed clusters while one sidecar spoke SotW: switch one pod with "
                             "`mesh.set_xds(pod, 'sotw')` first, then apply the DestinationRule")
    if not any(delta in d and sotw in s for d, s in map(both_ways, pushes)):
        return Verdict.wrong("those two numbers are not the bytes one push sent to a delta pod and a SotW pod: "
                             "read both from the same push record (`push['bytes']`, keyed by pod name)")
    if sotw <= delta:
        return Verdict.wrong("your SotW figure is not the larger one: did you swap the two pods?")
    return Verdict.done(f"the same edit cost {sotw / delta:.1f}× the bytes in State of the World: every "
                        "cluster again, instead of the changed ones")


# -- ex2: a Sidecar for productpage ----------------------------------------------------------------
def cluster_services(mesh: Mesh, pod: str) -> set[str]:
    """The Services `pod`'s Envoy holds outbound clusters for ("details", "ratings", ...)."""
    names = [c.get("name", "") for c in dump.clusters(mesh.pc.config_dump(pod, include_eds=False))]
    return {n.split("|")[3].split(".")[0] for n in names if n.startswith("outbound|") and n.count("|") == 3}


def apply_sidecar(mesh: Mesh) -> None:
    mesh.apply(SIDECAR)


def check_sidecar(mesh: Mesh) -> Verdict:
    seen = cluster_services(mesh, SCOPED)
    if {s["name"] for s in mesh.topology()["services"]} <= seen:
        return Verdict.not_yet("productpage's Envoy still holds clusters for every Service in the mesh")
    missing = [name for name in CALLS if name not in seen]
    if missing:
        return Verdict.wrong(f"productpage lost its clusters for {', '.join(missing)}: its app calls that "
                             "Service, so its host belongs in the egress list")
    extra = sorted(seen - set(CALLS) - {"productpage"})  # its own Service may stay, as istiod keeps it
    if extra:
        return Verdict.wrong(f"productpage still sees {', '.join(extra)}, which its app never calls")
    for name, url in (("details", "http://details:9080/details/0"), ("reviews", "http://reviews:9080/reviews/0")):
        row = mesh.curl_rows(SCOPED, url)[0]
        if row["status"] != 200:
            return Verdict.wrong(f"productpage → {name} answers {row['status']} (flags {row['flags']}): "
                                 "read the route and cluster it took")
    return Verdict.done(f"productpage sees {len(seen)} Services instead of all of them, and still reaches both "
                        "it calls")


LAB = LabSpec(
    name="12-boss-at-scale",
    title="The boss at scale: delta xDS, Sidecar scoping, the cost of a push",
    minutes=35,
    objectives=(
        "Read what one push sent each proxy, in bytes, from the mesh's own counters",
        "See why delta xDS exists: the same edit in State of the World and in delta",
        "Shrink a proxy's config with a Sidecar's egress hosts, and what it costs to get it wrong",
        "Estimate what a push costs as the mesh grows",
    ),
    exercises=(
        Exercise(
            id="ex1",
            title="Weigh one edit in delta and in State of the World",
            check=check_measure,
            hints=(
                "`mesh.set_xds('details-v1', 'sotw')` restarts that sidecar speaking SotW; the others stay delta.",
                "Apply the `SUBSETS` DestinationRule: `push = mesh.apply(SUBSETS)`. `push['bytes']` maps each "
                "pod name to what that push sent it; `push['xds']` says which variant each pod speaks.",
                "`delta_bytes = push['bytes'][pod_name('productpage-v1')]`, `sotw_bytes = "
                "push['bytes'][pod_name('details-v1')]`; then `mesh.set_xds('details-v1', 'delta')`.",
            ),
            solution=("mesh.set_xds('details-v1', 'sotw')\n"
                      "push = mesh.apply(SUBSETS)\n"
                      "delta_bytes = push['bytes'][pod_name('productpage-v1')]\n"
                      "sotw_bytes = push['bytes'][pod_name('details-v1')]\n"
                      "mesh.set_xds('details-v1', 'delta')"),
            apply=measure,
            deadline_s=5.0,
        ),
        Exercise(
            id="ex2",
            title="Let productpage see only what it calls",
            check=check_sidecar,
            hints=(
                "A `Sidecar` resource picks its proxies with `workloadSelector.labels` and lists, under "
                "`egress[].hosts`, the Services they get config for (`namespace/host`, `.` is its own).",
                "productpage's app calls details and reviews, nothing else: `mesh.topology()['workloads']` "
                "lists each pod's `calls`.",
                "`hosts: ['./details.default.svc.cluster.local', './reviews.default.svc.cluster.local']` "
                "with `workloadSelector: {labels: {app: productpage}}`.",
            ),
            solution=SIDECAR,
            apply=apply_sidecar,
        ),
    ),
    setup=all_delta,
    notes=(
        "The bytes are the boss's own count of the serialized DiscoveryResponses (delta: "
        "DeltaDiscoveryResponses) it sent; Envoy keeps no byte counter per xDS type.",
        "mesh.set_xds restarts one Envoy with the other bootstrap (api_type GRPC or DELTA_GRPC); in a "
        "cluster that is a change to the injection template and a rollout, not one call.",
        "The figures for 1,000 Services come from benchmarks/scale.py, not from this mesh.",
        "meshkit's Sidecar unites every egress listener's hosts; egress port, bind, captureMode and "
        "ingress are accepted with a warning and ignored.",
    ),
)
