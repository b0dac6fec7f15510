"""The ADS server against a scripted grpc.aio client playing Envoy, and the sync tracker it feeds."""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryResponse
from google.rpc import status_pb2

from meshkit.xds.cache import SnapshotCache
from meshkit.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET
from meshkit.xds.server import AdsServer
from meshkit.xds.snapshot import Snapshot
from meshkit.xds.status import EventKind, OutcomeKind, SyncEvent, SyncState, SyncTracker

NODE = "sidecar~10.0.0.5~productpage-v1-1.default~default.svc.cluster.local"
EDS_NAMES = ("a", "b")
RDS_NAMES = ("80",)


def mesh(cds: int = 1, eds: int = 1, lds: int = 1, rds: int = 1,
         routes: Iterable[str] = ("80", "81")) -> Snapshot:
    """A small snapshot; bumping one revision changes exactly that type's content."""
    clusters, endpoints = [], []
    for name in EDS_NAMES:
        c = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
        c.connect_timeout.seconds = cds
        clusters.append(c)
        address = address_pb2.Address(socket_address=address_pb2.SocketAddress(
            address="127.0.0.1", port_value=8000 + eds))
        endpoints.append(endpoint_pb2.ClusterLoadAssignment(cluster_name=name, endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[
                endpoint_components_pb2.LbEndpoint(
                    endpoint=endpoint_components_pb2.Endpoint(address=address))])]))
    listener = listener_pb2.Listener(name="l", address=address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=10_000 + lds)))
    route_configs = [route_pb2.RouteConfiguration(name=name, virtual_hosts=[
        route_components_pb2.VirtualHost(name=f"v{rds}", domains=["*"])]) for name in routes]
    return Snapshot.build({CLUSTER: clusters, ENDPOINT: endpoints, LISTENER: [listener],
                           ROUTE: route_configs})


class FakeEnvoy:
    """One ADS stream driven by the test; responses are read in a task into a queue (xds.md §6.2)."""

    def __init__(self, channel: grpc.aio.Channel, node_id: str) -> None:
        self.call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        self.node = base_pb2.Node(id=node_id, cluster="productpage.default")
        self.node.metadata.update({"NAMESPACE": "default"})
        self.names: dict[str, tuple[str, ...]] = {}
        self.inbox: asyncio.Queue[discovery_pb2.DiscoveryResponse] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for response in self.call:
            self.inbox.put_nowait(response)

    async def request(self, type_url: str, names: Iterable[str] = (), *, version: str = "",
                      nonce: str = "", error: str | None = None) -> None:
        self.names[type_url] = tuple(names)
        request = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=self.names[type_url],
                                                 version_info=version, response_nonce=nonce)
        if self.node is not None:
            request.node.CopyFrom(self.node)
            self.node = None  # like Envoy: the node only on the first request
        if error is not None:
            request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        await self.call.write(request)

    async def recv(self) -> discovery_pb2.DiscoveryResponse:
        return await asyncio.wait_for(self.inbox.get(), 5)

    async def recv_types(self, count: int) -> list[str]:
        return [(await self.recv()).type_url for _ in range(count)]

    async def ack(self, response: discovery_pb2.DiscoveryResponse) -> None:
        url = response.type_url
        await self.request(url, self.names[url], version=response.version_info, nonce=response.nonce)

    async def nack(self, response: discovery_pb2.DiscoveryResponse, last_good: str, error: str) -> None:
        url = response.type_url
        await self.request(url, self.names[url], version=last_good, nonce=response.nonce, error=error)

    async def silent(self, seconds: float = 0.3) -> None:
        """Assert the server sends nothing for a while (the only way to see a non-answer)."""
        await asyncio.sleep(seconds)
        assert self.inbox.empty(), self.inbox.get_nowait()

    async def sync_all(self) -> dict[str, discovery_pb2.DiscoveryResponse]:
        """Subscribe like Envoy does (CDS, EDS names, LDS, RDS names), ACKing each response."""
        got = {}
        for url, names in ((CLUSTER, ()), (ENDPOINT, EDS_NAMES), (LISTENER, ()), (ROUTE, RDS_NAMES)):
            await self.request(url, names)
            got[url] = await self.recv()
            assert got[url].type_url == url
            await self.ack(got[url])
        return got

    async def close(self) -> None:
        self.call.cancel()
        self.reader.cancel()


class Stream(Protocol):
    """An ADS stream a test drives (state of the world or delta)."""

    async def close(self) -> None: ...


@dataclass
class Harness:
    cache: SnapshotCache
    tracker: SyncTracker
    channel: grpc.aio.Channel
    port: int
    server: AdsServer
    envoys: list[Stream] = field(default_factory=list)  # closed when the scenario ends

    def envoy(self, node_id: str = NODE) -> FakeEnvoy:
        envoy = FakeEnvoy(self.channel, node_id)
        self.envoys.append(envoy)
        return envoy

    async def event(self, kind: EventKind, type_url: str = "") -> SyncEvent:
        """The next event of this kind (and type); subscribe before causing it."""
        found: asyncio.Future[SyncEvent] = asyncio.get_running_loop().create_future()

        def on_event(event: SyncEvent) -> None:
            if event.kind == kind and event.type_url == type_url and not found.done():
                found.set_result(event)

        unsubscribe = self.tracker.subscribe(on_event)
        try:
            return await asyncio.wait_for(found, 5)
        finally:
            unsubscribe()

    async def after(self, cause: Awaitable[object], kind: EventKind, type_url: str = "") -> SyncEvent:
        """Await `cause`, then the event of this kind (and type) it brings about, listened for before it."""
        seen = asyncio.create_task(self.event(kind, type_url))
        await cause
        return await seen

    async def synced(self, snapshot: Snapshot | None = None) -> tuple[FakeEnvoy, dict[str, DiscoveryResponse]]:
        """A new Envoy on `snapshot` (default `mesh()`), subscribed as Envoy does with every response ACKed."""
        self.cache.set(NODE, snapshot or mesh())
        envoy = self.envoy()
        return envoy, await envoy.sync_all()

    def state(self, type_url: str, node_id: str = NODE) -> SyncState:
        return self.tracker.get(node_id, type_url).state


@asynccontextmanager
async def serving(address: str = "127.0.0.1:0") -> AsyncIterator[Harness]:
    cache, tracker = SnapshotCache(), SyncTracker()
    server = AdsServer(cache, tracker)
    port = await server.start(address)
    channel = grpc.aio.insecure_channel(address if address.startswith("unix:") else f"127.0.0.1:{port}")
    harness = Harness(cache, tracker, channel, port, server)
    try:
        yield harness
    finally:
        for envoy in harness.envoys:
            await envoy.close()
        await channel.close()
        await server.stop(None)


def run(scenario: Callable[[Harness], Awaitable[None]], address: str = "127.0.0.1:0") -> None:
    async def main() -> None:
        async with serving(address) as harness:
            await asyncio.wait_for(scenario(harness), 20)

    asyncio.run(main())


def ads_test(scenario: Callable[[Harness], Awaitable[None]]) -> Callable[[], None]:
    """A test that plays `scenario` against a fresh ADS server on 127.0.0.1 (`run`)."""
    def test() -> None:
        run(scenario)

    test.__name__ = test.__qualname__ = scenario.__name__
    test.__doc__ = scenario.__doc__
    return test


@ads_test
async def test_initial_responses_follow_envoys_requests_and_acks_get_no_answer(h: Harness) -> None:
    assert h.port > 0
    snapshot = mesh()
    envoy, got = await h.synced(snapshot)
    assert [r.version_info for r in got.values()] == [snapshot.version(t) for t in got]
    assert len(got[CLUSTER].resources) == 2 and len(got[LISTENER].resources) == 1
    assert len({r.nonce for r in got.values()}) == 4
    await envoy.silent()


def test_the_first_snapshot_answers_waiting_subscriptions_in_push_order(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        envoy = h.envoy()
        connected = asyncio.create_task(h.event(EventKind.CONNECTED))
        for url, names in ((ROUTE, RDS_NAMES), (LISTENER, ()), (ENDPOINT, EDS_NAMES), (CLUSTER, ())):
            await envoy.request(url, names)
        await connected
        await envoy.silent()  # no snapshot yet: nothing to say, the subscriptions wait
        h.cache.set(NODE, mesh())
        assert await envoy.recv_types(4) == [CLUSTER, ENDPOINT, LISTENER, ROUTE]
        await envoy.close()

    run(scenario, f"unix:{tmp_path}/ads.sock")


@ads_test
async def test_changes_are_pushed_in_push_order_and_only_for_changed_types(h: Harness) -> None:
    envoy, _ = await h.synced()
    h.cache.set(NODE, mesh(cds=2, eds=2, lds=2, rds=2))
    responses = [await envoy.recv() for _ in range(4)]
    assert [r.type_url for r in responses] == [CLUSTER, ENDPOINT, LISTENER, ROUTE]
    for response in responses:
        await envoy.ack(response)
    h.cache.set(NODE, mesh(cds=2, eds=2, lds=3, rds=2))
    listener = await envoy.recv()
    assert listener.type_url == LISTENER
    await envoy.ack(listener)
    h.cache.set(NODE, mesh(cds=2, eds=2, lds=3, rds=2))  # same content: nothing to push
    await envoy.silent()


@ads_test
async def test_eds_is_resent_after_a_cds_push_even_when_unchanged(h: Harness) -> None:
    envoy, first = await h.synced()
    h.cache.set(NODE, mesh(cds=2))
    clusters, endpoints = await envoy.recv(), await envoy.recv()
    assert (clusters.type_url, endpoints.type_url) == (CLUSTER, ENDPOINT)
    assert endpoints.version_info == first[ENDPOINT].version_info
    assert endpoints.nonce != first[ENDPOINT].nonce
    await envoy.ack(clusters)
    await envoy.ack(endpoints)
    await envoy.silent()


@ads_test
async def test_a_cds_push_does_not_resend_rejected_endpoints(h: Harness) -> None:
    envoy, got = await h.synced()
    h.cache.set(NODE, mesh(eds=2))
    bad = await envoy.recv()
    await h.after(envoy.nack(bad, got[ENDPOINT].version_info, "bad endpoints"), EventKind.NACK, ENDPOINT)
    h.cache.set(NODE, mesh(cds=2, eds=2))
    assert (await envoy.recv()).type_url == CLUSTER
    await envoy.silent()


@ads_test
async def test_a_nack_is_recorded_and_the_rejected_version_is_not_resent(h: Harness) -> None:
    envoy, got = await h.synced()
    good = got[LISTENER]
    bad_snapshot = mesh(lds=2)
    h.cache.set(NODE, bad_snapshot)
    bad = await envoy.recv()
    event = await h.after(envoy.nack(bad, good.version_info, "duplicate filter chain match"),
                          EventKind.NACK, LISTENER)
    assert (event.version, event.nonce) == (bad.version_info, bad.nonce)
    assert h.state(LISTENER) == SyncState.ERROR
    assert h.tracker.get(NODE, LISTENER).error == "duplicate filter chain match"
    outcome = (await h.tracker.wait_for({NODE: {LISTENER: bad.version_info}}, 1))[NODE][LISTENER]
    assert (outcome.kind, outcome.error) == (OutcomeKind.NACK, "duplicate filter chain match")

    h.cache.set(NODE, mesh(lds=2, rds=2))  # another type changes: the bad listener stays unsent
    routes = await envoy.recv()
    assert routes.type_url == ROUTE
    await envoy.ack(routes)
    await envoy.silent()

    h.cache.set(NODE, mesh(lds=3, rds=2))
    fixed_response = await envoy.recv()
    assert fixed_response.type_url == LISTENER and fixed_response.version_info != bad.version_info
    await h.after(envoy.ack(fixed_response), EventKind.ACK, LISTENER)
    assert h.state(LISTENER) == SyncState.SYNCED
    assert h.tracker.get(NODE, LISTENER).error == "duplicate filter chain match"  # kept as history


@ads_test
async def test_stale_nonces_are_ignored(h: Harness) -> None:
    envoy, _ = await h.synced()
    h.cache.set(NODE, mesh(rds=2))
    older = await envoy.recv()
    h.cache.set(NODE, mesh(rds=3))
    newer = await envoy.recv()
    # an ACK of the superseded response, even one growing the subscription, is ignored
    await envoy.request(ROUTE, ("80", "81"), version=older.version_info, nonce=older.nonce)
    await envoy.silent()
    assert h.state(ROUTE) == SyncState.STALE
    assert h.tracker.get(NODE, ROUTE).acked_version != older.version_info
    # the same request with the latest nonce is an ACK and a grown subscription
    await envoy.request(ROUTE, ("80", "81"), version=newer.version_info, nonce=newer.nonce)
    grown = await envoy.recv()
    assert grown.version_info == newer.version_info and len(grown.resources) == 2


@ads_test
async def test_named_subscriptions_get_what_exists_and_missing_names_when_they_appear(h: Harness) -> None:
    h.cache.set(NODE, mesh(routes=("80", "81")))
    envoy = h.envoy()
    await envoy.request(ROUTE, ("80", "9080"))
    first = await envoy.recv()
    names = [route_pb2.RouteConfiguration.FromString(a.value).name for a in first.resources]
    assert names == ["80"]
    await envoy.ack(first)
    h.cache.set(NODE, mesh(routes=("80", "81", "9080")))
    appeared = await envoy.recv()
    names = sorted(route_pb2.RouteConfiguration.FromString(a.value).name for a in appeared.resources)
    assert names == ["80", "9080"]
    await envoy.ack(appeared)
    # shrinking the subscription needs no answer; growing it does, even at the same version
    await envoy.request(ROUTE, ("80",), version=appeared.version_info, nonce=appeared.nonce)
    await envoy.silent()
    await envoy.request(ROUTE, ("80", "81"), version=appeared.version_info, nonce=appeared.nonce)
    grown = await envoy.recv()
    assert grown.version_info == appeared.version_info and len(grown.resources) == 2


@ads_test
async def test_wait_for_resolves_ack_nack_and_timeout(h: Harness) -> None:
    envoy, got = await h.synced()
    bad = mesh(lds=2, rds=2)
    h.cache.set(NODE, bad)
    listener, routes = await envoy.recv(), await envoy.recv()
    waiting = asyncio.create_task(h.tracker.wait_for(
        {NODE: {CLUSTER: got[CLUSTER].version_info, LISTENER: bad.version(LISTENER),
                ROUTE: bad.version(ROUTE)},
         "never-connected": {CLUSTER: bad.version(CLUSTER)}}, timeout=2))
    await envoy.nack(listener, got[LISTENER].version_info, "invalid listener")
    await envoy.ack(routes)
    outcomes = await waiting
    assert outcomes[NODE][CLUSTER].kind == OutcomeKind.ACK  # already acked: resolved at once
    assert outcomes[NODE][LISTENER].kind == OutcomeKind.NACK
    assert outcomes[NODE][LISTENER].error == "invalid listener"
    assert outcomes[NODE][ROUTE].kind == OutcomeKind.ACK
    assert outcomes["never-connected"][CLUSTER].kind == OutcomeKind.TIMEOUT
    quick = await h.tracker.wait_for({NODE: {ROUTE: bad.version(ROUTE)}}, timeout=0)
    assert quick[NODE][ROUTE].kind == OutcomeKind.ACK


@ads_test
async def test_status_shows_not_sent_stale_synced_error_and_connection(h: Harness) -> None:
    envoy = h.envoy()
    events: list[EventKind] = []
    h.tracker.subscribe(lambda event: events.append(event.kind))
    await h.after(envoy.request(CLUSTER), EventKind.CONNECTED)
    assert h.state(CLUSTER) == SyncState.NOT_SENT  # subscribed, but no snapshot yet
    h.cache.set(NODE, mesh())
    clusters = await envoy.recv()
    assert h.state(CLUSTER) == SyncState.STALE  # sent, not yet acked
    await h.after(envoy.ack(clusters), EventKind.ACK, CLUSTER)
    assert h.state(CLUSTER) == SyncState.SYNCED
    await envoy.request(LISTENER)
    listeners = await envoy.recv()
    await h.after(envoy.nack(listeners, "", "bad listener"), EventKind.NACK, LISTENER)

    [row] = h.tracker.status()
    assert (row.node_id, row.cluster, row.metadata, row.connected) == (
        NODE, "productpage.default", {"NAMESPACE": "default"}, True)
    assert {t: s.state for t, s in row.types.items()} == {
        CLUSTER: SyncState.SYNCED, ENDPOINT: SyncState.NOT_SENT, LISTENER: SyncState.ERROR,
        ROUTE: SyncState.NOT_SENT, SECRET: SyncState.NOT_SENT}
    assert row.types[LISTENER].error == "bad listener"
    assert row.types[CLUSTER].acked_version == clusters.version_info

    await h.after(envoy.close(), EventKind.DISCONNECTED)
    assert not h.tracker.status()[0].connected
    assert events == [EventKind.CONNECTED, EventKind.SENT, EventKind.ACK, EventKind.SENT,
                      EventKind.NACK, EventKind.DISCONNECTED]


@ads_test
async def test_a_stream_without_node_id_is_refused(h: Harness) -> None:
    envoy = h.envoy("")
    await envoy.request(CLUSTER)
    try:
        await envoy.reader
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    else:
        raise AssertionError("stream without node id was accepted")
    assert h.tracker.status() == []


@ads_test
async def test_a_closed_stream_and_a_stopped_server_show_in_the_rows(h: Harness) -> None:
    envoy = h.envoy()
    h.cache.set(NODE, mesh())
    await envoy.sync_all()
    assert h.tracker.status()[0].as_row()["state"] == "CONNECTED"
    disconnected = asyncio.create_task(h.event(EventKind.DISCONNECTED))
    began = time.monotonic()
    await envoy.close()
    await disconnected
    print(f"stream close seen in {(time.monotonic() - began) * 1000:.1f} ms")
    row = h.tracker.status()[0].as_row()
    assert (row["connected"], row["state"]) == (False, "DISCONNECTED")
    assert {t["state"] for t in row["types"].values()} == {"DISCONNECTED"}

    again = h.envoy()
    await h.after(again.request(CLUSTER), EventKind.CONNECTED)
    assert h.state(CLUSTER) in (SyncState.NOT_SENT, SyncState.STALE)  # resync of a new stream
    await again.ack(await again.recv())
    routes_acked = asyncio.create_task(h.event(EventKind.ACK, ROUTE))
    for url, names in ((ENDPOINT, EDS_NAMES), (LISTENER, ()), (ROUTE, RDS_NAMES)):
        await again.request(url, names)
        await again.ack(await again.recv())
    await routes_acked
    assert {t["state"] for t in h.tracker.status()[0].as_row()["types"].values()} == {"SYNCED", "NOT SENT"}

    await h.after(h.server.stop(0), EventKind.DISCONNECTED)
    [sync] = h.tracker.status()
    assert (sync.connected, sync.as_row()["state"]) == (False, "BOSS STOPPED")
    await again.close()
    await h.server.start(f"127.0.0.1:{h.port}")
    assert h.tracker.status()[0].as_row()["state"] == "DISCONNECTED"  # until it reconnects


OTHER = "sidecar~10.0.0.6~reviews-v1-1.default~default.svc.cluster.local"


@pytest.mark.parametrize("depth", [0, 3])
def test_a_pod_socket_serves_its_own_node_only_and_reopens_after_a_stop(
        tmp_path: Path, depth: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The socket is the pod's credential: a client there naming another node gets nothing of it.

    With depth 3 the socket's path is longer than a unix socket's 108 bytes, as under a deep home.
    """
    async def main() -> None:
        cache, tracker = SnapshotCache(), SyncTracker()
        cache.set(NODE, mesh())
        cache.set(OTHER, mesh(cds=2))
        server = AdsServer(cache, tracker)
        folder = tmp_path.joinpath(*["d" * 40] * depth, "etc", "istio", "proxy")
        folder.mkdir(parents=True, mode=0o700)
        path = folder / "XDS"
        assert (len(str(path)) > 108) == bool(depth)
        monkeypatch.chdir(folder)  # the client dials it as Envoy does: relative to its working directory
        await server.serve_pod("productpage-v1", NODE, path)
        try:
            assert server.running and stat.S_IMODE(path.stat().st_mode) == 0o600
            async with grpc.aio.insecure_channel("unix:XDS") as channel:
                call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
                request = discovery_pb2.DiscoveryRequest(type_url=SECRET, resource_names=["default"])
                request.node.id = OTHER
                await call.write(request)
                assert await asyncio.wait_for(call.code(), 5) == grpc.StatusCode.PERMISSION_DENIED
                assert "serves productpage-v1" in await call.details() and OTHER in await call.details()
                assert [s.node_id for s in tracker.status()] == []  # refused before it was anyone

                own = FakeEnvoy(channel, NODE)
                await own.request(CLUSTER)
                assert (await own.recv()).type_url == CLUSTER
                await own.close()

            await server.stop(0)
            assert not server.running
            assert await server.start() == 0  # `boss start`: the pod's socket again, no TCP port
            async with grpc.aio.insecure_channel("unix:XDS") as channel:
                again = FakeEnvoy(channel, NODE)
                await again.request(CLUSTER)
                assert (await again.recv()).type_url == CLUSTER
                await again.close()
        finally:
            await server.stop(None)

    asyncio.run(asyncio.wait_for(main(), 20))
