"""The runtime of the boss inside a kind cluster: pods are Kubernetes' business, not ours."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from ..constants import IPTABLES
from ..model import Topology, bookinfo


class InCluster:
    """The little the control-plane operations ask of a runtime, for a boss without local pods."""

    capture = IPTABLES  # kind pods are captured by istio-init's iptables rules

    def __init__(self, listen: str, topology: Topology | None = None, home: Path | None = None) -> None:
        self.listen = listen
        self.topology = topology or bookinfo()
        self.home = home or Path.cwd()

    def outside(self) -> None:
        return None  # no outside-world server runs in the cluster

    def xds_address(self) -> SimpleNamespace:
        """Where `boss start` listens again: `listen` split so that f"{host}:{port}" rebuilds it."""
        host, _, port = self.listen.rpartition(":")
        return SimpleNamespace(host=host, port=port)
