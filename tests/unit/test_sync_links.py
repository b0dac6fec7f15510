"""Status that tells the truth about the line to the boss, and EDS health of pods that are down.

The tracker is driven through the same `on_*` calls the ADS server makes; the rows, the table and
its note are what `meshkit status`, `mesh.status()` and the SyncTable show.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from envoy.config.core.v3 import base_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2

from meshkit.inspect.sync_status import status_table
from meshkit.inspect.tables import render
from meshkit.model import TopologyError, bookinfo
from meshkit.xds.cache import SnapshotCache
from meshkit.xds.control_plane import ControlPlane
from meshkit.xds.resources import CLUSTER, ENDPOINT, PUSH_ORDER
from meshkit.xds.status import EventKind, Link, SyncEvent, SyncState, SyncTracker

NODE = "sidecar~10.244.0.14~reviews-v1-545db77b95-v2x8q.default~default.svc.cluster.local"
OTHER = "sidecar~10.244.0.12~productpage-v1-6b746f74dc-9rlmh.default~default.svc.cluster.local"


def connect(tracker: SyncTracker, node_id: str = NODE) -> None:
    tracker.on_connect(base_pb2.Node(id=node_id, cluster="reviews.default"))


def sync_everything(tracker: SyncTracker, node_id: str = NODE, version: str = "v1") -> None:
    for n, url in enumerate(PUSH_ORDER):
        tracker.on_sent(node_id, url, version, f"{version}-{n}")
        tracker.on_ack(node_id, url, version, f"{version}-{n}")


def row_of(tracker: SyncTracker, node_id: str = NODE) -> dict:
    sync = next(s for s in tracker.status() if s.node_id == node_id)
    return {"name": node_id, "cluster": "Kubernetes", "istiod": "meshkit", "version": "1.26.0", **sync.as_row()}


def test_a_closed_stream_reads_disconnected_since_it_closed_not_synced() -> None:
    tracker = SyncTracker()
    connect(tracker)
    sync_everything(tracker)
    assert row_of(tracker)["state"] == "CONNECTED"
    assert {t["state"] for t in row_of(tracker)["types"].values()} == {"SYNCED"}
    before = time.time()
    tracker.on_disconnect(NODE)
    row = row_of(tracker)
    assert (row["connected"], row["state"]) == (False, "DISCONNECTED")
    assert before <= row["since"] <= time.time()
    assert {t["state"] for t in row["types"].values()} == {"DISCONNECTED"}
    assert {t["last_state"] for t in row["types"].values()} == {"SYNCED"}  # what it held, kept
    assert row["types"]["CDS"]["version"] == "v1"


def test_an_error_is_not_shown_for_a_stream_that_is_gone() -> None:
    tracker = SyncTracker()
    connect(tracker)
    tracker.on_sent(NODE, CLUSTER, "v2", "7")
    tracker.on_nack(NODE, CLUSTER, "v2", "7", "bad cluster")
    assert row_of(tracker)["types"]["CDS"] == {"state": "ERROR", "last_state": "ERROR", "version": "v2",
                                               "sent": "v2", "acked": "", "error": "bad cluster",
                                               "bytes": 0, "responses": 1}
    tracker.on_disconnect(NODE)
    assert row_of(tracker)["types"]["CDS"]["error"] == ""
    assert "ERROR DETAIL" not in status_table([row_of(tracker)]).columns


def test_a_reconnect_resyncs_from_not_sent_as_it_happens() -> None:
    tracker = SyncTracker()
    connect(tracker)
    sync_everything(tracker)
    tracker.on_disconnect(NODE)
    gone = row_of(tracker)["since"]
    connect(tracker)
    row = row_of(tracker)
    assert (row["connected"], row["state"]) == (True, "CONNECTED") and row["since"] >= gone
    assert {t["state"] for t in row["types"].values()} == {"NOT SENT"}  # the old stream's ACKs say nothing
    tracker.on_sent(NODE, CLUSTER, "v1", "20")
    assert tracker.get(NODE, CLUSTER).state is SyncState.STALE
    tracker.on_ack(NODE, CLUSTER, "v1", "20")
    assert tracker.get(NODE, CLUSTER).state is SyncState.SYNCED


def test_a_second_stream_keeps_the_proxy_connected_and_its_state() -> None:
    tracker = SyncTracker()
    connect(tracker)
    sync_everything(tracker)
    connect(tracker)  # Envoy reconnected before the server noticed the old stream was gone
    assert tracker.get(NODE, CLUSTER).state is SyncState.SYNCED
    tracker.on_disconnect(NODE)
    assert row_of(tracker)["state"] == "CONNECTED"
    tracker.on_disconnect(NODE)
    assert row_of(tracker)["state"] == "DISCONNECTED"


def test_a_stopped_boss_marks_every_row_boss_stopped_until_it_starts() -> None:
    tracker = SyncTracker()
    events: list[SyncEvent] = []
    tracker.subscribe(events.append)
    for node in (NODE, OTHER):
        connect(tracker, node)
        sync_everything(tracker, node)
    tracker.on_server_stopped()
    tracker.on_server_stopped()  # once is news, twice is not
    for sync in tracker.status():
        assert (sync.connected, sync.link) == (False, Link.BOSS_STOPPED)
        assert {t["state"] for t in sync.as_row()["types"].values()} == {"BOSS STOPPED"}
    stopped_at = tracker.status()[0].since
    for node in (NODE, OTHER):  # the server's streams end after it said it stops
        tracker.on_disconnect(node)
    assert {s.link for s in tracker.status()} == {Link.BOSS_STOPPED}
    assert {s.since for s in tracker.status()} == {stopped_at}
    tracker.on_server_started()
    assert {s.link for s in tracker.status()} == {Link.DISCONNECTED}  # until each sidecar finds it again
    connect(tracker, NODE)
    assert row_of(tracker, NODE)["state"] == "CONNECTED"
    kinds = [e.kind for e in events if e.kind in (EventKind.BOSS_STOPPED, EventKind.BOSS_STARTED)]
    assert kinds == [EventKind.BOSS_STOPPED, EventKind.BOSS_STARTED]
    assert all(e.node_id == "" for e in events if e.kind in kinds)


def test_table_cells_and_note_name_the_disconnected_proxy_and_since_when() -> None:
    tracker = SyncTracker()
    for node in (NODE, OTHER):
        connect(tracker, node)
        sync_everything(tracker, node)
    tracker.on_disconnect(NODE)
    rows = [row_of(tracker, NODE), row_of(tracker, OTHER)]
    since = rows[0]["since"]
    table = status_table(rows, now=since + 3.0)
    cells = table.set_index("NAME")
    assert cells.loc[NODE, ["CDS", "LDS", "EDS", "RDS"]].tolist() == ["DISCONNECTED"] * 4
    assert cells.loc[OTHER, ["CDS", "LDS", "EDS", "RDS"]].tolist() == ["SYNCED"] * 4
    clock = time.strftime("%H:%M:%S", time.localtime(since))
    assert table.attrs["note"] == (
        "Not connected to the boss (istioctl proxy-status lists only connected proxies; meshkit keeps "
        "them, marked DISCONNECTED):\n"
        f"  {NODE} disconnected since {clock} (3.0 s ago)")
    text = render(table)
    assert text.endswith("\n\n" + table.attrs["note"])
    assert text.splitlines()[0].startswith("NAME")


def test_table_note_says_the_boss_is_stopped_and_the_sidecars_keep_their_config() -> None:
    tracker = SyncTracker()
    connect(tracker)
    sync_everything(tracker)
    tracker.on_server_stopped()
    table = status_table([row_of(tracker)])
    assert table.iloc[0][["CDS", "LDS", "EDS", "RDS", "ECDS"]].tolist() == ["BOSS STOPPED"] * 4 + ["IGNORED"]
    note = table.attrs["note"]
    assert note.startswith("The boss is stopped since ") and "keep serving their last config" in note
    assert "SYNCED" not in render(table)


def test_no_note_while_everyone_is_connected() -> None:
    tracker = SyncTracker()
    connect(tracker)
    sync_everything(tracker)
    assert "note" not in status_table([row_of(tracker)]).attrs


# --- EDS health -----------------------------------------------------------------------------------

def health_by_address(plane: ControlPlane, proxy: str, cluster_suffix: str) -> dict[str, int]:
    snapshot = plane.cache.get(plane.topology.workload(proxy).node_id)
    assert snapshot is not None
    found: dict[str, int] = {}
    for cla in snapshot.messages(ENDPOINT):
        assert isinstance(cla, endpoint_pb2.ClusterLoadAssignment)
        if cla.cluster_name.endswith(cluster_suffix):
            for group in cla.endpoints:
                for lb in group.lb_endpoints:
                    found[lb.endpoint.address.socket_address.address] = lb.health_status
    return found


def test_set_pod_health_marks_the_endpoint_unhealthy_everywhere_and_pushes_eds_only() -> None:
    async def scenario() -> None:
        plane = ControlPlane(bookinfo(), SnapshotCache(), SyncTracker())
        try:
            await plane.push_all()
            before = {p.name: plane.cache.get(p.node_id).versions for p in plane.topology.sidecars()}
            reviews_v1 = plane.topology.workload("reviews-v1")
            down = await plane.set_pod_health("reviews-v1", False)
            assert down.changes and {c.type for c in down.changes} == {"EDS"}
            assert {t for versions in down.versions.values() for t in versions} == {"EDS"}
            for proxy in plane.topology.sidecars():
                health = health_by_address(plane, proxy.name, "|reviews.default.svc.cluster.local")
                assert health.pop(reviews_v1.ip) == health_check_pb2.UNHEALTHY, proxy.name
                assert set(health.values()) == {health_check_pb2.HEALTHY}  # reviews-v2, v3 untouched
                assert len(health) == 2
                versions = plane.cache.get(proxy.node_id).versions
                assert {t for t in versions if versions[t] != before[proxy.name][t]} == {ENDPOINT}
            up = await plane.set_pod_health(reviews_v1.name, True)
            assert {c.type for c in up.changes} == {"EDS"}
            for proxy in plane.topology.sidecars():  # back to exactly what it was
                assert dict(plane.cache.get(proxy.node_id).versions) == dict(before[proxy.name])
            with pytest.raises(TopologyError, match="no pod named 'nobody'"):
                await plane.set_pod_health("nobody", False)
        finally:
            plane.close()

    asyncio.run(scenario())
