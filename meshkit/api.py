"""The notebook and CLI face of a running mesh.

>>> import meshkit
>>> mesh = meshkit.up()                         # or meshkit.connect() to attach
>>> mesh.pc.listeners("productpage-v1")          # what that sidecar's Envoy holds
>>> mesh.curl("productpage-v1", "http://reviews:9080/reviews/0", n=10)
>>> mesh.apply(open("route.yaml").read(), pods=["productpage-v1"])
>>> mesh.status()

Every view reads the lieutenant (Envoy's admin API inside the pod), never the boss's memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from . import control
from .control import ControlError, NotRunning
from .inspect import proxy_config
from .inspect import secrets as inspect_secrets
from .inspect import stats as inspect_stats
from .inspect.sync_status import status_table
from .runtime.local import LocalRuntime
from .runtime.processes import owner_alive

UP_TIMEOUT_S = 60.0
DOWN_TIMEOUT_S = 15.0
POD_COLUMNS = ("NAME", "READY", "STATUS", "RESTARTS", "AGE")  # kubectl get pods


def home_dir(home: str | os.PathLike | None = None) -> Path:
    """The mesh's state folder: `home`, else `$MESHKIT_HOME`, else `~/.meshkit`."""
    chosen = home or os.environ.get("MESHKIT_HOME") or Path.home() / ".meshkit"
    return Path(chosen).expanduser().resolve()


class ProxyConfig:
    """`istioctl proxy-config` for one mesh: tables read from a pod's Envoy `/config_dump`."""

    def __init__(self, mesh: Mesh) -> None:
        self._mesh = mesh

    def config_dump(self, pod: str, include_eds: bool = True) -> dict:
        path = "/config_dump?include_eds" if include_eds else "/config_dump"
        return json.loads(self._mesh.admin(pod, path))

    def listeners(self, pod: str, **filters: object) -> pd.DataFrame:
        return proxy_config.listeners(self.config_dump(pod, include_eds=False), **filters)

    def routes(self, pod: str, **filters: object) -> pd.DataFrame:
        return proxy_config.routes(self.config_dump(pod, include_eds=False), **filters)

    def clusters(self, pod: str, **filters: object) -> pd.DataFrame:
        return proxy_config.clusters(self.config_dump(pod, include_eds=False), **filters)

    def endpoints(self, pod: str, **filters: object) -> pd.DataFrame:
        return proxy_config.endpoints(json.loads(self._mesh.admin(pod, "/clusters?format=json")), **filters)

    def secrets(self, pod: str) -> pd.DataFrame:
        """`istioctl pc secret`: the SDS certificates the pod's Envoy holds (serial, SPIFFE id, validity)."""
        return inspect_secrets.secrets(self.config_dump(pod, include_eds=False))


class Mesh:
    """A running mesh, reached through its boss's private control socket."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.pc = ProxyConfig(self)

    def __repr__(self) -> str:
        return f"Mesh(home={str(self.home)!r})"

    def _call(self, op: str, timeout: float = 60.0, **args: object) -> object:
        return control.call(self.home / "control.sock", op, args, timeout=timeout)

    # -- orders ----------------------------------------------------------------------------
    def apply(self, text: str, pods: Iterable[str] | None = None) -> dict:
        """Push raw Envoy resources (YAML/JSON, `"@type"` per document) to `pods` (default: all).

        Returns the push record once every target ACKed; raises `ControlError` (problem
        'nack' with Envoy's error text, or 'invalid' before anything was pushed) otherwise.
        """
        return self._call("apply", text=text, pods=list(pods or []))  # type: ignore[return-value]

    def delete(self, text: str) -> dict:
        """Delete the Istio resources named in `text` (as `kubectl delete -f`)."""
        return self._call("delete", text=text)  # type: ignore[return-value]

    def get(self, kind: str) -> list[dict]:
        """The Istio resources of `kind` the boss holds (VirtualService, DestinationRule, ...)."""
        return self._call("get", kind=kind)  # type: ignore[return-value]

    def xds(self, pod: str, text: str = "") -> dict:
        """The LDS/RDS/CDS/EDS resources `pod` would get if `text` were applied ("show generated xDS")."""
        return self._call("xds", pod=pod, text=text)  # type: ignore[return-value]

    def set_outbound_traffic_policy(self, mode: str) -> dict:
        """Mesh-wide `outboundTrafficPolicy.mode`: ALLOW_ANY (default) or REGISTRY_ONLY."""
        return self.apply(f"kind: MeshConfig\napiVersion: meshkit/v1\noutboundTrafficPolicy:\n  mode: {mode}\n")

    def revert(self, pods: Iterable[str] | None = None) -> dict:
        """Drop raw overrides so `pods` (default: all) get the generated config back."""
        return self._call("revert", pods=list(pods or []))  # type: ignore[return-value]

    # -- views -----------------------------------------------------------------------------
    def status(self) -> pd.DataFrame:
        """`istioctl proxy-status`: each sidecar's sync state per xDS type."""
        return status_table(self.status_rows())

    def status_rows(self) -> list[dict]:
        return self._call("status")  # type: ignore[return-value]

    def history(self) -> pd.DataFrame:
        """Every push: when, why, what changed, and which proxies ACKed or NACKed."""
        rows = []
        for push in self.history_rows():
            results = push["results"]
            rows.append({
                "PUSH": push["id"],
                "TIME": time.strftime("%H:%M:%S", time.localtime(push["started"])),
                "REASON": push["reason"],
                "CHANGED": len(push["changes"]),
                "ACK": sum(1 for r in results.values() if r and set(r.values()) == {"ACK"}),
                "NACK": ", ".join(sorted(push["errors"])) or "-",
                "MS": round(push["duration_ms"] or 0.0, 1),
            })
        return pd.DataFrame(rows, columns=["PUSH", "TIME", "REASON", "CHANGED", "ACK", "NACK", "MS"])

    def history_rows(self) -> list[dict]:
        return self._call("history")  # type: ignore[return-value]

    def curl(
        self,
        pod: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        n: int = 1,
        method: str = "GET",
    ) -> pd.DataFrame:
        """Send `n` requests from inside `pod` through its sidecar; one row per request."""
        rows = self.curl_rows(pod, url, headers, n, method)
        frame = pd.DataFrame(rows)
        return frame[["status", "pod", "version", "flags", "upstream_cluster", "elapsed_ms", "error"]]

    def curl_rows(
        self,
        pod: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        n: int = 1,
        method: str = "GET",
        timeout: float = 10.0,
    ) -> list[dict]:
        """As `curl`, as dicts; `timeout` bounds each request (connect and reply) in seconds."""
        wait = 30.0 + n * (2.0 + timeout)
        args = {"pod": pod, "url": url, "headers": dict(headers or {}), "n": n, "method": method,
                "timeout": timeout}  # the daemon's per-request timeout (not the control call's)
        return control.call(self.home / "control.sock", "curl", args, timeout=wait)  # type: ignore[return-value]

    def tcp(self, pod: str, host: str, port: int, text: str = "hello\n") -> dict:
        """Send `text` over TCP from inside `pod` (captured by its sidecar) and return the reply."""
        return self._call("tcp", pod=pod, host=host, port=port, text=text)  # type: ignore[return-value]

    def pod_info(self, pod: str, what: str = "iptables") -> str:
        """A read-only look inside a pod: 'iptables' (nat rules), 'sockets', 'hosts' or 'addresses'."""
        return self._call("pod_info", pod=pod, what=what)  # type: ignore[return-value]

    def pods_table(self) -> pd.DataFrame:
        """`kubectl get pods`: NAME READY STATUS RESTARTS AGE, as the runtime's supervisor sees the pods.

        A crashed app or sidecar is restarted with Kubernetes' back-off; RESTARTS counts it.
        """
        return pd.DataFrame([{k: r[k] for k in POD_COLUMNS} for r in self.pods_rows()], columns=list(POD_COLUMNS))

    def pods_rows(self) -> list[dict]:
        """As `pods_table`, as dicts, with the numbers behind the text (`restarts`, `ready`, per-container pids)."""
        return self._call("pods")  # type: ignore[return-value]

    def stop_boss(self) -> bool:
        """Stop the control plane's ADS server; sidecars keep serving their last config."""
        return self._call("boss", action="stop")["running"]  # type: ignore[index]

    def start_boss(self) -> bool:
        """Start the ADS server again; sidecars reconnect and resync on their own."""
        return self._call("boss", action="start")["running"]  # type: ignore[index]

    # -- identity ------------------------------------------------------------------------------------
    def identity(self, ttl_s: float | None = None, rotate: bool = False,
                 pods: Iterable[str] | None = None) -> dict:
        """The certificates the boss issued; `ttl_s` changes their lifetime (and re-issues them all),
        `rotate=True` re-issues them now (for `pods`, default all sidecars)."""
        return self._call("identity", ttl_s=ttl_s, rotate=rotate,  # type: ignore[return-value]
                          pods=list(pods) if pods is not None else None)

    def stats(self, pod: str, pattern: str = "") -> dict[str, int]:
        """The pod's Envoy counters whose names match `pattern` (a regex), from `/stats`."""
        return inspect_stats.counters(self.admin(pod, "/stats"), pattern)

    def requests(self, pods: Iterable[str] | None = None) -> pd.DataFrame:
        """Requests by source sidecar, destination service and response code (Envoy's cluster counters)."""
        names = list(pods) if pods is not None else [
            w["name"] for w in self.topology()["workloads"] if w.get("sidecar", True)]
        return inspect_stats.requests({self._deployment(p): self.admin(p, "/stats") for p in names})

    def _deployment(self, pod: str) -> str:
        for w in self.topology()["workloads"]:
            if pod in (w["name"], w.get("deployment")):
                return w.get("deployment") or w["name"]
        return pod

    def admin(self, pod: str, path: str) -> str:
        """GET `path` from the Envoy admin API inside `pod` (127.0.0.1:15000 there)."""
        return self._call("admin", pod=pod, path=path)  # type: ignore[return-value]

    def events(self, after: int = 0, timeout: float = 0.0) -> dict:
        """Sync events (CONNECTED, SENT, ACK, NACK, ...) numbered after `after`.

        With `timeout`, waits for the next one: live views redraw on ACK without polling Envoy.
        Returns {"last": seq, "events": [...]}.
        """
        return self._call("events", timeout=timeout + 10.0, after=after, wait=timeout)  # type: ignore[return-value]

    @property
    def capture(self) -> str:
        """How traffic reaches the sidecars: "iptables" or "userspace" (see `capture_note`)."""
        return self._call("ping", timeout=5.0)["capture"]  # type: ignore[index]

    def capture_note(self) -> str:
        """What differs from Istio's listeners in this mesh's capture mode ("" for iptables)."""
        from .xds.capture import USERSPACE, USERSPACE_DIFFERENCE

        return USERSPACE_DIFFERENCE if self.capture == USERSPACE else ""

    def topology(self) -> dict:
        return self._call("topology")  # type: ignore[return-value]

    def outside(self) -> dict:
        """The outside world (no sidecar, on the host): {"host", "address", "ports"} for a ServiceEntry.

        >>> out = mesh.outside()   # {'host': 'httpbin.example.com', 'address': '10.244.7.1', 'ports': [9080, 8080]}
        >>> mesh.curl("productpage-v1", f"http://{out['host']}:8080/get")
        """
        return self.topology()["outside"]  # type: ignore[return-value]

    def pods(self) -> list[str]:
        """The pods with a sidecar (those with an Envoy admin); the sidecar-less `outsider` is not listed."""
        return [w["name"] for w in self.topology()["workloads"] if w.get("sidecar", True)]

    def down(self) -> None:
        down(self.home)


def connect(home: str | os.PathLike | None = None, runtime: str | None = None, name: str | None = None) -> Mesh:
    """Attach to the mesh running at `home`; raises NotRunning if none answers.

    `runtime`: "local" or "kind" (default: $MESHKIT_RUNTIME, else local). On kind, the cluster
    `meshkit cluster up --name NAME` made (`name`, default $MESHKIT_KIND_CLUSTER, else meshkit).
    """
    # --- kind (issue 5): same API, other transport; see kind_mesh.py
    if runtime or os.environ.get("MESHKIT_RUNTIME"):
        from . import kind_mesh

        if kind_mesh.runtime_name(runtime) == "kind":
            return kind_mesh.connect(home, name)
    # --- end kind
    mesh = Mesh(home_dir(home))
    info = mesh._call("ping", timeout=5.0)
    if not info["ready"]:  # type: ignore[index]
        raise ControlError("the mesh is still starting", "starting")
    return mesh


def up(home: str | os.PathLike | None = None, timeout: float = UP_TIMEOUT_S, capture: str | None = None) -> Mesh:
    """Start the mesh in the background (or attach to the one already running) and wait for it.

    `capture`: "iptables", "userspace" or "auto" (default: $MESHKIT_CAPTURE, else auto: iptables
    when this process can, userspace otherwise). An already running mesh keeps its capture.
    With $MESHKIT_RUNTIME=kind this attaches to the cluster `meshkit cluster up` made.
    """
    # --- kind (issue 5): the cluster is booted by `meshkit cluster up`, not here
    if os.environ.get("MESHKIT_RUNTIME"):
        from . import kind_mesh

        if kind_mesh.runtime_name() == "kind":
            return kind_mesh.connect(home)
    # --- end kind
    path = home_dir(home)
    try:
        return connect(path)
    except NotRunning:
        pass
    except ControlError:
        return _wait_ready(path, None, timeout)
    if owner_alive(path) is False:  # its daemon was killed (SIGKILL): its pods and network are still there
        print(f"meshkit: the mesh at {path} lost its daemon (killed?); removing what it left and starting fresh",
              file=sys.stderr)
        down(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "daemon.json").unlink(missing_ok=True)
    with open(path / "daemon.log", "ab") as logfile:
        process = subprocess.Popen(
            [sys.executable, "-m", "meshkit.daemon", "--home", str(path), *(["--capture", capture] if capture else [])],
            stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    return _wait_ready(path, process, timeout)


def _wait_ready(path: Path, process: subprocess.Popen | None, timeout: float) -> Mesh:
    deadline = time.monotonic() + timeout
    status_file = path / "daemon.json"
    while time.monotonic() < deadline:
        if status_file.exists():
            status = json.loads(status_file.read_text() or "{}")
            if status.get("state") == "failed":
                raise ControlError(status.get("error", "the mesh failed to start"), "failed")
            if status.get("state") == "ready":
                return connect(path)
        if process is not None and process.poll() is not None:
            tail = (path / "daemon.log").read_text(errors="replace")[-2000:]
            raise ControlError(f"the mesh process exited during start-up:\n{tail}", "failed")
        time.sleep(0.05)
    raise ControlError(f"the mesh did not become ready within {timeout:.0f}s; see {path}/daemon.log",
                       "timeout")


def down(home: str | os.PathLike | None = None) -> None:
    """Stop the mesh at `home` and remove everything it made, even if its process was killed."""
    path = home_dir(home)
    pid = _daemon_pid(path)
    with contextlib.suppress(ControlError):
        control.call(path / "control.sock", "down", timeout=5.0)
    if pid:
        _wait_exit(pid, DOWN_TIMEOUT_S)
    LocalRuntime.cleanup(path)
    (path / "control.sock").unlink(missing_ok=True)
    (path / "daemon.json").unlink(missing_ok=True)


def _daemon_pid(path: Path) -> int | None:
    try:
        return int(json.loads((path / "daemon.json").read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _wait_exit(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
