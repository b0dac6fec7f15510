"""`meshkit.connect(runtime="kind")`: the same `Mesh` API, on the cluster `meshkit cluster up` made.

Where each operation goes:

* control-plane ops (status, apply, revert, history, get, delete, xds, events, topology, boss):
  meshkit's control protocol over TCP to the boss in the cluster (`meshkit serve-xds --control`,
  the local daemon's own handlers), through the port-forward `cluster up` recorded in
  `<state dir>/forwards.json`;
* `admin` (and so `pc`): the sidecar's Envoy admin API through its port-forward;
* `curl` and `tcp`: `kubectl exec` into the pod's app container, where `pod_client.py` makes the
  request (so the pod's iptables rules hand it to the sidecar); the response flags come from the
  sidecar's access log (Envoy's stdout: `kubectl logs -c istio-proxy`), matched by request id
  or, for TCP lines, by the client's ip:port — the same matching as the local runtime;
* `pod_info`: `iptables` is what istio-init printed when it installed the rules (`kubectl logs
  -c istio-init`, as in Istio); `hosts`, `addresses` and `sockets` come from `pod_client.py`
  (the app image has no iproute2, and on Kubernetes the cluster DNS, not /etc/hosts, names
  the Services — the view adds what DNS answers for each).

Not on kind: `outside()` (no outside-world server in the cluster), `pods_table()` (the kubelet
heals the pods there: `kubectl get pods`) and `down()` (the cluster is
`meshkit cluster down`'s business).
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import time
from collections.abc import Mapping

from . import control
from .api import Mesh, home_dir
from .control import ControlError, NotRunning
from .daemon import PLANE_OPS
from .model import Workload
from .runtime import curl
from .runtime.admin import AdminClient, AdminError
from .runtime.errors import RuntimeProblem
from .runtime.kind import APPS_DIR, ClusterInfo, kind_topology, state_dir

RUNTIMES = ("local", "kind")
DEFAULT_CLUSTER = "meshkit"
POD_CLIENT = f"{APPS_DIR}/pod_client.py"
LOG_WAIT_S = 3.0


def runtime_name(runtime: str | None = None) -> str:
    """`runtime`, else `$MESHKIT_RUNTIME`, else "local"."""
    chosen = runtime or os.environ.get("MESHKIT_RUNTIME") or "local"
    if chosen not in RUNTIMES:
        raise ControlError(f"unknown runtime {chosen!r}; choose one of {', '.join(RUNTIMES)}", "invalid")
    return chosen


def cluster_name(name: str | None = None) -> str:
    return name or os.environ.get("MESHKIT_KIND_CLUSTER") or DEFAULT_CLUSTER


class KindMesh(Mesh):
    """A mesh in a kind cluster, reached through the port-forwards and `kubectl`."""

    runtime = "kind"

    def __init__(self, info: ClusterInfo, kubectl: str = "kubectl") -> None:
        super().__init__(info.dir)
        self.info = info
        self._kubectl = kubectl
        self._pods = {w.deployment: w for w in kind_topology().sidecars()}
        self._services = [s.name for s in kind_topology().services]

    def __repr__(self) -> str:
        return f"KindMesh(cluster={self.info.name!r}, control={self.info.control_address})"

    # -- the boss, over TCP -------------------------------------------------------------------
    def _call(self, op: str, timeout: float = 60.0, **args: object) -> object:
        if op not in PLANE_OPS:
            raise ControlError(f"{op!r} is not a control-plane operation; on kind it runs client-side", "kind")
        return control.call(self.info.control_address, op, args, timeout=timeout)

    # -- the pods, through kubectl and port-forwards ------------------------------------------
    def kubectl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        argv = [self._kubectl, "--kubeconfig", str(self.info.kubeconfig), *args]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except FileNotFoundError as exc:
            raise ControlError("kubectl is not on PATH; install it (https://kubernetes.io/docs/tasks/tools/)",
                               "environment") from exc
        except subprocess.TimeoutExpired as exc:
            raise ControlError(f"`kubectl {' '.join(args[:4])} …` took longer than {timeout:.0f}s", "timeout") from exc

    def workload(self, pod: str) -> Workload:
        """The Deployment's pod template behind `pod` (a Deployment name or a full pod name)."""
        if pod in self._pods:
            return self._pods[pod]
        owner = "-".join(pod.split("-")[:-2])
        if owner in self._pods:
            return self._pods[owner]
        raise ControlError(f"unknown pod {pod!r}; pods: {', '.join(sorted(self._pods))}", "invalid")

    def _exec(self, pod: str, *argv: str, timeout: float = 60.0) -> str:
        w = self.workload(pod)
        result = self.kubectl("-n", w.namespace, "exec", f"deployment/{w.deployment}", "-c", w.app, "--",
                              "python", "-I", POD_CLIENT, *argv, timeout=timeout)
        if result.returncode != 0:
            raise ControlError(f"`kubectl exec` into {w.deployment} failed: {_last(result.stderr)}",
                               "environment")
        return result.stdout

    def _logs(self, pod: str, container: str, since_s: float | None = None) -> str:
        w = self.workload(pod)
        args = ["-n", w.namespace, "logs", f"deployment/{w.deployment}", "-c", container]
        if since_s is not None:
            args.append(f"--since={max(1, math.ceil(since_s))}s")
        result = self.kubectl(*args)
        if result.returncode != 0:
            raise ControlError(f"`kubectl logs` of {w.deployment}/{container} failed: {_last(result.stderr)}",
                               "environment")
        return result.stdout

    def curl_rows(
        self,
        pod: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        n: int = 1,
        method: str = "GET",
        timeout: float = 10.0,
    ) -> list[dict]:
        started = time.time()
        request = {"url": url, "headers": dict(headers or {}), "n": n, "method": method, "timeout": timeout}
        out = self._exec(pod, "curl", json.dumps(request), timeout=30.0 + n * (2.0 + timeout))
        rows = _json_output(out, "curl")
        if len(rows) == 1 and rows[0].get("invalid"):
            raise ControlError(rows[0]["error"], "invalid")
        replies = [curl.Reply(**row) for row in rows]
        self._attach_flags(pod, replies, started)
        return [r.as_dict() for r in replies]

    def _attach_flags(self, pod: str, replies: list[curl.Reply], started: float) -> None:
        """Flags and upstream from the client sidecar's access log (Envoy's stdout), polled briefly."""
        pending = curl.pending_replies(replies)
        deadline = time.monotonic() + LOG_WAIT_S
        while pending:
            text = self._logs(pod, "istio-proxy", since_s=time.time() - started + 2)
            curl.attach_lines(pending, text.encode().splitlines())
            if not pending or time.monotonic() > deadline:
                return
            time.sleep(0.2)

    def tcp(self, pod: str, host: str, port: int, text: str = "hello\n") -> dict:
        out = self._exec(pod, "tcp", json.dumps({"host": host, "port": port, "text": text}))
        return _json_output(out, "tcp")

    def pod_info(self, pod: str, what: str = "iptables") -> str:
        if what == "iptables":
            w = self.workload(pod)
            return (f"# the nat table as istio-init installed it (`kubectl logs <pod> -c istio-init`; "
                    f"it cannot change later: no container in {w.deployment} has NET_ADMIN)\n"
                    + self._logs(pod, "istio-init"))
        if what not in ("hosts", "addresses", "sockets"):
            raise ControlError(f"unknown view {what!r}; choose one of iptables, sockets, hosts, addresses",
                               "invalid")
        names = self._services if what == "hosts" else []
        return str(_json_output(self._exec(pod, "view", what, *names), "pod_info"))

    def admin(self, pod: str, path: str) -> str:
        """GET `path` from the pod's Envoy admin API through its port-forward."""
        w = self.workload(pod)
        host, port = control.split_address(self.info.admin_address(w.deployment))
        try:
            return AdminClient(lambda: socket.create_connection((host, port), 10.0)).text(path)
        except (OSError, AdminError) as exc:
            raise ControlError(f"{w.deployment}'s admin port-forward on {host}:{port} does not answer ({exc}); "
                               "`meshkit cluster status` shows the forwards, `meshkit cluster up` restarts them",
                               "not-running") from exc

    # -- not on kind ---------------------------------------------------------------------------
    def pods_rows(self) -> list[dict]:
        raise ControlError("on kind the kubelet keeps the pods running: `kubectl get pods` shows READY, STATUS, "
                           "RESTARTS and AGE", "kind")

    def outside(self) -> dict:
        raise ControlError("the kind cluster has no outside-world server (only the local runtime runs one)", "kind")

    def down(self) -> None:
        raise ControlError(f"a kind mesh is stopped with `meshkit cluster down --name {self.info.name}` "
                           "(it deletes the cluster)", "kind")


def connect(home: str | os.PathLike | None = None, name: str | None = None, kubectl: str = "kubectl") -> KindMesh:
    """The kind mesh `meshkit cluster up --name NAME` made; NotRunning if none answers.

    Its records are looked for in `<home>/kind/<name>/` when `home` is given, then where `cluster
    up` writes them (`$MESHKIT_HOME/kind/<name>/`, default `./.meshkit/kind/<name>/`).
    """
    name = cluster_name(name)
    candidates = ([home_dir(home) / "kind" / name] if home else []) + [state_dir(name)]
    for directory in candidates:
        if (directory / "forwards.json").exists():
            break
    else:
        tried = " or ".join(str(d / "forwards.json") for d in dict.fromkeys(candidates))
        raise NotRunning(f"no kind mesh {name!r} is up here (no {tried}); run `meshkit cluster up --name {name}` "
                         "with the same MESHKIT_HOME", "not-running")
    try:
        info = ClusterInfo.load(name, directory)
    except (RuntimeProblem, ValueError, KeyError) as exc:
        raise NotRunning(f"{directory / 'forwards.json'} is unreadable: {exc}", "not-running") from exc
    mesh = KindMesh(info, kubectl)
    if not mesh._call("ping", timeout=5.0)["ready"]:  # type: ignore[index]
        raise ControlError("the mesh is still starting", "starting")
    return mesh


def lab_env(home: str | os.PathLike | None = None, name: str | None = None) -> dict[str, str]:
    """What `meshkit lab --runtime kind` gives the notebook kernels: checked to answer first.

    MESHKIT_HOME is made absolute (the kernels run in the notebooks' folder, `cluster up` wrote
    relative to where it ran), so `meshkit.connect()` and `meshkit.lab()` find the same cluster.
    """
    mesh = connect(home, name)
    return {"MESHKIT_RUNTIME": "kind", "MESHKIT_KIND_CLUSTER": mesh.info.name,
            "MESHKIT_HOME": str(mesh.info.dir.parent.parent)}


def _json_output(out: str, what: str):
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise ControlError(f"the pod client's {what} answer is not JSON: {out[-300:]!r}", "error") from exc


def _last(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(no output)"


__all__ = ["KindMesh", "connect", "lab_env", "runtime_name"]
