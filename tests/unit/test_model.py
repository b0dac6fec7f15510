"""The boss's book: topology lookups, raw Envoy resources, Istio documents and their analysis."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from meshkit.model import ALLOW_ANY, MeshConfig, TopologyError, bookinfo
from meshkit.model.analyze import analyze
from meshkit.model.istio import parse_istio
from meshkit.model.raw import ResourceError, parse_resources
from meshkit.model.schema import SchemaError

from ..documents import DATA, document

BOOKINFO_FILES = DATA / "istio-bookinfo"


def test_bookinfo_topology_has_istio_names():
    topology = bookinfo()
    assert [s.fqdn for s in topology.services] == [
        "productpage.default.svc.cluster.local", "details.default.svc.cluster.local",
        "reviews.default.svc.cluster.local", "ratings.default.svc.cluster.local",
        "tcp-echo.default.svc.cluster.local",
    ]
    reviews = topology.service("reviews")
    assert [w.deployment for w in topology.endpoints(reviews)] == ["reviews-v1", "reviews-v2", "reviews-v3"]
    pod = topology.workload("productpage-v1")
    assert pod.node_id == f"sidecar~{pod.ip}~{pod.name}.default~default.svc.cluster.local"
    assert pod.node_cluster == "productpage.default"
    assert pod.spiffe_id == "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
    assert topology.mesh.outbound_traffic_policy == ALLOW_ANY


def test_subnets_move_every_address():
    topology = bookinfo(pod_subnet="10.244.7.0/24", service_subnet="10.96.3.0/24")
    assert {w.ip.rsplit(".", 1)[0] for w in topology.workloads} == {"10.244.7"}
    assert {s.vip.rsplit(".", 1)[0] for s in topology.services} == {"10.96.3"}


def test_unknown_pod_lists_the_known_ones():
    with pytest.raises(TopologyError, match="productpage-v1"):
        bookinfo().workload("productpage-v9")


def test_mesh_config_refuses_unknown_policy():
    with pytest.raises(TopologyError, match="REGISTRY_ONLY"):
        MeshConfig(outbound_traffic_policy="DENY_ALL")


def test_raw_resource_field_path_and_nearest_name():
    with pytest.raises(ResourceError) as error:
        parse_resources('"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: x\nconect_timeout: 1s\n')
    assert "conect_timeout" in str(error.value) and "did you mean 'connect_timeout'" in str(error.value)


def test_raw_resources_parse_typed_config_of_any_extension():
    [listener] = parse_resources(document("model/tcp-proxy-listener.yaml"))
    assert (listener.short_type, listener.name) == ("LDS", "echo")


def test_raw_resource_needs_a_name():
    with pytest.raises(ResourceError, match="no 'name'"):
        parse_resources('"@type": type.googleapis.com/envoy.config.listener.v3.Listener\n')


@pytest.mark.parametrize("path", sorted(BOOKINFO_FILES.glob("*.yaml")), ids=lambda p: p.name)
def test_istios_own_bookinfo_files_parse_unchanged(path: Path):
    resources = parse_istio(path.read_text())
    assert resources and all(r.namespace == "default" for r in resources)


DEPRECATED_PERCENT = document("model/fault-deprecated-percent.yaml")


def test_deprecated_fault_percent_is_accepted():
    [vs] = parse_istio(DEPRECATED_PERCENT)  # Istio's samples used it until 1.2x
    assert vs.spec["http"][0]["fault"]["delay"]["percent"] == 100


def test_unknown_istio_field_names_path_and_nearest():
    with pytest.raises(SchemaError) as error:
        parse_istio(document("model/misspelt-subset.yaml"))
    assert "spec.http[0].route[0].destination.subst: unknown field (did you mean 'subset'?)" in str(error.value)


def test_mesh_config_from_istio_configmap():
    [mesh] = parse_istio(document("model/mesh-configmap-registry-only.yaml"))
    assert mesh.kind == "MeshConfig" and mesh.spec["outboundTrafficPolicy"]["mode"] == "REGISTRY_ONLY"


def test_analyze_reports_undefined_subset_and_bad_weights():
    topology = bookinfo()
    config = topology.istio.applied(parse_istio(document("model/undefined-subset-weights-90.yaml")))
    findings = [str(f) for f in analyze(topology, config)]
    assert any('IST0101' in f and '"reviews+v1"' in f for f in findings)
    assert any("add up to 90, not 100" in f for f in findings)


def test_analyze_is_quiet_for_istios_sample_set():
    topology = bookinfo()
    docs = []
    for name in ("destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml"):
        docs += parse_istio((BOOKINFO_FILES / name).read_text())
    assert analyze(topology, topology.istio.applied(docs)) == []


def test_analyze_warns_on_unknown_host():
    topology = bookinfo()
    config = topology.istio.applied(parse_istio(document("model/unknown-host.yaml")))
    findings = analyze(topology, config)
    assert findings and {f.level for f in findings} == {"warning"}


def test_analyze_warns_on_deprecated_consecutive_errors_like_istiod():
    topology = bookinfo()
    config = topology.istio.applied(parse_istio(document("model/deprecated-consecutive-errors.yaml")))
    [finding] = analyze(topology, config)
    assert finding.level == "warning" and finding.resource == "DestinationRule default/reviews"
    assert finding.message.startswith("spec.subsets[0].trafficPolicy.portLevelSettings[0].outlierDetection"
                                      ".consecutiveErrors: outlier detection consecutive errors is deprecated")


# -- every accepted field is translated or warned about ----------------------------------------------

def _schema_paths(schema, prefix: str):
    """Every field path (`spec.http[].corsPolicy.maxAge`) a schema accepts."""
    from meshkit.model.schema import Map, Obj

    if isinstance(schema, list):
        yield from _schema_paths(schema[0], prefix + "[]")
    elif isinstance(schema, Map):
        yield from _schema_paths(schema.values, prefix + ".*")
    elif isinstance(schema, Obj):
        for key, value in schema.fields.items():
            path = f"{prefix}.{key}" if prefix else key
            yield path
            yield from _schema_paths(value, path)


def test_every_accepted_istio_field_is_translated_or_warned_about():
    from pathlib import Path

    from meshkit.model.ignored import IGNORED
    from meshkit.model.istio import MESH_CONFIG, SPECS

    tests = Path(__file__).resolve().parents[1]
    # what the goldens and tests feed the translators (not this file's parse and analysis inputs)
    used = "\n".join(p.read_text() for pattern in ("golden/xds/istio/*.yaml", "data/**/*.yaml",
                                                   "unit/test_*.py", "integration/test_*.py")
                     for p in tests.glob(pattern)
                     if p.name != "test_model.py" and tests / "data" / "model" not in p.parents)
    ignored = {(kind, path) for kind, path, _ in IGNORED}
    schemas = {**SPECS, "MeshConfig": MESH_CONFIG}
    missing = []
    for kind, schema in schemas.items():
        for path in _schema_paths(schema, "" if kind == "MeshConfig" else "spec"):
            if (kind, path) in ignored or any(path.startswith(p + ".") for k, p in ignored if k == kind):
                continue
            leaf = path.rsplit(".", 1)[-1].removesuffix("[]")
            if leaf != "*" and leaf not in used:
                missing.append(f"{kind} {path}")
    assert not missing, "accepted but neither translated in a golden/test nor listed in model/ignored.py:\n" + \
        "\n".join(missing)


def test_ignored_fields_are_named_in_the_apply_warnings():
    from meshkit.model.analyze import ignored

    text = document("model/ignored-locality-and-export-to.yaml")
    topology = bookinfo()
    other = replace(topology.workloads[0], name="elsewhere", namespace="other")
    topology = replace(topology, workloads=(*topology.workloads, other))
    findings = [str(f) for f in ignored(topology, parse_istio(text))]
    assert any("spec.trafficPolicy.loadBalancer.localityLbSetting: accepted, but meshkit ignores it" in f
               for f in findings)
    assert not any("exportTo" in f for f in findings)  # translated: visibility per namespace


def test_apply_accepts_an_ignored_field_and_an_undefined_subset_with_warnings():
    """What `meshkit apply` prints with the push: the ignored field by name, and IST0101 as istioctl says it."""
    from meshkit.service.documents import Documents, with_istio

    text = document("model/ignored-tcp-match-and-subset-v9.yaml")
    topology, warnings = with_istio(bookinfo(), Documents.parse(text).istio)
    assert topology.istio.virtual_services  # accepted, not refused
    assert any(w.startswith("Warning [ignored] (VirtualService default/reviews) spec.tcp[0].match[0]."
                            "destinationSubnets: accepted, but meshkit ignores it") for w in warnings)
    assert any(w.startswith('Error [IST0101] (VirtualService default/reviews) Referenced host+subset in '
                            'destinationrule not found: "reviews+v9"') for w in warnings)
