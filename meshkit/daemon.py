"""The boss's process: runtime, ADS server, control plane and the private control socket, in one loop.

`meshkit up` starts `python -m meshkit.daemon --home H` in the background. It builds the
topology on free addresses, creates the pods' network, serves each sidecar's ADS on a unix
socket in its pod's folder that only the sidecar's uid may open (no TCP port), pushes the
initial snapshots, starts the apps and the Envoy sidecars, and then answers the CLI and
notebooks on `H/control.sock` (the services in `meshkit.service` do the work).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import stat
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from . import control
from .constants import CAPTURES, XDS_CHOICES, XDS_ENV, xds_variant
from .errors import EnvironmentProblem, InvalidInput, MeshError
from .model import Topology, TopologyError
from .protocol import Stopping
from .runtime import choose
from .runtime.base import Runtime
from .service import PlaneService, PodService, handlers
from .xds.cache import SnapshotCache
from .xds.control_plane import ControlPlane
from .xds.debounce import DEBOUNCE_MS
from .xds.server import AdsServer
from .xds.status import SyncTracker

log = logging.getLogger("meshkit.daemon")

READY_TIMEOUT_S = 30.0
READY_S_PER_POD = 0.5  # a big --topology: Envoys start at a few per second on two cores
STATUS_FILE = "daemon.json"
DEBOUNCE_ENV = "MESHKIT_DEBOUNCE_MS"  # how long a burst of changes may gather before one push


class Daemon:
    """Wires one runtime, one control plane and the control socket together, and takes them down."""

    def __init__(self, home: Path, capture: str | None = None, topology: list[Path] | None = None,
                 xds: str | None = None, xds_pods: Mapping[str, str] | None = None,
                 debounce_ms: float = DEBOUNCE_MS) -> None:
        self.home = home
        self.topology_file = topology
        self.debounce_ms = debounce_ms
        self.runtime: Runtime = choose.create(home, capture, topology, self._on_pod_health)
        self.xds = _variant(xds)
        self.runtime.topology = with_xds(self.runtime.topology, self.xds, xds_pods or {})
        self.server = AdsServer(SnapshotCache(), SyncTracker())
        self.plane: ControlPlane | None = None
        self.service = PlaneService(self.runtime, self.server, self.server.tracker, str(home), xds=self.xds)
        self.pods = PodService(self.service, self.runtime)
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self) -> None:
        table = handlers(self.service, self.pods, extra={"down": self.down})
        socket_server = await control.serve(self.home / "control.sock", table, self.home / "daemon.log")
        try:
            await self.start()
            self._write_status("ready")
            await self._stop.wait()
        except (MeshError, TopologyError) as exc:
            self._write_status("failed", str(exc))
            log.error("%s", exc)
        finally:
            socket_server.close()
            await self.shutdown()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        runtime = self.runtime
        runtime.preflight()
        runtime.register_pid(os.getpid())
        await asyncio.to_thread(runtime.start_network)
        for workload in runtime.topology.sidecars():  # the socket is the pod's credential: one each
            xds = runtime.xds_address(workload.name)
            await self.server.serve_pod(workload.name, workload.node_id, xds.path, xds.uid)
        self.plane = ControlPlane(runtime.topology, self.server.cache, self.server.tracker,
                                  debounce_ms=self.debounce_ms)
        await self.plane.push_all("initial state")  # the orders are ready before the lieutenants arrive
        await asyncio.to_thread(runtime.start_pods)
        timeout = max(READY_TIMEOUT_S, READY_S_PER_POD * len(runtime.topology.workloads))
        await asyncio.to_thread(runtime.wait_apps, timeout)
        synced = await self.plane.wait_synced(runtime.topology.sidecars(), timeout)
        stuck = {pod: r for pod, r in synced.items() if set(r.values()) != {"ACK"}}
        if stuck:
            raise EnvironmentProblem(f"sidecars did not take their first config: {stuck}",
                                     f"read {self.home}/pods/<pod>/envoy.log for Envoy's own words")
        self.service.ready(self.plane)

    async def shutdown(self) -> None:
        if self.plane is not None:
            self.plane.close()  # certificate renewal timers
        if self.server.running:
            await self.server.stop(0.2)
        await asyncio.to_thread(self.runtime.stop)  # halts the supervisor first: nothing it kills is restarted
        await asyncio.to_thread(type(self.runtime).cleanup, self.home)  # also what a failed start recorded
        (self.home / "control.sock").unlink(missing_ok=True)

    def stop(self) -> None:
        self._stop.set()

    def _on_pod_health(self, pod: str, healthy: bool) -> None:
        """The supervisor's word (from its thread) that a pod stopped, or started again, being ready."""
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._mark(pod, healthy), self._loop)

    async def _mark(self, pod: str, healthy: bool) -> None:
        """As Kubernetes readiness would: callers stop choosing a pod that is down (EDS marks it UNHEALTHY)."""
        if self.plane is not None:
            log.warning("pod %s is %s", pod, "ready again" if healthy else "not ready")
            await self.plane.set_pod_health(pod, healthy)

    async def down(self) -> Stopping:
        asyncio.get_running_loop().call_later(0.05, self.stop)
        return {"stopping": True}

    def _write_status(self, state: str, error: str = "") -> None:
        info = {"state": state, "pid": os.getpid(), "error": error, "ready_s": self.service.ready_s,
                "topology": [str(p) for p in self.topology_file] if self.topology_file else None}
        (self.home / STATUS_FILE).write_text(json.dumps(info))


def _variant(requested: str | None) -> str:
    try:
        return xds_variant(requested)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc


def with_xds(topology: Topology, default: str, per_pod: Mapping[str, str]) -> Topology:
    """Every sidecar speaks `default` (DELTA or SOTW) but those `per_pod` names (pod or deployment)."""
    known = {w.name for w in topology.workloads} | {w.deployment for w in topology.workloads}
    unknown = sorted(set(per_pod) - known)
    if unknown:
        raise InvalidInput(f"--xds-pod names no pod: {', '.join(unknown)}; "
                           f"choose among {', '.join(sorted(w.deployment for w in topology.sidecars()))}")
    workloads = tuple(replace(w, xds=_variant(per_pod.get(w.name) or per_pod.get(w.deployment) or default))
                      for w in topology.workloads)
    return replace(topology, workloads=workloads)


def _pod_variant(text: str) -> tuple[str, str]:
    pod, sep, variant = text.partition("=")
    if not sep or not pod:
        raise argparse.ArgumentTypeError(f"want POD=delta|sotw, not {text!r}")
    return pod, variant


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meshkit-daemon", description=__doc__)
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--capture", choices=CAPTURES, help="default: $MESHKIT_CAPTURE, else auto")
    parser.add_argument("--topology", type=Path, action="append",
                        help="a Kubernetes manifest file or folder, repeatable (default: the built-in demo)")
    parser.add_argument("--xds", choices=XDS_CHOICES, help=f"default: ${XDS_ENV}, else delta")
    parser.add_argument("--xds-pod", action="append", type=_pod_variant, default=[], metavar="POD=VARIANT")
    parser.add_argument("--debounce-ms", type=float, default=float(os.environ.get(DEBOUNCE_ENV, DEBOUNCE_MS)),
                        help=f"merge changes arriving while a push is in flight until this long passes "
                             f"without one (default: ${DEBOUNCE_ENV}, else {DEBOUNCE_MS:g}; istiod: 100)")
    args = parser.parse_args(argv)
    home = args.home.resolve()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    if home.stat().st_uid == os.geteuid() and not home.stat().st_mode & stat.S_ISVTX:  # never /tmp itself
        home.chmod(0o700)  # the pods' sockets and logs are below: no other user looks in
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def run() -> None:
        try:
            daemon = Daemon(home, args.capture, args.topology, args.xds, dict(args.xds_pod), args.debounce_ms)
        except MeshError as exc:  # e.g. no free addresses: say so to the waiting `meshkit up`
            (home / STATUS_FILE).write_text(json.dumps({"state": "failed", "pid": os.getpid(), "error": str(exc)}))
            log.error("%s", exc)
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, daemon.stop)
        await daemon.run()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
