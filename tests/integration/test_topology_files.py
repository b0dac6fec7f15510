"""`meshkit up --topology FILE`: Istio's own sample manifests as the mesh, with real Envoy sidecars.

Istio's bookinfo.yaml must give the mesh the built-in demo gives (Services, pods, the calls
through productpage → reviews → ratings, the listener and cluster names); httpbin + curl must
answer through both sidecars; and 50 sidecar pods must boot to SYNCED (the boot time is printed).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import meshkit
from meshkit import client
from meshkit.model.bookinfo import VERSION_SERVICES

from ..conftest import leftovers, session_mesh_reason

pytestmark = pytest.mark.mesh

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "istio-samples"
TCP_ECHO = ("tcp-echo", "9000")  # in the built-in demo only; Istio's bookinfo.yaml has no tcp-echo


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meshkit.cli", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Boot a topology (each once per module) and take every mesh down at the end, checked gone."""
    if session_mesh_reason():
        pytest.skip(session_mesh_reason())
    meshes: dict[tuple[str, ...], meshkit.Mesh] = {}

    def boot(*files: Path, timeout: float = client.UP_TIMEOUT_S) -> meshkit.Mesh:
        key = tuple(str(f) for f in files)
        if key not in meshes:
            meshes[key] = client.up(tmp_path_factory.mktemp("topology"), timeout=timeout, topology=list(files))
        return meshes[key]

    yield boot
    for mesh in meshes.values():
        client.down(mesh.home)
        assert leftovers(mesh.home) == [], f"meshkit down left these behind: {leftovers(mesh.home)}"


# What the built-in demo has beyond Istio's bookinfo.yaml: the front gate and its per-version Services.
GATE = ("istio-ingressgateway", "_80", "_443", "_15021", "|80|", "|443|", "|15021|",
        *(f"|{s}." for s in VERSION_SERVICES))


def names(mesh: meshkit.Mesh, pod: str, kind: str) -> set[str]:
    """The resource names a pod's Envoy holds, minus the built-in demo's tcp-echo and front gate."""
    found = {r.get("name") or r.get("cluster", {}).get("name") for r in mesh.pc.resources(kind, pod)}
    return {n for n in found if n and not any(part in n for part in (*TCP_ECHO, *GATE))}


def test_istio_bookinfo_gives_the_builtin_demo_mesh(booted, mesh):
    ours = booted(SAMPLES / "bookinfo.yaml")
    topology, builtin = ours.topology(), mesh.topology()
    assert {(s["name"], json.dumps(s["ports"], sort_keys=True)) for s in topology["services"]} == \
        {(s["name"], json.dumps(s["ports"], sort_keys=True)) for s in builtin["services"]
         if s["name"] not in ("tcp-echo", "istio-ingressgateway", *VERSION_SERVICES)}
    pods = {(w["deployment"], json.dumps(w["labels"], sort_keys=True), w["service_account"], w["sidecar"])
            for w in topology["workloads"]}
    assert pods == {(w["deployment"], json.dumps(w["labels"], sort_keys=True), w["service_account"], w["sidecar"])
                    for w in builtin["workloads"]
                    if w["deployment"] not in ("tcp-echo-v1", "outsider", "istio-ingressgateway")}
    for row in ours.status_rows():
        assert {row["types"][t]["state"] for t in ("CDS", "EDS", "LDS", "RDS")} == {"SYNCED"}, row
    for pod in ("productpage-v1", "reviews-v2"):
        for kind in ("listeners", "clusters"):
            assert names(ours, pod, kind) == names(mesh, pod, kind), (pod, kind)


def test_istio_bookinfo_answers_through_productpage_reviews_and_ratings(booted):
    ours = booted(SAMPLES / "bookinfo.yaml")
    rows = ours.curl_rows("productpage-v1", "http://productpage:9080/productpage", n=30)
    assert [r["status"] for r in rows] == [200] * 30
    bodies = [json.loads(r["body"]) for r in rows]
    assert {b["details"]["status"] for b in bodies} == {200}
    assert {b["reviews"]["body"]["version"] for b in bodies} == {"v1", "v2", "v3"}
    rated = [b["reviews"]["body"] for b in bodies if b["reviews"]["body"]["version"] != "v1"]
    assert {r["ratings_call"]["status"] for r in rated} == {200}
    assert {r["ratings_call"]["pod"].rsplit("-", 2)[0] for r in rated} == {"ratings-v1"}


def test_httpbin_answers_curl_through_the_sidecars(booted):
    ours = booted(SAMPLES / "httpbin.yaml", SAMPLES / "curl.yaml")
    curl_pod = next(p for p in ours.pods() if p.startswith("curl-"))
    result = cli(ours.home, "curl", curl_pod, "http://httpbin:8000/get", "-o", "json")
    assert result.returncode == 0, result.stderr
    [row] = [json.loads(line) for line in result.stdout.splitlines()]
    assert (row["status"], row["flags"]) == (200, "-")
    assert row["upstream_cluster"] == "outbound|8000||httpbin.default.svc.cluster.local"
    assert row["upstream_host"].endswith(":8080"), "Service port 8000 → the container's targetPort 8080"
    body = json.loads(row["body"])
    assert body["pod"].startswith("httpbin-") and body["service_account"] == "httpbin"
    assert body["peer"] == "spiffe://cluster.local/ns/default/sa/curl", "mTLS between the two sidecars"


def test_up_prints_what_it_ignored_and_refuses_another_topology(booted):
    ours = booted(SAMPLES / "httpbin.yaml", SAMPLES / "curl.yaml")
    again = cli(ours.home, "up", "--topology", str(SAMPLES / "httpbin.yaml"), "--topology", str(SAMPLES / "curl.yaml"))
    assert again.returncode == 0, again.stderr
    assert "ignored: volumes: curl" in again.stderr
    assert "images replaced by meshkit's generic demo app: docker.io/curlimages/curl" in again.stderr
    other = cli(ours.home, "up", "--topology", str(SAMPLES / "bookinfo.yaml"))
    assert other.returncode == 2 and "already runs" in other.stderr and "meshkit down" in other.stderr


def test_a_bad_topology_boots_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((SAMPLES / "httpbin.yaml").read_text() + "---\napiVersion: apps/v1\nkind: StatefulSet\n"
                   "metadata: {name: db}\n")
    home = tmp_path / "home"
    result = cli(home, "up", "--topology", str(bad))
    assert result.returncode == 2
    assert "bad.yaml: document 4 (StatefulSet db): kind StatefulSet (apps/v1) is not supported" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (home / "daemon.json").exists() and leftovers(home) == []


def fifty_pods(path: Path) -> Path:
    """Ten Services of five replicas each, every one calling the next (a chain a workshop might draw)."""
    parts = []
    for i in range(10):
        calls = f"http://svc-{i + 1}:80/" if i < 9 else ""
        parts.append(textwrap.dedent(f"""\
            apiVersion: v1
            kind: Service
            metadata: {{name: svc-{i}}}
            spec:
              selector: {{app: svc-{i}}}
              ports: [{{name: http, port: 80, targetPort: 8080}}]
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: {{name: svc-{i}-v1}}
            spec:
              replicas: 5
              selector: {{matchLabels: {{app: svc-{i}, version: v1}}}}
              template:
                metadata:
                  labels: {{app: svc-{i}, version: v1}}
                  annotations: {{meshkit.io/calls: "{calls}"}}
                spec:
                  containers: [{{name: app, image: example.com/svc:1, ports: [{{containerPort: 8080}}]}}]
            """))
    path.write_text("---\n".join(parts))
    return path


def test_fifty_sidecar_pods_boot_to_synced(booted, tmp_path_factory):
    topology = fifty_pods(tmp_path_factory.mktemp("fifty") / "fifty.yaml")
    start = time.monotonic()
    ours = booted(topology, timeout=240.0)
    wall = time.monotonic() - start
    rows = ours.status_rows()
    assert len(rows) == 50
    for row in rows:
        assert {row["types"][t]["state"] for t in ("CDS", "EDS", "LDS", "RDS")} == {"SYNCED"}, row
    print(f"\n50 sidecar pods: meshkit up {wall:.1f} s wall, daemon ready after {ours.ping()['ready_s']:.1f} s "
          f"(capture {ours.capture})")
    first = next(p for p in ours.pods() if p.startswith("svc-0-v1-"))
    [reply] = ours.curl_rows(first, "http://svc-0:80/")
    hops, body = 0, json.loads(reply["body"])
    while isinstance(body.get("calls"), list):
        assert body["calls"][0]["status"] == 200, body["calls"][0]
        body = body["calls"][0]["body"]
        hops += 1
    assert reply["status"] == 200 and hops == 9 and body["app"] == "svc-9", "svc-0 → svc-1 → ... → svc-9"
