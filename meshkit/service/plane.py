"""The control-plane operations, over a `ControlPlane`: what the local daemon and the in-cluster boss share.

Each public coroutine answers the protocol operation of the same name (`meshkit.protocol`); the
handler table is built from the protocol, so an operation declared there and missing here fails
at start-up (and in the contract test), not at a learner's first call.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from typing import cast

from google.protobuf import json_format

from .. import protocol as p
from ..constants import DELTA, USERSPACE
from ..errors import InvalidInput, Nack, NotFound, Starting
from ..model import Topology, TopologyError, Workload
from ..model.gateway_api import deployed, with_status
from ..runtime.base import Runtime
from ..xds import gateway, generate
from ..xds.capture import USERSPACE_DIFFERENCE
from ..xds.control_plane import ControlPlane, Push
from ..xds.push_log import diff_states
from ..xds.resources import SHORT_NAMES
from ..xds.server import AdsServer
from ..xds.status import SyncEvent, SyncTracker
from .documents import Documents, with_istio
from .events import EventLog


def _listens(topology: Topology, workload: Workload) -> list[int]:
    """The pod ports a gateway's Gateways open: none for a sidecar, or for a gate no Gateway opens."""
    return sorted({s.port for s in gateway.servers(topology, workload)}) if gateway.is_gateway(workload) else []


class PlaneService:
    """Answers the `PLANE` operations for one boss: its control plane, ADS server and runtime."""

    def __init__(self, runtime: Runtime, server: AdsServer, tracker: SyncTracker, home: str,
                 xds: str = DELTA) -> None:
        self.runtime = runtime
        self.xds_default = xds  # the mesh's default xDS variant (a pod may speak the other)
        self.server = server
        self.tracker = tracker
        self.home = home
        self.plane: ControlPlane | None = None
        self.ready_s: float | None = None
        self.started = time.time()
        self.event_log = EventLog()
        tracker.subscribe(self._on_sync_event)

    def ready(self, plane: ControlPlane) -> None:
        """The boss's first orders are out: start answering."""
        self.plane = plane
        self.ready_s = time.time() - self.started

    def _plane(self) -> ControlPlane:
        if self.plane is None or self.ready_s is None:
            raise Starting("the mesh is still starting; try again in a moment")
        return self.plane

    async def push_diff(self, a: int, b: int, pods: list[str] | None = None,
                        types: list[str] | None = None) -> list[dict]:
        """The per-resource YAML diff between two kept pushes."""
        pushes = self._plane().pushes
        try:
            first, second = pushes.get(int(a)), pushes.get(int(b))
        except KeyError as exc:
            raise NotFound(exc.args[0]) from exc
        return diff_states(first, second, pods or None, types or None)

    async def replay(self, push_id: int) -> p.PushRecord:
        """Put back the config in force after push `push_id`, and push it."""
        try:
            push = await self._plane().replay(int(push_id))
        except KeyError as exc:
            raise NotFound(exc.args[0]) from exc
        return _checked(push)

    @property
    def book(self) -> Topology:
        """The boss's book as it stands (Starting while the mesh boots)."""
        return self._plane().topology

    def held(self, workload: Workload) -> set[str]:
        """The xDS types (CDS, EDS, …) of which the boss holds resources for `workload`: an idle
        gateway has no routes, so its RDS stays NOT SENT and is as synced as it will get."""
        snapshot = self._plane().cache.get(workload.node_id)
        return {SHORT_NAMES[t] for t, held in snapshot.resources.items() if held} if snapshot else set()

    def workloads(self, names: list[str] | None) -> list[Workload]:
        """The sidecars `names` call for (all of them when empty); NotFound names the known pods."""
        topology = self._plane().topology
        if not names:
            return topology.sidecars()
        try:
            return [topology.workload(n) for n in names]
        except TopologyError as exc:
            raise NotFound(str(exc)) from exc

    def _on_sync_event(self, event: SyncEvent) -> None:
        pods = {w.node_id: w.name for w in self.plane.topology.workloads} if self.plane else {}
        self.event_log.record(event, pods.get(event.node_id, ""))

    # -- operations ------------------------------------------------------------------------------
    async def ping(self) -> p.Ping:
        capture = self.runtime.capture
        return {"pid": os.getpid(), "home": self.home, "ready": self.ready_s is not None, "ready_s": self.ready_s,
                "capture": capture, "capture_note": USERSPACE_DIFFERENCE if capture == USERSPACE else "",
                "xds": self.xds_default}

    async def topology(self) -> p.TopologyInfo:
        topology = self._plane().topology
        effective = gateway.effective(topology)
        return {
            "mesh": dict(topology.mesh.__dict__),
            "outside": self.runtime.outside(),
            "services": [{"name": s.name, "namespace": s.namespace, "fqdn": s.fqdn, "vip": s.vip,
                          "ports": [dict(port.__dict__) for port in s.ports], "selector": dict(s.selector)}
                         for s in topology.services],
            "workloads": [{"name": w.name, "deployment": w.deployment, "namespace": w.namespace, "ip": w.ip,
                           "labels": w.label_map, "service_account": w.service_account, "node_id": w.node_id,
                           "sidecar": w.sidecar, "calls": list(w.calls),
                           "listens": _listens(effective, w)}
                          for w in topology.workloads],
        }

    async def status(self) -> list[p.SyncRow]:
        by_node = {w.node_id: w for w in self._plane().topology.workloads}
        rows: list[p.SyncRow] = []
        for sync in self.tracker.status():
            pod = by_node.get(sync.node_id)
            if pod is None and not sync.connected:  # a pod the book no longer has (a deleted gateway)
                continue
            rows.append({"name": f"{pod.name}.{pod.namespace}" if pod else sync.node_id,
                         "pod": pod.name if pod else "", "cluster": "Kubernetes",
                         **sync.as_row(),  # connected, state (the link to the boss), since, types
                         "istiod": "meshkit", "version": str(sync.metadata.get("ISTIO_VERSION", ""))})
        return rows

    async def apply(self, text: str = "", pods: list[str] | None = None) -> p.PushRecord:
        """Istio documents change the boss's book; raw ones override per pod."""
        plane = self._plane()
        docs = Documents.parse(text)
        warnings: list[str] = []
        push: Push | None = None
        if docs.istio:
            topology, warnings = with_istio(plane.topology, docs.istio)
            await self._sync_pods(plane.topology, topology)
            push = await plane.set_topology(topology, "apply " + docs.describe())
            if docs.raw:
                _checked(push)
        if docs.raw:
            push = await plane.apply_raw(docs.raw, self.workloads(pods))
        if push is None:
            raise InvalidInput("the file holds no document to apply")
        result = _checked(push)
        result["warnings"] = warnings
        return result

    async def delete(self, text: str = "") -> p.PushRecord:
        plane = self._plane()
        keys = [r.key for r in Documents.parse(text).istio]
        present = {r.key for r in plane.topology.istio.resources}
        missing = [f"{k[0]} {k[1]}/{k[2]}" for k in keys if k not in present]
        if missing:
            raise NotFound(f"not found: {', '.join(missing)}")
        topology = deployed(replace(plane.topology, istio=plane.topology.istio.deleted(keys)))
        await self._sync_pods(plane.topology, topology)
        return _checked(await plane.set_topology(topology, "delete " + ", ".join(f"{k[0]} {k[2]}" for k in keys)))

    async def get(self, kind: str = "") -> list[dict]:
        """The documents of a kind as applied; Gateway API ones with the status istiod would write."""
        topology = self._plane().topology
        return [with_status(topology, r) for r in topology.istio.of_kind(kind)]

    async def _sync_pods(self, before: Topology, after: Topology) -> None:
        """Pods a change brings or takes away (a Gateway API gateway's Deployment) are started or
        stopped before the push (the runtime owns the processes; the boss serves the new pod's socket)."""
        now = {w.name for w in after.workloads}
        for workload in (w for w in before.workloads if w.name not in now):
            await self.server.forget_pod(workload.name)
            await asyncio.to_thread(self.runtime.stop_pod, workload)
        known = {w.name for w in before.workloads}
        for workload in (w for w in after.workloads if w.name not in known):
            await asyncio.to_thread(self.runtime.start_pod, workload, after)  # makes its folder, starts Envoy
            xds = self.runtime.xds_address(workload.name)
            if xds.path:  # a local pod dials its own socket; Envoy retries until the boss opens it
                await self.server.serve_pod(workload.name, workload.node_id, xds.path, xds.uid)

    async def ingress(self) -> p.Ingress:
        """Where the host reaches the ingress gateway (`istio-ingressgateway.istio-system`)."""
        self._plane()
        return cast(p.Ingress, self.runtime.ingress())

    async def xds(self, pod: str, text: str = "") -> dict[str, list[dict]]:
        """The xDS a file would produce for one pod, without applying it ("show generated xDS")."""
        plane = self._plane()
        workload = self.workloads([pod])[0]
        topology = plane.topology
        if text.strip():
            topology, _ = with_istio(topology, Documents.parse(text).istio)
        return {SHORT_NAMES[type_url]: [json_format.MessageToDict(m, preserving_proto_field_name=True)
                                        for m in messages]
                for type_url, messages in generate.generate(topology, workload).items()}

    async def revert(self, pods: list[str] | None = None) -> p.PushRecord:
        return _checked(await self._plane().revert(self.workloads(pods)))

    async def history(self) -> list[p.PushRecord]:
        return [_record(push) for push in self._plane().history()]

    async def events(self, after: int = 0, wait: float = 0.0) -> p.Events:
        return await self.event_log.after(int(after), float(wait))

    async def boss(self, action: str = "") -> p.BossState:
        """Stop or start the ADS server: the lieutenants keep their last orders while the boss is away."""
        self._plane()
        if action not in ("stop", "start"):
            raise InvalidInput("action must be 'stop' or 'start'")
        if action == "stop" and self.server.running:
            await self.server.stop(0)
        elif action == "start" and not self.server.running:
            await self.server.start()  # every listener it had: each pod's socket, or the shared address
        return {"running": self.server.running}

    async def identity(self, ttl_s: float | None = None, rotate: bool = False,
                       pods: list[str] | None = None) -> p.Identity:
        """Certificates the boss issued; `ttl_s` sets their lifetime, `rotate` re-issues them now."""
        plane = self._plane()
        push = None
        if ttl_s:
            push = await plane.set_certificate_ttl(float(ttl_s))
        elif rotate:
            push = await plane.rotate(pods or None, "certificate rotation (requested)")
        certs = {pod: {"identity": c.identity, "serial": f"{c.serial:x}", "not_before": c.not_before,
                       "not_after": c.not_after, "rotate_at": c.rotate_at()}
                 for pod, c in plane.certificates().items()}
        return {"ttl_s": plane.ca.ttl_s, "rotations": plane.rotations, "certificates": certs,
                "push": _checked(push) if push is not None else None}


def _record(push: Push) -> p.PushRecord:
    return cast(p.PushRecord, push.as_dict())


def _checked(push: Push) -> p.PushRecord:
    """The push record, or Nack with Envoy's words when any target rejected it."""
    result = _record(push)
    if push.nacked:
        pods = ", ".join(push.errors)
        detail = "; ".join(f"{pod}: {err}" for pod, err in push.errors.items())
        raise Nack(f"Envoy rejected the config (NACK) on {pods}: {detail}. The proxy keeps serving its last "
                   "good config; fix the resource or `meshkit revert`.", result)
    return result
