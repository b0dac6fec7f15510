"""The boss's recent sync events, numbered, so live views can wait for the next one without polling Envoy."""

from __future__ import annotations

import asyncio
import contextlib

from ..protocol import Events, SyncEventRow
from ..xds.resources import SHORT_NAMES
from ..xds.status import SyncEvent

EVENT_BUFFER = 500


class EventLog:
    """A bounded, numbered buffer of sync events with a wait for "anything after N"."""

    def __init__(self, size: int = EVENT_BUFFER) -> None:
        self._size = size
        self._rows: list[SyncEventRow] = []
        self.last = 0
        self._new = asyncio.Condition()

    def record(self, event: SyncEvent, pod: str) -> None:
        """Add one event (called from the tracker, inside the event loop)."""
        self.last += 1
        row: SyncEventRow = {"seq": self.last, "kind": event.kind.value, "node_id": event.node_id, "pod": pod,
                             "time": event.time, "type": SHORT_NAMES.get(event.type_url, ""),
                             "version": event.version, "nonce": event.nonce, "error": event.error}
        self._rows = [*self._rows[-(self._size - 1):], row]
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._new:
            self._new.notify_all()

    async def after(self, seq: int, wait_s: float = 0.0) -> Events:
        """Events numbered after `seq`; waits up to `wait_s` for one when there is none yet."""
        if wait_s > 0 and self.last <= seq:
            async with self._new:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new.wait_for(lambda: self.last > seq), wait_s)
        return {"last": self.last, "events": [row for row in self._rows if row["seq"] > seq]}
