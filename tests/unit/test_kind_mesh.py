"""The kind Mesh's kubectl side against the fake kubectl, and its in-pod client run for real.

What runs here: the argv `meshkit.connect(runtime="kind")` gives kubectl for curl, tcp and pod_info,
how it reads the pod client's JSON and the sidecar's stdout (canned by the fake), how kubectl's
failures reach the learner, and `pod_client.py` itself making real HTTP/TCP exchanges on 127.0.0.1.
What does not: a real `kubectl exec` into a real pod (only the kind e2e test does that).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import meshkit
from meshkit import client
from meshkit.client.kind import KindTransport
from meshkit.errors import EnvironmentProblem, InvalidInput, MeshError, NotFound, NotRunning
from meshkit.lab.session import Lab
from meshkit.lab.spec import Exercise, LabSpec, Outcome, Verdict
from meshkit.runtime import kind

from .fake_tools import calls, use_fake_tools

POD_CLIENT = Path(meshkit.__file__).parent / "runtime" / "apps" / "pod_client.py"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The fake kubectl first on PATH, every call logged to the returned file; no runtime chosen yet."""
    return use_fake_tools(monkeypatch, tmp_path / "calls.log", (
        "FAKE_FAIL", "FAKE_KUBECTL_EXEC", "FAKE_KUBECTL_LOGS", "MESHKIT_RUNTIME", "MESHKIT_KIND_CLUSTER"))


def cluster(tmp_path: Path, control_port: int = 1) -> kind.ClusterInfo:
    records = [{**vars(f), "pid": 0} for f in kind.forwards(kind.kind_topology(), 25000)]
    records[-1]["local_port"] = control_port
    directory = tmp_path / "home" / "kind" / "meshkit"
    directory.mkdir(parents=True)
    (directory / "forwards.json").write_text(json.dumps(records))
    return kind.ClusterInfo.load("meshkit", directory)


def test_curl_execs_the_pod_client_in_the_app_container_and_reads_flags_from_the_sidecars_stdout(
        fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mesh = client.Mesh(KindTransport(cluster(tmp_path)))
    replies = [
        {"request_id": "r-1", "status": 200, "elapsed_ms": 4.2, "pod": "reviews-v2-5b7f9c6d4f-x2k4p",
         "version": "v2", "client_address": "10.244.0.9:41000"},
        {"request_id": "r-2", "status": 503, "elapsed_ms": 1.0, "client_address": "10.244.0.9:41002"},
    ]
    monkeypatch.setenv("FAKE_KUBECTL_EXEC", json.dumps(replies))
    monkeypatch.setenv("FAKE_KUBECTL_LOGS", "\n".join([
        "[2026-01-01 10:00:00.000][1][info][upstream] cds: added/updated 12 cluster(s)",  # Envoy's own log
        json.dumps({"request_id": "r-2", "response_flags": "UF",
                    "upstream_cluster": "outbound|9080||reviews.default.svc.cluster.local"}),
        json.dumps({"request_id": "r-1", "response_flags": "-", "route_name": "default",
                    "upstream_cluster": "outbound|9080|v2|reviews.default.svc.cluster.local",
                    "upstream_host": "10.244.0.23:9080"}),
    ]))
    rows = mesh.curl_rows("productpage-v1", "http://reviews:9080/reviews/0", {"end-user": "jason"}, n=2)

    assert [(r["status"], r["flags"], r["version"]) for r in rows] == [(200, "-", "v2"), (503, "UF", "")]
    assert rows[0]["upstream_host"] == "10.244.0.23:9080" and rows[0]["route_name"] == "default"
    exec_call, logs_call = calls(fake)
    assert exec_call[:11] == ["kubectl", "--kubeconfig", str(mesh.transport.info.kubeconfig), "-n", "default", "exec",
                              "deployment/productpage-v1", "-c", "productpage", "--", "python"]
    assert exec_call[11:15] == ["-I", "/opt/meshkit-apps/pod_client.py", "curl", exec_call[14]]
    assert json.loads(exec_call[14]) == {"url": "http://reviews:9080/reviews/0", "headers": {"end-user": "jason"},
                                         "n": 2, "method": "GET", "timeout": 10.0}
    assert logs_call[3:9] == ["-n", "default", "logs", "deployment/productpage-v1", "-c", "istio-proxy"]
    assert logs_call[9].startswith("--since=") and logs_call[9].endswith("s")


def test_a_full_pod_name_maps_to_its_deployment_and_tcp_and_views_use_the_same_client(
        fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mesh = client.Mesh(KindTransport(cluster(tmp_path)))
    monkeypatch.setenv("FAKE_KUBECTL_EXEC", json.dumps({"reply": "hi\n", "error": "", "elapsed_ms": 2.0}))
    assert mesh.tcp("reviews-v2-5b7f9c6d4f-x2k4p", "tcp-echo", 9000, "hi\n")["reply"] == "hi\n"
    monkeypatch.setenv("FAKE_KUBECTL_EXEC", json.dumps("127.0.0.1 localhost\n"))
    assert mesh.pod_info("tcp-echo-v1", "hosts") == "127.0.0.1 localhost\n"
    monkeypatch.setenv("FAKE_KUBECTL_LOGS", "*nat\n-A OUTPUT -p tcp -j ISTIO_OUTPUT\nCOMMIT")
    rules = mesh.pod_info("ratings-v1", "iptables")
    assert rules.startswith("# the nat table as istio-init installed it") and "-j ISTIO_OUTPUT" in rules
    tcp_call, hosts_call, init_call = calls(fake)
    assert tcp_call[5:9] == ["exec", "deployment/reviews-v2", "-c", "reviews"]
    assert json.loads(tcp_call[-1]) == {"host": "tcp-echo", "port": 9000, "text": "hi\n", "timeout": 3.0}
    assert hosts_call[5:9] == ["exec", "deployment/tcp-echo-v1", "-c", "tcp-echo"]
    assert hosts_call[13:16] == ["view", "hosts", "productpage"]  # then every Service name, for DNS
    assert init_call[5:9] == ["logs", "deployment/ratings-v1", "-c", "istio-init"]
    with pytest.raises(NotFound, match="unknown pod 'nope'"):
        mesh.tcp("nope", "x", 1)
    with pytest.raises(InvalidInput, match="unknown view"):
        mesh.pod_info("ratings-v1", "routes")


def test_kubectl_failures_reach_the_learner_with_kubectls_words(
        fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mesh = client.Mesh(KindTransport(cluster(tmp_path)))
    monkeypatch.setenv("FAKE_FAIL", "kubectl*exec*")
    with pytest.raises(EnvironmentProblem, match="container not found"):
        mesh.curl_rows("productpage-v1", "http://reviews:9080/")
    monkeypatch.setenv("FAKE_FAIL", "")
    monkeypatch.setenv("FAKE_KUBECTL_EXEC", "Defaulted container \"productpage\"\nnot json")
    with pytest.raises(MeshError, match="not JSON"):
        mesh.tcp("productpage-v1", "tcp-echo", 9000)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EnvironmentProblem, match="kubectl is not on PATH"):
        mesh.tcp("productpage-v1", "tcp-echo", 9000)


def test_connect_without_a_cluster_says_how_to_make_one(fake: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHKIT_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(NotRunning, match="meshkit cluster up --name meshkit"):
        meshkit.connect(runtime="kind")
    monkeypatch.setenv("MESHKIT_RUNTIME", "kind")
    monkeypatch.setenv("MESHKIT_KIND_CLUSTER", "other")
    with pytest.raises(NotRunning, match="no kind mesh 'other'"):
        meshkit.up()  # what lab.mesh calls: on kind it attaches, it never boots a local mesh
    monkeypatch.setenv("MESHKIT_RUNTIME", "moon")
    with pytest.raises(InvalidInput, match="unknown runtime 'moon'"):
        meshkit.connect()


def test_connect_with_a_dead_port_forward_names_it(fake: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    cluster(tmp_path, control_port=port)
    with pytest.raises(NotRunning, match="is the port-forward up"):
        meshkit.connect(tmp_path / "home", runtime="kind")


def test_a_local_only_exercise_says_so_on_kind_instead_of_failing(tmp_path: Path) -> None:
    ran = []
    spec = LabSpec("99-test", "test", (), (
        Exercise("ex1", "anywhere", lambda mesh: ran.append("ex1") or Verdict.done(), ("h",), "", lambda m: None),
        Exercise("ex2", "netns only", lambda mesh: ran.append("ex2") or Verdict.done(), ("h",), "",
                 lambda m: ran.append("applied ex2"), runtimes=("local",), elsewhere="it reads a network namespace"),
    ), runtime_notes=(("kind", "pod_info('iptables') is istio-init's log"),))
    lab = Lab(spec, home=str(tmp_path))
    lab._mesh = client.Mesh(KindTransport(cluster(tmp_path)))
    result = lab.check("ex2")
    assert result.outcome is Outcome.ELSEWHERE and "local only: it reads a network namespace" in result.message
    assert ran == []
    assert "(not applied: runs on local only)" in lab.solution("ex2", apply=True).title
    assert ran == []
    assert spec.notes_for("kind") == ["pod_info('iptables') is istio-init's log",
                                      "ex2 runs on local only: it reads a network namespace"]
    assert spec.notes_for("local") == []


# -- the in-pod client, run for real on this host's loopback ----------------------------------------
class _App(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"pod": "reviews-v2-abc-xyz", "version": "v2", "path": self.path,
                           "user": self.headers.get("end-user")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def pod_client(*args: str) -> object:
    out = subprocess.run([sys.executable, "-I", str(POD_CLIENT), *args], capture_output=True, text=True,
                         timeout=30, check=True, cwd="/")
    return json.loads(out.stdout)


def test_the_pod_client_makes_real_exchanges_and_prints_what_the_mesh_api_returns() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    echo = socket.create_server(("127.0.0.1", 0))

    def serve_echo() -> None:
        conn, _ = echo.accept()
        with conn:
            conn.sendall(conn.recv(100))

    threading.Thread(target=serve_echo, daemon=True).start()
    try:
        port = server.server_address[1]
        rows = pod_client("curl", json.dumps({"url": f"http://localhost:{port}/reviews/0", "n": 2,
                                              "headers": {"end-user": "jason"}}))
        assert [(r["status"], r["pod"], r["version"]) for r in rows] == [(200, "reviews-v2-abc-xyz", "v2")] * 2
        assert json.loads(rows[0]["body"])["user"] == "jason"
        assert rows[0]["client_address"].startswith("127.0.0.1:") and rows[0]["request_id"]
        assert rows[0]["request_id"] != rows[1]["request_id"]
        assert pod_client("curl", json.dumps({"url": "http://no-such-service.invalid:9080/"}))[0]["invalid"]
        reply = pod_client("tcp", json.dumps({"host": "127.0.0.1", "port": echo.getsockname()[1], "text": "hi\n"}))
        assert reply["reply"] == "hi\n" and reply["error"] == ""
        assert f"LISTEN   127.0.0.1:{port}" in pod_client("view", "sockets")
        assert "lo " in pod_client("view", "addresses") and "127.0.0.1/8" in pod_client("view", "addresses")
        assert "127.0.0.1\tlocalhost\t# DNS" in pod_client("view", "hosts", "localhost")
    finally:
        server.shutdown()
        echo.close()
