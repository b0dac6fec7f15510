"""Snapshots: packed once, content-hash versions, immutable; the cache wakes watchers."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_pb2

from meshkit.xds.cache import SnapshotCache
from meshkit.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE
from meshkit.xds.snapshot import EMPTY_VERSION, Snapshot


def cluster(name: str, timeout_s: int = 1) -> cluster_pb2.Cluster:
    c = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    c.connect_timeout.seconds = timeout_s
    return c


def test_identical_content_gives_identical_versions_in_any_order() -> None:
    a = Snapshot.build({CLUSTER: [cluster("a"), cluster("b")]})
    b = Snapshot.build({CLUSTER: [cluster("b"), cluster("a")]})
    assert a.versions == b.versions
    assert len(a.versions[CLUSTER]) == 16


def test_a_changed_resource_changes_only_its_type_version() -> None:
    routes = [route_pb2.RouteConfiguration(name="80")]
    before = Snapshot.build({CLUSTER: [cluster("a")], ROUTE: routes})
    after = Snapshot.build({CLUSTER: [cluster("a", timeout_s=2)], ROUTE: routes})
    assert before.versions[CLUSTER] != after.versions[CLUSTER]
    assert before.versions[ROUTE] == after.versions[ROUTE]


def test_renaming_changes_the_version() -> None:
    assert (Snapshot.build({CLUSTER: [cluster("a")]}).versions
            != Snapshot.build({CLUSTER: [cluster("b")]}).versions)


def test_empty_types_have_the_stable_empty_version() -> None:
    snapshot = Snapshot.build({ROUTE: []})
    assert snapshot.version(ROUTE) == EMPTY_VERSION == snapshot.version(LISTENER)
    assert snapshot.messages(LISTENER) == []


def test_resources_are_packed_by_name_and_unpack_to_equal_copies() -> None:
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name="a")
    snapshot = Snapshot.build({CLUSTER: [cluster("a")], ENDPOINT: [cla]})
    assert set(snapshot.resources[ENDPOINT]) == {"a"}
    assert snapshot.resources[ENDPOINT]["a"].type_url == ENDPOINT
    copies = snapshot.messages(ENDPOINT)
    assert copies == [cla]
    copies[0].cluster_name = "changed"
    assert snapshot.messages(ENDPOINT) == [cla]
    assert [a.type_url for a in snapshot.named(ENDPOINT, ["a", "missing"])] == [ENDPOINT]


def test_the_snapshot_is_immutable() -> None:
    snapshot = Snapshot.build({CLUSTER: [cluster("a")]})
    with pytest.raises(TypeError):
        snapshot.resources[CLUSTER]["b"] = snapshot.resources[CLUSTER]["a"]  # type: ignore[index]
    with pytest.raises(TypeError):
        snapshot.versions[CLUSTER] = "x"  # type: ignore[index]


def test_mistyped_and_duplicate_resources_are_refused() -> None:
    with pytest.raises(ValueError, match="listed under"):
        Snapshot.build({LISTENER: [cluster("a")]})
    with pytest.raises(ValueError, match="duplicate"):
        Snapshot.build({CLUSTER: [cluster("a"), cluster("a", timeout_s=3)]})


def test_cache_wakes_the_watchers_of_the_nodes_it_sets() -> None:
    cache = SnapshotCache()
    woken: list[str] = []
    unwatch = cache.watch("n1", lambda: woken.append("n1"))
    cache.watch("n2", lambda: woken.append("n2"))
    snapshot = Snapshot.build({CLUSTER: [cluster("a")]})
    cache.set_many({"n1": snapshot, "n2": snapshot})
    assert sorted(woken) == ["n1", "n2"] and cache.nodes() == ["n1", "n2"]
    unwatch()
    cache.set("n1", snapshot)
    assert sorted(woken) == ["n1", "n2"]
    assert cache.get("n1") is snapshot and cache.get("n3") is None
