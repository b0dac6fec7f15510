"""Lab 05 — CDS and EDS: one Service, several clusters; endpoints; load balancing; health.

ex1 defines reviews' subsets with a DestinationRule and is checked on productpage's live CDS and
EDS (a cluster per subset, holding exactly the pods with that version label). ex2 switches the
reviews clusters to ROUND_ROBIN and is checked on the cluster's `lb_policy` and on real requests
(nine in a row must visit every pod three times, which LEAST_REQUEST does not promise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..spec import Exercise, LabSpec, Verdict
from ._common import cluster, endpoint_ips, istio, pod_ip

if TYPE_CHECKING:
    from ...client import Mesh

POD = "productpage-v1"
FQDN = "reviews.default.svc.cluster.local"
DEFAULT = f"outbound|9080||{FQDN}"
VERSIONS = ("v1", "v2", "v3")


def subset_name(version: str) -> str:
    return f"outbound|9080|{version}|{FQDN}"


def rule(round_robin: bool = False) -> str:
    spec: dict = {"host": "reviews",
                  "subsets": [{"name": v, "labels": {"version": v}} for v in VERSIONS]}
    if round_robin:
        spec = {"host": "reviews", "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}},
                "subsets": spec["subsets"]}
    return istio("DestinationRule", "reviews", spec)


def check_subsets(mesh: Mesh) -> Verdict:
    present = [v for v in VERSIONS if cluster(mesh, POD, subset_name(v)) is not None]
    if not present:
        return Verdict.not_yet("productpage's lieutenant holds only the default reviews cluster")
    missing = [v for v in VERSIONS if v not in present]
    if missing:
        return Verdict.wrong(f"no cluster for subset(s) {', '.join(missing)}: is each version a subset "
                             "of the DestinationRule for host reviews?")
    for version in VERSIONS:
        held = endpoint_ips(mesh, POD, subset_name(version))
        if not held:
            return Verdict.wrong(f"the {version} subset cluster has no endpoints: its labels match no pod "
                                 "(look at the pods' labels in mesh.topology())")
        if held != [pod_ip(mesh, f"reviews-{version}")]:
            return Verdict.wrong(f"the {version} subset cluster holds other pods than reviews-{version}: "
                                 "check the subset's labels")
    return Verdict.done("three subset clusters, each holding exactly one reviews pod")


def check_round_robin(mesh: Mesh) -> Verdict:
    default = cluster(mesh, POD, DEFAULT)
    if default is None:
        return Verdict.wrong("productpage lost the default reviews cluster")
    if default.get("lb_policy", "ROUND_ROBIN") == "LEAST_REQUEST":
        return Verdict.not_yet("the reviews cluster still balances with LEAST_REQUEST, Istio's default")
    if default.get("lb_policy", "ROUND_ROBIN") != "ROUND_ROBIN":
        return Verdict.wrong(f"the reviews cluster uses {default['lb_policy']}; the task asks for round robin")
    rows = mesh.curl_rows(POD, "http://reviews:9080/reviews/0", n=9)
    if any(r["status"] != 200 for r in rows):
        return Verdict.wrong("some requests to reviews failed; read the flags column of mesh.curl(...)")
    counts = {v: sum(1 for r in rows if r["version"] == v) for v in VERSIONS}
    if sorted(counts.values()) != [3, 3, 3]:
        return Verdict.wrong("nine requests in a row did not visit every pod three times: is the policy on "
                             "the cluster requests take (the DestinationRule's trafficPolicy)?")
    if any(cluster(mesh, POD, subset_name(v)) is None for v in VERSIONS):
        return Verdict.wrong("the subset clusters from exercise 1 are gone: keep the subsets in the rule")
    return Verdict.done("round robin: nine requests, three per reviews pod, in turn")


LAB = LabSpec(
    name="05-cds-eds",
    title="CDS and EDS: clusters, subsets, endpoints, load balancing",
    minutes=35,
    objectives=(
        "Explain why one Service becomes several clusters (one per port, one more per subset and port)",
        "Read a cluster's endpoints and their health (`pc endpoint`, `/clusters`)",
        "Define DestinationRule subsets and watch their clusters and endpoints arrive",
        "Change load balancing from Istio's LEAST_REQUEST default to ROUND_ROBIN",
    ),
    exercises=(
        Exercise(
            id="ex1",
            title="One cluster per reviews version",
            check=check_subsets,
            hints=(
                "Subsets live in a DestinationRule for host `reviews`; each subset is a name plus labels.",
                "The reviews pods carry the labels `app: reviews` and `version: v1|v2|v3` (mesh.topology()).",
                "`subsets: [{name: v1, labels: {version: v1}}, ...]` for v1, v2 and v3, then mesh.apply(...).",
            ),
            solution=rule(),
            apply=lambda mesh: mesh.apply(rule()),
        ),
        Exercise(
            id="ex2",
            title="Take turns: ROUND_ROBIN",
            check=check_round_robin,
            hints=(
                "Load balancing is a cluster setting (`lb_policy`); in Istio it comes from the DestinationRule.",
                "A DestinationRule's `trafficPolicy.loadBalancer.simple` applies to the default cluster and "
                "to every subset cluster.",
                "Add `trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}` to the rule from exercise 1 and "
                "apply it again (keep the subsets).",
            ),
            solution=rule(round_robin=True),
            apply=lambda mesh: mesh.apply(rule(round_robin=True)),
        ),
    ),
    notes=(
        "meshkit has no Kubernetes: endpoints come from its own registry of pods, pushed by EDS exactly "
        "as istiod builds them from EndpointSlices (pod IP, target port, labels for subsets).",
        "No mTLS: clusters have no transport_socket_matches, endpoints no tlsMode metadata.",
    ),
)
