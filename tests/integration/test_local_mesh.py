"""The local mesh end to end: real Envoy sidecars, real iptables capture, real requests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import meshkit
from meshkit.constants import xds_variant
from meshkit.errors import InvalidInput

from ..conftest import leftovers, mesh_unavailable_reason
from ..documents import document

pytestmark = pytest.mark.mesh

SIDECARS = {"productpage-v1", "details-v1", "reviews-v1", "reviews-v2", "reviews-v3", "ratings-v1",
            "tcp-echo-v1", "istio-ingressgateway"}  # the gate's Envoy syncs like a sidecar


def cli(mesh: meshkit.Mesh, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "meshkit.cli", "--home", str(mesh.home), *args],
        capture_output=True, text=True, timeout=120,
    )


def test_every_sidecar_is_synced(mesh):
    rows = mesh.status_rows()
    assert {r["pod"].rsplit("-", 2)[0] for r in rows} == SIDECARS
    for row in rows:
        states = {t: s["state"] for t, s in row["types"].items() if t in ("CDS", "EDS", "LDS", "RDS")}
        # a gateway without any Gateway resource has no routes yet: RDS NOT SENT, as istioctl shows it
        rds = "NOT SENT" if row["pod"].startswith("istio-ingressgateway") and states["RDS"] != "SYNCED" else "SYNCED"
        assert states == {"CDS": "SYNCED", "EDS": "SYNCED", "LDS": "SYNCED", "RDS": rds}, row


def test_productpage_reaches_reviews_and_ratings(mesh):
    rows = mesh.curl_rows("productpage-v1", "http://productpage:9080/productpage", n=30)
    assert [r["status"] for r in rows] == [200] * 30
    bodies = [json.loads(r["body"]) for r in rows]
    assert {b["reviews"]["status"] for b in bodies} == {200}
    assert {b["details"]["status"] for b in bodies} == {200}
    versions = {b["reviews"]["body"]["version"] for b in bodies}
    # LEAST_REQUEST (Istio's default) picks among idle hosts at random: 30 requests miss one of
    # three pods with probability 3·(2/3)^30 ≈ 2e-5
    assert versions == {"v1", "v2", "v3"}, "load balanced over three reviews pods"
    rated = [b["reviews"]["body"] for b in bodies if b["reviews"]["body"]["version"] != "v1"]
    assert rated and all(r["ratings_call"]["status"] == 200 for r in rated)


def test_curl_reports_upstream_pod_and_flags(mesh):
    result = cli(mesh, "curl", "productpage-v1", "http://reviews:9080/reviews/0", "-n", "6", "-o", "json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 6
    assert {r["status"] for r in rows} == {200}
    assert all(r["pod"].startswith("reviews-v") for r in rows)
    assert {r["flags"] for r in rows} == {"-"}
    assert {r["upstream_cluster"] for r in rows} == {"outbound|9080||reviews.default.svc.cluster.local"}


def test_pc_listener_shows_istio_layout(mesh):
    result = cli(mesh, "pc", "listener", "productpage-v1")
    assert result.returncode == 0, result.stderr
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert lines[0] == "ADDRESSES PORT MATCH DESTINATION"
    # userspace capture binds virtualOutbound/virtualInbound on the pod IP (xds/capture.py says why)
    pod_ip = next(w["ip"] for w in mesh.topology()["workloads"] if w["deployment"] == "productpage-v1")
    virtual = pod_ip if mesh.capture == "userspace" else "0.0.0.0"
    assert any(line.startswith(f"{virtual} 15001 ALL PassthroughCluster") for line in lines), lines
    assert any(line.startswith(f"{virtual} 15006 ") for line in lines), lines
    assert any(line.startswith("0.0.0.0 9080 ") and line.endswith("Route: 9080") for line in lines)


def test_pc_cluster_filters_by_fqdn(mesh):
    result = cli(mesh, "pc", "cluster", "productpage-v1", "--fqdn", "reviews.default.svc.cluster.local")
    assert result.returncode == 0, result.stderr
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert lines[0] == "SERVICE FQDN PORT SUBSET DIRECTION TYPE DESTINATION RULE"
    assert lines[1:] == ["reviews.default.svc.cluster.local 9080 - outbound EDS"]
    frame = mesh.pc.clusters("productpage-v1", fqdn="reviews.default.svc.cluster.local")
    assert list(frame["SERVICE FQDN"]) == ["reviews.default.svc.cluster.local"]


def reviews_v3_only(mesh) -> str:
    """A raw CDS + RDS edit: productpage's route config "9080" sends reviews to v3's pod alone."""
    topology = mesh.topology()
    v3 = next(w for w in topology["workloads"] if w["deployment"] == "reviews-v3")
    hosts = [s for s in topology["services"] if s["name"] in ("reviews", "details", "productpage",
                                                              "ratings")]
    vhosts = "".join(
        textwrap.dedent(f"""
        - name: {s['fqdn']}:9080
          domains: ["{s['fqdn']}", "{s['name']}", "{s['vip']}"]
          routes:
          - match: {{prefix: /}}
            route: {{cluster: "{'reviews-v3-only' if s['name'] == 'reviews' else
                                 'outbound|9080||' + s['fqdn']}"}}
        """)
        for s in hosts
    )
    return textwrap.dedent(f"""
        "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
        name: reviews-v3-only
        type: STATIC
        connect_timeout: 1s
        load_assignment:
          cluster_name: reviews-v3-only
          endpoints:
          - lb_endpoints:
            - endpoint: {{address: {{socket_address: {{address: {v3['ip']}, port_value: 9080}}}}}}
        ---
        "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
        name: "9080"
        ignore_port_in_host_matching: true
        virtual_hosts:""") + vhosts


def test_raw_route_edit_changes_where_requests_go(mesh, tmp_path: Path):
    edit = tmp_path / "reviews-v3.yaml"
    edit.write_text(reviews_v3_only(mesh))
    result = cli(mesh, "apply", "-f", str(edit), "--pod", "productpage-v1")
    assert result.returncode == 0, result.stderr + result.stdout
    try:
        rows = mesh.curl_rows("productpage-v1", "http://reviews:9080/reviews/0", n=12)
        assert {r["version"] for r in rows} == {"v3"}
        assert {r["upstream_cluster"] for r in rows} == {"reviews-v3-only"}
        # another proxy was not a target: it still spreads over all three versions
        others = mesh.curl_rows("ratings-v1", "http://reviews:9080/reviews/0", n=30)
        assert {r["version"] for r in others} == {"v1", "v2", "v3"}
    finally:
        mesh.revert(["productpage-v1"])
    rows = mesh.curl_rows("productpage-v1", "http://reviews:9080/reviews/0", n=30)
    assert {r["version"] for r in rows} == {"v1", "v2", "v3"}


BAD_LISTENER = document("snippets/listener-duplicate-chains.yaml")  # two chains with the same match


def test_nack_is_reported_and_last_good_config_keeps_serving(mesh, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_LISTENER)
    result = cli(mesh, "apply", "-f", str(bad), "--pod", "reviews-v1")
    try:
        assert result.returncode != 0
        assert "NACK" in result.stderr and "has the same matching rules" in result.stderr
        status = {r["pod"]: r for r in mesh.status_rows()}
        reviews = next(row for pod, row in status.items() if pod.startswith("reviews-v1-"))
        assert reviews["types"]["LDS"]["state"] == "ERROR"
        assert "same matching rules" in reviews["types"]["LDS"]["error"]
        table = cli(mesh, "status")
        assert "ERROR" in table.stdout
        rows = mesh.curl_rows("reviews-v1", "http://ratings:9080/ratings/0", n=5)
        assert {r["status"] for r in rows} == {200}
        history = mesh.history_rows()
        assert history[-1]["errors"] and "reviews-v1" in next(iter(history[-1]["errors"]))
    finally:
        mesh.revert(["reviews-v1"])
    row = next(r for r in mesh.status_rows() if r["pod"].startswith("reviews-v1-"))
    assert row["types"]["LDS"]["state"] == "SYNCED"


REVIEWS_V2 = document("snippets/reviews-v2.yaml")
REVIEWS_V2_EDITED = REVIEWS_V2.replace("  http:\n", "  http:\n  - match: [{headers: {end-user: {exact: jason}}}]\n"
                                       "    route: [{destination: {host: reviews, subset: v2}}]\n")


def test_sidecars_speak_the_mesh_xds_variant_and_pushes_count_their_bytes(mesh):
    variant = xds_variant()  # what the session mesh was started with: $MESHKIT_XDS, else DELTA
    assert mesh.xds_variant == variant
    assert mesh.xds("productpage-v1")["RDS"]  # the `xds` operation is not shadowed by the variant
    assert {r["xds"] for r in mesh.status_rows()} == {variant}
    for pod in ("productpage-v1", "reviews-v1"):
        counters = mesh.stats(pod, "control_plane.connected_state|cluster_manager.cds.update_success")
        assert counters["control_plane.connected_state"] == 1 and counters["cluster_manager.cds.update_success"] >= 1
    mesh.apply(REVIEWS_V2)
    try:
        push = mesh.apply(REVIEWS_V2_EDITED)  # a VirtualService edit: only RDS changes
        assert {c["type"] for c in push["changes"]} == {"RDS"}
        assert set(push["xds"].values()) == {variant}
        assert set(push["bytes"]) == set(push["results"]) and min(push["bytes"].values()) > 0
        assert {v for results in push["results"].values() for v in results.values()} == {"ACK"}
        print(f"\n{variant}: VirtualService edit, bytes per pod: {push['bytes']}")
        rows = mesh.curl_rows("productpage-v1", "http://reviews:9080/reviews/0", n=6)
        assert {r["version"] for r in rows} == {"v2"}
    finally:
        mesh.delete(REVIEWS_V2)
    rows = [r for r in mesh.status_rows() if r["pod"] and not r["pod"].startswith("istio-ingressgateway")]  # sidecars
    assert all(t["state"] == "SYNCED" for r in rows for n, t in r["types"].items() if n != "SDS"), rows
    assert all(r["types"]["RDS"]["bytes"] > 0 for r in rows)


def test_invalid_field_is_refused_before_any_push(mesh, tmp_path: Path):
    pushes = len(mesh.history_rows())
    with pytest.raises(InvalidInput) as error:
        mesh.apply('"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: x\nconect_timeout: 1s\n')
    assert "conect_timeout" in str(error.value) and "connect_timeout" in str(error.value)
    assert len(mesh.history_rows()) == pushes


def test_second_up_attaches(mesh):
    again = meshkit.up(mesh.home)
    assert again.status_rows()[0]["name"] == mesh.status_rows()[0]["name"]
    assert mesh.topology() == again.topology()


def test_down_after_sigkill_leaves_nothing(tmp_path_factory):
    if mesh_unavailable_reason():
        pytest.skip(mesh_unavailable_reason())
    home = tmp_path_factory.mktemp("killed")
    meshkit.up(home)
    pid = json.loads((home / "daemon.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    left = leftovers(home)
    assert left, "the killed mesh's pods are still there before down"
    assert any("outside.py" in thing for thing in left), "the outside world outlives its daemon too"
    result = subprocess.run([sys.executable, "-m", "meshkit.cli", "--home", str(home), "down"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert leftovers(home) == []
