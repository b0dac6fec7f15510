"""The boss's process: runtime, ADS server, control plane and the private control socket, in one loop.

`meshkit up` starts `python -m meshkit.daemon --home H` in the background. It builds the
topology on free addresses, creates the pods' network, starts the ADS server where only the
pods reach it, pushes the initial snapshots, starts the apps and the Envoy sidecars, and then
answers the CLI and notebooks on `H/control.sock` (the services in `meshkit.service` do the work).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

from . import control
from .constants import CAPTURES
from .errors import EnvironmentProblem, MeshError
from .model import TopologyError
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
STATUS_FILE = "daemon.json"
DEBOUNCE_ENV = "MESHKIT_DEBOUNCE_MS"  # how long a burst of changes may gather before one push


class Daemon:
    """Wires one runtime, one control plane and the control socket together, and takes them down."""

    def __init__(self, home: Path, capture: str | None = None, debounce_ms: float = DEBOUNCE_MS) -> None:
        self.home = home
        self.debounce_ms = debounce_ms
        self.runtime: Runtime = choose.create(home, capture)
        self.server = AdsServer(SnapshotCache(), SyncTracker())
        self.plane: ControlPlane | None = None
        self.service = PlaneService(self.runtime, self.server, self.server.tracker, str(home))
        self.pods = PodService(self.service, self.runtime)
        self._stop = asyncio.Event()

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
        runtime = self.runtime
        runtime.preflight()
        runtime.register_pid(os.getpid())
        await asyncio.to_thread(runtime.start_network)
        xds = runtime.xds_address()
        await self.server.start(f"{xds.host}:{xds.port}")
        self.plane = ControlPlane(runtime.topology, self.server.cache, self.server.tracker,
                                  debounce_ms=self.debounce_ms)
        await self.plane.push_all("initial state")  # the orders are ready before the lieutenants arrive
        await asyncio.to_thread(runtime.start_pods, xds)
        await asyncio.to_thread(runtime.wait_apps, READY_TIMEOUT_S)
        synced = await self.plane.wait_synced(runtime.topology.sidecars(), READY_TIMEOUT_S)
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
        await asyncio.to_thread(type(self.runtime).cleanup, self.home)
        (self.home / "control.sock").unlink(missing_ok=True)

    def stop(self) -> None:
        self._stop.set()

    async def down(self) -> Stopping:
        asyncio.get_running_loop().call_later(0.05, self.stop)
        return {"stopping": True}

    def _write_status(self, state: str, error: str = "") -> None:
        info = {"state": state, "pid": os.getpid(), "error": error, "ready_s": self.service.ready_s}
        (self.home / STATUS_FILE).write_text(json.dumps(info))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meshkit-daemon", description=__doc__)
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--capture", choices=CAPTURES, help="default: $MESHKIT_CAPTURE, else auto")
    parser.add_argument("--debounce-ms", type=float, default=float(os.environ.get(DEBOUNCE_ENV, DEBOUNCE_MS)),
                        help=f"merge changes arriving while a push is in flight until this long passes "
                             f"without one (default: ${DEBOUNCE_ENV}, else {DEBOUNCE_MS:g}; istiod: 100)")
    args = parser.parse_args(argv)
    home = args.home.resolve()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def run() -> None:
        try:
            daemon = Daemon(home, args.capture, args.debounce_ms)
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
