"""The boss's process: control plane, pods and the private control socket, in one event loop.

`meshkit up` starts `python -m meshkit.daemon --home H` in the background. It builds the
topology on a free pod subnet, creates the pods' network, starts the ADS server on the bridge
address (reachable only from the pods), pushes the initial snapshots, starts the apps and the
Envoy sidecars, and then answers the CLI and notebooks on `H/control.sock`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from google.protobuf import json_format

from . import control
from .model import Topology, TopologyError, Workload
from .model.analyze import analyze
from .model.istio import parse_istio_document
from .model.raw import ResourceError, is_raw_document, load_documents, parse_document
from .model.schema import SchemaError
from .runtime import choose, curl
from .runtime.errors import RuntimeProblem
from .runtime.local import LocalRuntime
from .xds import generate
from .xds.cache import SnapshotCache
from .xds.control_plane import ControlPlane
from .xds.resources import SHORT_NAMES
from .xds.server import AdsServer
from .xds.status import SyncEvent, SyncState, SyncTracker, TypeSync

log = logging.getLogger("meshkit.daemon")

READY_TIMEOUT_S = 30.0
EVENT_BUFFER = 500
POD_VIEWS = {
    "iptables": ["iptables-save", "-t", "nat"],
    "sockets": ["ss", "-ltnp"],
    "hosts": ["cat", "/etc/hosts"],
    "addresses": ["ip", "-brief", "address"],
}
STATUS_FILE = "daemon.json"
# --- kind (issue 5): the ops that need only the control plane, no local pods. `meshkit serve-xds
# --control` answers exactly these with this class's handlers (standalone.py); the others (curl,
# tcp, admin, pod_info) run client-side on kind (kind_mesh.py). Add an op here if it needs no pod.
PLANE_OPS = ("ping", "topology", "status", "apply", "delete", "get", "xds", "revert", "history", "events",
             "boss")
# --- end kind


class Daemon:
    """Wires the runtime, the control plane and the control socket together."""

    def __init__(self, home: Path, capture: str | None = None) -> None:
        self.home = home
        self.capture = capture  # auto | iptables | userspace (runtime/choose.py)
        self.runtime: LocalRuntime | None = None
        self.plane: ControlPlane | None = None
        self.server: AdsServer | None = None
        self.tracker = SyncTracker()
        self.started = time.time()
        self.ready_s: float | None = None
        self._stop = asyncio.Event()
        self._events: list[dict] = []  # recent sync events, numbered, for live views
        self._event_seq = 0
        self._direct_turn = 0  # kube-proxy's round robin for the sidecar-less outsider
        self._new_event = asyncio.Condition()
        self.tracker.subscribe(self._on_sync_event)

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        socket_server = await control.serve(self.home / "control.sock", self.handlers())
        try:
            await self.start()
            self._write_status("ready")
            await self._stop.wait()
        except (RuntimeProblem, TopologyError) as exc:
            self._write_status("failed", str(exc))
            log.error("%s", exc)
        finally:
            socket_server.close()
            await self.shutdown()

    async def start(self) -> None:
        runtime = choose.create(self.home, self.capture)  # iptables or userspace capture (issue 6)
        topology = runtime.topology
        self.runtime = runtime
        runtime.preflight()
        runtime.register_pid(os.getpid())
        await asyncio.to_thread(runtime.start_network)
        xds = runtime.xds_address()
        self.server = AdsServer(SnapshotCache(), self.tracker)
        await self.server.start(f"{xds.host}:{xds.port}")
        self.plane = ControlPlane(topology, self.server.cache, self.tracker)
        await self.plane.push_all("initial state")  # the orders are ready before the lieutenants arrive
        await asyncio.to_thread(runtime.start_pods, xds)
        await asyncio.to_thread(runtime.wait_apps, READY_TIMEOUT_S)
        synced = await self.plane.wait_synced(topology.sidecars(), READY_TIMEOUT_S)
        stuck = {pod: r for pod, r in synced.items() if set(r.values()) != {"ACK"}}
        if stuck:
            raise RuntimeProblem(
                f"sidecars did not take their first config: {stuck}",
                f"read {self.home}/pods/<pod>/envoy.log for Envoy's own words",
            )
        self.ready_s = time.time() - self.started

    async def shutdown(self) -> None:
        if self.plane is not None:
            self.plane.close()  # identity: certificate renewal timers
        if self.server is not None:
            await self.server.stop(0.2)
        await asyncio.to_thread(LocalRuntime.cleanup, self.home)
        (self.home / "control.sock").unlink(missing_ok=True)

    def stop(self) -> None:
        self._stop.set()

    def _write_status(self, state: str, error: str = "") -> None:
        info = {"state": state, "pid": os.getpid(), "error": error, "ready_s": self.ready_s}
        (self.home / STATUS_FILE).write_text(json.dumps(info))

    def _on_sync_event(self, event: SyncEvent) -> None:
        self._event_seq += 1
        row = {"seq": self._event_seq, "kind": event.kind.value, "node_id": event.node_id, "time": event.time,
               "type": SHORT_NAMES.get(event.type_url, ""), "version": event.version, "nonce": event.nonce,
               "error": event.error}
        self._events = [*self._events[-(EVENT_BUFFER - 1):], row]
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._new_event:
            self._new_event.notify_all()

    # -- the control socket ----------------------------------------------------------------
    def handlers(self) -> dict[str, control.Handler]:
        return {
            "ping": self.op_ping,
            "topology": self.op_topology,
            "status": self.op_status,
            "apply": self.op_apply,
            "delete": self.op_delete,
            "get": self.op_get,
            "xds": self.op_xds,
            "revert": self.op_revert,
            "history": self.op_history,
            "curl": self.op_curl,
            "admin": self.op_admin,
            "events": self.op_events,
            "tcp": self.op_tcp,
            "pod_info": self.op_pod_info,
            "boss": self.op_boss,
            "identity": self.op_identity,
            "down": self.op_down,
        }

    def _plane(self) -> ControlPlane:
        if self.plane is None or self.ready_s is None:
            raise control.ControlError("the mesh is still starting; try again in a moment", "starting")
        return self.plane

    def _pods(self, names: list[str] | None) -> list[Workload]:
        topology = self._plane().topology
        if not names:
            return topology.sidecars()
        try:
            return [topology.workload(n) for n in names]
        except TopologyError as exc:
            raise control.ControlError(str(exc), "invalid") from exc

    async def op_ping(self, args: dict) -> dict:
        return {"pid": os.getpid(), "home": str(self.home), "ready": self.ready_s is not None,
                "ready_s": self.ready_s, "capture": getattr(self.runtime, "capture", "iptables")}

    async def op_topology(self, args: dict) -> dict:
        topology = self._plane().topology
        return {
            "mesh": topology.mesh.__dict__,
            "outside": self._runtime().outside(),
            "services": [
                {"name": s.name, "namespace": s.namespace, "fqdn": s.fqdn, "vip": s.vip,
                 "ports": [p.__dict__ for p in s.ports], "selector": dict(s.selector)}
                for s in topology.services
            ],
            "workloads": [
                {"name": w.name, "deployment": w.deployment, "namespace": w.namespace, "ip": w.ip,
                 "labels": w.label_map, "service_account": w.service_account, "node_id": w.node_id,
                 "sidecar": w.sidecar, "calls": list(w.calls)}
                for w in topology.workloads
            ],
        }

    async def op_status(self, args: dict) -> list[dict]:
        plane = self._plane()
        by_node = {w.node_id: w for w in plane.topology.workloads}
        rows = []
        for sync in self.tracker.status():
            pod = by_node.get(sync.node_id)
            rows.append({
                "name": f"{pod.name}.{pod.namespace}" if pod else sync.node_id,
                "pod": pod.name if pod else "",
                "cluster": "Kubernetes",
                "connected": sync.connected,
                "types": {SHORT_NAMES[t]: _type_row(s) for t, s in sync.types.items()},
                "istiod": "meshkit",
                "version": str(sync.metadata.get("ISTIO_VERSION", "")),
            })
        return rows

    async def op_apply(self, args: dict) -> dict:
        """Apply a file: Istio documents change the boss's book, raw ones override per pod."""
        plane = self._plane()
        try:
            docs = load_documents(str(args.get("text", "")))
            raws = [parse_document(doc, i) for i, doc in enumerate(docs) if is_raw_document(doc)]
            istio = [parse_istio_document(doc, i) for i, doc in enumerate(docs) if not is_raw_document(doc)]
        except (ResourceError, SchemaError) as exc:
            raise control.ControlError(str(exc), "invalid") from exc
        warnings: list[str] = []
        if istio:
            topology = self._with_istio(plane.topology, istio, warnings)
            push = await plane.set_topology(topology, "apply " + ", ".join(f"{r.kind} {r.name}" for r in istio))
            if raws:
                self._push_result(push)
        if raws:
            push = await plane.apply_raw(raws, self._pods(args.get("pods")))
        result = self._push_result(push)
        result["warnings"] = warnings
        return result

    @staticmethod
    def _with_istio(topology: Topology, resources: list, warnings: list[str]) -> Topology:
        """The topology with Istio resources applied, or ControlError if analysis finds errors."""
        config = topology.istio.applied(resources)
        mesh = topology.mesh
        for resource in resources:
            if resource.kind == "MeshConfig":
                mode = (resource.spec.get("outboundTrafficPolicy") or {}).get("mode", mesh.outbound_traffic_policy)
                mesh = replace(mesh, outbound_traffic_policy=mode)
        candidate = replace(topology, istio=config, mesh=mesh)
        findings = analyze(candidate, config)
        errors = [str(f) for f in findings if f.level == "error"]
        if errors:
            raise control.ControlError("nothing was applied:\n  " + "\n  ".join(errors), "invalid",
                                       {"findings": [str(f) for f in findings]})
        warnings += [str(f) for f in findings if f.level == "warning"]
        return candidate

    async def op_delete(self, args: dict) -> dict:
        plane = self._plane()
        try:
            docs = load_documents(str(args.get("text", "")))
            keys = [parse_istio_document(doc, i).key for i, doc in enumerate(docs) if not is_raw_document(doc)]
        except (ResourceError, SchemaError) as exc:
            raise control.ControlError(str(exc), "invalid") from exc
        present = {r.key for r in plane.topology.istio.resources}
        missing = [f"{k[0]} {k[1]}/{k[2]}" for k in keys if k not in present]
        if missing:
            raise control.ControlError(f"not found: {', '.join(missing)}", "not-found")
        topology = replace(plane.topology, istio=plane.topology.istio.deleted(keys))
        push = await plane.set_topology(topology, "delete " + ", ".join(f"{k[0]} {k[2]}" for k in keys))
        return self._push_result(push)

    async def op_xds(self, args: dict) -> dict:
        """The xDS a file would produce for one pod, without applying it ("show generated xDS")."""
        plane = self._plane()
        pod = self._pods([str(args["pod"])])[0]
        topology = plane.topology
        text = str(args.get("text") or "")
        if text.strip():
            try:
                docs = load_documents(text)
                istio = [parse_istio_document(doc, i) for i, doc in enumerate(docs) if not is_raw_document(doc)]
            except (ResourceError, SchemaError) as exc:
                raise control.ControlError(str(exc), "invalid") from exc
            topology = self._with_istio(topology, istio, [])
        generated = generate.generate(topology, pod)
        return {
            SHORT_NAMES[type_url]: [json_format.MessageToDict(m, preserving_proto_field_name=True)
                                    for m in messages]
            for type_url, messages in generated.items()
        }

    async def op_get(self, args: dict) -> list[dict]:
        kind = str(args.get("kind", ""))
        return [r.source for r in self._plane().topology.istio.of_kind(kind)]

    async def op_revert(self, args: dict) -> dict:
        push = await self._plane().revert(self._pods(args.get("pods")))
        return self._push_result(push)

    def _push_result(self, push) -> dict:
        result = push.as_dict()
        if push.nacked:
            pods = ", ".join(push.errors)
            detail = "; ".join(f"{pod}: {err}" for pod, err in push.errors.items())
            raise control.ControlError(
                f"Envoy rejected the config (NACK) on {pods}: {detail}. "
                "The proxy keeps serving its last good config; fix the resource or `meshkit revert`.",
                "nack", result)
        return result

    async def op_history(self, args: dict) -> list[dict]:
        return [p.as_dict() for p in self._plane().history()]

    async def op_curl(self, args: dict) -> list[dict]:
        plane, runtime = self._plane(), self.runtime
        assert runtime is not None
        pod = self._pods([str(args["pod"])])[0]
        try:
            host, port, path = curl.parse_url(str(args["url"]))
        except ValueError as exc:
            raise control.ControlError(str(exc), "invalid") from exc
        address = self._resolve(plane.topology, host, runtime.outside())
        if not pod.sidecar:  # identity: no sidecar, no VIP magic: dial a pod behind the Service
            address, port = self._direct(plane.topology, host, address, port)
        target = curl.target_of(address, host, port, path)
        timeout = float(args.get("timeout", 10.0))

        def run() -> list[curl.Reply]:
            offset = curl.log_size(runtime.access_log(pod.name))
            replies = curl.requests(lambda: runtime.connect(pod.name, address, port, timeout), target,
                                    int(args.get("n", 1)), dict(args.get("headers") or {}),
                                    str(args.get("method", "GET")), timeout)
            curl.attach_access_log(replies, runtime.access_log(pod.name), offset=offset)
            return replies

        return [r.as_dict() for r in await asyncio.to_thread(run)]

    @staticmethod
    def _resolve(topology: Topology, host: str, outside: dict | None = None) -> str:
        """A host as the pods' hosts files resolve it: a Service's VIP, the outside world, or an IP."""
        service = topology.service(host)
        if service is not None:
            return service.vip
        if outside and host.rstrip(".") == outside["host"]:
            return outside["address"]
        parts = host.split(".")
        if len(parts) == 4 and all(p.isdigit() for p in parts):
            return host
        raise control.ControlError(
            f"unknown host {host!r}: not a Service of this mesh and not an IP address "
            f"(Services: {', '.join(s.name for s in topology.services)}"
            f"{'; outside the mesh: ' + outside['host'] if outside else ''})", "invalid")

    # -- identity (SDS certificates; the outsider) -------------------------------------------------
    def _direct(self, topology: Topology, host: str, address: str, port: int) -> tuple[str, int]:
        """A sidecar-less pod has no Envoy to turn a Service VIP into a pod: pick one in turn (as
        kube-proxy would) and its target port."""
        service = topology.service(host)
        if service is None:
            return address, port
        pods = topology.endpoints(service)
        service_port = service.port(port)
        if not pods or service_port is None:
            return address, port
        self._direct_turn += 1
        return pods[self._direct_turn % len(pods)].ip, service_port.target_port

    async def op_identity(self, args: dict) -> dict:
        """Certificates the boss issued; `ttl_s` sets their lifetime, `rotate` re-issues them now."""
        plane = self._plane()
        push = None
        if args.get("ttl_s"):
            push = await plane.set_certificate_ttl(float(args["ttl_s"]))
        elif args.get("rotate"):
            push = await plane.rotate(args.get("pods") or None, "certificate rotation (requested)")
        certs = {pod: {"identity": c.identity, "serial": f"{c.serial:x}", "not_before": c.not_before,
                       "not_after": c.not_after, "rotate_at": c.rotate_at()}
                 for pod, c in plane.certificates().items()}
        return {"ttl_s": plane.ca.ttl_s, "rotations": plane.rotations, "certificates": certs,
                "push": self._push_result(push) if push is not None else None}

    async def op_admin(self, args: dict) -> str:
        runtime = self.runtime
        assert runtime is not None
        pod = self._pods([str(args["pod"])])[0]
        path = str(args.get("path", "/server_info"))
        return await asyncio.to_thread(runtime.admin_get, pod.name, path)

    async def op_events(self, args: dict) -> dict:
        """Sync events after `after` (a sequence number); waits up to `wait` s for a new one."""
        after, timeout = int(args.get("after", 0)), float(args.get("wait", 0))
        if timeout > 0 and self._event_seq <= after:
            async with self._new_event:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new_event.wait_for(lambda: self._event_seq > after), timeout)
        by_node = {w.node_id: w.name for w in self.plane.topology.workloads} if self.plane else {}
        events = [dict(e, pod=by_node.get(e["node_id"], "")) for e in self._events if e["seq"] > after]
        return {"last": self._event_seq, "events": events}

    async def op_tcp(self, args: dict) -> dict:
        """Open a TCP connection from inside a pod (captured like the app's), send text, read the reply."""
        plane, runtime = self._plane(), self._runtime()
        pod = self._pods([str(args["pod"])])[0]
        address, port = self._resolve(plane.topology, str(args["host"]), runtime.outside()), int(args["port"])
        payload = str(args.get("text", "hello\n")).encode()

        def run() -> dict:
            return curl.tcp_exchange(lambda: runtime.connect(pod.name, address, port, 5.0), payload,
                                     float(args.get("timeout", 3.0)))

        return await asyncio.to_thread(run)

    async def op_pod_info(self, args: dict) -> str:
        """Read-only views from inside a pod: its iptables rules, listening sockets, hosts file."""
        runtime = self._runtime()
        pod = self._pods([str(args["pod"])])[0]
        what = str(args.get("what", "iptables"))
        if what not in POD_VIEWS:
            raise control.ControlError(f"unknown view {what!r}; choose one of {', '.join(POD_VIEWS)}", "invalid")
        if hasattr(runtime, "pod_view"):  # userspace capture: no netns to look into (issue 6)
            return await asyncio.to_thread(runtime.pod_view, pod.name, what)
        argv = ["ip", "netns", "exec", runtime.netns(pod.name), *POD_VIEWS[what]]
        result = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=10)
        return result.stdout + result.stderr

    async def op_boss(self, args: dict) -> dict:
        """Stop or start the ADS server: the lieutenants keep their last orders while the boss is away."""
        action = str(args.get("action", ""))
        runtime = self._runtime()
        assert self.server is not None
        if action == "stop" and self.server.running:
            await self.server.stop(0)
        elif action == "start" and not self.server.running:
            xds = runtime.xds_address()
            await self.server.start(f"{xds.host}:{xds.port}")
        elif action not in ("stop", "start"):
            raise control.ControlError("action must be 'stop' or 'start'", "invalid")
        return {"running": self.server.running}

    def _runtime(self) -> LocalRuntime:
        self._plane()
        assert self.runtime is not None
        return self.runtime

    async def op_down(self, args: dict) -> dict:
        asyncio.get_running_loop().call_later(0.05, self.stop)
        return {"stopping": True}


def _type_row(sync: TypeSync) -> dict:
    return {
        "state": sync.state.value,
        "version": sync.acked_version or sync.sent_version,
        "sent": sync.sent_version,
        "acked": sync.acked_version,
        "error": sync.error if sync.state is SyncState.ERROR else "",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meshkit-daemon", description=__doc__)
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--capture", choices=choose.CAPTURES, help="default: $MESHKIT_CAPTURE, else auto")
    args = parser.parse_args(argv)
    args.home.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    daemon = Daemon(args.home.resolve(), args.capture)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, daemon.stop)
        await daemon.run()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
