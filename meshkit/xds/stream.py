"""What a State-of-the-World and a delta ADS stream share: the loop, the node, subscriptions, reporting.

One stream per connected Envoy. A reader task turns incoming requests into queue items and the
cache's wake-ups land in the same queue, so the stream sleeps on a single `queue.get()`: no
polling. After each batch of items the stream flushes, in push order (CDS → EDS → LDS → RDS →
SDS), every subscribed type that has something to say. The variants differ only in how a request
changes a subscription and what a flush sends (`sotw.py`, `delta.py`); both report to the same
`SyncTracker` with the same versions (the snapshot's per-type content hash), so status, ACK waits
and history read alike whichever protocol a sidecar speaks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import grpc
from google.protobuf.message import Message

from .cache import SnapshotCache
from .resources import PUSH_ORDER, SHORT_NAMES
from .snapshot import Snapshot
from .status import SyncTracker

log = logging.getLogger(__name__)

_WAKE = object()  # queue item: the node's snapshot changed
_END = object()  # queue item: the client closed its side of the stream
WILDCARD = "*"


@dataclass
class Subscription:
    """One type on one stream: which names Envoy asked for, and the latest response sent.

    The legacy rule of both variants: a type whose requests never named anything is a wildcard.
    SotW requests restate the whole set (`replace`); delta requests add and remove names (`change`).
    """

    names: set[str] = field(default_factory=set)
    named_ever: bool = False
    wildcard: bool = True
    nonce: str = ""
    sent_version: str = ""
    must_send: bool = True  # new or grown subscription, or EDS after CDS

    def replace(self, names: Iterable[str]) -> bool:
        """SotW: the request names the full set; True if the subscription grew."""
        requested = set(names)
        self.named_ever |= bool(requested)
        was_wildcard, old_names = self.wildcard, self.names
        self.wildcard = WILDCARD in requested or not self.named_ever
        self.names = requested - {WILDCARD}
        return (self.wildcard and not was_wildcard) or (not self.wildcard and bool(self.names - old_names))

    def change(self, subscribe: Iterable[str], unsubscribe: Iterable[str]) -> tuple[set[str], set[str]]:
        """Delta: apply a request's subscribe / unsubscribe lists; returns (added, dropped) names.

        `*` in either list turns the wildcard on or off; the first name ever subscribed ends the
        legacy wildcard (as go-control-plane's `UpdateResourceSubscriptions`).
        """
        subscribe, unsubscribe = set(subscribe), set(unsubscribe)
        if subscribe and not self.named_ever:
            self.named_ever = True
            self.wildcard = WILDCARD in subscribe
        elif WILDCARD in subscribe:
            self.wildcard = True
        if WILDCARD in unsubscribe:
            self.wildcard = False
        added = subscribe - {WILDCARD} - self.names
        dropped = (unsubscribe - {WILDCARD}) & self.names
        self.names = (self.names | added) - dropped
        return added, dropped

    @property
    def empty(self) -> bool:
        return not self.wildcard and not self.names

    def wanted(self, snapshot: Snapshot, type_url: str) -> set[str]:
        """The names of the snapshot's resources this subscription covers."""
        present = set(snapshot.resources.get(type_url, {}))
        return present if self.wildcard else present & self.names


S = TypeVar("S", bound=Subscription)


class Stream(Generic[S]):
    """The shared loop of one ADS stream; subclasses say how requests are read and what a flush sends."""

    mode: ClassVar[str]  # "SOTW" or "DELTA": what the tracker and status rows say this sidecar speaks

    def __init__(self, cache: SnapshotCache, tracker: SyncTracker,
                 nonces: Iterator[int], context: grpc.aio.ServicerContext) -> None:
        self._cache, self._tracker, self._nonces, self._context = cache, tracker, nonces, context
        self._subs: dict[str, S] = {}  # type URL -> its subscription on this stream
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._node_id = ""
        self._unwatch: Callable[[], None] | None = None

    async def run(self, requests: AsyncIterator[Any]) -> None:
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
                    if item is not _WAKE:
                        await self._begin(item)
                        await self._handle(item)
                snapshot = self._cache.get(self._node_id)
                if snapshot is not None:
                    await self._flush(snapshot)
        finally:
            reader.cancel()
            if self._unwatch:
                self._unwatch()
            if self._node_id:
                self._tracker.on_disconnect(self._node_id)

    async def _read(self, requests: AsyncIterator[Any]) -> None:
        try:
            async for request in requests:
                self._queue.put_nowait(request)
        except grpc.aio.AioRpcError as error:  # the stream broke: end it like a half-close
            log.debug("%s: stream read failed: %s", self._node_id, error)
        finally:
            self._queue.put_nowait(_END)

    async def _begin(self, request: Any) -> None:
        """Learn the node from the first request (only it is sure to carry one); check the type URL."""
        if not self._node_id:
            if not request.node.id:
                await self._context.abort(grpc.StatusCode.INVALID_ARGUMENT, "first request carries no node.id")
            self._node_id = request.node.id
            self._tracker.on_connect(request.node, self.mode)
            self._unwatch = self._cache.watch(self._node_id, lambda: self._queue.put_nowait(_WAKE))
        if not request.type_url:
            await self._context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ADS request without type_url")

    async def _handle(self, request: Any) -> None:
        raise NotImplementedError

    async def _flush(self, snapshot: Snapshot) -> None:
        raise NotImplementedError

    def _ordered(self) -> list[str]:
        """Subscribed type URLs in push order (make-before-break), unknown types last."""
        subscribed = set(self._subs)
        return [t for t in PUSH_ORDER if t in subscribed] + sorted(subscribed - set(PUSH_ORDER))

    async def _send(self, sub: Subscription, type_url: str, version: str, response: Message) -> str:
        """Write `response` with a fresh nonce (unique across streams) and report it, with its size."""
        nonce = str(next(self._nonces))
        response.nonce = nonce  # type: ignore[attr-defined]
        await self._context.write(response)
        sub.nonce, sub.sent_version, sub.must_send = nonce, version, False
        self._tracker.on_sent(self._node_id, type_url, version, nonce, response.ByteSize())
        return nonce

    def _answered(self, type_url: str, version: str, nonce: str, error: str | None) -> None:
        """Envoy's answer to the response `nonce`, which carried `version`: an ACK, or a NACK saying `error`."""
        if error is None:
            self._tracker.on_ack(self._node_id, type_url, version, nonce)
            return
        log.warning("%s %s: NACK of %s: %s", self._node_id, short(type_url), version, error)
        self._tracker.on_nack(self._node_id, type_url, version, nonce, error)


def short(type_url: str) -> str:
    return SHORT_NAMES.get(type_url, type_url)
