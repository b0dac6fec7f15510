"""Names as the pods see them: Service hosts, the outside world, IPs; and kube-proxy for pods without Envoy."""

from __future__ import annotations

import itertools
from typing import Any

from ..errors import InvalidInput
from ..model import Topology


def resolve(topology: Topology, host: str, outside: dict[str, Any] | None = None) -> str:
    """A host as the pods' hosts files resolve it: a Service's VIP, the outside world, or an IP."""
    service = topology.service(host)
    if service is not None:
        return service.vip
    if outside and host.rstrip(".") == outside["host"]:
        return outside["address"]
    parts = host.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return host
    raise InvalidInput(
        f"unknown host {host!r}: not a Service of this mesh and not an IP address "
        f"(Services: {', '.join(s.name for s in topology.services)}"
        f"{'; outside the mesh: ' + outside['host'] if outside else ''})")


class KubeProxy:
    """What kube-proxy does for a pod without a sidecar: a Service VIP becomes one of its pods, in turn."""

    def __init__(self) -> None:
        self._turn = itertools.count(1)

    def pick(self, topology: Topology, host: str, address: str, port: int) -> tuple[str, int]:
        """(pod IP, target port) behind `host:port`, or the address unchanged if no Service names it."""
        service = topology.service(host)
        if service is None:
            return address, port
        pods = topology.endpoints(service)
        service_port = service.port(port)
        if not pods or service_port is None:
            return address, port
        return pods[next(self._turn) % len(pods)].ip, service_port.target_port
