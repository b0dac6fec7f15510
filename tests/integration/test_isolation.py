"""No one else gets in: another local user reaches no sidecar's admin API, no ADS stream, no key.

Several learners share a workshop host. While a mesh runs, a second unprivileged user
(`meshkit-intruder`, created here) tries every door: each unix socket under the mesh's home
(the pods' ADS sockets, the userspace admin sockets, the control socket), every TCP port the
pods and the boss listen on (GET /config_dump and /server_info, POST /healthcheck/fail, and a
real gRPC ADS stream asking for a certificate), and every file the mesh wrote. The mesh runs as
root in a 0700 home; the intruder is a plain uid. Both captures are checked: the session's mesh
(iptables as root, or whatever MESHKIT_CAPTURE says) and a userspace mesh of this module's own.

Also: no ADS listener on TCP during a local mesh, and a client on a pod's own socket that
claims another pod's node id is refused with PERMISSION_DENIED and gets no SDS secret.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

import meshkit
from meshkit.constants import SIDECAR_PORTS, XDS_PORT
from meshkit.runtime.bootstrap import POD_XDS_SOCKET
from meshkit.xds.resources import SECRET

pytestmark = pytest.mark.mesh

INTRUDER = "meshkit-intruder"

# Runs as the intruder, with the system's Python and (when it can import them) the venv's grpc
# and Envoy protos; prints one JSON object: what each attempt got.
PROBE = textwrap.dedent('''
    import json, socket, sys
    from concurrent.futures import ThreadPoolExecutor

    cfg = json.load(open(sys.argv[1]))

    def http(sock, method, path):
        with sock:
            sock.settimeout(2)
            head = f"{method} {path} HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n"
            head += "Content-Length: 0\\r\\n\\r\\n"
            data = b""
            try:  # a reset (the listener refused the stranger after accepting) gets nothing back
                sock.sendall(head.encode())
                while chunk := sock.recv(65536):
                    data += chunk
            except OSError:
                pass
        return data.decode("latin-1")[:400]

    def unix(path, method, target):
        try:
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(2)
            sock.connect(path)
        except OSError as error:
            return f"refused: {error.strerror}"
        return "CONNECTED " + http(sock, method, target)

    def tcp(host, port, method, target):
        try:
            sock = socket.create_connection((host, port), 2)
        except OSError as error:
            return f"refused: {error.strerror or error}"
        return http(sock, method, target)

    def read(path):
        try:
            with open(path, "rb") as f:
                f.read(1)
            return "READ"
        except OSError as error:
            return f"refused: {error.strerror}"

    def ads(target, node_id):
        try:
            import grpc
            from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
        except ImportError as error:
            return f"untried: {error}"
        request = discovery_pb2.DiscoveryRequest(
            type_url="type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", resource_names=["default"])
        request.node.id = node_id
        with grpc.insecure_channel(target) as channel:
            call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(
                iter([request]), timeout=3)
            try:
                response = next(call)
                return f"ANSWERED {response.type_url} with {len(response.resources)} resources"
            except grpc.RpcError as error:
                return f"refused: {error.code().name}"

    METHODS = (("GET", "/config_dump"), ("GET", "/server_info"), ("POST", "/healthcheck/fail"))
    jobs = {}
    with ThreadPoolExecutor(32) as pool:
        for path in cfg["unix"]:
            for method, target in METHODS:
                jobs[f"unix {path} {method} {target}"] = pool.submit(unix, path, method, target)
            jobs[f"ads unix:{path}"] = pool.submit(ads, f"unix:{path}", cfg["node_id"])
        for host, port in cfg["tcp"]:
            for method, target in METHODS:
                jobs[f"tcp {host}:{port} {method} {target}"] = pool.submit(tcp, host, port, method, target)
            jobs[f"ads {host}:{port}"] = pool.submit(ads, f"{host}:{port}", cfg["node_id"])
        for path in cfg["files"]:
            jobs[f"file {path}"] = pool.submit(read, path)
    print(json.dumps({key: job.result() for key, job in jobs.items()}))
''')


@pytest.fixture(scope="module")
def intruder() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("creating a second local user needs root")
    if shutil.which("useradd") is None or shutil.which("setpriv") is None:
        pytest.skip("useradd and setpriv are needed (apt-get install passwd util-linux)")
    try:
        return pwd.getpwnam(INTRUDER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", INTRUDER],
                       check=True)
        return pwd.getpwnam(INTRUDER)


@pytest.fixture(scope="module")
def userspace_mesh(tmp_path_factory: pytest.TempPathFactory, mesh):
    """A userspace mesh beside the session's (skipped when the session's is userspace already)."""
    if mesh.capture == "userspace":
        yield mesh
        return
    home = tmp_path_factory.mktemp("isolation")
    running = meshkit.up(home, capture="userspace")
    try:
        yield running
    finally:
        meshkit.down(home)


@pytest.fixture(params=["session", "userspace"])
def any_mesh(request, mesh):
    if request.param == "session":
        return mesh
    if mesh.capture == "userspace":
        pytest.skip("the session's mesh is the userspace one")
    return request.getfixturevalue("userspace_mesh")


def _mesh_pids(home: Path) -> set[int]:
    state = json.loads((home / "state.json").read_text())
    return {p["pid"] for p in state["pids"]}


def _tcp_listeners(pids: set[int]) -> list[tuple[str, int]]:
    """Every TCP port a process of `pids` listens on in this network namespace."""
    found = []
    for line in subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines():
        if any(f"pid={pid}," in line for pid in pids):
            host, _, port = line.split()[3].rpartition(":")
            host = host.strip("[]").removeprefix("::ffff:")  # gRPC listens dual-stack: [::ffff:127.N.244.1]
            found.append(("127.0.0.1" if host in ("0.0.0.0", "*", "::") else host, int(port)))
    return found


def _targets(mesh) -> dict:
    home = mesh.home
    topology = mesh.topology()
    ports = {*SIDECAR_PORTS, XDS_PORT, *(p["target_port"] for s in topology["services"] for p in s["ports"])}
    tcp = {(w["ip"], port) for w in topology["workloads"] for port in ports}
    tcp |= set(_tcp_listeners(_mesh_pids(home)))
    outside = topology.get("outside") or {}
    if outside.get("address"):  # the bridge (iptables) or the outside world's loopback address
        tcp |= {(outside["address"], port) for port in (XDS_PORT, *outside.get("ports", ()))}
    files = [str(p) for p in home.rglob("*") if p.is_file() or p.is_socket()]
    sockets = [str(p) for p in home.rglob("*") if p.is_socket()]
    node = next(w["node_id"] for w in topology["workloads"] if w["sidecar"])
    return {"unix": sockets, "tcp": sorted(tcp), "files": files, "node_id": node}


def _as_intruder(user: pwd.struct_passwd, targets: dict) -> dict[str, str]:
    """Run PROBE as `user` (from a folder it may read: pytest's own are 0700) and return its findings."""
    shared = Path("/tmp") / f"meshkit-intruder-{os.getpid()}"
    shutil.rmtree(shared, ignore_errors=True)
    shared.mkdir(mode=0o755)
    script, config = shared / "probe.py", shared / "targets.json"
    script.write_text(PROBE)
    config.write_text(json.dumps(targets))
    for path in (shared, script, config):
        path.chmod(0o755 if path.is_dir() else 0o644)
    python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.access(python, os.X_OK):
        python = "/usr/bin/python3"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": sysconfig.get_paths()["purelib"], "HOME": "/"}
    try:
        result = subprocess.run(
            ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--",
             python, "-B", str(script), str(config)],
            capture_output=True, text=True, timeout=240, env=env, cwd="/",
        )
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_another_user_gets_no_admin_no_ads_no_key_no_control(any_mesh, intruder):
    mesh = any_mesh
    targets = _targets(mesh)
    assert targets["unix"], "the mesh's home holds its sockets"
    assert str(mesh.home / "control.sock") in targets["unix"]
    got = _as_intruder(intruder, targets)
    print(f"\n{mesh.capture}: {len(got)} attempts by {INTRUDER} "
          f"({len(targets['unix'])} unix sockets, {len(targets['tcp'])} TCP ports, {len(targets['files'])} files)")

    connected = {k: v for k, v in got.items() if k.startswith("unix") and not v.startswith("refused")}
    assert connected == {}, "a unix socket of the mesh let another user in"
    read = {k: v for k, v in got.items() if k.startswith("file") and v != "refused: Permission denied"}
    assert read == {}, "another user read a file of the mesh"
    answered = {k: v for k, v in got.items() if k.startswith("ads") and not v.startswith(("refused", "untried"))}
    assert answered == {}, "another user opened an ADS stream"
    if any(v.startswith("untried") for k, v in got.items() if k.startswith("ads")):
        print("grpc was not importable by the intruder's Python: ADS attempts were socket-level only")
    admin = {k: v for k, v in got.items() if k.startswith("tcp") and
             any(marker in v for marker in ('"configs"', '"command_line_options"', "server.state", '"hot_restart'))}
    assert admin == {}, "another user read a sidecar's admin API over TCP"
    for pod in mesh.pods():  # POST /healthcheck/fail reached no one: every sidecar still LIVE, not DRAINING
        if any(w["name"] == pod and w["sidecar"] for w in mesh.topology()["workloads"]):
            assert json.loads(mesh.admin(pod, "/server_info"))["state"] == "LIVE", pod


def test_no_private_key_sits_in_a_file(any_mesh):
    for path in any_mesh.home.rglob("*"):
        if path.is_file():
            assert b"PRIVATE KEY" not in path.read_bytes(), path
    for pid in _mesh_pids(any_mesh.home):  # command lines are world-readable: the bootstrap holds no key
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists():
            assert b"PRIVATE KEY" not in cmdline.read_bytes()


def test_no_ads_listener_on_tcp(any_mesh):
    daemon = json.loads((any_mesh.home / "daemon.json").read_text())["pid"]
    assert _tcp_listeners({daemon}) == [], "the boss listens on TCP"
    subnet = any_mesh.topology()["workloads"][0]["ip"].rsplit(".", 1)[0] + "."  # the bridge's .1 was the ADS address
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert [line for line in listening if f"{subnet}" in line and f":{XDS_PORT} " in line] == []
    for w in any_mesh.topology()["workloads"]:
        if w["sidecar"]:
            socket_path = any_mesh.home / "pods" / w["name"] / POD_XDS_SOCKET
            assert socket_path.is_socket() and (socket_path.stat().st_mode & 0o777) == 0o600, socket_path


@contextlib.contextmanager
def short_name(path: Path) -> Iterator[str]:
    """`path` by a name a unix socket can be dialed at: a deep pytest home (an xdist worker's)
    makes it longer than sun_path's 108 bytes; its folder's O_PATH descriptor names it in a few."""
    folder = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{folder}/{path.name}"
    finally:
        os.close(folder)


def test_another_pods_node_id_on_a_pods_socket_is_refused(any_mesh):
    workloads = [w for w in any_mesh.topology()["workloads"] if w["sidecar"]]
    mine, theirs = workloads[0], workloads[1]
    path = any_mesh.home / "pods" / mine["name"] / POD_XDS_SOCKET
    request = discovery_pb2.DiscoveryRequest(type_url=SECRET, resource_names=["default"])
    request.node.id = theirs["node_id"]
    with short_name(path) as dialed, grpc.insecure_channel(f"unix:{dialed}") as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(
            iter([request]), timeout=5)
        with pytest.raises(grpc.RpcError) as refused:
            next(call)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert f"serves {mine['name']}" in refused.value.details() and theirs["node_id"] in refused.value.details()
    log = (any_mesh.home / "daemon.log").read_text()
    assert f"refused an ADS stream on {mine['name']}'s socket" in log
