"""Lab 07 — from VirtualService / DestinationRule to xDS.

The learner writes Istio's own Bookinfo samples (reviews 80/20, jason → v2) and a slider split;
the boss generates the xDS. Checks read productpage's live RDS (the route's metadata names the
VirtualService, as the VIRTUAL SERVICE column of `pc route` shows) and measure real requests:
ex1 and ex3 send 120 requests each and accept a share within 15 percentage points of the weight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..spec import Exercise, LabSpec, Verdict
from ._common import istio, route_config, shares, vhost

if TYPE_CHECKING:
    from ...client import Mesh

POD = "productpage-v1"
URL = "http://reviews:9080/reviews/0"
N = 120
TOLERANCE = 0.15
SUBSETS = [{"name": v, "labels": {"version": v}} for v in ("v1", "v2", "v3")]
RULE = istio("DestinationRule", "reviews", {"host": "reviews", "subsets": SUBSETS})


def dest(subset: str, weight: int | None = None) -> dict:
    item: dict = {"destination": {"host": "reviews", "subset": subset}}
    if weight is not None:
        item["weight"] = weight
    return item


SPLIT = istio("VirtualService", "reviews", {"hosts": ["reviews"], "http": [
    {"route": [dest("v1", 80), dest("v2", 20)]}]})
JASON = istio("VirtualService", "reviews", {"hosts": ["reviews"], "http": [
    {"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [dest("v2")]},
    {"route": [dest("v1")]}]})
HALF = istio("VirtualService", "reviews", {"hosts": ["reviews"], "http": [
    {"route": [dest("v1", 50), dest("v3", 50)]}]})


def reviews_routes(mesh: Mesh) -> list[dict]:
    return (vhost(route_config(mesh, POD), "reviews.") or {}).get("routes", [])


def from_virtual_service(route: dict) -> bool:
    config = route.get("metadata", {}).get("filter_metadata", {}).get("istio", {}).get("config", "")
    return "/virtual-service/" in str(config)


def weights(route: dict) -> dict[str, int]:
    clusters = route.get("route", {}).get("weighted_clusters", {}).get("clusters", [])
    return {c["name"].split("|")[2]: int(c.get("weight", 0)) for c in clusters}


def measure(mesh: Mesh, want: dict[str, float]) -> Verdict | None:
    rows = mesh.curl_rows(POD, URL, n=N)
    failed = [r for r in rows if r["status"] != 200]
    if failed:
        return Verdict.wrong(f"{len(failed)} of {N} requests failed (first: {failed[0]['status']} "
                             f"{failed[0]['flags']}): does the DestinationRule define every subset you route to?")
    got = shares(rows)
    for version, share in want.items():
        if abs(got.get(version, 0.0) - share) > TOLERANCE:
            return Verdict.wrong(f"{version} answered {got.get(version, 0.0):.0%} of {N} requests, more than "
                                 f"{TOLERANCE:.0%} away from what the route's weights ask")
    extra = set(got) - set(want)
    if extra:
        return Verdict.wrong(f"{', '.join(sorted(extra))} answered too, though the split does not name it")
    return None


def check_split(mesh: Mesh) -> Verdict:
    routes = [r for r in reviews_routes(mesh) if from_virtual_service(r) and weights(r)]
    if not routes:
        return Verdict.not_yet("no weighted route from a VirtualService in productpage's reviews virtual host yet")
    split = weights(routes[-1])
    if split != {"v1": 80, "v2": 20}:
        return Verdict.wrong("the live weighted route does not split v1/v2 as the task asks; compare "
                             "mesh.pc.routes(...) with your VirtualService")
    return measure(mesh, {"v1": 0.8, "v2": 0.2}) or Verdict.done(
        f"{N} requests split within ±{TOLERANCE:.0%} of 80/20")


def check_jason(mesh: Mesh) -> Verdict:
    routes = [r for r in reviews_routes(mesh) if from_virtual_service(r)]
    if not any(h.get("name") == "end-user" for r in routes for h in r.get("match", {}).get("headers", [])):
        return Verdict.not_yet("no route in productpage's reviews virtual host matches the end-user header yet")
    jason = mesh.curl_rows(POD, URL, headers={"end-user": "jason"}, n=5)
    others = mesh.curl_rows(POD, URL, headers={"end-user": "someone"}, n=5) + mesh.curl_rows(POD, URL, n=3)
    if any(r["status"] == 404 for r in others):
        return Verdict.wrong("requests without end-user: jason get 404 NR: a VirtualService adds no default "
                             "route for you — end with a route without match")
    if any(r["status"] != 200 or r["version"] != "v2" for r in jason):
        return Verdict.wrong("not every request from jason reached v2; read version and flags")
    if any(r["status"] != 200 or r["version"] != "v1" for r in others):
        return Verdict.wrong("not every other request reached v1")
    return Verdict.done("jason sees v2, everyone else v1")


def check_slider(mesh: Mesh) -> Verdict:
    routes = [r for r in reviews_routes(mesh) if from_virtual_service(r) and weights(r)]
    split = {k: v for k, v in weights(routes[-1]).items() if v} if routes else {}
    if set(split) != {"v1", "v3"}:
        return Verdict.not_yet("the live reviews route does not split between v1 and v3 yet")
    if split != {"v1": 50, "v3": 50}:
        return Verdict.wrong("v1 and v3 share the traffic, but not half and half yet")
    return measure(mesh, {"v1": 0.5, "v3": 0.5}) or Verdict.done(
        f"{N} requests split within ±{TOLERANCE:.0%} of 50/50 between v1 and v3")


def apply_half(mesh: Mesh) -> None:
    mesh.apply(RULE + "---\n" + HALF)


LAB = LabSpec(
    name="07-istio-to-xds",
    title="From VirtualService and DestinationRule to xDS",
    minutes=35,
    objectives=(
        "Write Istio's own Bookinfo routing samples and read the xDS the boss generates from them",
        "Map VirtualService fields to routes and DestinationRule subsets to clusters",
        "Shift traffic with a weight slider and measure the split with real requests",
    ),
    exercises=(
        Exercise(
            id="ex1",
            title="Reviews 80/20 (Istio's sample)",
            check=check_split,
            hints=(
                "Two resources: a DestinationRule with the subsets, a VirtualService with a weighted route.",
                "VirtualService `http: [{route: [{destination: {host: reviews, subset: v1}, weight: 80}, ...]}]`.",
                "Apply the DestinationRule and the VirtualService together (separated by `---`).",
            ),
            solution=RULE + "---\n" + SPLIT,
            apply=lambda mesh: mesh.apply(RULE + "---\n" + SPLIT),
        ),
        Exercise(
            id="ex2",
            title="Jason tests v2",
            check=check_jason,
            hints=(
                "Routes are tried in order: the header match first, then a route without match for everyone else.",
                "`match: [{headers: {end-user: {exact: jason}}}]` → subset v2; the second http entry → v1.",
                "Replace the VirtualService reviews with two http entries (Istio's virtual-service-reviews-test-v2).",
            ),
            solution=JASON,
            apply=lambda mesh: mesh.apply(RULE + "---\n" + JASON),
        ),
        Exercise(
            id="ex3",
            title="Half to v3, with the slider",
            check=check_slider,
            hints=(
                "The slider writes a VirtualService for you and applies it when you let go.",
                "Drag v3 to 50; the v1 slider follows so the total stays 100.",
                "Headless: `sliders.sliders['v3'].value = 50` does what a release does.",
            ),
            solution="sliders.sliders['v3'].value = 50   # or drag it to 50 and let go",
            apply=apply_half,
        ),
    ),
    notes=(
        "meshkit's boss translates VirtualService and DestinationRule the way istiod 1.27 does for the "
        "fields these labs use; `mesh.xds(pod, yaml)` shows the result without applying it.",
        "istiod's routes also carry istio.stats-related metadata and per-route istio filters; upstream "
        "Envoy has no istio.* filters, so meshkit's routes carry only the route metadata istioctl reads.",
    ),
)
