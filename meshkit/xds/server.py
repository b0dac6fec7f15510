"""The boss's voice: grpc.aio ADS listeners fed by the snapshot cache, speaking both xDS variants.

`StreamAggregatedResources` serves State-of-the-World streams (`sotw.SotwStream`) and
`DeltaAggregatedResources` delta streams (`delta.DeltaStream`), as istiod does: which one a
sidecar uses is its bootstrap's choice (`ads_config.api_type` GRPC or DELTA_GRPC). Both report to
the same `SyncTracker`, which learns each sidecar's variant when its stream opens. A local mesh
serves each sidecar on its own pod's unix socket, bound to its node id (`AdsServer.serve_pod`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from .cache import SnapshotCache
from .delta import DeltaStream
from .sotw import SotwStream
from .status import SyncTracker

log = logging.getLogger(__name__)

_R = TypeVar("_R")  # a DiscoveryRequest or a DeltaDiscoveryRequest: both carry `node`

SERVER_OPTIONS = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
)


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
        await SotwStream(self._cache, self._tracker, self._nonces, context).run(requests)

    async def DeltaAggregatedResources(
            self, request_iterator: AsyncIterator[discovery_pb2.DeltaDiscoveryRequest],
            context: grpc.aio.ServicerContext) -> None:
        requests = await self.admit(request_iterator, context)
        await DeltaStream(self._cache, self._tracker, self._nonces, context).run(requests)

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

    async def forget_pod(self, pod: str) -> None:
        """Stop serving `pod` (taken out of the mesh); a no-op for a pod never served."""
        self._pods.pop(pod, None)
        if pod in self._servers:
            await self._servers.pop(pod).stop(0)
        self._close_folder(pod)

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
