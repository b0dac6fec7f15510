"""`meshkit.connect(runtime="kind")` against the kind image's entrypoint, run here with real Envoys.

`meshkit serve-xds --learn-pod-ips --control 127.0.0.1:PORT` runs as the boss does in its pod; two
Envoys with Kubernetes-style pod names connect from their own network namespaces (as in
test_serve_xds.py). A forwards.json like `cluster up` writes points the client at it; the sidecars'
admin port-forwards are played by a relay that dials 127.0.0.1:15000 inside each namespace, which is
what `kubectl port-forward` does inside a pod. Not run here: kubectl, a kubelet, the cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import meshkit
from meshkit.client import wire
from meshkit.errors import InvalidInput, Nack, Unsupported
from meshkit.runtime import kind, netns
from meshkit.runtime.envoy import start_envoy

from ..conftest import mesh_unavailable_reason
from ..documents import document
from .test_serve_xds import PODS, pipe_bootstrap

pytestmark = pytest.mark.mesh

REVIEWS_V2 = document("snippets/reviews-v2.yaml")  # the DestinationRule, then the VirtualService
RAW_LISTENER = document("snippets/listener-kind-test.yaml")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Relay:
    """127.0.0.1:port on the host → 127.0.0.1:15000 inside a netns: a port-forward without kubectl."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = netns.connect(self.ns, "127.0.0.1", 15000, 3.0)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.server.close()


@pytest.fixture(scope="module")
def boss(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    if mesh_unavailable_reason():
        pytest.skip(mesh_unavailable_reason())
    shared = Path(tempfile.mkdtemp(prefix="meshkit-kindc-"))  # pytest's tmp is 0700: uid 1337 can't enter
    shared.chmod(0o755)
    sock, control_port = shared / "xds.sock", free_port()
    # umask 0: the ADS socket (also when `start_boss` makes it again) is open to Envoy's uid 1337
    server = subprocess.Popen([sys.executable, "-m", "meshkit.cli", "serve-xds", "--listen", f"unix:{sock}",
                               "--learn-pod-ips", "--control", f"127.0.0.1:{control_port}"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, umask=0)
    namespaces, envoys, relays = [], [], {}
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for deployment in PODS:
            ns = f"mkt-kindc-{deployment}"
            subprocess.run(["ip", "netns", "add", ns], check=True)
            namespaces.append(ns)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
            log_dir = tmp_path_factory.mktemp(deployment)
            envoys.append(start_envoy(ns, pipe_bootstrap(deployment, sock), log_dir))
            relays[deployment] = Relay(ns)
        home = tmp_path_factory.mktemp("home")
        records = [{**vars(f), "pid": 0} for f in kind.forwards(kind.kind_topology(), 1)]
        for record in records:  # only the forwards this test plays; the rest point at nothing
            if record["name"] in relays:
                record["local_port"] = relays[record["name"]].port
            elif record["name"] == kind.CONTROL_NAME:
                record["local_port"] = control_port
        (home / "kind" / "kt").mkdir(parents=True)
        (home / "kind" / "kt" / "forwards.json").write_text(json.dumps(records))
        yield {"home": home, "server": server}
    finally:
        for relay in relays.values():
            relay.close()
        for envoy in envoys:
            envoy.terminate()
            envoy.wait(10)
        for ns in namespaces:
            subprocess.run(["ip", "netns", "del", ns], check=False)
        if server.poll() is None:
            server.terminate()
        print(server.communicate(timeout=10)[0])
        shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture(scope="module")
def mesh(boss: dict) -> meshkit.Mesh:
    """The boss opens its control port once its first push is out: on a busy machine, after its ADS socket."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return meshkit.connect(boss["home"], runtime="kind", name="kt")
        except (meshkit.NotRunning, meshkit.Starting):
            if time.monotonic() > deadline or boss["server"].poll() is not None:
                raise
            time.sleep(0.1)


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def synced(mesh: meshkit.Mesh) -> list[dict]:
    rows = [r for r in mesh.status_rows() if r["connected"]]
    ok = len(rows) == 2 and {t["state"] for r in rows for t in r["types"].values()} <= {"SYNCED", "NOT SENT"}
    return rows if ok else []


def test_status_names_the_learned_pods_over_the_tcp_control_port(mesh: meshkit.Mesh) -> None:
    assert mesh.runtime == "kind" and type(mesh.transport).__name__ == "KindTransport"
    assert mesh.capture == "iptables"
    rows = wait_for(lambda: synced(mesh))
    assert sorted(r["pod"] for r in rows) == sorted(name for name, _ in PODS.values())
    table = mesh.status()
    assert f"{PODS['reviews-v2'][0]}.default" in set(table["NAME"])
    workloads = {w["deployment"]: w for w in mesh.topology()["workloads"]}
    assert workloads["reviews-v2"]["ip"] == PODS["reviews-v2"][1]
    assert mesh.topology()["outside"] is None
    with pytest.raises(Unsupported, match="no outside-world server"):
        mesh.outside()


def test_apply_get_xds_delete_and_history_go_through_the_in_cluster_handlers(mesh: meshkit.Mesh) -> None:
    wait_for(lambda: synced(mesh))
    push = mesh.apply(REVIEWS_V2)
    assert push["reason"].startswith("apply ")
    assert {r for r in push["results"]} >= {PODS["productpage-v1"][0]}
    assert [vs["metadata"]["name"] for vs in mesh.get("VirtualService")] == ["reviews"]
    generated = mesh.xds("productpage-v1")
    assert "outbound|9080|v2|reviews.default.svc.cluster.local" in json.dumps(generated["CDS"])
    # the sidecar holds it: read through the admin "port-forward", as `pc` does on kind
    clusters = mesh.pc.clusters("productpage-v1")
    assert wait_for(lambda: "v2" in set(mesh.pc.clusters("productpage-v1")["SUBSET"]), 10), clusters
    mesh.delete(REVIEWS_V2.split("---")[1])
    assert mesh.get("VirtualService") == []
    reasons = [p["reason"] for p in mesh.history_rows()]
    assert any(r.startswith("apply DestinationRule reviews") for r in reasons)
    assert any(r.startswith("delete VirtualService") for r in reasons)
    assert list(mesh.history().columns)[:3] == ["PUSH", "TIME", "REASON"]
    events = mesh.events()
    assert events["last"] > 0 and {"CONNECTED", "ACK"} <= {e["kind"] for e in events["events"]}


def test_raw_apply_nack_and_revert(mesh: meshkit.Mesh) -> None:
    wait_for(lambda: synced(mesh))
    push = mesh.apply(RAW_LISTENER, pods=["productpage-v1"])
    assert any(c["name"] == "meshkit-kind-test" for c in push["changes"])
    assert wait_for(lambda: "17777" in set(mesh.pc.listeners("productpage-v1")["PORT"]), 10)  # via the relay
    bad = RAW_LISTENER.replace("port_value: 17777", "port_value: 99999999")
    with pytest.raises((Nack, InvalidInput)):
        mesh.apply(bad, pods=["productpage-v1"])
    reverted = mesh.revert()
    assert any(c["name"] == "meshkit-kind-test" for c in reverted["changes"])
    assert wait_for(lambda: synced(mesh))


def test_stop_and_start_boss_in_the_boss_process(mesh: meshkit.Mesh) -> None:
    wait_for(lambda: synced(mesh))
    assert mesh.stop_boss() is False
    assert wait_for(lambda: not any(r["connected"] for r in mesh.status_rows()), 10)
    assert mesh.admin("productpage-v1", "/ready").strip() == "LIVE"  # the lieutenant serves on
    assert mesh.start_boss() is True
    assert wait_for(lambda: synced(mesh), 40), mesh.status_rows()


def test_ops_that_need_a_pod_are_not_served_by_the_boss(boss: dict, mesh: meshkit.Mesh) -> None:
    address = mesh.transport.info.control_address
    with pytest.raises(InvalidInput, match="unknown operation 'curl'"):
        wire.call(address, "curl", {"pod": "productpage-v1", "url": "http://reviews:9080/"})
    with pytest.raises(InvalidInput, match="unknown operation 'down'"):
        wire.call(address, "down", {})
    assert os.environ.get("MESHKIT_RUNTIME") is None  # nothing here leaked into the environment
