"""The `userspace` runtime: the local mesh without privileges (no root, no namespaces, no iptables).

Same interface and lifecycle as `LocalRuntime` (`preflight`, `start_network`, `xds_address`,
`start_pods`, `wait_apps`, `connect`, `admin_get`, `access_log`, `stop`, `cleanup`), same
`state.json` (so `LocalRuntime.cleanup(home)` tears either down after a SIGKILL), and the same
Istio names in Envoy. Everything runs as the invoking user.

Addresses (Linux routes all of 127.0.0.0/8 to `lo`, and any user may bind there). Each mesh takes
one block 127.N.0.0/16, N chosen from the home's hash and probed (a lock file + a bind test), so
several meshes of several users run side by side on the standard ports:

    127.N.244.10+ (pod IP)      Envoy 15001/15006/15090, and the capture process on the
                                app's declared ports (what other pods and sidecars dial)
    127.N.245.10+ (app address) where the app listens and what its calls come from: the pod's own
                                loopback, so to speak
    127.N.96.10+  (VIP mirror)  one per Service VIP 10.96.0.x: the capture process listens here
    10.96.0.x     (Service VIP) stays the VIP *inside the mesh config*: listener `10.96.0.14_9000`,
                                vhost domains and PROXY headers name it; nothing binds or dials it

Any local user may connect to a loopback address, so nothing that gives control listens on one:
the boss serves each sidecar's ADS on `<pod folder>/etc/istio/proxy/XDS` and each Envoy's admin
API listens on `<pod folder>/admin.sock`, both unix sockets of mode 0600 under a 0700 home.

Apps learn their pod through environment variables (`MESHKIT_POD_LISTEN`, `MESHKIT_POD_SOURCE`,
`MESHKIT_POD_HOSTS`: Service names → VIP mirrors). The capture process (`userspace_capture.py`)
tells outbound from inbound by the connection's source address, which is why the apps bind it.

macOS: only 127.0.0.1 exists on lo0 and adding aliases needs sudo once per boot
(`sudo ifconfig lo0 alias 127.N.244.10 up`, ... and 127.0.0.6); `preflight` prints the exact
commands. Without them, use the kind cluster path. (A one-address fallback with per-pod port
offsets would change every port Envoy shows, which is the lesson, so meshkit does not do it.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path
from typing import Any, ClassVar

from ..constants import INBOUND_PORT, OUTBOUND_PORT, SIDECAR_PORTS, USERSPACE
from ..model import Topology, Workload, demo
from .admin import AdminClient
from .apps import HERE as APPS_DIR
from .apps import app_command
from .base import POD_VIEWS, Runtime
from .bootstrap import ADMIN_SOCKET, ENVOY_XDS_PIPE, XdsAddress, envoy_bootstrap
from .envoy import ENVOY_FLAGS, find_envoy
from .errors import RuntimeProblem
from .local import OUTSIDE_HOST, OUTSIDE_PORTS
from .processes import PodProcesses, ingress_address, mesh_id, popen
from .supervisor import PodHealth, accepts

CAPTURE = USERSPACE
OUTSIDE_OCTET = 253  # 127.N.253.1: the outside world, on no pod's address
INBOUND_BIND = "127.0.0.6"
CAPTURE_SCRIPT = Path(__file__).resolve().parent / "userspace_capture.py"
LOCK_DIR = Path(os.environ.get("MESHKIT_LOCK_DIR", tempfile.gettempdir()))
POD_OCTET, APP_OCTET, VIP_OCTET = 244, 245, 96
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes, the last one a NUL



def _loopback_fix(addresses: list[str]) -> str:
    if sys.platform == "darwin":
        aliases = "; ".join(f"sudo ifconfig lo0 alias {a} up" for a in addresses)
        return f"macOS has only 127.0.0.1 on lo0: add the aliases once ({aliases}), or use `meshkit cluster up`"
    return "this host does not route 127.0.0.0/8 to lo; use capture iptables (sudo) or `meshkit cluster up`"


class UserspaceRuntime(PodProcesses):
    """Pods of `topology` as processes on 127.N.x.y addresses, with a capture process as iptables."""

    capture: ClassVar[str] = CAPTURE

    def __init__(self, home: Path, topology: Topology, block: int, on_pod_health: PodHealth | None = None) -> None:
        super().__init__(home, topology, on_pod_health=on_pod_health, capture=CAPTURE, block=block)
        self.block = block
        self._block_lock: int | None = None
        self._envoy: Path | None = None

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def create(cls, home: Path, build: Callable[[str], Topology] = demo,
               on_pod_health: PodHealth | None = None) -> UserspaceRuntime:
        """A runtime on a free 127.N.0.0/16 (held by a lock file for as long as this process lives),
        its topology made by `build(pod_subnet)` (the built-in demo by default)."""
        home = Path(home).resolve()
        block, lock_fd = cls.allocate_block(home)
        try:
            runtime = cls(home, cls.topology_for(block, build), block, on_pod_health)
        except BaseException:
            os.close(lock_fd)
            raise
        runtime._block_lock = lock_fd
        return runtime

    @staticmethod
    def topology_for(block: int, build: Callable[[str], Topology] = demo) -> Topology:
        from dataclasses import replace

        return replace(build(f"127.{block}.{POD_OCTET}.0/24"), capture=CAPTURE)

    @staticmethod
    def allocate_block(home: Path) -> tuple[int, int]:
        """A block N in 1..254 whose lock is free and whose first pod address is bindable, from the home's hash."""
        start = int(mesh_id(home), 16) % 254
        for i in range(254):
            block = 1 + (start + i) % 254
            path = LOCK_DIR / f"meshkit-userspace-127.{block}.lock"
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
            except PermissionError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            if _bindable(f"127.{block}.{POD_OCTET}.10", OUTBOUND_PORT):
                return block, fd
            os.close(fd)
        raise RuntimeProblem("every 127.N.0.0/16 block is taken by another mesh",
                             "stop other meshes (meshkit down), or remove stale /tmp/meshkit-userspace-*.lock")

    # -- addresses -------------------------------------------------------------------------------
    def app_ip(self, pod: str) -> str:
        """Where `pod`'s app listens and what its calls come from: 127.N.245.<host>."""
        return self._swap(self.topology.workload(pod).ip, APP_OCTET)

    def mirror(self, vip: str) -> str:
        """The loopback address standing in for Service VIP `vip`: 127.N.96.<host>."""
        return f"127.{self.block}.{VIP_OCTET}.{vip.rsplit('.', 1)[1]}"

    def _swap(self, ip: str, octet: int) -> str:
        a, b, _, d = ip.split(".")
        return f"{a}.{b}.{octet}.{d}"

    def netns(self, pod: str) -> str:
        return ""  # no namespaces in this mode

    # -- lifecycle -------------------------------------------------------------------------------
    def preflight(self) -> None:
        """Envoy runnable, every address bindable, every port free: each failure names its fix."""
        self._envoy = find_envoy()
        addresses = [w.ip for w in self.topology.workloads] + [self.app_ip(w.name) for w in self.topology.workloads]
        addresses += [self.mirror(s.vip) for s in self.topology.services] + [INBOUND_BIND]
        for address in addresses:
            try:
                with socket.socket() as probe:
                    probe.bind((address, 0))
            except OSError as error:
                raise RuntimeProblem(f"cannot bind {address} ({error.strerror})", _loopback_fix(addresses)) from error
        wanted = [(w.ip, p) for w in self.topology.sidecars() for p in SIDECAR_PORTS]
        wanted += [(w.ip, p) for w in self.topology.workloads for p in w.ports]
        wanted += [(self.app_ip(w.name), p) for w in self.topology.workloads for p in w.ports]
        wanted += [(self.mirror(s.vip), p.port) for s in self.topology.services for p in s.ports
                   if _may_bind(p.port)]
        taken = [f"{a}:{p}" for a, p in wanted if not _bindable(a, p)]
        if taken:
            raise RuntimeProblem(
                f"ports in use: {', '.join(taken[:5])}{' ...' if len(taken) > 5 else ''}",
                f"a process listens on 0.0.0.0 (all addresses) on one of these ports: find it with "
                f"`ss -ltnp 'sport = :{taken[0].rsplit(':', 1)[1]}'` and stop it, or `meshkit down` a stale mesh",
            )

    def capture_config(self) -> dict[str, Any]:
        topo = self.topology
        return {
            "outbound_port": OUTBOUND_PORT, "inbound_port": INBOUND_PORT,
            "pods": [{"name": w.name, "ip": w.ip, "app_ip": self.app_ip(w.name), "sidecar": w.sidecar,
                      "ports": list(w.ports)} for w in topo.workloads],
            "services": [{"name": s.name, "vip": s.vip, "mirror": self.mirror(s.vip),
                          "ports": {p.port: p.target_port for p in s.ports if _may_bind(p.port)},
                          "endpoints": [w.ip for w in topo.endpoints(s)]} for s in topo.services],
        }

    def start_network(self) -> None:
        """The capture process (this mode's iptables), listening before any app can call."""
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "capture.json"
        config.write_text(json.dumps(self.capture_config(), indent=1))
        for workload in self.topology.workloads:
            self.make_pod_dir(workload.name)  # before the boss opens the pod's ADS socket in it
            (self.pod_dir(workload.name) / "hosts").write_text("\n".join(self.hosts_lines(workload.name)) + "\n")
        argv = [sys.executable, "-I", "-u", str(CAPTURE_SCRIPT), str(config)]
        process = self._supervise(None, "capture", "capture", lambda: popen(argv, self.home / "capture.log"))
        deadline = time.monotonic() + 10.0
        while b"capture ready" not in (self.home / "capture.log").read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeProblem("the capture process did not start",
                                     f"read {self.home}/capture.log, then `meshkit down` and retry")
            time.sleep(0.02)

    def hosts_lines(self, pod: str) -> list[str]:
        """The pod's hosts file: Service names → VIP mirrors (what the app dials)."""
        workload = self.topology.workload(pod)
        lines = [f"{self.app_ip(pod)}\tlocalhost", f"{workload.ip}\t{workload.name}"]
        for s in self.topology.services:
            names = [f"{s.name}.{s.namespace}", f"{s.name}.{s.namespace}.svc", s.fqdn]
            if s.namespace == workload.namespace:
                names.insert(0, s.name)
            lines.append(f"{self.mirror(s.vip)}\t{' '.join(names)}\t# Service VIP {s.vip}")
        lines.append(f"{self.outside()['address']}\t{OUTSIDE_HOST}\t# outside the mesh")
        return lines

    def outside(self) -> dict[str, Any]:
        """The outside world: a plain HTTP server on a loopback address of its own (no capture there)."""
        return {"host": OUTSIDE_HOST, "address": f"127.{self.block}.{OUTSIDE_OCTET}.1", "ports": list(OUTSIDE_PORTS)}

    def admin_socket(self, pod: str) -> Path:
        """The pod's Envoy admin API: a 0600 unix socket in its folder (127.0.0.1 is every user's)."""
        return self.pod_dir(pod) / ADMIN_SOCKET

    def bootstrap(self, workload: Workload) -> dict[str, Any]:
        """Istio's bootstrap with its bound addresses moved from 127.0.0.1/0.0.0.0 to the pod IP, and
        the admin API on a unix socket; paths are relative to Envoy's working directory, the pod folder."""
        boot = envoy_bootstrap(workload, XdsAddress(path=ENVOY_XDS_PIPE), admin_pipe=f"./{ADMIN_SOCKET}")
        boot["node"]["metadata"]["MESHKIT_CAPTURE"] = CAPTURE
        for listener in boot["static_resources"]["listeners"]:
            listener.setdefault("stat_prefix", listener["name"])
            listener["address"]["socket_address"]["address"] = workload.ip
        for cluster in boot["static_resources"]["clusters"]:
            for group in cluster["load_assignment"]["endpoints"]:
                for endpoint in group["lb_endpoints"]:
                    address = endpoint["endpoint"]["address"].get("socket_address", {})
                    if address.get("address") == "127.0.0.1":
                        address["address"] = workload.ip
        return boot

    def start_pods(self) -> None:
        """Start the outside world, every app and every sidecar, each supervised (supervisor.py)."""
        envoy = self._envoy or find_envoy()
        outside = self.outside()
        argv = [sys.executable, "-I", str(APPS_DIR / "outside.py"), "--address", outside["address"],
                *(arg for port in OUTSIDE_PORTS for arg in ("--port", str(port))), "--mesh-home", str(self.home)]
        self._supervise(None, "outside", "outside", lambda: popen(argv, self.home / "outside.log"))
        for workload in self.topology.workloads:
            self.make_pod_dir(workload.name)
            self._supervise_pod(workload, envoy)
        self.supervisor.start()

    def start_pod(self, workload: Workload, topology: Topology) -> None:
        """Start one more Envoy-only pod while the mesh runs (a Gateway API gateway's automated
        deployment). The capture process keeps the Services it started with: pods and the host
        reach the new gateway on its pod IP (as `meshkit curl` does, kube-proxy style)."""
        if workload.ports or not workload.sidecar:
            raise RuntimeProblem(f"{workload.name} is not an Envoy-only pod", "only gateways start at run time")
        self.topology = topology
        self.make_pod_dir(workload.name)
        (self.pod_dir(workload.name) / "hosts").write_text("\n".join(self.hosts_lines(workload.name)) + "\n")
        self._supervise_pod(workload, self._envoy or find_envoy())

    def ingress(self) -> dict[str, Any]:
        """Where the host reaches `istio-ingressgateway`: its pod IP on the loopback, its Envoy's ports."""
        return ingress_address(self.topology)

    def _supervise_pod(self, workload: Workload, envoy: Path) -> None:
        """The pod's app and sidecar, each restarted when it exits, each with its readiness probe."""
        name, pod_dir, app_ip = workload.name, self.pod_dir(workload.name), self.app_ip(workload.name)
        env = {**os.environ, "MESHKIT_POD_LISTEN": app_ip, "MESHKIT_POD_SOURCE": app_ip,
               "MESHKIT_POD_HOSTS": str(pod_dir / "hosts")}
        if workload.ports:  # the outsider serves nothing: it is only a place to call from
            app, port = app_command(workload, APPS_DIR), workload.ports[0]
            self._supervise(name, workload.app, f"app {name}", lambda: popen(app, pod_dir / "app.log", env=env),
                            accepts(lambda: socket.create_connection((app_ip, port), 0.5)))
        if workload.sidecar:
            def sidecar() -> subprocess.Popen:  # the bootstrap anew at each start: `restart_sidecar` may change it
                boot = self.bootstrap(self.topology.workload(name))
                proxy = [str(envoy), "--config-yaml", json.dumps(boot), *ENVOY_FLAGS]
                return popen(proxy, pod_dir / "envoy.log", stdout=pod_dir / "access.log", cwd=pod_dir)

            self._supervise(name, "istio-proxy", f"envoy {name}", sidecar,
                            lambda: self.admin_get(name, "/ready", 0.5).strip() == "LIVE")

    def wait_apps(self, timeout: float = 30.0) -> None:
        targets: dict[str, str | tuple[str, int]] = {
            w.name: (self.app_ip(w.name), w.ports[0]) for w in self.topology.workloads if w.ports}
        targets.update({f"outside:{port}": (self.outside()["address"], port) for port in OUTSIDE_PORTS})
        self.wait_listening({name: _dialer(address) for name, address in targets.items()}, "app.log", timeout)

    def wait_sidecars(self, timeout: float = 30.0) -> None:
        self.wait_listening({w.name: _dialer(str(self.admin_socket(w.name))) for w in self.topology.sidecars()},
                             "envoy.log", timeout)

    # -- from inside a pod ---------------------------------------------------------------------
    def resolve(self, host: str) -> str:
        with contextlib.suppress(ValueError):
            return str(ip_address(host))
        if host == "localhost":
            return "127.0.0.1"
        service = self.topology.service(host)
        if service is None:
            raise RuntimeProblem(f"{host!r} does not resolve inside the pod",
                                 "use a Service name of the mesh (reviews, reviews.default.svc.cluster.local) or an IP")
        return service.vip

    def connect(self, pod: str, host: str, port: int, timeout: float = 5.0) -> socket.socket:
        """A TCP connection as `pod`'s app would make it (captured by the sidecar, like iptables would).

        The pod's 127.0.0.1 is its pod IP for the sidecar's ports and its app address otherwise.
        A Service VIP or a pod IP goes through the capture process, exactly as the app's own calls.
        Any other destination (a ServiceEntry address, a host outside) is handed to the sidecar's
        15001 with a PROXY header here, which is what iptables would have done with it.
        """
        workload = self.topology.workload(pod)
        address = self.resolve(host)
        app_ip = self.app_ip(pod)
        if ip_address(address).is_loopback and not address.startswith(f"127.{self.block}."):
            local = workload.ip if port in SIDECAR_PORTS else app_ip
            return socket.create_connection((local, port), timeout)
        vip = next((s for s in self.topology.services if s.vip == address and s.port(port)), None)
        pod_ips = {w.ip: w for w in self.topology.workloads}
        if vip is not None:
            return socket.create_connection((self.mirror(address), port), timeout, (app_ip, 0))
        if address in pod_ips and port in pod_ips[address].ports:
            return socket.create_connection((address, port), timeout, (app_ip, 0))
        if not workload.sidecar:
            return socket.create_connection((address, port), timeout, (app_ip, 0))
        sock = socket.create_connection((workload.ip, OUTBOUND_PORT), timeout, (app_ip, 0))
        header = f"PROXY TCP4 {workload.ip} {address} {sock.getsockname()[1]} {port}\r\n"
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(header.encode())
        return sock

    def admin_get(self, pod: str, path: str, timeout: float = 5.0) -> str:
        """GET a path of the pod's Envoy admin (its unix socket here); the body whatever the status."""
        address = str(self.admin_socket(pod))
        return AdminClient(lambda: _connect(address, timeout), timeout=timeout).text(path)

    def pod_view(self, pod: str, what: str) -> str:
        """The read-only pod views of `mesh.pod_info`, as this mode has them."""
        workload = self.topology.workload(pod)
        if what == "iptables":
            return self.capture_rules(pod)
        if what == "hosts":
            return "\n".join(self.hosts_lines(pod)) + "\n"
        if what == "addresses":
            return (f"capture userspace: no network namespace; this pod's addresses on the host's lo\n"
                    f"lo  pod IP {workload.ip}/32 (sidecar ports, captured app ports)\n"
                    f"lo  app    {self.app_ip(pod)}/32 (the app listens and calls from here)\n")
        if what == "sockets":
            mine = (workload.ip + ":", self.app_ip(pod) + ":")
            out = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True, check=False).stdout.splitlines()
            return "\n".join([out[0], *(line for line in out[1:] if any(m in line for m in mine))]) + "\n"
        raise RuntimeProblem(f"unknown view {what!r}", f"choose one of {', '.join(POD_VIEWS)}")

    def capture_rules(self, pod: str) -> str:
        """What the capture process does for `pod`, in the shape of istio-init's nat table."""
        workload = self.topology.workload(pod)
        app = self.app_ip(pod)
        lines = [f"# capture userspace: no iptables; the capture process ({self.home}/capture.log) does this for "
                 f"{workload.name}", "# ISTIO_OUTPUT (calls from the app, source " + app + ")"]
        for s in self.topology.services:
            for p in s.ports:
                target = f"{workload.ip}:{OUTBOUND_PORT} + PROXY dst {s.vip}:{p.port}" if workload.sidecar \
                    else "an endpoint (kube-proxy)"
                lines.append(f"-A ISTIO_OUTPUT -s {app} -d {self.mirror(s.vip)} --dport {p.port} -> {target}")
        lines.append("# ISTIO_INBOUND (connections to the pod IP)")
        for port in workload.ports:
            lines.append(f"-A ISTIO_INBOUND -s {INBOUND_BIND} -d {workload.ip} --dport {port} -> RETURN "
                         f"(the app at {app}:{port})")
            if workload.sidecar:
                lines.append(f"-A ISTIO_INBOUND -d {workload.ip} --dport {port} -> {workload.ip}:{INBOUND_PORT} "
                             f"+ PROXY dst {workload.ip}:{port}")
        lines.append("# not captured: other ports of the pod IP, and calls the app makes to addresses that are "
                     "neither a Service VIP mirror nor a pod IP")
        return "\n".join(lines) + "\n"


_: type[Runtime] = UserspaceRuntime


def _dialer(address: str | tuple[str, int]) -> Callable[[], socket.socket]:
    return lambda: _connect(address, 0.5)


def _connect(address: str | tuple[str, int], timeout: float) -> socket.socket:
    """A connection to a unix socket (a path) or a TCP `(host, port)`."""
    if isinstance(address, tuple):
        return socket.create_connection(address, timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    folder = None
    try:
        sock.settimeout(timeout)
        if len(os.fsencode(address)) > MAX_SOCKET_PATH:  # a deep home: reach the folder by a short name
            folder = os.open(Path(address).parent, os.O_PATH | os.O_DIRECTORY)
            address = f"/proc/self/fd/{folder}/{Path(address).name}"
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    finally:
        if folder is not None:
            os.close(folder)
    return sock


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as listeners do: TIME_WAIT is no owner
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def _may_bind(port: int) -> bool:
    """Whether this user may listen on `port` (the gate's Service has 80 and 443): without privileges
    the capture process leaves such VIP mirrors out; Envoys reach the gate's pod IP directly anyway."""
    if os.geteuid() == 0:
        return True
    try:
        start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        start = 1024
    return port >= start
