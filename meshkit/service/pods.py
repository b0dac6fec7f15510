"""The pod operations of the local mesh: requests from inside a pod, its Envoy admin, read-only views.

Blocking work (sockets into a pod's network, log reading) runs in a thread so the boss keeps
answering its sidecars meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

from .. import protocol as p
from ..constants import xds_variant
from ..errors import InvalidInput, Timeout
from ..model import Workload
from ..runtime import curl
from ..runtime.access_log import read_access_log
from ..runtime.base import Runtime
from .hosts import KubeProxy, resolve
from .plane import PlaneService

RESYNC_S = 20.0  # a restarted Envoy starts and syncs in about a second; this is the patience before giving up


class PodService:
    """Answers the `POD` operations (but `down`, the daemon's own) for a runtime with local pods."""

    def __init__(self, plane: PlaneService, runtime: Runtime) -> None:
        self._boss = plane
        self._runtime = runtime
        self._kube_proxy = KubeProxy()

    async def curl(self, pod: str, url: str, headers: dict | None = None, n: int = 1, method: str = "GET",
                   timeout_s: float = 10.0) -> list[p.CurlRow]:
        workload = self._boss.workloads([pod])[0]
        topology, runtime = self._boss.book, self._runtime
        try:
            host, port, path = curl.parse_url(url)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        address = resolve(topology, host, runtime.outside())
        if not workload.sidecar:  # no Envoy to turn a Service VIP into a pod: kube-proxy does
            address, port = self._kube_proxy.pick(topology, host, address, port)
        target = curl.target_of(address, host, port, path)

        def run() -> list[curl.Reply]:
            log = runtime.access_log(workload.name)
            offset = curl.log_size(log)
            replies = curl.requests(lambda: runtime.connect(workload.name, address, port, timeout_s), target,
                                    int(n), dict(headers or {}), method, timeout_s)
            curl.attach_access_log(replies, log, offset=offset)
            return replies

        return [cast(p.CurlRow, reply.as_dict()) for reply in await asyncio.to_thread(run)]

    async def tcp(self, pod: str, host: str, port: int, text: str = "hello\n", timeout_s: float = 3.0) -> p.TcpReply:
        """Open a TCP connection from inside a pod (captured like the app's), send text, read the reply."""
        workload = self._boss.workloads([pod])[0]
        runtime = self._runtime
        address = resolve(self._boss.book, host, runtime.outside())

        def run() -> dict:
            return curl.tcp_exchange(lambda: runtime.connect(workload.name, address, int(port), 5.0),
                                     text.encode(), float(timeout_s))

        return cast(p.TcpReply, await asyncio.to_thread(run))

    async def admin(self, pod: str, path: str = "/server_info") -> str:
        workload = self._boss.workloads([pod])[0]
        return await asyncio.to_thread(self._runtime.admin_get, workload.name, path)

    async def access_log(self, pods: list[str] | None = None, request_id: str = "", client: str = "",
                         since: dict[str, int] | None = None) -> dict[str, dict]:
        """Each sidecar's access-log lines for one request, read from `since[pod]` (or the recent tail)."""
        workloads = [w for w in self._boss.workloads(pods) if w.sidecar]
        marks = dict(since or {})

        def run() -> dict[str, dict]:
            return {w.name: read_access_log(self._runtime.access_log(w.name), marks.get(w.name), request_id, client)
                    for w in workloads}

        return await asyncio.to_thread(run)

    async def pods(self) -> list[p.PodRow]:
        """`kubectl get pods`: every pod as the runtime's supervisor sees it."""
        return cast(list[p.PodRow], await asyncio.to_thread(self._runtime.pods_table))

    async def pod_info(self, pod: str, what: str = "iptables") -> str:
        """Read-only views from inside a pod: its iptables rules, listening sockets, hosts file."""
        workload = self._boss.workloads([pod])[0]
        return await asyncio.to_thread(self._runtime.pod_view, workload.name, what)

    async def set_xds(self, pod: str, variant: str) -> p.XdsVariant:
        """Restart a sidecar speaking `variant` (delta or sotw); return once its new stream is synced on every type.

        Its bootstrap's `ads_config.api_type` is what chooses: DELTA_GRPC or GRPC. As with a rolled pod,
        the new Envoy asks for everything again on a new stream.
        """
        try:
            wanted = xds_variant(variant)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        workload = self._boss.workloads([pod])[0]
        if not workload.sidecar:
            raise InvalidInput(f"{workload.name} has no sidecar to restart")
        was = next((r["xds"] for r in await self._boss.status() if r["pod"] == workload.name), workload.xds)
        started, since = time.monotonic(), time.time()
        await asyncio.to_thread(self._runtime.restart_sidecar, workload.name, wanted)
        while time.monotonic() - started < RESYNC_S:
            if await self._settled(workload, wanted, since):
                return {"pod": workload.name, "xds": wanted, "was": was,
                        "restart_ms": round((time.monotonic() - started) * 1000, 1)}
            await asyncio.sleep(0.1)
        raise Timeout(f"{workload.name}'s sidecar did not sync over {wanted} xDS within {RESYNC_S:.0f} s: "
                      f"read its envoy.log under the mesh home's pods/{workload.name}/")

    async def _settled(self, workload: Workload, variant: str, since: float) -> bool:
        """The restarted sidecar is synced over `variant` on every type the boss holds for it (an idle
        gateway's RDS stays NOT SENT), its pod ready, and the readiness push it caused done.

        An edit pushed while the pod is still flipping back to ready races that push (a SotW EDS
        response then waits for an ACK that never comes), so `set_xds` returns only after it.
        """
        pod = workload.name
        row = next((r for r in await self._boss.status() if r["pod"] == pod), None)
        held = self._boss.held(workload)
        if not (row and row["connected"] and row["xds"] == variant and row["types"]
                and all(s["state"] == "SYNCED" or (s["state"] == "NOT SENT" and t not in held)
                        for t, s in row["types"].items())):
            return False
        table = await asyncio.to_thread(self._runtime.pods_table)
        if not any(r["NAME"] == pod and r["ready"] for r in table):
            return False
        health = [push["reason"] for push in await self._boss.history()
                  if push["started"] >= since and push["reason"] in (f"{pod} ready", f"{pod} not ready")]
        return not health or health[-1] == f"{pod} ready"
