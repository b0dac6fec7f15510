"""Lab 08 — when orders go wrong: NACK and the last good config, the boss down, resync.

ex1 fixes a cluster Envoy refused (checked in productpage's live CDS), ex2 makes a change while
the boss is away and brings it back (checked on every sidecar's connection and sync state and on
real requests), ex3 fixes a VirtualService to a subset nobody defined, which the boss accepts as istiod does
(warning IST0101, 503 NC for jason), checked with real requests for jason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..spec import Exercise, LabSpec, Verdict
from ..waiting import poll
from ._common import cluster, dump_yaml, istio, route_config, seconds, vhost

if TYPE_CHECKING:
    from ...client import Mesh

POD = "productpage-v1"
URL = "http://reviews:9080/reviews/0"
CANARY = "outbound|9080|canary|reviews.default.svc.cluster.local"


def canary(timeout: str) -> str:
    return dump_yaml({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": CANARY,
                      "type": "STATIC", "connect_timeout": timeout, "load_assignment": {"cluster_name": CANARY}})


def check_canary(mesh: Mesh) -> Verdict:
    held = cluster(mesh, POD, CANARY)
    if held is None:
        return Verdict.not_yet("productpage's lieutenant holds no canary cluster: it kept its last good config")
    if seconds(held.get("connect_timeout")) != 0.25:
        return Verdict.wrong("the canary cluster is there, but its connect timeout is not the quarter second asked")
    return Verdict.done("the corrected order was ACKed; the lieutenant holds the canary cluster")


V1_ONLY = (istio("DestinationRule", "reviews", {"host": "reviews", "subsets": [
    {"name": v, "labels": {"version": v}} for v in ("v1", "v2")]}) + "---\n"
    + istio("VirtualService", "reviews", {"hosts": ["reviews"], "http": [
        {"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}))


def apply_while_away(mesh: Mesh) -> None:
    mesh.stop_boss()
    mesh.apply(V1_ONLY)
    mesh.start_boss()
    disconnected(mesh)


def vs_routes(mesh: Mesh) -> list[dict]:
    """productpage's live reviews routes that came from a VirtualService."""
    routes = (vhost(route_config(mesh, POD), "reviews.") or {}).get("routes", [])
    return [r for r in routes if "/virtual-service/" in str(
        r.get("metadata", {}).get("filter_metadata", {}).get("istio", {}).get("config", ""))]


def disconnected(mesh: Mesh, wait_s: float = 3.0) -> list[str]:
    """Pods not connected to the boss, after giving a just-restarted boss `wait_s` to be found again."""
    return poll(lambda: [r["pod"] for r in mesh.status_rows() if not r["connected"]], lambda away: not away,
                wait_s, every=0.1)


def check_resync(mesh: Mesh) -> Verdict:
    away = disconnected(mesh)
    if any(r.get("state") == "BOSS STOPPED" for r in mesh.status_rows()):
        return Verdict.not_yet("the boss is still stopped: `mesh.start_boss()` brings it back")
    if away:
        return Verdict.not_yet(f"{len(away)} lieutenants are not connected to the boss: {', '.join(away)}")
    if not vs_routes(mesh):
        return Verdict.not_yet("the boss is here, but no VirtualService for reviews has reached productpage")
    versions = {r["version"] for r in mesh.curl_rows(POD, URL, n=6) if r["status"] == 200}
    if versions != {"v1"}:
        return Verdict.wrong("reviews answers from " + ", ".join(sorted(versions) or ["nobody"])
                             + ": the task's VirtualService sends everything to v1 (mesh.pc.routes(...))")
    return Verdict.done("the change made while the boss was away arrived when it came back")


JASON_V3 = (istio("DestinationRule", "reviews", {"host": "reviews", "subsets": [
    {"name": v, "labels": {"version": v}} for v in ("v1", "v2", "v3")]}) + "---\n"
    + istio("VirtualService", "reviews", {"hosts": ["reviews"], "http": [
        {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
         "route": [{"destination": {"host": "reviews", "subset": "v3"}}]},
        {"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}))


def check_jason_v3(mesh: Mesh) -> Verdict:
    if not any(h.get("name") == "end-user" for r in vs_routes(mesh) for h in r.get("match", {}).get("headers", [])):
        return Verdict.not_yet("no route for jason reached productpage yet: apply JASON_V3_VS")
    jason = mesh.curl_rows(POD, URL, headers={"end-user": "jason"}, n=4)
    if any(r["status"] == 503 and "NC" in str(r["flags"]) for r in jason):
        return Verdict.not_yet("jason gets 503 NC: the route names subset v3, a cluster the lieutenant does "
                               "not have — define the subset in the DestinationRule")
    if any(r["status"] != 200 or r["version"] != "v3" for r in jason):
        return Verdict.wrong("not every request from jason reached v3; read status and flags")
    return Verdict.done("subset defined, VirtualService accepted, jason reaches v3")


LAB = LabSpec(
    name="08-wrong-orders",
    title="When orders go wrong: NACK, a missing boss, resync",
    minutes=30,
    objectives=(
        "Read a NACK: Envoy's own error text, and the last good config it keeps serving",
        "Stop the boss and see the lieutenants keep working on their last orders",
        "Bring the boss back and watch every sidecar reconnect and resync",
        "See a route to a subset nobody defined accepted, as istiod does, and answered 503 NC (IST0101)",
    ),
    exercises=(
        Exercise(
            id="ex1",
            title="Fix the refused canary cluster",
            check=check_canary,
            hints=(
                "Read the NACK: Envoy names the field and why it refused it.",
                "A duration must be positive: the canary cluster's connect_timeout is the problem.",
                "Push the same cluster with `connect_timeout: 0.25s` to productpage-v1.",
            ),
            solution="mesh.apply(canary_yaml.replace('-0.25s', '0.25s'), pods=[POD])",
            apply=lambda mesh: mesh.apply(canary("0.25s"), pods=[POD]),
        ),
        Exercise(
            id="ex2",
            title="Give an order while the boss is away, then bring it back",
            check=check_resync,
            hints=(
                "The boss keeps accepting your resources while its ADS server is stopped; it just can't send.",
                "Apply V1_ONLY now, look at the requests (unchanged), then `mesh.start_boss()`.",
                "`mesh.apply(V1_ONLY)`, then `mesh.start_boss()`, then `mesh.status()`.",
            ),
            solution="mesh.apply(V1_ONLY)\nprint(summary(mesh.curl_rows(POD, URL, n=3)))\nmesh.start_boss()",
            apply=apply_while_away,
        ),
        Exercise(
            id="ex3",
            title="Jason to v3, for real this time",
            check=check_jason_v3,
            hints=(
                "The push's IST0101 warning says the VirtualService names a subset no DestinationRule defines.",
                "Apply the DestinationRule with a v3 subset together with the VirtualService.",
                "Add `{name: v3, labels: {version: v3}}` to the rule's subsets and apply rule + JASON_V3_VS together.",
            ),
            solution=JASON_V3,
            apply=lambda mesh: mesh.apply(JASON_V3),
        ),
    ),
    notes=(
        "meshkit's boss serves delta xDS by default, as istiod does (SotW with `meshkit up --xds sotw`). "
        "A NACK looks the same in both.",
        "`stop_boss()` stops the ADS server only; there is no pilot-agent between Envoy and the boss.",
    ),
    runtime_notes=(
        ("kind", "`stop_boss()` stops the ADS server inside the meshkit-xds pod; the pod, its Service and "
                 "the control port stay up (the Service publishes the pod even while it is not ready, so "
                 "the sidecars find the boss again as soon as `start_boss()` runs)"),
    ),
)
