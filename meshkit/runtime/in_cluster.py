"""The runtime of a boss without pods: the kind cluster's, where Kubernetes runs them.

`meshkit serve-xds` (standalone.py) gives the daemon's control-plane handlers this runtime. The
lifecycle calls are no-ops (Kubernetes started the pods and will stop them; the boss records
nothing that outlives it), and every operation that needs to be inside a pod raises
`NotOnThisRuntime`: on kind those run client-side, through `kubectl` (client/kind.py).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from ..constants import IPTABLES
from ..model import Topology, Workload, bookinfo
from .base import Runtime
from .bootstrap import XdsAddress
from .errors import NotOnThisRuntime


class InCluster:
    """The little the daemon's control-plane handlers ask of a runtime, for a boss in a cluster."""

    capture: ClassVar[str] = IPTABLES  # kind pods are captured by istio-init's iptables rules

    def __init__(self, listen: str, topology: Topology | None = None, home: Path | None = None) -> None:
        self.listen = listen
        self.topology = topology or bookinfo(ingress=True)
        self.home = Path(home or Path.cwd())

    # -- lifecycle: Kubernetes' business -----------------------------------------------------------
    def preflight(self) -> None:
        """Nothing to check: the cluster scheduled this boss, so it runs where it can."""

    def start_network(self) -> None:
        """Nothing to create: the CNI made the pods' network, istio-init their capture."""

    def xds_address(self, pod: str) -> XdsAddress:
        """Where every pod reaches the boss: the one shared `listen` address (TCP; "unix:/path" in tests).

        In the cluster the pod network is the fence, so no pod has a socket of its own here.
        """
        if self.listen.startswith("unix:"):
            return XdsAddress(path=self.listen.removeprefix("unix:"))
        host, _, port = self.listen.rpartition(":")
        return XdsAddress(host, int(port))

    def start_pods(self) -> NoReturn:
        self._not_here("start_pods", "the Deployments start them: `meshkit cluster up`")

    def wait_apps(self, timeout: float = 30.0) -> NoReturn:
        self._not_here("wait_apps", "`kubectl get pods` shows their readiness")

    def stop(self) -> None:
        """Nothing to stop: the pods are the cluster's (`meshkit cluster down` deletes it)."""

    @classmethod
    def cleanup(cls, home: Path) -> None:
        """Nothing recorded, nothing to remove."""

    def register_pid(self, pid: int) -> None:
        """No state file to record it in: Kubernetes restarts or stops this process."""

    def ingress(self) -> dict[str, Any]:
        """Where the host reaches the ingress gateway: kind's mappings of its NodePorts to 127.0.0.1."""
        from .kind.gateway import ingress

        return ingress()

    def start_pod(self, workload: Workload, topology: Topology) -> NoReturn:
        self._not_here("start_pod", "on kind a Gateway's Deployment is Kubernetes' to start")

    def stop_pod(self, workload: Workload) -> NoReturn:
        self._not_here("stop_pod", "on kind a Gateway's Deployment is Kubernetes' to stop")

    # -- inside a pod: client-side on kind ------------------------------------------------------
    def connect(self, pod: str, host: str, port: int, timeout: float = 5.0) -> socket.socket:
        self._not_here("connect", "client/kind.py runs it through `kubectl exec` into the pod")

    def admin_get(self, pod: str, path: str) -> str:
        self._not_here("admin_get", "client/kind.py reads the admin API through its port-forward")

    def access_log(self, pod: str) -> Path:
        self._not_here("access_log", "`kubectl logs <pod> -c istio-proxy` is the access log")

    def restart_sidecar(self, pod: str, xds: str) -> NoReturn:
        self._not_here("restart_sidecar", "set the pod's bootstrap (api_type) and `kubectl rollout restart` it")

    def pod_view(self, pod: str, what: str) -> str:
        self._not_here("pod_view", "client/kind.py reads it with `kubectl logs` / `kubectl exec`")

    def pods_table(self) -> list[dict]:
        self._not_here("pods_table", "`kubectl get pods` shows the cluster's pods")

    def outside(self) -> None:
        return None  # no outside-world server runs in the cluster

    def _not_here(self, operation: str, fix: str) -> NoReturn:
        raise NotOnThisRuntime(f"{operation} is not on this runtime (the in-cluster boss has no pods of its own)",
                               fix)


_: type[Runtime] = InCluster
