"""The local runtime for real: netns pods on a bridge, Istio's capture, the apps, Envoy as uid 1337, cleanup.

No control plane here: the sidecars wait for xDS forever, which is fine for what this file owns.
Needs root (CI is root); skipped otherwise.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from meshkit.model import bookinfo
from meshkit.runtime import netns
from meshkit.runtime.apps import app_python
from meshkit.runtime.errors import RuntimeProblem
from meshkit.runtime.local import LocalRuntime
from tests.conftest import leftovers, mesh_unavailable_reason

REPO = Path(__file__).resolve().parents[2]
REASON = mesh_unavailable_reason()
pytestmark = [pytest.mark.mesh, pytest.mark.skipif(REASON is not None, reason=REASON or "")]

# Runs as uid 1337 in a pod: accepts on 15001 (where iptables REDIRECTs outbound traffic) and
# prints each connection's SO_ORIGINAL_DST, i.e. where the client thought it was going.
FAKE_SIDECAR = textwrap.dedent("""
    import socket, struct
    server = socket.create_server(("0.0.0.0", 15001))
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        raw = conn.getsockopt(socket.SOL_IP, 80, 16)  # SO_ORIGINAL_DST
        port, address = struct.unpack_from("!2xH4s", raw)
        print(f"{socket.inet_ntoa(address)}:{port}", flush=True)
        conn.close()
""")
CLIENT = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()"


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _remains(home: Path, state: dict) -> list[str]:
    """What is left of a mesh: conftest's view (netns, bridge, /etc/netns) plus its recorded processes."""
    return leftovers(home) + [f"process {p['what']}" for p in state["pids"] if _alive(p["pid"])]


def _get(sock, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("pod")
    conn.sock = sock
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("local-runtime")
    started = time.monotonic()
    runtime = LocalRuntime(home, bookinfo(pod_subnet=LocalRuntime.allocate_subnet(home)))
    try:
        runtime.preflight()
        runtime.start_network()
        network = time.monotonic()
        runtime.start_pods()
        spawned = time.monotonic()
        runtime.wait_apps(30)
        apps = time.monotonic()
        runtime.wait_sidecars(30)
        sidecars = time.monotonic()
        print(f"\nlocal runtime start, {len(runtime.topology.workloads)} pods: network {network - started:.2f} s, "
              f"spawn {spawned - network:.2f} s, apps up {apps - started:.2f} s, "
              f"sidecar admins up {sidecars - started:.2f} s")
        state = json.loads((home / "state.json").read_text())
        yield runtime
    finally:
        runtime.stop()
    assert not (home / "state.json").exists()
    assert _remains(home, state) == []


def test_pods_are_netns_on_a_bridge_with_capture(runtime: LocalRuntime):
    bridge = netns.run(["ip", "-4", "-o", "addr", "show", "dev", LocalRuntime.bridge_name(runtime.home)])
    assert f"{runtime.gateway}/24" in bridge
    pod = runtime.topology.workload("reviews-v2")
    ns = runtime.netns(pod.name)
    assert f"inet {pod.ip}/24" in netns.run(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"])
    assert f"default via {runtime.gateway}" in netns.run(["ip", "-n", ns, "route"])
    nat = netns.run(netns.command_in(ns, ["iptables-save", "-t", "nat"]))
    assert "-A OUTPUT -j ISTIO_OUTPUT" in nat
    assert "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in nat


def test_kubernetes_names_resolve_inside_pods(runtime: LocalRuntime):
    ns = runtime.netns("productpage-v1")
    reviews = runtime.topology.service("reviews")
    for name in ("reviews", "reviews.default", "reviews.default.svc", "reviews.default.svc.cluster.local"):
        answer = netns.run(netns.command_in(ns, ["getent", "hosts", name])).split()
        assert answer[0] == reviews.vip, name
    assert netns.resolve(ns, "reviews.default.svc.cluster.local") == reviews.vip
    with pytest.raises(RuntimeProblem):
        netns.run(netns.command_in(ns, ["getent", "hosts", "example.com"]))


def test_apps_answer_on_localhost_inside_their_pod(runtime: LocalRuntime):
    for workload in runtime.topology.workloads:
        if not workload.ports:  # the outsider runs no app
            continue
        sock = runtime.connect(workload.name, "127.0.0.1", workload.ports[0], timeout=2)
        if workload.app == "tcp-echo":
            with sock:
                sock.sendall(b"hello\n")
                assert sock.makefile("rb").readline() == f"{workload.name}: hello\n".encode()
            continue
        status, body = _get(sock, "/health")
        assert status == 200
        assert json.loads(body)["pod"] == workload.name


def test_outbound_is_captured_except_for_the_proxy_uid(runtime: LocalRuntime):
    pod = runtime.topology.workload("productpage-v1")
    ns, vip = runtime.netns(pod.name), runtime.topology.service("reviews").vip
    sidecar = subprocess.Popen(netns.command_in(ns, [app_python(), "-I", "-c", FAKE_SIDECAR], uid=1337),
                               stdout=subprocess.PIPE, text=True)
    try:
        assert sidecar.stdout.readline().strip() == "ready"
        # As root from this process, by Service name: redirected to 15001, original destination kept.
        runtime.connect(pod.name, "reviews", 9080, timeout=2).close()
        assert sidecar.stdout.readline().strip() == f"{vip}:9080"
        # As the apps' uid: captured too.
        subprocess.run(netns.command_in(ns, [app_python(), "-I", "-c", CLIENT, vip, "9080"], uid=1000),
                       check=True, timeout=10)
        assert sidecar.stdout.readline().strip() == f"{vip}:9080"
        # As the proxy's uid: not captured, so it goes to the bridge, where nothing forwards it.
        proxy = subprocess.run(netns.command_in(ns, [app_python(), "-I", "-c", CLIENT, vip, "9080"], uid=1337),
                               capture_output=True, text=True, timeout=10)
        assert proxy.returncode != 0
        assert "Error" in proxy.stderr
        # The fake sidecar saw nothing: a marker connection is the next line it prints.
        runtime.connect(pod.name, "10.96.0.250", 7, timeout=2).close()
        assert sidecar.stdout.readline().strip() == "10.96.0.250:7"
    finally:
        sidecar.kill()
        sidecar.wait()


def test_envoy_runs_as_1337_and_answers_on_the_private_admin_path(runtime: LocalRuntime):
    pod = runtime.topology.workload("reviews-v2")
    info = json.loads(runtime.admin_get(pod.name, "/server_info"))
    assert info["state"] in ("PRE_INITIALIZING", "INITIALIZING")  # waiting for an xDS server nobody runs
    assert info["node"]["id"] == pod.node_id
    assert info["node"]["cluster"] == "reviews.default"
    assert info["command_line_options"]["concurrency"] == 1
    envoys = [p for p in netns.netns_pids(runtime.netns(pod.name))
              if "envoy" in Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0].decode()]
    assert len(envoys) == 1
    assert os.stat(f"/proc/{envoys[0]}").st_uid == 1337
    assert runtime.access_log(pod.name).stat().st_uid == 1337
    # Istio's 15090 stats listener is there; Envoy binds it once the first xDS config arrives.
    assert "0.0.0.0_15090::0.0.0.0:15090" in runtime.admin_get(pod.name, "/listeners")


def test_cleanup_from_a_fresh_process_after_sigkill(runtime: LocalRuntime, tmp_path: Path):
    """A second mesh (other home, so other subnet) whose owner dies by SIGKILL, cleaned up from here."""
    home = tmp_path / "killed-mesh"
    owner_script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from meshkit.model import bookinfo
        from meshkit.runtime.local import LocalRuntime
        home = Path({str(home)!r})
        runtime = LocalRuntime(home, bookinfo(pod_subnet=LocalRuntime.allocate_subnet(home)))
        runtime.start_network()
        runtime.start_pods()
        runtime.wait_apps(30)
        print(runtime.gateway, flush=True)
        time.sleep(600)
    """)
    owner = subprocess.Popen([sys.executable, "-c", owner_script], stdout=subprocess.PIPE, text=True)
    try:
        gateway = owner.stdout.readline().strip()
        assert gateway and gateway != runtime.gateway  # two meshes, two subnets
        state = json.loads((home / "state.json").read_text())
        assert _remains(home, state), "the second mesh should be running"
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    LocalRuntime.cleanup(home)
    assert _remains(home, state) == []
    assert not (home / "state.json").exists()
    LocalRuntime.cleanup(home)  # idempotent
