"""The boss alone: the control plane without local pods, as the kind cluster runs it.

In a cluster the pods are Kubernetes' business; the boss only needs to know who they are. With
`learn_pod_ips`, each sidecar that connects tells it: the node id
`sidecar~10.244.0.15~reviews-v2-5b7f9c6d4f-x2k4p.default~default.svc.cluster.local` names the pod
and its IP, so the boss puts that pod in its book (replacing the placeholder of the same
Deployment) and pushes: the new endpoints reach every sidecar.

With `control`, it also answers meshkit's control protocol on TCP (`control.serve_tcp`): the
same `PlaneService` the local daemon composes, for the operations that need no local pod
(`protocol.PLANE_OPS`). In the cluster that address is 127.0.0.1 inside the boss's pod; `meshkit
cluster up` port-forwards it to the host's 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import replace
from pathlib import Path

from . import control
from .model import Topology, Workload
from .protocol import Scope
from .runtime.in_cluster import InCluster
from .service import PlaneService, handlers
from .xds.cache import SnapshotCache
from .xds.control_plane import ControlPlane
from .xds.server import AdsServer
from .xds.status import EventKind, SyncEvent, SyncTracker

log = logging.getLogger("meshkit.standalone")


def learn(topology: Topology, node_id: str) -> Topology | None:
    """The topology with the pod a node id names, or None if it names nothing new."""
    parts = node_id.split("~")
    if len(parts) != 4 or parts[0] not in ("sidecar", "router") or "." not in parts[2]:
        return None
    ip, (pod, namespace) = parts[1], parts[2].rsplit(".", 1)
    probe = Workload(pod, namespace, ip, (), "", ())
    for index, known in enumerate(topology.workloads):
        if known.namespace == namespace and known.deployment == probe.deployment:
            if (known.name, known.ip) == (pod, ip):
                return None
            workloads = list(topology.workloads)
            workloads[index] = replace(known, name=pod, ip=ip)
            return replace(topology, workloads=tuple(workloads))
    return None


async def run(listen: str, learn_pod_ips: bool, stop: asyncio.Event, control_listen: str | None = None) -> None:
    runtime = InCluster(listen, home=Path.cwd())
    server = AdsServer(SnapshotCache(), SyncTracker())
    service = PlaneService(runtime, server, server.tracker, str(runtime.home))
    plane = ControlPlane(runtime.topology, server.cache, server.tracker)
    pending: asyncio.Queue[str] = asyncio.Queue()

    def on_event(event: SyncEvent) -> None:
        if learn_pod_ips and event.kind is EventKind.CONNECTED:
            pending.put_nowait(event.node_id)

    server.tracker.subscribe(on_event)
    port = await server.start(listen)
    log.info("ADS server listening on %s (port %s)", listen, port)
    await plane.push_all("initial state")
    service.ready(plane)
    control_server = None
    if control_listen:
        table = handlers(service, scopes=(Scope.PLANE,))
        control_server = await control.serve_tcp(control_listen, table)
        log.info("control protocol on %s (%s)", control_listen, ", ".join(sorted(table)))

    async def learner() -> None:
        while True:
            node_id = await pending.get()
            learned = learn(plane.topology, node_id)
            if learned is not None:
                log.info("learned pod from node id %s", node_id)
                await plane.set_topology(learned, f"learned {node_id.split('~')[2]}")

    task = asyncio.create_task(learner())
    try:
        await stop.wait()
    finally:
        task.cancel()
        plane.close()
        if control_server is not None:
            control_server.close()
        if server.running:
            await server.stop(1.0)


def serve(listen: str, learn_pod_ips: bool = False, control_listen: str | None = None) -> int:
    """Run the control plane on `listen` (and the control protocol on `control_listen`) until
    SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(listen, learn_pod_ips, stop, control_listen)

    asyncio.run(main())
    return 0
