"""The local runtime: every pod a network namespace on a bridge, with its app and its Envoy sidecar.

Names derive from the mesh's home directory (a short hash), so two meshes with different homes
never share a bridge, a netns or a subnet. Everything the runtime creates is written to
`<home>/state.json` *before* it is created; `LocalRuntime.cleanup(home)` needs nothing else, so a
fresh process can tear down a mesh whose owner was killed with SIGKILL.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from ipaddress import IPv4Network, ip_network
from pathlib import Path
from typing import Any, ClassVar

from ..constants import ADMIN_PORT, APP_UID, IPTABLES, PROXY_UID
from ..model import Topology, Workload
from . import capture, netns
from .admin import AdminClient
from .apps import HERE as APPS_DIR
from .apps import app_command, app_python
from .base import POD_VIEWS, Runtime
from .bootstrap import ENVOY_XDS_PIPE, XdsAddress, envoy_bootstrap
from .envoy import find_envoy, start_envoy
from .errors import RuntimeProblem
from .processes import PodProcesses, ingress_address, mesh_id, popen
from .shared import world_usable
from .supervisor import PodHealth, accepts

OUTSIDE_HOST = "httpbin.example.com"  # .example.com is reserved (RFC 2606): nothing real answers it
OUTSIDE_PORTS = (9080, 8080)  # 9080: a port the sidecars have an HTTP listener for; 8080: none
POD_PREFIX = 24
POD_SUPERNET = IPv4Network("10.244.0.0/16")
TOOLS = ("ip", "iptables", "iptables-restore", "setpriv")
NOT_ROOT_FIX = (
    "iptables capture needs root or an unprivileged user namespace; run with sudo, "
    "or use the kind cluster path (meshkit cluster up)"
)
VIEW_COMMANDS = {  # what `pod_view` runs inside the pod's netns, per view
    "iptables": ["iptables-save", "-t", "nat"],
    "sockets": ["ss", "-ltnp"],
    "hosts": ["cat", "/etc/hosts"],
    "addresses": ["ip", "-brief", "address"],
}


class LocalRuntime(PodProcesses):
    """Pods of `topology` as network namespaces on this machine, under `home`."""

    capture: ClassVar[str] = IPTABLES

    def __init__(self, home: Path, topology: Topology, on_pod_health: PodHealth | None = None) -> None:
        super().__init__(home, topology, on_pod_health=on_pod_health)
        first = topology.workloads[0].ip
        self.subnet = ip_network(f"{first}/{POD_PREFIX}", strict=False)
        self.gateway = str(self.subnet.network_address + 1)
        strays = [w.name for w in topology.workloads if w.ip not in {str(h) for h in self.subnet.hosts()}]
        if strays or self.gateway in {w.ip for w in topology.workloads}:
            raise RuntimeProblem(
                f"pods must share one /{POD_PREFIX} whose .1 is free for the bridge (check {strays or 'the .1'})",
                "build the topology on LocalRuntime.allocate_subnet(home)",
            )
        self._envoy: Path | None = None  # staged by preflight() where uid 1337 can run it
        self._apps: Path | None = None

    # -- names -----------------------------------------------------------------------------------
    @staticmethod
    def bridge_name(home: Path) -> str:
        """The mesh's bridge on the host: `mkbr<id>` (10 characters, within IFNAMSIZ)."""
        return f"mkbr{mesh_id(home)}"

    @staticmethod
    def netns_prefix(home: Path) -> str:
        """What every pod netns name of the mesh starts with: `mk<id>-`."""
        return f"mk{mesh_id(home)}-"

    def netns(self, pod: str) -> str:
        """The netns of a pod, by pod or Deployment name: `mk<id>-reviews-v2`; a Deployment with
        several replicas names each netns by its pod: `mk<id>-web-6c9f8d7b5d-x2k4p`."""
        workload = self.topology.workload(pod)
        shared = sum(w.deployment == workload.deployment for w in self.topology.workloads) > 1
        return self.netns_prefix(self.home) + (workload.name if shared else workload.deployment)

    @staticmethod
    def allocate_subnet(home: Path) -> str:
        """A /24 of 10.244.0.0/16 no host address or route uses, probing from the home's hash."""
        used = []
        for line in netns.run(["ip", "-4", "-o", "addr", "show"]).splitlines():
            used.append(ip_network(line.split()[3], strict=False))
        for line in netns.run(["ip", "-4", "route", "show", "table", "all"]).splitlines():
            dst = line.split()[0]
            if dst[0].isdigit():
                used.append(ip_network(dst, strict=False))
        candidates = list(POD_SUPERNET.subnets(new_prefix=POD_PREFIX))
        start = int(mesh_id(home), 16) % len(candidates)
        for i in range(len(candidates)):
            subnet = candidates[(start + i) % len(candidates)]
            if not any(subnet.overlaps(u) for u in used if u.prefixlen > 0):
                return str(subnet)
        raise RuntimeProblem(f"every /{POD_PREFIX} of {POD_SUPERNET} is in use on this host",
                             "stop other meshes (meshkit down) or remove stale 10.244.x.x addresses")

    # -- state -----------------------------------------------------------------------------------
    # -- lifecycle -------------------------------------------------------------------------------
    def preflight(self) -> None:
        """Check everything a start needs, each failure a RuntimeProblem naming its fix."""
        if os.geteuid() != 0:
            raise RuntimeProblem("the local mesh is not running as root", NOT_ROOT_FIX)
        missing = [tool for tool in TOOLS if shutil.which(tool) is None]
        if missing:
            raise RuntimeProblem(f"{', '.join(missing)} not found on PATH",
                                 "apt-get install iproute2 iptables util-linux (or your distribution's equivalents)")
        capture.script()
        self._envoy = world_usable(find_envoy())
        app_python()
        self._apps = world_usable(APPS_DIR)

    def start_network(self) -> None:
        """Bridge, one netns per pod with /etc/netns names, and Istio's capture rules in sidecar pods."""
        bridge = self.bridge_name(self.home)
        if Path("/sys/class/net", bridge).exists():
            raise RuntimeProblem(f"the bridge {bridge} of an earlier mesh in {self.home} still exists",
                                 "run `meshkit down` (LocalRuntime.cleanup(home)) first")
        self._record("bridge", bridge)
        netns.create_bridge(bridge, self.gateway, POD_PREFIX)
        for index, workload in enumerate(self.topology.workloads):
            self._start_pod_network(index, workload, bridge)

    def _start_pod_network(self, index: int, workload: Workload, bridge: str) -> None:
        ns = self.netns(workload.name)
        self._record("netns", ns)
        self._record("etc_netns", str(netns.NETNS_ETC / ns))
        netns.create_pod(ns, f"mk{self.mesh_id}v{index}", bridge, workload.ip, POD_PREFIX, self.gateway)
        netns.write_etc(ns, self.topology, workload, {OUTSIDE_HOST: self.gateway})
        if any(port < 1024 for port in workload.ports):
            netns.allow_low_ports(ns)
        self.make_pod_dir(workload.name)  # before the boss opens the pod's ADS socket in it
        if workload.captured:
            capture.apply(ns)
        elif workload.sidecar:  # a gateway: no capture, and Envoy (uid 1337) may bind 80/443 as Istio's do
            netns.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_unprivileged_port_start=0"])

    @property
    def proxy_uid(self) -> int:
        """Istio's proxy uid: the only one (root aside) that may open a pod's ADS socket."""
        return PROXY_UID

    def outside(self) -> dict[str, Any]:
        """The outside world: a host name every pod resolves, the address and ports it answers on."""
        return {"host": OUTSIDE_HOST, "address": self.gateway, "ports": list(OUTSIDE_PORTS)}

    def start_pods(self) -> None:
        """Start every pod's app (as uid 1000) and sidecar (as uid 1337) without waiting for them.

        Also the outside world: a plain HTTP server on the host (no netns, no sidecar), as uid 1000,
        bound to the bridge's gateway address only, so only this mesh's pods (and the host) reach it.
        Each process is supervised: one that exits is started again (supervisor.py).
        """
        envoy, apps = self._envoy or world_usable(find_envoy()), self._apps or world_usable(APPS_DIR)
        argv = [app_python(), "-I", str(apps / "outside.py"), "--address", self.gateway,
                *(arg for port in OUTSIDE_PORTS for arg in ("--port", str(port))), "--mesh-home", str(self.home)]
        outside = ["setpriv", f"--reuid={APP_UID}", f"--regid={APP_UID}", "--clear-groups", "--", *argv]
        self._supervise(None, "outside", "outside", lambda: popen(outside, self.home / "outside.log"))
        for workload in self.topology.workloads:
            ns, pod_dir = self.netns(workload.name), self.make_pod_dir(workload.name)
            if not workload.ports and not workload.sidecar:  # the outsider runs nothing, it only sends requests
                continue
            self._supervise_pod(workload, ns, pod_dir, app_command(workload, apps) if workload.ports else [], envoy)
        self.supervisor.start()

    def _supervise_pod(self, workload: Workload, ns: str, pod_dir: Path, command: list[str], envoy: Path) -> None:
        """The pod's app and sidecar, each restarted when it exits, each with its readiness probe."""
        name = workload.name
        if workload.ports:  # a sidecar pod may serve nothing (a client like Istio's curl sample)
            app, port = netns.command_in(ns, command, uid=APP_UID), workload.ports[0]
            self._supervise(name, workload.app, f"app {name}", lambda: popen(app, pod_dir / "app.log"),
                            accepts(lambda: self.connect(name, "127.0.0.1", port, 0.5)))
        if workload.sidecar:
            def sidecar() -> subprocess.Popen:  # the bootstrap anew at each start: `restart_sidecar` may change it
                workload_now = self.topology.workload(name)
                bootstrap = envoy_bootstrap(workload_now, XdsAddress(path=ENVOY_XDS_PIPE), admin_port=ADMIN_PORT)
                return start_envoy(ns, bootstrap, pod_dir, envoy)

            self._supervise(name, "istio-proxy", f"envoy {name}", sidecar,
                            lambda: self.admin_get(name, "/ready", 0.5).strip() == "LIVE")

    def start_pod(self, workload: Workload, topology: Topology) -> None:
        """Start one more Envoy-only pod while the mesh runs (a Gateway API gateway's automated
        deployment): its netns on the bridge, no capture, its supervised Envoy dialling its own socket.
        `topology` is the book that has it; the boss serves the pod's socket before this is called."""
        if workload.ports or not workload.sidecar:
            raise RuntimeProblem(f"{workload.name} is not an Envoy-only pod", "only gateways start at run time")
        self.topology = topology
        self._start_pod_network(topology.workloads.index(workload), workload, self.bridge_name(self.home))
        envoy = self._envoy or world_usable(find_envoy())
        self._supervise_pod(workload, self.netns(workload.name), self.pod_dir(workload.name), [], envoy)

    def stop_pod(self, workload: Workload) -> None:
        super().stop_pod(workload)
        ns = self.netns_prefix(self.home) + workload.deployment
        netns.delete_netns(ns)
        shutil.rmtree(netns.NETNS_ETC / ns, ignore_errors=True)

    def ingress(self) -> dict[str, Any]:
        """Where the host reaches `istio-ingressgateway`: its pod IP, through the bridge (the host's
        side of the bridge is in the pod subnet), on the ports its Envoy listens on."""
        return ingress_address(self.topology)

    def wait_apps(self, timeout: float = 30.0) -> None:
        """Return once every app accepts on 127.0.0.1:<port> inside its pod, and the outside world on the host."""
        self.wait_listening({w.name: self._dial(w.name, w.ports[0]) for w in self.topology.workloads if w.ports},
                            "app.log", timeout)
        deadline = time.monotonic() + timeout
        for port in OUTSIDE_PORTS:
            while True:
                try:
                    socket.create_connection((self.gateway, port), timeout=0.5).close()
                    break
                except OSError as exc:
                    process = self._procs.get("outside")
                    if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
                        raise RuntimeProblem(f"the outside world is not listening on {self.gateway}:{port} ({exc})",
                                             f"read {self.home}/outside.log") from exc
                    time.sleep(0.05)

    def wait_sidecars(self, timeout: float = 30.0) -> None:
        """Return once every sidecar's admin accepts on 127.0.0.1:15000 inside its pod."""
        self.wait_listening({w.name: self._dial(w.name, ADMIN_PORT) for w in self.topology.sidecars()},
                            "envoy.log", timeout)

    def _dial(self, pod: str, port: int) -> Callable[[], socket.socket]:
        return lambda: self.connect(pod, "127.0.0.1", port, timeout=0.5)

    def connect(self, pod: str, host: str, port: int, timeout: float = 5.0) -> socket.socket:
        """A TCP connection from inside `pod` (as root: to a VIP it goes through the pod's sidecar)."""
        return netns.connect(self.netns(pod), host, port, timeout)

    def admin_get(self, pod: str, path: str, timeout: float = 5.0) -> str:
        """GET a path of the pod's Envoy admin (127.0.0.1:15000 inside the pod: the private path).

        The body comes back whatever the status: Envoy's own words (`PRE_INITIALIZING` from
        /ready, the list of endpoints for an unknown path) say more than a status code.
        """
        return AdminClient(lambda: self.connect(pod, "127.0.0.1", ADMIN_PORT, timeout), timeout=timeout).text(path)

    def pod_view(self, pod: str, what: str) -> str:
        """A read-only look inside the pod's netns: its nat rules, listening sockets, hosts file, addresses."""
        if what not in VIEW_COMMANDS:
            raise RuntimeProblem(f"unknown view {what!r}", f"choose one of {', '.join(POD_VIEWS)}")
        argv = ["ip", "netns", "exec", self.netns(pod), *VIEW_COMMANDS[what]]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        return result.stdout + result.stderr


_: type[Runtime] = LocalRuntime
