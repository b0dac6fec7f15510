"""The boss's voice: a grpc.aio State-of-the-World ADS server fed by the snapshot cache.

One `_AdsStream` per connected Envoy. A reader task turns incoming requests into queue items and
the cache's wake-ups land in the same queue, so the stream sleeps on a single `queue.get()`: no
polling. After each batch of items the stream flushes, in push order (CDS → EDS → LDS → RDS →
SDS), every subscribed type whose content changed, whose subscription grew or that must be re-sent
(EDS after a CDS push, so updated clusters finish warming). Protocol rules (xds.md §0, §7):
stale nonces are ignored, a NACK is recognised by `error_detail`, recorded with Envoy's text and
the rejected version is not sent again on that stream.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from .cache import SnapshotCache
from .resources import CLUSTER, ENDPOINT, PUSH_ORDER, SHORT_NAMES
from .status import SyncTracker

log = logging.getLogger(__name__)

_WAKE = object()  # queue item: the node's snapshot changed
_END = object()  # queue item: the client closed its side of the stream

SERVER_OPTIONS = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
)


@dataclass
class _Subscription:
    """One type on one stream: what Envoy asked for and what it was last sent."""

    names: set[str] = field(default_factory=set)
    named_ever: bool = False  # legacy rule: a type never named is a wildcard
    wildcard: bool = True
    nonce: str = ""
    sent_version: str = ""
    nacked_version: str = ""
    must_send: bool = True  # new subscription, grown subscription or EDS after CDS

    def update(self, names: list[str]) -> bool:
        """Apply a request's resource names; True if the subscription grew."""
        requested = set(names)
        self.named_ever |= bool(requested)
        was_wildcard, old_names = self.wildcard, self.names
        self.wildcard = "*" in requested or not self.named_ever
        self.names = requested - {"*"}
        return (self.wildcard and not was_wildcard) or (not self.wildcard and bool(self.names - old_names))

    @property
    def empty(self) -> bool:
        return not self.wildcard and not self.names


class _AdsStream:
    """State and loop of one SotW ADS stream."""

    def __init__(self, cache: SnapshotCache, tracker: SyncTracker,
                 nonces: Iterator[int], context: grpc.aio.ServicerContext) -> None:
        self._cache, self._tracker, self._nonces, self._context = cache, tracker, nonces, context
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._subs: dict[str, _Subscription] = {}
        self._node_id = ""
        self._unwatch: Callable[[], None] | None = None

    async def run(self, requests: AsyncIterator[discovery_pb2.DiscoveryRequest]) -> None:
        """Serve until the client goes away; every wake-up handles all queued items, then flushes once."""
        reader = asyncio.create_task(self._read(requests))
        try:
            while True:
                items = [await self._queue.get()]
                while not self._queue.empty():
                    items.append(self._queue.get_nowait())
                for item in items:
                    if item is _END:
                        return
                    if isinstance(item, discovery_pb2.DiscoveryRequest):
                        await self._handle(item)
                await self._flush()
        finally:
            reader.cancel()
            if self._unwatch:
                self._unwatch()
            if self._node_id:
                self._tracker.on_disconnect(self._node_id)

    async def _read(self, requests: AsyncIterator[discovery_pb2.DiscoveryRequest]) -> None:
        try:
            async for request in requests:
                self._queue.put_nowait(request)
        except grpc.aio.AioRpcError as error:  # the stream broke: end it like a half-close
            log.debug("%s: stream read failed: %s", self._node_id, error)
        finally:
            self._queue.put_nowait(_END)

    async def _handle(self, request: discovery_pb2.DiscoveryRequest) -> None:
        if not self._node_id:  # only the first request is sure to carry the node
            if not request.node.id:
                await self._context.abort(grpc.StatusCode.INVALID_ARGUMENT, "first request carries no node.id")
            self._node_id = request.node.id
            self._tracker.on_connect(request.node)
            self._unwatch = self._cache.watch(self._node_id, lambda: self._queue.put_nowait(_WAKE))
        url = request.type_url
        if not url:
            await self._context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ADS request without type_url")
        sub = self._subs.get(url)
        if sub is None:
            sub = self._subs[url] = _Subscription()
        elif request.response_nonce != sub.nonce:
            log.debug("%s %s: stale nonce %r (latest %r) ignored",
                      self._node_id, _short(url), request.response_nonce, sub.nonce)
            return
        elif sub.nonce:  # answers our latest response of this type
            if request.HasField("error_detail"):
                sub.nacked_version = sub.sent_version
                log.warning("%s %s: NACK of %s: %s", self._node_id, _short(url), sub.sent_version,
                            request.error_detail.message)
                self._tracker.on_nack(self._node_id, url, sub.sent_version, sub.nonce,
                                      request.error_detail.message)
            else:
                self._tracker.on_ack(self._node_id, url, request.version_info, sub.nonce)
        if sub.update(list(request.resource_names)):
            sub.must_send = True

    async def _flush(self) -> None:
        snapshot = self._cache.get(self._node_id)
        if snapshot is None:
            return
        ordered = [t for t in PUSH_ORDER if t in self._subs] + sorted(set(self._subs) - set(PUSH_ORDER))
        for url in ordered:
            sub = self._subs[url]
            version = snapshot.version(url)
            if not sub.must_send and version == sub.sent_version:  # also true of a NACKed version
                continue
            sub.must_send = False
            if sub.empty:  # Envoy unsubscribed from every name: it would drop the response
                continue
            nonce = str(next(self._nonces))
            resources = snapshot.named(url, None if sub.wildcard else sub.names)
            await self._context.write(discovery_pb2.DiscoveryResponse(
                version_info=version, type_url=url, nonce=nonce, resources=resources))
            sub.nonce, sub.sent_version = nonce, version
            self._tracker.on_sent(self._node_id, url, version, nonce)
            eds = self._subs.get(ENDPOINT)
            if url == CLUSTER and eds and snapshot.version(ENDPOINT) != eds.nacked_version:
                eds.must_send = True  # updated clusters warm until they get their endpoints again


def _short(type_url: str) -> str:
    return SHORT_NAMES.get(type_url, type_url)


class _AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, cache: SnapshotCache, tracker: SyncTracker) -> None:
        self._cache, self._tracker = cache, tracker
        self._nonces = itertools.count(1)  # unique across streams, so no two responses share one

    async def StreamAggregatedResources(
            self, request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
            context: grpc.aio.ServicerContext) -> None:
        await _AdsStream(self._cache, self._tracker, self._nonces, context).run(request_iterator)


class AdsServer:
    """The gRPC server: `await start("127.0.0.1:0" | "unix:/path")`, then `await stop()`."""

    def __init__(self, cache: SnapshotCache, tracker: SyncTracker) -> None:
        self.cache, self.tracker = cache, tracker
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None

    async def start(self, address: str) -> int:
        """Listen on `host:port` (port 0 picks one) or `unix:/path`; returns the bound port (0 for unix)."""
        if self._server is not None:
            raise RuntimeError("ADS server already started")
        server = grpc.aio.server(options=SERVER_OPTIONS)
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(
            _AdsServicer(self.cache, self.tracker), server)
        port = server.add_insecure_port(address)
        await server.start()
        self._server, self.port = server, 0 if address.startswith("unix:") else port
        self.tracker.on_server_started()
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Stop listening and end every stream (after `grace` seconds if given).

        The tracker hears of it first, so the streams' DISCONNECTED events already find every
        row saying BOSS STOPPED rather than a plain disconnect.
        """
        if self._server is not None:
            self.tracker.on_server_stopped()
            await self._server.stop(grace)
            self._server, self.port = None, None

    @property
    def running(self) -> bool:
        return self._server is not None
