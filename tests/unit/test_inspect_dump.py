"""Walking real Envoy 1.40 config dumps: sections, resource order, versions and NACKs."""

from __future__ import annotations

from meshkit.inspect import dump


def test_sections_by_exact_kind(config_dump):
    assert dump.section(config_dump, "RoutesConfigDump")["@type"].endswith(".RoutesConfigDump")
    assert dump.section(config_dump, "ScopedRoutesConfigDump")["@type"].endswith(".ScopedRoutesConfigDump")
    assert dump.section(config_dump, "NoSuchConfigDump") == {}


def test_resources_dynamic_first_then_static(config_dump):
    names = [listener["name"] for listener in dump.listeners(config_dump)]
    assert names[-2:] == ["0.0.0.0_15090", "0.0.0.0_15021"]
    assert set(names[:-2]) == {"virtualOutbound", "virtualInbound", "0.0.0.0_9080", "10.96.0.10_9153",
                               "10.96.0.20_3306"}
    assert len(dump.clusters(config_dump)) == 17
    route_names = {r.get("name") for r in dump.route_configs(config_dump)}
    assert {"9080", "inbound|9080||", "InboundPassthroughCluster"} <= route_names
    assert any(c["cluster_name"] == "outbound|9080|v1|reviews.default.svc.cluster.local"
               for c in dump.endpoint_configs(config_dump))


def test_versions_of_xds_resources(config_dump):
    table = dump.versions(config_dump)
    assert list(table.columns) == ["TYPE", "NAME", "VERSION", "LAST UPDATED", "STATE", "ERROR"]
    rds = table[table.TYPE == "RDS"]
    assert set(rds.NAME) == {"9080", "kube-dns.kube-system.svc.cluster.local:9153"}
    assert set(rds.VERSION) == {"2026-01-01T00:00:00Z/1"}
    assert set(table.STATE) == {"ACTIVE"} and set(table.ERROR) == {""}
    assert "prometheus_stats" not in set(table.NAME)  # static: no version


def test_rejected_listener_keeps_envoys_nack_text_once(nack_dump):
    table = dump.versions(nack_dump)
    rejected = table[table.STATE == "REJECTED"]
    assert rejected[["TYPE", "NAME", "VERSION"]].values.tolist() == [["LDS", "bad-listener", ""]]
    assert "not.a.filter" in rejected.ERROR.iloc[0]
    # The good listeners keep serving the last accepted version.
    assert set(table[(table.TYPE == "LDS") & (table.STATE == "ACTIVE")].VERSION) == {"2026-01-01T00:00:00Z/1"}


def test_warming_listener_and_cluster():
    listener = {"name": "l", "warming_state": {"version_info": "v2", "listener": {"name": "l"}},
                "active_state": {"version_info": "v1", "listener": {"name": "l"}}}
    data = {"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners": [listener]},
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
         "dynamic_warming_clusters": [{"version_info": "v3", "cluster": {"name": "c"}}]},
    ]}
    assert dump.versions(data)[["TYPE", "NAME", "VERSION", "STATE"]].values.tolist() == [
        ["LDS", "l", "v1", "ACTIVE"], ["LDS", "l", "v2", "WARMING"], ["CDS", "c", "v3", "WARMING"]]
    assert [x["name"] for x in dump.listeners(data)] == ["l"]
