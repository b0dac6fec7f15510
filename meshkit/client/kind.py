"""The kind transport: the same `Mesh`, on the cluster `meshkit cluster up` made.

Where each operation goes:

* control-plane operations (`protocol.PLANE_OPS`: status, apply, revert, history, get, delete,
  xds, events, topology, boss, identity): meshkit's control protocol over TCP to the boss in the
  cluster (`meshkit serve-xds --control`), through the port-forward `cluster up` recorded in
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
heals the pods there: `kubectl get pods`) and `down()` (the cluster is `meshkit cluster down`'s business).
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from .. import protocol as p
from ..constants import default_home
from ..errors import EnvironmentProblem, InvalidInput, MeshError, NotFound, NotRunning, Starting, Timeout, Unsupported
from ..model import Workload
from ..runtime import curl
from ..runtime.access_log import select_lines
from ..runtime.admin import AdminClient, AdminError
from ..runtime.kind import APPS_DIR, ClusterInfo, kind_topology, state_dir
from . import wire
from .mesh import Mesh

R = TypeVar("R")
RUNTIMES = ("local", "kind")
DEFAULT_CLUSTER = "meshkit"
POD_CLIENT = f"{APPS_DIR}/pod_client.py"
LOG_WAIT_S = 3.0
LOG_WINDOW_S = 600.0  # how far back a trace looks in a sidecar's stdout on kind


def runtime_name(runtime: str | None = None) -> str:
    """`runtime`, else `$MESHKIT_RUNTIME`, else "local"."""
    chosen = runtime or os.environ.get("MESHKIT_RUNTIME") or "local"
    if chosen not in RUNTIMES:
        raise InvalidInput(f"unknown runtime {chosen!r}; choose one of {', '.join(RUNTIMES)}")
    return chosen


def cluster_name(name: str | None = None) -> str:
    return name or os.environ.get("MESHKIT_KIND_CLUSTER") or DEFAULT_CLUSTER


class KindTransport:
    """A mesh in a kind cluster, reached through the port-forwards and `kubectl`."""

    runtime = "kind"

    def __init__(self, info: ClusterInfo, kubectl: str = "kubectl") -> None:
        self.info = info
        self.home: Path = info.dir
        self._kubectl = kubectl
        topology = kind_topology()
        self._pods = {w.deployment: w for w in topology.sidecars()}
        self._services = [s.name for s in topology.services]
        self._pod_ops = {p.ADMIN.name: self._admin, p.CURL.name: self._curl, p.TCP.name: self._tcp,
                         p.POD_INFO.name: self._pod_info, p.ACCESS_LOG.name: self._access_log,
                         p.SET_XDS.name: self._set_xds}

    def __repr__(self) -> str:
        return f"KindTransport(cluster={self.info.name!r}, control={self.info.control_address})"

    def call(self, op: p.Operation[R], args: dict[str, Any], timeout: float = 60.0) -> R:
        args = op.request(args)
        if op.scope is p.Scope.PLANE:
            return wire.call(self.info.control_address, op.name, args, timeout=timeout)
        if op is p.PODS:
            raise Unsupported("on kind the kubelet keeps the pods running: `kubectl get pods` shows READY, STATUS, "
                              "RESTARTS and AGE")
        if op.name not in self._pod_ops:
            raise Unsupported(f"{op.name!r} does not exist on kind")
        return self._pod_ops[op.name](**args)

    def _set_xds(self, pod: str, variant: str) -> NoReturn:
        raise Unsupported("on kind a sidecar's xDS variant is its bootstrap's api_type: change the injection template "
                          "and `kubectl rollout restart` the Deployment")

    def down(self) -> None:
        raise Unsupported(f"a kind mesh is stopped with `meshkit cluster down --name {self.info.name}` "
                          "(it deletes the cluster)")

    # -- the pods, through kubectl and port-forwards ------------------------------------------
    def kubectl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        argv = [self._kubectl, "--kubeconfig", str(self.info.kubeconfig), *args]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except FileNotFoundError as exc:
            raise EnvironmentProblem("kubectl is not on PATH",
                                     "install it (https://kubernetes.io/docs/tasks/tools/)") from exc
        except subprocess.TimeoutExpired as exc:
            raise Timeout(f"`kubectl {' '.join(args[:4])} …` took longer than {timeout:.0f}s") from exc

    def workload(self, pod: str) -> Workload:
        """The Deployment's pod template behind `pod` (a Deployment name or a full pod name)."""
        if pod in self._pods:
            return self._pods[pod]
        owner = "-".join(pod.split("-")[:-2])
        if owner in self._pods:
            return self._pods[owner]
        raise NotFound(f"unknown pod {pod!r}; pods: {', '.join(sorted(self._pods))}")

    def _exec(self, pod: str, *argv: str, timeout: float = 60.0) -> str:
        w = self.workload(pod)
        result = self.kubectl("-n", w.namespace, "exec", f"deployment/{w.deployment}", "-c", w.app, "--",
                              "python", "-I", POD_CLIENT, *argv, timeout=timeout)
        if result.returncode != 0:
            raise EnvironmentProblem(f"`kubectl exec` into {w.deployment} failed: {_last(result.stderr)}")
        return result.stdout

    def _logs(self, pod: str, container: str, since_s: float | None = None) -> str:
        w = self.workload(pod)
        args = ["-n", w.namespace, "logs", f"deployment/{w.deployment}", "-c", container]
        if since_s is not None:
            args.append(f"--since={max(1, math.ceil(since_s))}s")
        result = self.kubectl(*args)
        if result.returncode != 0:
            raise EnvironmentProblem(f"`kubectl logs` of {w.deployment}/{container} failed: {_last(result.stderr)}")
        return result.stdout

    def _curl(self, pod: str, url: str, headers: dict | None = None, n: int = 1, method: str = "GET",
              timeout_s: float = 10.0) -> list[dict]:
        started = time.time()
        request = {"url": url, "headers": dict(headers or {}), "n": n, "method": method, "timeout": timeout_s}
        out = self._exec(pod, "curl", json.dumps(request), timeout=30.0 + n * (2.0 + timeout_s))
        rows = _json_output(out, "curl")
        if len(rows) == 1 and rows[0].get("invalid"):
            raise InvalidInput(rows[0]["error"])
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

    def _tcp(self, pod: str, host: str, port: int, text: str = "hello\n", timeout_s: float = 3.0) -> dict:
        request = {"host": host, "port": port, "text": text, "timeout": timeout_s}
        return _json_output(self._exec(pod, "tcp", json.dumps(request)), "tcp")

    def _pod_info(self, pod: str, what: str = "iptables") -> str:
        if what == "iptables":
            w = self.workload(pod)
            return (f"# the nat table as istio-init installed it (`kubectl logs <pod> -c istio-init`; "
                    f"it cannot change later: no container in {w.deployment} has NET_ADMIN)\n"
                    + self._logs(pod, "istio-init"))
        if what not in ("hosts", "addresses", "sockets"):
            raise InvalidInput(f"unknown view {what!r}; choose one of iptables, sockets, hosts, addresses")
        names = self._services if what == "hosts" else []
        return str(_json_output(self._exec(pod, "view", what, *names), "pod_info"))

    def _access_log(self, pods: list[str] | None = None, request_id: str = "", client: str = "",
                    since: dict[str, int] | None = None) -> dict[str, dict]:
        """Each sidecar's lines for one request from its stdout (`kubectl logs -c istio-proxy`); on kind
        there is no byte offset to resume from, so every call reads the recent log."""
        names = pods or sorted(self._pods)
        return {pod: {"offset": 0, "lines": select_lines(self._logs(pod, "istio-proxy", since_s=LOG_WINDOW_S)
                                                         .encode().splitlines(), request_id, client)}
                for pod in names}

    def _admin(self, pod: str, path: str) -> str:
        """GET `path` from the pod's Envoy admin API through its port-forward."""
        w = self.workload(pod)
        address = p.split_address(self.info.admin_address(w.deployment))
        try:
            return AdminClient(lambda: socket.create_connection(address, 10.0)).text(path)
        except (OSError, AdminError) as exc:
            raise NotRunning(f"{w.deployment}'s admin port-forward on {address[0]}:{address[1]} does not answer "
                             f"({exc}); `meshkit cluster status` shows the forwards, `meshkit cluster up` restarts "
                             "them") from exc


def connect_kind(home: str | os.PathLike | None = None, name: str | None = None, kubectl: str = "kubectl") -> Mesh:
    """The kind mesh `meshkit cluster up --name NAME` made; NotRunning if none answers.

    Its records are in `<home>/kind/<name>/` (home: `--home`, else $MESHKIT_HOME, else ~/.meshkit).
    """
    name = cluster_name(name)
    directory = state_dir(name, default_home(home))
    if not (directory / "forwards.json").exists():
        raise NotRunning(f"no kind mesh {name!r} is up here (no {directory / 'forwards.json'}); run "
                         f"`meshkit cluster up --name {name}` with the same --home / MESHKIT_HOME")
    try:
        info = ClusterInfo.load(name, directory)
    except (MeshError, ValueError, KeyError) as exc:
        raise NotRunning(f"{directory / 'forwards.json'} is unreadable: {exc}") from exc
    mesh = Mesh(KindTransport(info, kubectl))
    if not mesh.ping()["ready"]:
        raise Starting("the mesh is still starting")
    return mesh


def lab_env(home: str | os.PathLike | None = None, name: str | None = None) -> dict[str, str]:
    """What `meshkit lab --runtime kind` gives the notebook kernels: checked to answer first."""
    mesh = connect_kind(home, name)
    transport = mesh.transport
    assert isinstance(transport, KindTransport)
    return {"MESHKIT_RUNTIME": "kind", "MESHKIT_KIND_CLUSTER": transport.info.name,
            "MESHKIT_HOME": str(default_home(home))}


def _json_output(out: str, what: str) -> Any:
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise MeshError(f"the pod client's {what} answer is not JSON: {out[-300:]!r}") from exc


def _last(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(no output)"
