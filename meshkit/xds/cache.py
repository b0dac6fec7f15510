"""The latest snapshot per node id, and wake-ups for the streams serving those nodes.

Like go-control-plane's SnapshotCache, keyed by `node.id`: the daemon sets snapshots, ADS streams
watch their node and are woken synchronously (no polling). Everything runs on one asyncio event
loop, so `set` must be called from that loop's thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .snapshot import Snapshot


class SnapshotCache:
    """Node id → latest `Snapshot`, with per-node watchers called on every change."""

    def __init__(self) -> None:
        self._snapshots: dict[str, Snapshot] = {}
        self._watchers: dict[str, set[Callable[[], None]]] = {}

    def set(self, node_id: str, snapshot: Snapshot) -> None:
        """Store a node's new snapshot and wake its streams."""
        self.set_many({node_id: snapshot})

    def set_many(self, snapshots: Mapping[str, Snapshot]) -> None:
        """Store several nodes' snapshots at once, then wake their streams: one push, one step."""
        self._snapshots.update(snapshots)
        for node_id in snapshots:
            for wake in tuple(self._watchers.get(node_id, ())):
                wake()

    def get(self, node_id: str) -> Snapshot | None:
        return self._snapshots.get(node_id)

    def nodes(self) -> list[str]:
        """Node ids that have a snapshot, sorted."""
        return sorted(self._snapshots)

    def watch(self, node_id: str, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake()` whenever the node's snapshot is set; returns the function that stops it."""
        watchers = self._watchers.setdefault(node_id, set())
        watchers.add(wake)

        def unwatch() -> None:
            watchers.discard(wake)
            if not watchers and self._watchers.get(node_id) is watchers:
                del self._watchers[node_id]

        return unwatch
