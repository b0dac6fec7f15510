"""Per-proxy sync status, as `istioctl proxy-status` shows it, and waiting for ACKs.

The ADS server reports what it sent and what each proxy answered; the tracker keeps, per node id
and type, the sent and acked version/nonce/time and the last NACK's error text, derives istiod's
state (ERROR, NOT SENT, SYNCED, STALE), lets the daemon await an outcome for a version, and feeds
subscribers (push history, live graphs) with events.

It also knows whether each proxy's ADS stream is open and whether the ADS server itself runs, so
a status row never replays old news: a proxy whose stream closed is DISCONNECTED (since when),
and while the server is stopped every row says BOSS STOPPED. istiod only lists connected proxies;
meshkit keeps the others in the list, marked, so a learner sees who went away. A new stream
starts from NOT SENT, so a reconnect's resync shows as it happens (STALE, then SYNCED).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from envoy.config.core.v3 import base_pb2
from google.protobuf import json_format

from .resources import PUSH_ORDER, SHORT_NAMES

log = logging.getLogger(__name__)


class SyncState(str, Enum):
    SYNCED = "SYNCED"
    STALE = "STALE"
    NOT_SENT = "NOT SENT"
    ERROR = "ERROR"


class Link(str, Enum):
    """A proxy's line to the boss: its ADS stream is open, closed, or the ADS server is stopped.

    While it is not CONNECTED, a status row shows the link in place of every type's SyncState:
    the boss cannot know what the proxy holds now, and nothing it sends can reach it.
    """

    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"
    BOSS_STOPPED = "BOSS STOPPED"


class EventKind(str, Enum):
    """`node_id` is empty for BOSS_STOPPED / BOSS_STARTED: they concern every proxy."""

    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"
    SENT = "SENT"
    ACK = "ACK"
    NACK = "NACK"
    BOSS_STOPPED = "BOSS STOPPED"
    BOSS_STARTED = "BOSS STARTED"


class OutcomeKind(str, Enum):
    ACK = "ACK"
    NACK = "NACK"
    TIMEOUT = "TIMEOUT"


@dataclass(frozen=True)
class SyncEvent:
    """One thing that happened on a stream; `version` of a NACK is the version Envoy rejected."""

    kind: EventKind
    node_id: str
    time: float
    type_url: str = ""
    version: str = ""
    nonce: str = ""
    error: str = ""
    bytes: int = 0  # of a SENT event: the serialized response's size


@dataclass(frozen=True)
class Outcome:
    """How a proxy answered one version of one type (`error` is Envoy's text for a NACK)."""

    kind: OutcomeKind
    version: str
    time: float
    error: str = ""


@dataclass(frozen=True)
class TypeSync:
    """One type on one proxy. `state` follows istiod: NACK last → ERROR, no nonce sent → NOT SENT,
    acked nonce is the sent nonce → SYNCED, else STALE."""

    type_url: str
    sent_version: str = ""
    sent_nonce: str = ""
    sent_at: float | None = None
    acked_version: str = ""
    acked_nonce: str = ""
    acked_at: float | None = None
    nacked_version: str = ""
    nacked_nonce: str = ""
    nacked_at: float | None = None
    error: str = ""
    last_was_nack: bool = False
    bytes_sent: int = 0  # serialized responses of this type on the current stream, summed
    responses: int = 0  # how many of them
    state: SyncState = field(init=False)

    def __post_init__(self) -> None:
        if self.last_was_nack:
            state = SyncState.ERROR
        elif not self.sent_nonce:
            state = SyncState.NOT_SENT
        elif self.acked_nonce == self.sent_nonce:
            state = SyncState.SYNCED
        else:
            state = SyncState.STALE
        object.__setattr__(self, "state", state)

    def outcome(self, version: str) -> Outcome | None:
        """ACK or NACK if `version` is the latest response sent and Envoy has answered it, else None.

        An older answer to the same version does not count: after a NACK of V1, re-sending the
        previously ACKed V0 must wait for Envoy's new ACK, not resolve from the old one.
        """
        if self.sent_version != version or not self.sent_nonce:
            return None
        if self.acked_nonce == self.sent_nonce and self.acked_at is not None:
            return Outcome(OutcomeKind.ACK, version, self.acked_at)
        if self.nacked_nonce == self.sent_nonce and self.nacked_at is not None:
            return Outcome(OutcomeKind.NACK, version, self.nacked_at, self.error)
        return None


@dataclass(frozen=True)
class ProxySync:
    """One proxy's row: identity, connection and per-type sync (keyed by type URL, push order first).

    `link` says whether the stream is open; `since` is when it last changed (epoch seconds): when
    the stream opened, closed, or the ADS server stopped. `xds` is the variant its (last) stream
    speaks: "DELTA" or "SOTW".
    """

    node_id: str
    cluster: str
    metadata: dict[str, Any]
    connected: bool
    types: dict[str, TypeSync]
    link: Link = Link.CONNECTED
    since: float | None = None
    xds: str = ""

    def as_row(self) -> dict[str, Any]:
        """The plain row the boss reports: `connected`, `state` (the link), `since`, `xds`, and per
        short type name `{state, last_state, version, sent, acked, error, bytes, responses}`. While
        no stream is open each type's `state` is the link's (DISCONNECTED / BOSS STOPPED) and
        `last_state` what it was."""
        return {"connected": self.connected, "state": self.link.value, "since": self.since, "xds": self.xds,
                "types": {SHORT_NAMES[t]: self._type_row(s) for t, s in self.types.items()}}

    def _type_row(self, sync: TypeSync) -> dict[str, Any]:
        live = self.link is Link.CONNECTED
        return {
            "state": sync.state.value if live else self.link.value,
            "last_state": sync.state.value,
            "version": sync.acked_version or sync.sent_version,
            "sent": sync.sent_version,
            "acked": sync.acked_version,
            "error": sync.error if live and sync.state is SyncState.ERROR else "",
            "bytes": sync.bytes_sent,
            "responses": sync.responses,
        }


def _fresh_types() -> dict[str, TypeSync]:
    return {t: TypeSync(t) for t in PUSH_ORDER}


@dataclass
class _Proxy:
    cluster: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    streams: int = 0
    since: float | None = None  # when the stream opened (streams > 0) or the last one closed
    xds: str = ""  # the variant of the latest stream: DELTA or SOTW
    types: dict[str, TypeSync] = field(default_factory=_fresh_types)


class SyncTracker:
    """What was sent to and answered by each proxy; the ADS server calls the `on_*` methods."""

    def __init__(self) -> None:
        self._proxies: dict[str, _Proxy] = {}
        self._subscribers: list[Callable[[SyncEvent], None]] = []
        self._stopped_at: float | None = None  # when the ADS server stopped; None while it serves

    # -- reading --------------------------------------------------------------------------------

    @property
    def serving(self) -> bool:
        """False between the ADS server's `on_server_stopped` and `on_server_started`."""
        return self._stopped_at is None

    def status(self) -> list[ProxySync]:
        """Every proxy ever seen, connected or not, sorted by node id."""
        return [ProxySync(node_id, p.cluster, dict(p.metadata), p.streams > 0 and self.serving, dict(p.types),
                          *self._link(p), xds=p.xds)
                for node_id, p in sorted(self._proxies.items())]

    def _link(self, proxy: _Proxy) -> tuple[Link, float | None]:
        if not self.serving:
            return Link.BOSS_STOPPED, self._stopped_at
        return (Link.CONNECTED if proxy.streams > 0 else Link.DISCONNECTED), proxy.since

    def get(self, node_id: str, type_url: str) -> TypeSync:
        proxy = self._proxies.get(node_id)
        return proxy.types.get(type_url, TypeSync(type_url)) if proxy else TypeSync(type_url)

    def connected(self, node_id: str) -> bool:
        """Whether `node_id` has an open ADS stream (only those can answer a push)."""
        proxy = self._proxies.get(node_id)
        return proxy is not None and proxy.streams > 0

    def variant(self, node_id: str) -> str:
        """The xDS variant `node_id`'s latest stream speaks: "DELTA", "SOTW", or "" if never seen."""
        proxy = self._proxies.get(node_id)
        return proxy.xds if proxy else ""

    def subscribe(self, callback: Callable[[SyncEvent], None]) -> Callable[[], None]:
        """Call `callback(event)` for every event from now on; returns the function that stops it."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    async def wait_for(self, expected: Mapping[str, Mapping[str, str]],
                       timeout: float) -> dict[str, dict[str, Outcome]]:
        """Await each proxy's answer to `{node_id: {type_url: version}}`: ACK, NACK or TIMEOUT.

        Versions already answered resolve at once; the rest resolve on the tracker's own events.
        """
        results: dict[str, dict[str, Outcome]] = {node_id: {} for node_id in expected}
        pending: dict[tuple[str, str], str] = {}
        for node_id, versions in expected.items():
            for url, version in versions.items():
                answered = self.get(node_id, url).outcome(version)
                if answered:
                    results[node_id][url] = answered
                else:
                    pending[(node_id, url)] = version
        if not pending:
            return results
        all_answered = asyncio.get_running_loop().create_future()

        def on_event(event: SyncEvent) -> None:
            key = (event.node_id, event.type_url)
            if event.kind not in (EventKind.ACK, EventKind.NACK) or pending.get(key) != event.version:
                return
            del pending[key]
            results[event.node_id][event.type_url] = Outcome(
                OutcomeKind(event.kind.value), event.version, event.time, event.error)
            if not pending and not all_answered.done():
                all_answered.set_result(None)

        unsubscribe = self.subscribe(on_event)
        try:
            await asyncio.wait({all_answered}, timeout=timeout)
        finally:
            unsubscribe()
            all_answered.cancel()
        now = time.time()
        for (node_id, url), version in pending.items():
            results[node_id][url] = Outcome(OutcomeKind.TIMEOUT, version, now)
        return results

    # -- reporting (called by the ADS server) ---------------------------------------------------

    def on_server_started(self) -> None:
        """The ADS server listens (again): proxies show their own streams' state from now on."""
        if self._stopped_at is not None:
            self._stopped_at = None
            self._emit(SyncEvent(EventKind.BOSS_STARTED, "", time.time()))

    def on_server_stopped(self) -> None:
        """The ADS server is stopping: every row reads BOSS STOPPED until it starts again."""
        if self._stopped_at is None:
            self._stopped_at = time.time()
            self._emit(SyncEvent(EventKind.BOSS_STOPPED, "", self._stopped_at))

    def on_connect(self, node: base_pb2.Node, xds: str = "SOTW") -> None:
        """A stream opened, speaking `xds` ("SOTW" or "DELTA"). The first one after none starts
        from NOT SENT: the old stream's ACKs say nothing about this one."""
        now = time.time()
        proxy = self._proxies.setdefault(node.id, _Proxy())
        proxy.cluster = node.cluster
        proxy.metadata = json_format.MessageToDict(node.metadata)
        proxy.xds = xds
        if proxy.streams == 0:
            proxy.types, proxy.since = _fresh_types(), now
        proxy.streams += 1
        self._emit(SyncEvent(EventKind.CONNECTED, node.id, now))

    def on_disconnect(self, node_id: str) -> None:
        now = time.time()
        proxy = self._proxies[node_id]
        proxy.streams -= 1
        if proxy.streams == 0:
            proxy.since = now
        self._emit(SyncEvent(EventKind.DISCONNECTED, node_id, now))

    def on_sent(self, node_id: str, type_url: str, version: str, nonce: str, size: int = 0) -> None:
        """A response of `size` serialized bytes went out carrying `version` with `nonce`."""
        now = time.time()
        before = self.get(node_id, type_url)
        self._update(node_id, type_url, sent_version=version, sent_nonce=nonce, sent_at=now,
                     bytes_sent=before.bytes_sent + size, responses=before.responses + 1)
        self._emit(SyncEvent(EventKind.SENT, node_id, now, type_url, version, nonce, bytes=size))

    def on_ack(self, node_id: str, type_url: str, version: str, nonce: str) -> None:
        now = time.time()
        self._update(node_id, type_url, acked_version=version, acked_nonce=nonce, acked_at=now,
                     last_was_nack=False)
        self._emit(SyncEvent(EventKind.ACK, node_id, now, type_url, version, nonce))

    def on_nack(self, node_id: str, type_url: str, version: str, nonce: str, error: str) -> None:
        """Envoy rejected `version` (the one sent with `nonce`) saying `error`."""
        now = time.time()
        self._update(node_id, type_url, nacked_version=version, nacked_nonce=nonce, nacked_at=now,
                     error=error, last_was_nack=True)
        self._emit(SyncEvent(EventKind.NACK, node_id, now, type_url, version, nonce, error))

    def _update(self, node_id: str, type_url: str, **changes: Any) -> None:
        types = self._proxies.setdefault(node_id, _Proxy()).types
        types[type_url] = replace(types.get(type_url, TypeSync(type_url)), **changes)

    def _emit(self, event: SyncEvent) -> None:
        for callback in tuple(self._subscribers):
            try:
                callback(event)
            except Exception:  # one broken view must not break the stream that reported
                log.exception("sync event subscriber failed on %s", event)
