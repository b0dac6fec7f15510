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
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from .cache import SnapshotCache
from .resources import CLUSTER, ENDPOINT, PUSH_ORDER, SHORT_NAMES
from .status import SyncTracker

log = logging.getLogger(__name__)

_R = TypeVar("_R")  # a DiscoveryRequest or a DeltaDiscoveryRequest: both carry `node`
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
    """The ADS service of one listener; `identity` binds it to one node id (a pod's own socket)."""

    def __init__(self, cache: SnapshotCache, tracker: SyncTracker, nonces: Iterator[int],
                 identity: str | None = None, pod: str = "") -> None:
        self._cache, self._tracker, self._nonces = cache, tracker, nonces  # nonces unique across streams
        self._identity, self._pod = identity, pod

    async def StreamAggregatedResources(
            self, request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
            context: grpc.aio.ServicerContext) -> None:
        requests = await self.admit(request_iterator, context)
        await _AdsStream(self._cache, self._tracker, self._nonces, context).run(requests)

    async def admit(self, requests: AsyncIterator[_R], context: grpc.aio.ServicerContext) -> AsyncIterator[_R]:
        """The stream's requests, once its first one names the node this listener belongs to.

        A pod's socket is that pod's credential, as the service-account token is for istiod: a
        client on it that claims another node id would be handed that workload's secrets (SDS
        rides on ADS), so the stream is refused with PERMISSION_DENIED before anything is sent.
        Any stream (SotW or delta) starts here.
        """
        if self._identity is None:
            return requests
        iterator = aiter(requests)
        try:
            first = await anext(iterator)
        except StopAsyncIteration:
            return _chain(None, iterator)
        claimed = first.node.id
        if claimed and claimed != self._identity:
            log.warning("refused an ADS stream on %s's socket: it claimed node %r", self._pod, claimed)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"this socket serves {self._pod} ({self._identity}) only, not node {claimed!r}: "
                                f"a sidecar gets its config and certificate on its own pod's socket")
        return _chain(first, iterator)


async def _chain(first: _R | None, rest: AsyncIterator[_R]) -> AsyncIterator[_R]:
    if first is not None:
        yield first
    async for request in rest:
        yield request


@dataclass(frozen=True)
class _PodSocket:
    pod: str
    node_id: str
    path: str
    uid: int | None


MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes, the last one a NUL


class AdsServer:
    """The ADS listeners: one per pod socket (`serve_pod`), and optionally one shared (`start(address)`).

    A local mesh serves each sidecar on a unix socket in its pod's folder that only the sidecar's
    uid may open, bound to that pod's node id; it opens no TCP port. The in-cluster boss (kind)
    and tests listen on one shared address, where any node id is served: there the cluster's
    network is the fence. `stop()` closes every listener, `start()` opens them all again
    (`boss stop` / `boss start`).
    """

    def __init__(self, cache: SnapshotCache, tracker: SyncTracker) -> None:
        self.cache, self.tracker = cache, tracker
        self.port: int | None = None
        self._nonces = itertools.count(1)  # unique across streams and listeners: no two responses share one
        self._listen: str | None = None
        self._pods: dict[str, _PodSocket] = {}
        self._servers: dict[str, grpc.aio.Server] = {}  # by pod name; "" is the shared listener
        self._folders: dict[str, int] = {}  # O_PATH descriptors of pod sockets' folders with too long a path

    async def start(self, address: str | None = None) -> int:
        """Listen on `address` (`host:port`, port 0 picks one, or `unix:/path`: any node id served there)
        if given, and again on every address served before a `stop()`; returns the shared port (0 for
        unix or none)."""
        if self.running:
            raise RuntimeError("ADS server already started")
        if address is not None:
            self._listen = address
        if self._listen is not None:
            server = self._server(_AdsServicer(self.cache, self.tracker, self._nonces))
            port = server.add_insecure_port(self._listen)
            await server.start()
            self._servers[""], self.port = server, 0 if self._listen.startswith("unix:") else port
        for spec in self._pods.values():
            await self._open_pod(spec)
        self.tracker.on_server_started()
        return self.port or 0

    async def serve_pod(self, pod: str, node_id: str, path: str | Path, uid: int | None = None) -> None:
        """Serve `pod`'s sidecar alone on the unix socket `path` (mode 0600, owned by `uid` if given).

        The folder holding `path` must already be private to that uid: the socket is the pod's
        credential. A stream there naming any node but `node_id` is refused (PERMISSION_DENIED).
        """
        if pod in self._servers:
            await self._servers.pop(pod).stop(0)
            self._close_folder(pod)
        spec = self._pods[pod] = _PodSocket(pod, node_id, str(path), uid)
        was_running = self.running
        await self._open_pod(spec)
        if not was_running:
            self.tracker.on_server_started()

    async def _open_pod(self, spec: _PodSocket) -> None:
        server = self._server(_AdsServicer(self.cache, self.tracker, self._nonces, spec.node_id, spec.pod))
        Path(spec.path).unlink(missing_ok=True)
        server.add_insecure_port(f"unix:{self._bindable(spec)}")
        os.chmod(spec.path, 0o600)  # before it accepts anything
        if spec.uid is not None and spec.uid != os.geteuid():
            os.chown(spec.path, spec.uid, spec.uid)
        await server.start()
        self._servers[spec.pod] = server

    def _bindable(self, spec: _PodSocket) -> str:
        """`spec.path`, or the same place through /proc/self/fd when the path is too long for a unix socket.

        A deep home (pytest's temporary folders) makes the path longer than sun_path's 108
        bytes; an O_PATH descriptor of the socket's folder, kept open while the server lives,
        reaches the same folder by a short name. (Envoy dials by a path relative to its
        working directory, so it never meets the limit.)
        """
        if len(os.fsencode(spec.path)) <= MAX_SOCKET_PATH:
            return spec.path
        folder = os.open(Path(spec.path).parent, os.O_PATH | os.O_DIRECTORY)
        self._folders[spec.pod] = folder
        return f"/proc/self/fd/{folder}/{Path(spec.path).name}"

    def _close_folder(self, pod: str) -> None:
        folder = self._folders.pop(pod, None)
        if folder is not None:
            os.close(folder)

    @staticmethod
    def _server(servicer: _AdsServicer) -> grpc.aio.Server:
        server = grpc.aio.server(options=SERVER_OPTIONS)
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(servicer, server)
        return server

    async def stop(self, grace: float | None = None) -> None:
        """Stop every listener and end every stream (after `grace` seconds if given).

        The tracker hears of it first, so the streams' DISCONNECTED events already find every
        row saying BOSS STOPPED rather than a plain disconnect.
        """
        if self._servers:
            self.tracker.on_server_stopped()
            servers, self._servers, self.port = list(self._servers.values()), {}, None
            await asyncio.gather(*(server.stop(grace) for server in servers))
            for pod in list(self._folders):
                self._close_folder(pod)

    @property
    def running(self) -> bool:
        return bool(self._servers)
