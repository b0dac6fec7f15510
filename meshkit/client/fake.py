"""A transport for tests: every protocol operation answered from canned data, checked like the real ones.

`FakeTransport` implements each operation of `meshkit.protocol` (construction fails if one is
missing, so the fake cannot drift from the protocol), validates arguments with the same
`Operation.request`, and records what it was asked. Widgets and lab checks get a real `Mesh`:

    >>> from meshkit.client.fake import FakeTransport
    >>> mesh = Mesh(FakeTransport())
    >>> mesh.apply("kind: VirtualService ...")["results"]
    {'productpage-v1': {'RDS': 'ACK'}}
    >>> mesh.transport.applied
    [('kind: VirtualService ...', None)]
"""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any, TypeVar

from .. import protocol as p
from .mesh import Mesh

__all__ = ["BOOKINFO_PODS", "FakeTransport", "Mesh"]

R = TypeVar("R")
CALLS = {"productpage-v1": ["details", "reviews"], "reviews-v2": ["ratings"], "reviews-v3": ["ratings"]}
BOOKINFO_PODS = {"productpage-v1": "10.244.0.12", "reviews-v1": "10.244.0.14", "reviews-v2": "10.244.0.15",
                 "reviews-v3": "10.244.0.16", "ratings-v1": "10.244.0.13", "details-v1": "10.244.0.11"}


def _workload(name: str, ip: str) -> p.WorkloadInfo:
    app, version = name.rsplit("-", 1)
    return {"name": name, "deployment": name, "namespace": "default", "ip": ip,
            "labels": {"app": app, "version": version}, "service_account": f"bookinfo-{app}",
            "node_id": f"sidecar~{ip}~{name}.default~default.svc.cluster.local", "sidecar": True,
            "calls": CALLS.get(name, []), "listens": []}


def _service(name: str, vip: str) -> p.ServiceInfo:
    return {"name": name, "namespace": "default", "fqdn": f"{name}.default.svc.cluster.local", "vip": vip,
            "ports": [{"name": "http", "port": 9080}], "selector": {"app": name}}


class FakeTransport:
    """Answers every operation without a mesh; `push_event()` plays the boss reporting a sync event."""

    runtime = "fake"

    def __init__(self, config_dump: str = "{}", clusters: str = "{}") -> None:
        self.home = Path("/nonexistent/fake-mesh")
        self.config_dump = config_dump
        self.clusters = clusters
        self.applied: list[tuple[str, list[str] | None]] = []
        self.apply_error: Exception | None = None
        self.rules: list[dict] = []
        self.curls = 0
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.stopped = False
        self._seq = 0
        self._event_queue: queue.Queue[p.SyncEventRow] = queue.Queue()
        self._handlers = {name: getattr(self, f"_{name}") for name in p.OPERATIONS}

    def __repr__(self) -> str:
        return "FakeTransport()"

    def call(self, op: p.Operation[R], args: dict[str, Any], timeout: float = 60.0) -> R:
        args = op.request(args)
        self.calls.append((op.name, args))
        return self._handlers[op.name](**args)

    def down(self) -> None:
        self.stopped = True

    def push_event(self, kind: str, pod: str, type_: str = "LDS", error: str = "") -> None:
        self._seq += 1
        ip = BOOKINFO_PODS.get(pod, "10.244.0.99")
        self._event_queue.put({"seq": self._seq, "kind": kind, "node_id": _workload(pod, ip)["node_id"], "pod": pod,
                          "time": time.time(), "type": type_, "version": "", "nonce": "", "error": error})

    # -- one handler per protocol operation ------------------------------------------------------
    def _ping(self) -> p.Ping:
        return {"pid": 0, "home": str(self.home), "ready": True, "ready_s": 0.0, "capture": "iptables",
                "capture_note": "", "xds": "DELTA"}

    def _topology(self) -> p.TopologyInfo:
        return {"mesh": {"outbound_traffic_policy": "ALLOW_ANY"}, "outside": None,
                "services": [_service("details", "10.96.0.11"), _service("reviews", "10.96.0.14"),
                             _service("ratings", "10.96.0.13")],
                "workloads": [_workload(n, ip) for n, ip in BOOKINFO_PODS.items()]}

    def _status(self) -> list[p.SyncRow]:
        synced: p.TypeSyncRow = {"state": "SYNCED", "last_state": "SYNCED", "version": "1", "sent": "1", "acked": "1",
                                 "error": "", "bytes": 900, "responses": 1}
        error: p.TypeSyncRow = {"state": "ERROR", "last_state": "ERROR", "version": "1", "sent": "2", "acked": "1",
                                "error": "bad filter", "bytes": 1200, "responses": 2}
        return [{"name": "productpage-v1.default", "pod": "productpage-v1", "cluster": "Kubernetes",
                 "connected": True, "state": "CONNECTED", "since": None, "xds": "DELTA",
                 "types": {"CDS": synced, "LDS": error},
                 "istiod": "meshkit", "version": ""}]

    def _push(self, reason: str) -> p.PushRecord:
        return {"id": len(self.applied), "started": time.time(), "reason": reason,
                "changes": [{"pod": "productpage-v1", "type": "RDS", "name": "9080", "action": "changed"}],
                "versions": {}, "results": {"productpage-v1": {"RDS": "ACK"}}, "errors": {}, "duration_ms": 12.0,
                "warnings": [], "xds": {"productpage-v1": "DELTA"}, "bytes": {"productpage-v1": 412}}

    def _apply(self, text: str, pods: list[str] | None = None) -> p.PushRecord:
        self.applied.append((text, pods or None))
        if self.apply_error is not None:
            raise self.apply_error
        return self._push("apply")

    def _delete(self, text: str) -> p.PushRecord:
        return self._push("delete")

    def _get(self, kind: str) -> list[dict]:
        return self.rules if kind == "DestinationRule" else []

    def _xds(self, pod: str, text: str = "") -> dict[str, list[dict]]:
        weight = 100 if not text else 50
        return {"RDS": [{"name": "9080", "virtual_hosts": [{"name": "reviews.default.svc.cluster.local:9080",
                                                            "weight": weight}]}],
                "CDS": [{"name": "outbound|9080|v1|reviews.default.svc.cluster.local"}]}

    def _revert(self, pods: list[str] | None = None) -> p.PushRecord:
        return self._push("revert")

    def _history(self) -> list[p.PushRecord]:
        return [self._push("initial state")]

    def _events(self, after: int = 0, wait: float = 0.0) -> p.Events:
        try:
            batch = [self._event_queue.get(timeout=min(wait, 0.2))] if wait else []
        except queue.Empty:
            batch = []
        return {"last": self._seq, "events": batch}

    def _boss(self, action: str) -> p.BossState:
        return {"running": action == "start"}

    def _identity(self, ttl_s: float | None = None, rotate: bool = False,
                  pods: list[str] | None = None) -> p.Identity:
        return {"ttl_s": ttl_s or 86400.0, "rotations": int(rotate), "certificates": {}, "push": None}

    def _push_diff(self, a: int, b: int, pods: list[str] | None = None,
                   types: list[str] | None = None) -> list[dict]:
        return [{"type": "RDS", "name": "9080", "action": "changed", "pods": ["productpage-v1"],
                 "diff": "-          weight: 100\n+          weight: 50\n"}]

    def _replay(self, push_id: int) -> p.PushRecord:
        return self._push(f"replay push {push_id}")

    def _ingress(self) -> p.Ingress:
        return {"address": "10.244.0.18", "http_port": 8080, "https_port": 8443, "url": "http://10.244.0.18:8080"}

    def _access_log(self, pods: list[str] | None = None, request_id: str = "", client: str = "",
                    since: dict[str, int] | None = None) -> dict[str, dict]:
        return {pod: {"offset": 0, "lines": []} for pod in (pods or BOOKINFO_PODS)}

    def _curl(self, pod: str, url: str, headers: dict | None = None, n: int = 1, method: str = "GET",
              timeout_s: float = 10.0) -> list[p.CurlRow]:
        self.curls += 1
        row: p.CurlRow = {"request_id": "fake", "status": 200, "elapsed_ms": 1.0, "headers": {}, "body": "",
                          "error": "", "pod": "reviews-v1", "version": "v1", "flags": "-",
                          "upstream_cluster": "outbound|9080|v1|reviews.default.svc.cluster.local",
                          "upstream_host": "10.244.0.14:9080", "route_name": "default", "client_address": ""}
        return [row.copy() for _ in range(n)]

    def _tcp(self, pod: str, host: str, port: int, text: str = "hello\n", timeout_s: float = 3.0) -> p.TcpReply:
        return {"reply": text, "error": "", "elapsed_ms": 1.0}

    def _admin(self, pod: str, path: str) -> str:
        return self.config_dump if path.startswith("/config_dump") else self.clusters

    def _pods(self) -> list[p.PodRow]:
        return [{"NAME": name, "READY": "2/2", "STATUS": "Running", "RESTARTS": "0", "AGE": "5m", "restarts": 0,
                 "ready": True} for name in BOOKINFO_PODS]

    def _pod_info(self, pod: str, what: str = "iptables") -> str:
        return f"# {what} of {pod} (fake)\n"

    def _set_xds(self, pod: str, variant: str) -> p.XdsVariant:
        return {"pod": pod, "xds": variant.upper(), "was": "DELTA", "restart_ms": 900.0}

    def _down(self) -> p.Stopping:
        self.stopped = True
        return {"stopping": True}
