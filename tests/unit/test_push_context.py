"""The push context: one index per config change, shared resources, partial rebuilds, debounce.

Every assertion is about work done (index builds, `Service.selects` calls, which types were
translated, which objects are shared) or about output (a partial rebuild equals a full one);
none measures time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest

from meshkit.model import HTTP, Service, ServicePort, Topology, Workload, labels
from meshkit.model.bookinfo import bookinfo
from meshkit.model.istio import parse_istio
from meshkit.xds import generate, push_context, routes
from meshkit.xds.cache import SnapshotCache
from meshkit.xds.changes import CONFIG_TYPES, affected_types
from meshkit.xds.control_plane import ControlPlane
from meshkit.xds.debounce import Batch, Debouncer
from meshkit.xds.push_context import PushContext
from meshkit.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, SHORT_NAMES
from meshkit.xds.snapshot import Snapshot
from meshkit.xds.status import SyncTracker
from tests.documents import document

HTTP_VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v2}
"""
TCP_VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo, namespace: default}
spec:
  hosts: [tcp-echo]
  tcp:
  - route:
    - destination: {host: tcp-echo, port: {number: 9000}}
"""
DR = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
  subsets:
  - {name: v2, labels: {version: v2}}
"""
STRICT = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: STRICT}}
"""
DENY = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-ratings, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  action: DENY
  rules: [{from: [{source: {namespaces: [other]}}]}]
"""
ENTRY = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
"""


def applied(topology: Topology, text: str) -> Topology:
    return replace(topology, istio=topology.istio.applied(parse_istio(text)))


@asynccontextmanager
async def plane_for(topology: Topology, **options: float) -> AsyncIterator[ControlPlane]:
    """A control plane on `topology` (nothing pushed yet), closed on the way out."""
    plane = ControlPlane(topology, SnapshotCache(), SyncTracker(), **options)
    try:
        yield plane
    finally:
        plane.close()


def test_one_index_per_topology_and_the_selections_do_not_grow_with_the_proxies(monkeypatch) -> None:
    calls = []
    original = Service.selects
    monkeypatch.setattr(Service, "selects", lambda self, w: calls.append(1) or original(self, w))
    topology = bookinfo()
    builds = PushContext.builds
    sidecars = topology.sidecars()
    generate.generate(topology, sidecars[0])
    first = len(calls)
    for proxy in sidecars[1:]:
        generate.generate(topology, proxy)
    assert PushContext.builds - builds == 1
    assert len(calls) == first  # later proxies read the index; no workload is scanned again
    assert first <= len(topology.workloads) * 2  # each Service checks only the pods with its label


def test_a_push_to_every_sidecar_builds_one_index() -> None:
    async def scenario() -> None:
        async with plane_for(bookinfo()) as plane:
            builds = PushContext.builds
            push = await plane.push_all()
            assert PushContext.builds - builds == 1
            assert set(push.rebuilt) == {p.name for p in plane.topology.sidecars()}

    asyncio.run(scenario())


def test_the_index_answers_as_the_topology_does() -> None:
    topology = applied(applied(bookinfo(), DR), ENTRY)
    index = push_context.of(topology)
    assert index is push_context.of(topology)
    for service in topology.services:
        assert list(index.endpoints(service)) == topology.endpoints(service)
    for workload in topology.workloads:
        assert list(index.services_of(workload)) == topology.services_of(workload)
    assert index.destination_rule_for("reviews.default.svc.cluster.local") == \
        topology.istio.destination_rule_for("reviews.default.svc.cluster.local")


def test_resources_the_same_for_every_proxy_are_the_same_objects_and_packed_once() -> None:
    async def scenario() -> None:
        async with plane_for(bookinfo()) as plane:
            await plane.push_all()
            first, *others = plane.topology.sidecars()
            a = generate.generate(plane.topology, first)
            one = plane.cache.get(first.node_id)
            for proxy in others:
                b = generate.generate(plane.topology, proxy)
                assert all(x is y for x, y in zip(a[ENDPOINT], b[ENDPOINT], strict=True))
                outbound = [c for c in a[CLUSTER] if c.name.startswith("outbound|")]
                assert all(x is y for x, y in zip(outbound, b[CLUSTER], strict=False))
                other = plane.cache.get(proxy.node_id)
                for url in (CLUSTER, ENDPOINT):
                    shared = {n for n in set(one.resources[url]) & set(other.resources[url])
                              if not n.startswith("inbound|")}  # each pod's own app
                    assert shared and all(one.resources[url][n] is other.resources[url][n] for n in shared)
                # same namespace, no sourceLabels: the same route configurations
                assert all(x is y for x, y in zip(a[ROUTE], b[ROUTE], strict=True))
                assert one.resources[ROUTE]["9080"] is other.resources[ROUTE]["9080"]

    asyncio.run(scenario())


def full_versions(topology: Topology, proxy) -> dict[str, str]:
    snapshot = Snapshot.build(generate.generate(topology, proxy))
    return {url: snapshot.version(url) for url in CONFIG_TYPES}


@pytest.mark.parametrize(("text", "types"), [
    (HTTP_VS, {"RDS"}),
    (TCP_VS, {"RDS", "LDS"}),
    (DR, {"CDS", "EDS", "RDS"}),
    (STRICT, {"LDS"}),
    (DENY, {"LDS"}),
    (ENTRY, {"CDS", "EDS", "LDS", "RDS"}),
])
def test_an_edit_rebuilds_only_the_types_it_affects_and_gives_what_a_full_build_gives(text, types) -> None:
    async def scenario() -> None:
        async with plane_for(bookinfo()) as plane:
            await plane.push_all()
            new = applied(plane.topology, text)
            push = await plane.set_topology(new, "apply")
            sidecars = new.sidecars()
            assert push.rebuilt == {p.name: [t for t in ("CDS", "EDS", "LDS", "RDS") if t in types]
                                    for p in sidecars}
            assert push.changes and {c.type for c in push.changes} <= types
            for proxy in sidecars:  # the kept types are still right: nothing else could change
                kept = plane.cache.get(proxy.node_id)
                assert {u: kept.version(u) for u in CONFIG_TYPES} == full_versions(new, proxy), proxy.name

    asyncio.run(scenario())


def test_a_virtual_service_edit_rebuilds_rds_only_and_an_endpoint_change_eds_only() -> None:
    async def scenario() -> None:
        async with plane_for(bookinfo()) as plane:
            await plane.push_all()
            before = {p.name: dict(plane.cache.get(p.node_id).versions) for p in plane.topology.sidecars()}
            push = await plane.set_topology(applied(plane.topology, HTTP_VS), "apply VirtualService reviews")
            assert push.rebuilt and all(v == ["RDS"] for v in push.rebuilt.values())
            for proxy in plane.topology.sidecars():
                after = plane.cache.get(proxy.node_id).versions
                assert {SHORT_NAMES[u] for u in after if after[u] != before[proxy.name][u]} == {"RDS"}
            health = await plane.set_pod_health("ratings-v1", False)
            assert all(v == ["EDS"] for v in health.rebuilt.values()) and health.rebuilt
            assert {c.type for c in health.changes} == {"EDS"}

    asyncio.run(scenario())


def test_a_virtual_service_edit_keeps_what_no_virtual_service_decides() -> None:
    async def scenario() -> None:
        async with plane_for(bookinfo()) as plane:
            await plane.push_all()
            proxy = plane.topology.sidecars()[0]
            before_topology = plane.topology
            before = generate.generate(plane.topology, proxy)
            builds = PushContext.builds
            await plane.set_topology(applied(plane.topology, HTTP_VS), "apply")
            after = generate.generate(plane.topology, proxy)
            assert PushContext.builds - builds == 1
            assert all(a is b for a, b in zip(before[CLUSTER], after[CLUSTER], strict=True))
            assert all(a is b for a, b in zip(before[ENDPOINT], after[ENDPOINT], strict=True))
            details = push_context.of(plane.topology).lookup["details.default.svc.cluster.local"]
            assert routes.default_virtual_host(plane.topology, details, 9080, "default") is \
                routes.default_virtual_host(before_topology, details, 9080, "default")  # taken over, not rebuilt
            assert [r.name for r in before[ROUTE]] == [r.name for r in after[ROUTE]]
            assert before[ROUTE] != after[ROUTE]  # the edited routes are new

    asyncio.run(scenario())


def test_readiness_alone_touches_eds_and_a_new_pod_everything() -> None:
    topology = bookinfo()
    pod = topology.sidecars()[0]
    down = replace(topology, workloads=tuple(replace(w, ready=w is not pod) for w in topology.workloads))
    assert affected_types(topology, down) == {ENDPOINT}
    moved = replace(topology, workloads=tuple(replace(w, ip="10.9.9.9") if w is pod else w for w in topology.workloads))
    assert affected_types(topology, moved) == CONFIG_TYPES
    assert affected_types(topology, applied(topology, HTTP_VS)) == {ROUTE}
    assert affected_types(topology, applied(topology, TCP_VS)) == {ROUTE, LISTENER}


def test_a_burst_of_edits_in_one_step_is_one_push_listing_every_reason() -> None:
    async def scenario() -> None:
        async with plane_for(bookinfo(), debounce_ms=50) as plane:
            await plane.push_all()
            pods = [p.name for p in plane.topology.sidecars()][:4]
            pushes = await asyncio.gather(*(plane.set_pod_health(name, False) for name in pods))
            assert len({id(p) for p in pushes}) == 1  # every caller got the same, merged push
            push = pushes[0]
            assert push.merged == [f"{name} not ready" for name in pods]
            assert push.reason == f"{pods[0]} not ready (+3 merged)"
            assert plane.history()[-1] is push and len(plane.history()) == 2
            assert push.as_dict()["merged"] == push.merged
            for proxy in plane.topology.sidecars():  # all four edits are in the one push
                held = plane.cache.get(proxy.node_id).version(ENDPOINT)
                assert full_versions(plane.topology, proxy)[ENDPOINT] == held

    asyncio.run(scenario())


def test_changes_arriving_during_a_push_wait_for_it_and_go_out_together() -> None:
    async def scenario() -> None:
        release = asyncio.Event()
        batches: list[Batch] = []

        async def run(batch: Batch) -> int:
            batches.append(batch)
            if len(batches) == 1:
                await release.wait()  # the first push is "in flight" until released
            return len(batches)

        debouncer: Debouncer[int] = Debouncer(run, debounce_ms=5, max_ms=1000)
        first = asyncio.create_task(debouncer.submit(["a"], {ROUTE}, "one", 1))
        await asyncio.sleep(0.01)
        later = [asyncio.create_task(debouncer.submit([pod], {ENDPOINT}, f"edit {pod}", 1)) for pod in "bcd"]
        await asyncio.sleep(0.01)
        assert len(batches) == 1  # nothing overlaps the push in flight
        release.set()
        assert await first == 1
        assert [await t for t in later] == [2, 2, 2]
        assert batches[1].reasons == ["edit b", "edit c", "edit d"]
        assert batches[1].types == {"b": {ENDPOINT}, "c": {ENDPOINT}, "d": {ENDPOINT}}

    asyncio.run(scenario())


def test_a_single_edit_on_an_idle_boss_is_not_held_back_by_the_debounce() -> None:
    async def scenario() -> None:
        async with plane_for(bookinfo(), debounce_ms=600_000, debounce_max_ms=600_000) as plane:  # ten minutes
            await asyncio.wait_for(plane.push_all(), 60)
            push = await asyncio.wait_for(plane.set_topology(applied(plane.topology, HTTP_VS), "edit"), 60)
            assert push.merged == ["edit"] and push.changes

    asyncio.run(scenario())


def test_a_debounce_longer_than_its_maximum_is_refused() -> None:
    async def run(batch: Batch) -> None:
        return None

    with pytest.raises(ValueError, match="debounce"):
        Debouncer(run, debounce_ms=100, max_ms=10)


NAMESPACE_SIDECAR = document("snippets/namespace-sidecar.yaml")


def with_other_namespace(topology: Topology) -> Topology:
    """Bookinfo and one more Service with its pod in namespace `other`, every proxy scoped to its namespace."""
    echo = Service("echo", "other", "10.96.9.9", (ServicePort("http", 8080, 8080, HTTP),), labels({"app": "echo"}))
    pod = Workload("echo-v1-5f7c9d8b6-abcde", "other", topology.workloads[0].ip.rsplit(".", 1)[0] + ".99",
                   labels({"app": "echo", "version": "v1"}), "echo", (8080,))
    return applied(replace(topology, services=(*topology.services, echo), workloads=(*topology.workloads, pod)),
                   NAMESPACE_SIDECAR)


def test_a_virtual_service_edit_reaches_only_the_proxies_whose_sidecar_sees_its_host() -> None:
    """istiod's SidecarScope.DependsOnConfig: the echo pod's Sidecar hides reviews, so an edit of
    reviews' routes neither rebuilds nor pushes it; the Bookinfo pods get what a fresh build gives."""
    async def scenario() -> None:
        async with plane_for(with_other_namespace(bookinfo())) as plane:
            await plane.push_all()
            echo = plane.topology.workload("echo-v1")
            kept = plane.cache.get(echo.node_id)
            builds = PushContext.builds
            push = await plane.set_topology(applied(plane.topology, HTTP_VS), "apply VirtualService reviews")
            assert PushContext.builds - builds == 1  # the new index borrowed the registry and scopes
            assert echo.name not in push.rebuilt and plane.cache.get(echo.node_id) is kept
            bookinfo_pods = [p for p in plane.topology.sidecars() if p.namespace == "default"]
            assert set(push.rebuilt) == {p.name for p in bookinfo_pods}
            fresh = replace(plane.topology)  # another object: an index built from nothing
            for proxy in plane.topology.sidecars():
                held = plane.cache.get(proxy.node_id)
                assert {u: held.version(u) for u in CONFIG_TYPES} == full_versions(fresh, proxy), proxy.name
            # a VirtualService for echo's host reaches the echo pod alone
            echo_vs = (HTTP_VS.replace("reviews", "echo").replace("default", "other")
                       .replace("subset: v2", "port: {number: 8080}"))
            push = await plane.set_topology(applied(plane.topology, echo_vs), "apply VirtualService echo")
            assert set(push.rebuilt) == {echo.name}

    asyncio.run(scenario())
