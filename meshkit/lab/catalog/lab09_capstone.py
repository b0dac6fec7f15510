"""Lab 09 — capstone: a broken mesh to diagnose and fix with the views alone.

`setup` breaks three things at once (REGISTRY_ONLY stays on throughout):
- ratings: a VirtualService sends everything to subset v1, whose labels (a typo) match no pod
  → 503 UH; the same VirtualService's 0.2 s fault delay stands in for a slow backend (keep it);
- reviews: productpage's route allows 0.05 s, but v2 and v3 wait 0.2 s for ratings → 504 UT;
- an inventory service outside the registry, called by IP from productpage, is refused → 502.
Each exercise is checked with real requests from productpage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..spec import Exercise, LabSpec, Verdict
from ._common import catch_all, istio, pod_ip, route_config, service_entry, service_entry_solution, vhost

if TYPE_CHECKING:
    from ...client import Mesh

POD = "productpage-v1"
REVIEWS = "http://reviews:9080/reviews/0"
RATINGS = "http://ratings:9080/ratings/0"


def ratings_rule(version_label: str) -> str:
    return istio("DestinationRule", "ratings", {"host": "ratings", "subsets": [
        {"name": "v1", "labels": {"version": version_label}}]})


# ratings is slow (a 0.2 s fault delay stands in for its real backend) and served by subset v1
RATINGS_VS = istio("VirtualService", "ratings", {"hosts": ["ratings"], "http": [{
    "fault": {"delay": {"fixedDelay": "0.2s", "percentage": {"value": 100}}},
    "route": [{"destination": {"host": "ratings", "subset": "v1"}}]}]})


def reviews_vs(timeout: str) -> str:
    return istio("VirtualService", "reviews", {"hosts": ["reviews"], "http": [{
        "timeout": timeout, "route": [{"destination": {"host": "reviews"}}]}]})


def inventory(mesh: Mesh) -> dict:
    """The outside inventory service (a stand-in: ratings' pod IP, which no Service address names)."""
    return {"host": "inventory.example.com", "ip": pod_ip(mesh, "ratings-v1"), "port": 9080, "path": "/ratings/0"}


def inventory_url(mesh: Mesh) -> str:
    target = inventory(mesh)
    return f"http://{target['ip']}:{target['port']}{target['path']}"


def inventory_entry(mesh: Mesh) -> str:
    return service_entry("inventory", inventory(mesh), "HTTP", "STATIC")


def break_mesh(mesh: Mesh) -> None:
    mesh.set_outbound_traffic_policy("REGISTRY_ONLY")
    mesh.apply(ratings_rule("1") + "---\n" + RATINGS_VS + "---\n" + reviews_vs("0.05s"))


def check_ratings(mesh: Mesh) -> Verdict:
    rows = mesh.curl_rows(POD, RATINGS, n=3)
    if all(r["status"] == 503 for r in rows):
        return Verdict.not_yet("ratings still answers 503 to every request")
    if not ratings_delay_kept(mesh):
        return Verdict.wrong("the ratings VirtualService lost its fault delay (the simulated slowness): keep it")
    if any(r["status"] != 200 for r in rows):
        bad = next(r for r in rows if r["status"] != 200)
        return Verdict.wrong(f"some requests still fail ({bad['status']} {bad['flags']}); read flags and cluster")
    if any(r["upstream_cluster"] != "outbound|9080|v1|ratings.default.svc.cluster.local" for r in rows):
        return Verdict.wrong("ratings answers, but not through its v1 subset: the team routes ratings to v1 on "
                             "purpose; fix what stops the subset, don't route around it")
    return Verdict.done("3 of 3 requests answered through ratings' v1 subset")


def ratings_delay_kept(mesh: Mesh) -> bool:
    routes = (vhost(route_config(mesh, POD), "ratings.") or {}).get("routes", [])
    return any("envoy.filters.http.fault" in r.get("typed_per_filter_config", {}) for r in routes)


def check_reviews(mesh: Mesh) -> Verdict:
    rows = mesh.curl_rows(POD, REVIEWS, n=9)
    if any(r["status"] == 504 for r in rows):
        return Verdict.not_yet("some requests to reviews still end in 504")
    if not ratings_delay_kept(mesh):
        return Verdict.wrong("reviews answers, but ratings' fault delay is gone: its backend really is that slow, "
                             "keep the delay and fix the caller")
    if any(r["status"] != 200 for r in rows):
        bad = next(r for r in rows if r["status"] != 200)
        return Verdict.wrong(f"some requests still fail ({bad['status']} {bad['flags']})")
    return Verdict.done("9 of 9 requests to reviews answered, the slow ones included")


def check_inventory(mesh: Mesh) -> Verdict:
    row = mesh.curl_rows(POD, inventory_url(mesh), timeout=3.0)[0]
    if row["status"] == 502:
        return Verdict.not_yet("the inventory service is still refused with 502")
    if catch_all(route_config(mesh, POD)) != "block_all":
        return Verdict.wrong("inventory answers, but the door is open for everyone (allow_any): the security "
                             "team's REGISTRY_ONLY stays; declare the one host instead")
    if row["status"] != 200 or not str(row["upstream_cluster"]).startswith("outbound|"):
        return Verdict.wrong(f"inventory answered {row['status']} through {row['upstream_cluster'] or 'no cluster'}")
    return Verdict.done("inventory is declared and reachable; everything else unknown is still refused")


LAB = LabSpec(
    name="09-capstone",
    title="Capstone: a broken mesh",
    minutes=40,
    objectives=(
        "Diagnose three broken calls from the client's view (status, flags) and the lieutenant's (pc views)",
        "Tell 503 UH, 504 UT and 502 block_all apart and find the order behind each",
        "Fix each with the smallest Istio change, without opening doors the policy keeps closed",
    ),
    setup=break_mesh,
    exercises=(
        Exercise(
            id="ex1",
            title="ratings: 503 for everyone",
            check=check_ratings,
            hints=(
                "Flags UH: the cluster exists but has no healthy upstream. Which cluster? Which endpoints?",
                "`mesh.pc.endpoints(POD)` has no row for ratings' v1 subset cluster: compare the subset's labels "
                "in mesh.get('DestinationRule') with the pods' labels in mesh.topology().",
                "The v1 subset must select `version: v1`; apply the DestinationRule with that label.",
            ),
            solution=ratings_rule("v1"),
            apply=lambda mesh: mesh.apply(ratings_rule("v1")),
        ),
        Exercise(
            id="ex2",
            title="reviews: 504 now and then",
            check=check_reviews,
            hints=(
                "Flags UT: productpage's route to reviews gave up. Which versions fail? Which of them call ratings?",
                "reviews v2 and v3 wait for ratings (0.2 s); productpage's reviews route allows 0.05 s.",
                "Apply the reviews VirtualService with `timeout: 1s`; leave ratings' delay alone.",
            ),
            solution=reviews_vs("1s"),
            apply=lambda mesh: mesh.apply(reviews_vs("1s")),
        ),
        Exercise(
            id="ex3",
            title="inventory: 502 from an outside service",
            check=check_inventory,
            hints=(
                "502 with no upstream cluster and route block_all: the lieutenant refused an unknown host.",
                "The mesh runs REGISTRY_ONLY; the fix is to register the host, not to open the door.",
                "A ServiceEntry: hosts [inventory.example.com], addresses [its IP], port 9080 HTTP, resolution "
                "STATIC, endpoints [{address: its IP}].",
            ),
            solution=service_entry_solution("inv", "INVENTORY", "inventory", "HTTP", "STATIC", port="9080"),
            apply=lambda mesh: mesh.apply(inventory_entry(mesh)),
        ),
    ),
    notes=(
        "The inventory service is a stand-in inside the mesh (ratings' pod IP), not meshkit's "
        "outside-world server (`mesh.outside()`).",
    ),
)
