"""The one contract every runtime keeps: what the daemon asks of the place where pods run.

Three runtimes implement it: `LocalRuntime` (network namespaces and istio-init's iptables),
`UserspaceRuntime` (loopback addresses and a capture process, no root) and `InCluster` (the
boss alone in a kind cluster, where Kubernetes runs the pods). The daemon talks to `Runtime`
only, never to one of them, so a mode is a class and nothing is patched onto instances.
Each runtime module checks itself against it statically, as go-control-plane's
`var _ Interface = &Impl{}` does (`_: type[Runtime] = LocalRuntime`), and
`tests/unit/test_runtime_contract.py` checks the signatures at run time.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..model import Topology, Workload
from .bootstrap import XdsAddress

POD_VIEWS = ("iptables", "sockets", "hosts", "addresses")  # what `pod_view` can show


@runtime_checkable
class Runtime(Protocol):
    """Where the pods of `topology` run, with `home` holding the state that outlives a SIGKILL."""

    capture: ClassVar[str]  # "iptables" or "userspace" (meshkit.constants): a class's fact, not a setting
    topology: Topology
    home: Path

    # -- lifecycle, in the order the daemon calls it ------------------------------------------------
    def preflight(self) -> None:
        """Check everything a start needs; each failure a RuntimeProblem naming its fix."""

    def start_network(self) -> None:
        """The pods' network and capture, before any process starts."""

    def xds_address(self, pod: str) -> XdsAddress:
        """Where the control plane serves `pod`'s sidecar: a unix socket in the pod's folder that only
        the sidecar's uid may open (local runtimes, made by `start_network`), or a TCP address."""

    def start_pods(self) -> None:
        """Start the apps and sidecars (each dialling its `xds_address`) without waiting for them."""

    def wait_apps(self, timeout: float = 30.0) -> None:
        """Return once every app accepts connections; RuntimeProblem after `timeout` seconds."""

    def stop(self) -> None:
        """Stop every process this runtime started and remove what it created."""

    @classmethod
    def cleanup(cls, home: Path) -> None:
        """Remove what `home`'s state records, from any process (its owner may have been SIGKILLed)."""

    def register_pid(self, pid: int) -> None:
        """Record another process (the daemon) for `cleanup` to stop."""

    # -- from inside a pod ------------------------------------------------------------------------
    def connect(self, pod: str, host: str, port: int, timeout: float = 5.0) -> socket.socket:
        """A TCP connection made as `pod`'s app makes it (so its sidecar captures it)."""

    def admin_get(self, pod: str, path: str) -> str:
        """GET `path` from the pod's Envoy admin API; the body whatever the status."""

    def access_log(self, pod: str) -> Path:
        """The pod's sidecar access log (Envoy's stdout)."""

    def pod_view(self, pod: str, what: str) -> str:
        """A read-only look inside the pod: one of POD_VIEWS."""

    def restart_sidecar(self, pod: str, xds: str) -> None:
        """Start the pod's sidecar again with a bootstrap speaking `xds` (DELTA or SOTW)."""

    def outside(self) -> dict[str, Any] | None:
        """The outside world's {"host", "address", "ports"}, or None when none runs."""

    def ingress(self) -> dict[str, Any]:
        """Where the host reaches `istio-ingressgateway`: {"address", "http_port", "https_port", "url"}."""

    def start_pod(self, workload: Workload, topology: Topology) -> None:
        """Start one more Envoy-only pod while the mesh runs (a Gateway API gateway's Deployment)."""

    def stop_pod(self, workload: Workload) -> None:
        """Stop a pod started at run time, and remove what it made."""

    def pods_table(self) -> list[dict]:
        """`kubectl get pods`: one row per pod with NAME, READY, STATUS, RESTARTS, AGE (supervisor.py)."""
