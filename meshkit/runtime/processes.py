"""What both local runtimes share: the state file that makes `cleanup` work after SIGKILL, and
the pods' processes (kept running by `supervisor.Supervisor`) and log folders.

Everything a runtime creates is written to `<home>/state.json` *before* it is created, so a fresh
process can tear down a mesh whose owner was killed: `LocalRuntime.cleanup(home)` needs nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..model import Topology
from ..model.bookinfo import INGRESS
from . import netns
from .bootstrap import POD_XDS_SOCKET, XdsAddress
from .errors import RuntimeProblem
from .supervisor import PodHealth, Supervisor

STATE_FILE = "state.json"


def mesh_id(home: Path) -> str:
    return hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:6]


def start_time(pid: int) -> int | None:
    """A process's start time in clock ticks (None if gone): with the pid, a unique identity."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[19])


def kill_all(pids: Iterable[int], grace_s: float = 1.0) -> None:
    """SIGTERM, then SIGKILL what is still alive after `grace_s`; returns once all are gone."""
    alive = {pid for pid in pids if pid != os.getpid() and start_time(pid) is not None}
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while alive and time.monotonic() < deadline:
            time.sleep(0.02)
            alive = {pid for pid in alive if start_time(pid) is not None}
        if not alive:
            return


def owner_alive(home: Path) -> bool | None:
    """Whether the process that owns `home`'s mesh (the daemon) still runs; None when no mesh is recorded.

    False means it was killed (SIGKILL leaves no time to clean up): its pods and network remain
    and `cleanup(home)` must remove them before a fresh start.
    """
    state = load_state(home)
    if state is None:
        return None
    return any(p["what"] == "registered" and start_time(p["pid"]) == p["start"] for p in state["pids"])


def load_state(home: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(home) / STATE_FILE).read_text())
    except FileNotFoundError:
        return None


def popen(argv: list[str], log: Path, stdout: Path | None = None, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen:
    """Start `argv` in its own session, stderr (and stdout, unless `stdout` names its own file) appended to `log`."""
    with open(log, "ab") as err, open(stdout or os.devnull, "ab") as out:
        return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out if stdout else err,
                                stderr=err, start_new_session=True, cwd=cwd)


class PodProcesses:
    """A mesh's home, its recorded state, and the processes it started (apps, sidecars, helpers)."""

    def __init__(self, home: Path, topology: Topology, *, on_pod_health: PodHealth | None = None,
                 **state: Any) -> None:
        self.home = Path(home).resolve()
        self.topology = topology
        self.mesh_id = mesh_id(self.home)
        self._lock = threading.Lock()
        self._state: dict[str, Any] = load_state(self.home) or {
            "mesh_id": self.mesh_id, "bridge": None, "netns": [], "etc_netns": [], "pids": []}
        self._state.update(state)
        self._procs: dict[str, subprocess.Popen] = {}  # the current process of each, restarts included
        self.supervisor = Supervisor(self._started, on_pod_health)

    def pod_dir(self, pod: str) -> Path:
        """Where a pod's logs go: `<home>/pods/<pod name>/`."""
        return self.home / "pods" / self.topology.workload(pod).name

    def xds_address(self, pod: str) -> XdsAddress:
        """`pod`'s own ADS socket, `<pod folder>/etc/istio/proxy/XDS`, for the sidecar's uid alone."""
        return XdsAddress(path=str(self.pod_dir(pod) / POD_XDS_SOCKET), uid=self.proxy_uid)

    def make_pod_dir(self, pod: str) -> Path:
        """The pod's folder and its proxy's private folder, where the boss puts the pod's ADS socket.

        Only the sidecar's uid (and root) may open the socket: the folder holding it belongs to
        that uid, mode 0700. The pod folder lets that uid through (group `proxy_uid`, 0710) and
        nobody else; Envoy starts with the pod folder as its working directory and dials
        `./etc/istio/proxy/XDS`, as in an Istio pod, so the folders above it (the home, perhaps
        under a 0700 /root) need not let it through.
        """
        pod_dir = self.pod_dir(pod)
        pod_dir.mkdir(parents=True, exist_ok=True)
        uid = self.proxy_uid
        if uid != os.geteuid():
            os.chown(pod_dir, os.geteuid(), uid)
        pod_dir.chmod(0o710 if uid != os.geteuid() else 0o700)
        proxy = pod_dir / POD_XDS_SOCKET
        for folder in reversed(proxy.parents[: len(Path(POD_XDS_SOCKET).parents) - 1]):
            folder.mkdir(exist_ok=True)
            if uid != os.geteuid():
                os.chown(folder, uid, uid)
            folder.chmod(0o700)
        return pod_dir

    @property
    def proxy_uid(self) -> int:
        """The uid the sidecars run as (iptables capture: Istio's 1337; userspace: this process's)."""
        return os.geteuid()

    def access_log(self, pod: str) -> Path:
        """The pod's sidecar access log (Envoy's stdout)."""
        return self.pod_dir(pod) / "access.log"

    def _record(self, key: str, value: Any) -> None:
        """Remember something before creating it (atomic write, so a kill never leaves half a file)."""
        with self._lock:
            if key == "bridge":
                self._state[key] = value
            elif value not in self._state[key]:
                self._state[key].append(value)
            self.home.mkdir(parents=True, exist_ok=True)
            tmp = self.home / f"{STATE_FILE}.tmp"
            tmp.write_text(json.dumps(self._state, indent=1))
            tmp.replace(self.home / STATE_FILE)

    def _record_pid(self, pid: int, what: str) -> None:
        self._record("pids", {"pid": pid, "start": start_time(pid), "what": what})

    def register_pid(self, pid: int) -> None:
        """Record another process (the daemon) for `cleanup` to stop; a pid reused since is spared."""
        self._record_pid(pid, "registered")

    def _started(self, what: str, process: subprocess.Popen) -> None:
        self._procs[what] = process
        self._record_pid(process.pid, what)

    def _supervise(self, pod: str | None, name: str, what: str, spawn: Callable[[], subprocess.Popen],
                   probe: Callable[[], bool] | None = None) -> subprocess.Popen:
        """Start a process now and restart it whenever it exits (with Kubernetes' back-off)."""
        return self.supervisor.add(pod, name, what, spawn, probe)

    def restart_sidecar(self, pod: str, xds: str) -> None:
        """Start the pod's sidecar again with a bootstrap speaking `xds` (DELTA or SOTW), as a changed pod would."""
        workload = self.topology.workload(pod)
        self.topology = replace(self.topology, workloads=tuple(
            replace(w, xds=xds) if w.name == workload.name else w for w in self.topology.workloads))
        self.supervisor.restart(f"envoy {workload.name}")

    def _dead(self) -> list[str]:
        """Processes that exited since they were started (at start-up: a failed start)."""
        exited = [what for what, process in self._procs.items() if process.poll() is not None]
        return sorted({*exited, *self.supervisor.crashed()})

    def pods_table(self) -> list[dict]:
        """`kubectl get pods`: NAME READY STATUS RESTARTS AGE per pod (see supervisor.py)."""
        self.supervisor.probe_now()
        return self.supervisor.rows()

    def wait_listening(self, dials: dict[str, Callable[[], socket.socket]], log: str, timeout: float) -> None:
        """Return once every dial connects; RuntimeProblem naming who is not listening, or who exited."""
        deadline = time.monotonic() + timeout
        waiting = dict(dials)
        while waiting:
            for name, dial in list(waiting.items()):
                with contextlib.suppress(OSError):
                    dial().close()
                    del waiting[name]
            dead = self._dead()
            if dead or (waiting and time.monotonic() > deadline):
                late = ", ".join(sorted(waiting))
                what = f"processes exited: {dead}" if dead else f"not listening after {timeout:.0f} s: {late}"
                raise RuntimeProblem(f"pods did not come up ({what})",
                                     f"read {self.home}/pods/<pod>/{log}, then `meshkit down` and retry")
            if waiting:
                time.sleep(0.05)

    def stop_pod(self, workload: Any) -> None:
        """Stop a pod started at run time (a deleted Gateway's Deployment): its processes, no restart."""
        processes = self.supervisor.remove(workload.name)
        kill_all(p.pid for p in processes)
        for process in processes:
            process.wait()

    def stop(self) -> None:
        """Stop this runtime's processes and remove everything it created."""
        self.supervisor.stop()  # first: nothing killed below may be restarted
        kill_all(p.pid for p in self._procs.values())
        for process in self._procs.values():
            process.wait()
        self.cleanup(self.home)

    @classmethod
    def cleanup(cls, home: Path) -> None:
        """Remove everything `<home>/state.json` records: processes, netns, bridge, /etc/netns, the file.

        Works from any process (the owner may have been SIGKILLed) and is idempotent.
        """
        home = Path(home).resolve()
        state = load_state(home)
        if state is None:
            return
        recorded = [p["pid"] for p in state["pids"] if start_time(p["pid"]) == p["start"]]
        in_pods = [pid for ns in state["netns"] for pid in netns.netns_pids(ns)]
        kill_all([*recorded, *in_pods])
        for ns in state["netns"]:
            netns.delete_netns(ns)
        if state["bridge"]:
            netns.delete_link(state["bridge"])
        for directory in map(Path, state["etc_netns"]):
            if directory.parent == netns.NETNS_ETC:
                shutil.rmtree(directory, ignore_errors=True)
        with contextlib.suppress(OSError):  # /etc/netns itself, once no mesh uses it
            netns.NETNS_ETC.rmdir()
        (home / STATE_FILE).unlink(missing_ok=True)


def ingress_address(topology: Topology) -> dict[str, Any]:
    """The ingress gateway as the host reaches it in the local modes: its pod IP and the ports its
    Envoy binds (the targetPorts of Service `istio-ingressgateway`: 8080 plain, 8443 TLS)."""
    service = next((s for s in topology.services if s.name == INGRESS), None)
    pods = topology.endpoints(service) if service else []
    if service is None or not pods:
        raise RuntimeProblem("this mesh has no istio-ingressgateway", "start the demo mesh (meshkit up)")
    ports = {p.port: p.target_port for p in service.ports}
    address = pods[0].ip
    return {"address": address, "http_port": ports.get(80, 8080), "https_port": ports.get(443, 8443),
            "url": f"http://{address}:{ports.get(80, 8080)}"}
