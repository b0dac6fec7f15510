"""The boss's voice: a grpc.aio ADS server fed by the snapshot cache, speaking both xDS variants.

`StreamAggregatedResources` serves State-of-the-World streams (`sotw.SotwStream`) and
`DeltaAggregatedResources` delta streams (`delta.DeltaStream`), as istiod does: which one a
sidecar uses is its bootstrap's choice (`ads_config.api_type` GRPC or DELTA_GRPC). Both report to
the same `SyncTracker`, which learns each sidecar's variant when its stream opens.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from .cache import SnapshotCache
from .delta import DeltaStream
from .sotw import SotwStream
from .status import SyncTracker

SERVER_OPTIONS = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
)


class _AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, cache: SnapshotCache, tracker: SyncTracker) -> None:
        self._cache, self._tracker = cache, tracker
        self._nonces = itertools.count(1)  # unique across streams, so no two responses share one

    async def StreamAggregatedResources(
            self, request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
            context: grpc.aio.ServicerContext) -> None:
        await SotwStream(self._cache, self._tracker, self._nonces, context).run(request_iterator)

    async def DeltaAggregatedResources(
            self, request_iterator: AsyncIterator[discovery_pb2.DeltaDiscoveryRequest],
            context: grpc.aio.ServicerContext) -> None:
        await DeltaStream(self._cache, self._tracker, self._nonces, context).run(request_iterator)


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
