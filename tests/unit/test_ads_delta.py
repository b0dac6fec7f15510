"""The delta ADS stream (`DeltaAggregatedResources`) against a scripted grpc.aio client playing Envoy."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.rpc import status_pb2

from meshkit.xds.resources import CLUSTER, ENDPOINT, LISTENER, SECRET
from meshkit.xds.snapshot import Snapshot
from meshkit.xds.status import EventKind, Outcome, OutcomeKind, SyncState

from .test_ads_server import NODE, Harness, ads_test


def snap(clusters: Mapping[str, int] | None = None, listeners: Mapping[str, int] | None = None) -> Snapshot:
    """Clusters (EDS, with endpoints of the same name) and listeners; each value is that resource's revision."""
    clusters = {"a": 1, "b": 1} if clusters is None else clusters
    listeners = {"l": 1} if listeners is None else listeners
    cds, eds, lds = [], [], []
    for name, revision in clusters.items():
        cluster = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
        cluster.eds_cluster_config.service_name = name
        cluster.connect_timeout.seconds = revision
        cds.append(cluster)
        eds.append(endpoint_pb2.ClusterLoadAssignment(cluster_name=name))
    for name, revision in listeners.items():
        lds.append(listener_pb2.Listener(name=name, address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=10_000 + revision))))
    return Snapshot.build({CLUSTER: cds, ENDPOINT: eds, LISTENER: lds})


class DeltaEnvoy:
    """One delta ADS stream driven by the test."""

    def __init__(self, channel: grpc.aio.Channel, node_id: str = NODE) -> None:
        self.call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).DeltaAggregatedResources()
        self.node: base_pb2.Node | None = base_pb2.Node(id=node_id, cluster="productpage.default")
        self.inbox: asyncio.Queue[discovery_pb2.DeltaDiscoveryResponse] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for response in self.call:
            self.inbox.put_nowait(response)

    async def request(self, type_url: str, subscribe: Iterable[str] = (), unsubscribe: Iterable[str] = (), *,
                      nonce: str = "", error: str | None = None, initial: Mapping[str, str] | None = None) -> None:
        request = discovery_pb2.DeltaDiscoveryRequest(
            type_url=type_url, resource_names_subscribe=list(subscribe), resource_names_unsubscribe=list(unsubscribe),
            response_nonce=nonce, initial_resource_versions=dict(initial or {}))
        if self.node is not None:
            request.node.CopyFrom(self.node)
            self.node = None
        if error is not None:
            request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        await self.call.write(request)

    async def recv(self) -> discovery_pb2.DeltaDiscoveryResponse:
        return await asyncio.wait_for(self.inbox.get(), 5)

    async def ack(self, response: discovery_pb2.DeltaDiscoveryResponse) -> None:
        await self.request(response.type_url, nonce=response.nonce)

    async def nack(self, response: discovery_pb2.DeltaDiscoveryResponse, error: str) -> None:
        await self.request(response.type_url, nonce=response.nonce, error=error)

    async def silent(self, seconds: float = 0.3) -> None:
        await asyncio.sleep(seconds)
        assert self.inbox.empty(), self.inbox.get_nowait()

    async def close(self) -> None:
        self.call.cancel()
        self.reader.cancel()


def connect(h: Harness, snapshot: Snapshot | None = None) -> DeltaEnvoy:
    """A new delta stream (closed with the harness), after `snapshot` is set for its node when given."""
    if snapshot is not None:
        h.cache.set(NODE, snapshot)
    envoy = DeltaEnvoy(h.channel)
    h.envoys.append(envoy)
    return envoy


async def subscribed(h: Harness, type_url: str, snapshot: Snapshot | None = None) -> DeltaEnvoy:
    """A delta stream holding `snapshot` (default `snap()`): wildcard on `type_url`, first response ACKed."""
    envoy = connect(h, snapshot or snap())
    await envoy.request(type_url)
    await envoy.ack(await envoy.recv())
    return envoy


def names(response: discovery_pb2.DeltaDiscoveryResponse) -> list[str]:
    return sorted(r.name for r in response.resources)


async def listeners_acked(h: Harness, envoy: DeltaEnvoy,
                          snapshot: Snapshot) -> tuple[discovery_pb2.DeltaDiscoveryResponse, Outcome]:
    """Set `snapshot`; the Envoy ACKs the LDS response it gets. That response, and how the tracker
    rates `snapshot`'s LDS version then (ACK, NACK, or TIMEOUT after 2 s)."""
    h.cache.set(NODE, snapshot)
    response = await envoy.recv()
    await envoy.ack(response)
    return response, (await h.tracker.wait_for({NODE: {LISTENER: snapshot.version(LISTENER)}}, 2))[NODE][LISTENER]


@ads_test
async def test_wildcard_gets_everything_then_only_what_changed_and_endpoints_of_changed_clusters(h: Harness) -> None:
    first = snap()
    envoy = connect(h, first)
    await envoy.request(CLUSTER)  # legacy rule: naming nothing is a wildcard
    clusters = await envoy.recv()
    assert names(clusters) == ["a", "b"] and not clusters.removed_resources
    assert clusters.system_version_info == first.version(CLUSTER)
    assert {r.name: r.version for r in clusters.resources} == dict(first.versions_of(CLUSTER))
    await envoy.ack(clusters)
    await envoy.request(ENDPOINT, ["a", "b"])
    endpoints = await envoy.recv()
    assert names(endpoints) == ["a", "b"]
    await envoy.ack(endpoints)
    await envoy.silent()

    h.cache.set(NODE, snap({"a": 2, "b": 1}))
    changed, warmed = await envoy.recv(), await envoy.recv()
    assert (changed.type_url, names(changed)) == (CLUSTER, ["a"])
    assert (warmed.type_url, names(warmed)) == (ENDPOINT, ["a"])  # unchanged, re-sent so "a" warms
    assert changed.nonce != warmed.nonce
    await envoy.ack(changed)
    await envoy.ack(warmed)
    await envoy.silent()
    [row] = h.tracker.status()
    assert row.as_row()["xds"] == "DELTA"
    assert row.types[CLUSTER].state == SyncState.SYNCED and row.types[CLUSTER].responses == 2
    assert row.types[CLUSTER].bytes_sent == clusters.ByteSize() + changed.ByteSize()
    assert changed.ByteSize() < clusters.ByteSize()


@ads_test
async def test_explicit_names_unsubscribe_and_names_that_do_not_exist(h: Harness) -> None:
    envoy = connect(h, snap())
    await envoy.request(ENDPOINT, ["a"])
    only_a = await envoy.recv()
    assert names(only_a) == ["a"]
    await envoy.ack(only_a)
    await envoy.request(ENDPOINT, ["b", "zz"])  # grow: only the new names, and "zz" does not exist
    grown = await envoy.recv()
    assert names(grown) == ["b"] and list(grown.removed_resources) == ["zz"]
    await envoy.ack(grown)
    await envoy.request(ENDPOINT, [], ["a"])  # Envoy drops "a" itself: nothing to answer
    await envoy.silent()
    await envoy.request(ENDPOINT, ["a"])  # subscribed again: sent again, though unchanged
    again = await envoy.recv()
    assert names(again) == ["a"] and not again.removed_resources


@ads_test
async def test_wildcard_and_a_named_resource_then_unsubscribing_the_name_answers_with_it(h: Harness) -> None:
    envoy = connect(h, snap())
    await envoy.request(CLUSTER, ["*", "a"])
    everything = await envoy.recv()
    assert names(everything) == ["a", "b"]
    await envoy.ack(everything)
    await envoy.request(CLUSTER, [], ["a"])
    answer = await envoy.recv()  # still covered by the wildcard: the spec wants it (or its removal)
    assert names(answer) == ["a"]
    await envoy.ack(answer)
    await envoy.request(CLUSTER, [], ["*"])  # wildcard off, nothing named: Envoy holds nothing
    dropped = await envoy.recv()
    assert sorted(dropped.removed_resources) == ["a", "b"] and not dropped.resources


@ads_test
async def test_a_deleted_resource_is_sent_as_removed(h: Harness) -> None:
    envoy = await subscribed(h, CLUSTER)
    h.cache.set(NODE, snap({"a": 1}))
    removal = await envoy.recv()
    assert not removal.resources and list(removal.removed_resources) == ["b"]
    await envoy.ack(removal)
    await envoy.silent()


@ads_test
async def test_a_nack_is_recorded_the_rejected_version_never_resent_and_a_fix_goes_through(h: Harness) -> None:
    envoy = await subscribed(h, LISTENER)
    bad = snap(listeners={"l": 2, "m": 1})
    h.cache.set(NODE, bad)
    rejected = await envoy.recv()
    assert names(rejected) == ["l", "m"]
    event = await h.after(envoy.nack(rejected, "duplicate filter chain match"), EventKind.NACK, LISTENER)
    assert (event.version, event.nonce) == (bad.version(LISTENER), rejected.nonce)
    assert h.state(LISTENER) == SyncState.ERROR
    assert h.tracker.get(NODE, LISTENER).error == "duplicate filter chain match"
    await envoy.silent()

    # only "m" changes: "l" at its rejected version is left out, so the ACK is no ACK of this version
    partial, outcome = await listeners_acked(h, envoy, snap(listeners={"l": 2, "m": 2}))
    assert names(partial) == ["m"]
    assert outcome.kind == OutcomeKind.NACK and "duplicate filter chain match" in outcome.error

    fix, outcome = await listeners_acked(h, envoy, snap(listeners={"l": 3, "m": 2}))
    assert names(fix) == ["l"]
    assert outcome.kind == OutcomeKind.ACK and h.state(LISTENER) == SyncState.SYNCED


@ads_test
async def test_reverting_to_what_envoy_kept_after_a_nack_is_answered_and_acked(h: Harness) -> None:
    good = snap()
    envoy = await subscribed(h, LISTENER, good)
    h.cache.set(NODE, snap(listeners={"l": 2}))
    rejected = await envoy.recv()
    await h.after(envoy.nack(rejected, "bad listener"), EventKind.NACK, LISTENER)
    # back to `good`: Envoy still holds l@1, so nothing to send, but the version is answered
    empty, outcome = await listeners_acked(h, envoy, good)
    assert not empty.resources and not empty.removed_resources
    assert outcome.kind == OutcomeKind.ACK


@ads_test
async def test_a_reconnect_with_initial_resource_versions_gets_only_what_changed(h: Harness) -> None:
    envoy = connect(h, snap({"a": 1, "b": 1, "c": 1}))
    await envoy.request(CLUSTER)
    held = {r.name: r.version for r in (await envoy.recv()).resources}
    await h.after(envoy.close(), EventKind.DISCONNECTED)

    h.cache.set(NODE, snap({"a": 1, "b": 2}))  # b changed and c went away while Envoy was gone
    again = connect(h)
    await again.request(CLUSTER, initial=held)
    resync = await again.recv()
    assert names(resync) == ["b"] and list(resync.removed_resources) == ["c"]
    await again.ack(resync)
    await again.silent()


@ads_test
async def test_a_stale_nonce_is_no_ack_but_its_subscription_change_counts(h: Harness) -> None:
    envoy = connect(h, snap())
    await envoy.request(CLUSTER)
    older = await envoy.recv()
    await envoy.ack(older)
    await envoy.request(ENDPOINT, ["a"])
    await envoy.ack(await envoy.recv())
    h.cache.set(NODE, snap({"a": 2, "b": 1}))
    newer, _ = await envoy.recv(), await envoy.recv()
    assert newer.type_url == CLUSTER
    await envoy.request(ENDPOINT, ["b"], nonce=older.nonce)  # an old nonce, but a new name
    grown = await envoy.recv()
    assert grown.type_url == ENDPOINT and names(grown) == ["b"]
    assert h.state(CLUSTER) == SyncState.STALE  # the stale nonce acknowledged nothing


@ads_test
async def test_types_flush_in_push_order_and_the_first_request_is_answered_even_when_empty(h: Harness) -> None:
    envoy = connect(h)
    connected = asyncio.create_task(h.event(EventKind.CONNECTED))
    for url, subscribe in ((LISTENER, ()), (ENDPOINT, ("a",)), (CLUSTER, ()), (SECRET, ())):
        await envoy.request(url, subscribe)
    await connected
    await envoy.silent()  # no snapshot yet
    h.cache.set(NODE, snap())
    got = [await envoy.recv() for _ in range(4)]
    assert [r.type_url for r in got] == [CLUSTER, ENDPOINT, LISTENER, SECRET]
    assert not got[3].resources  # the snapshot has no secrets: still answered, so Envoy stops waiting
