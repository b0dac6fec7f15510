"""The local mesh: start its boss process in the background, attach to it, stop it.

`up()` starts `python -m meshkit.daemon --home H` (the only place the client side touches the
daemon: as a process, never as an import) and waits for `H/daemon.json` to say ready.
`up(topology=FILE)` boots the mesh a Kubernetes manifest describes instead of the built-in demo:
the file is checked here first (a bad one raises InvalidInput before any process starts), and
what it holds that meshkit does not model is logged, one line per kind (`topology_notes`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from ..constants import default_home, xds_variant
from ..errors import EnvironmentProblem, InvalidInput, MeshError, NotRunning, Starting, Timeout
from ..protocol import DOWN
from ..runtime.choose import TopologyFiles, read_topology, topology_files
from ..runtime.processes import PodProcesses, owner_alive
from .mesh import Mesh
from .transport import ControlTransport

UP_TIMEOUT_S = 60.0
DOWN_TIMEOUT_S = 15.0
STATUS_FILE = "daemon.json"
log = logging.getLogger("meshkit")


def connect_local(home: str | os.PathLike | None = None) -> Mesh:
    """Attach to the local mesh at `home`; NotRunning if none answers, Starting while it boots."""
    mesh = Mesh(ControlTransport(default_home(home)))
    if not mesh.ping()["ready"]:
        raise Starting("the mesh is still starting; try again in a moment")
    return mesh


def topology_notes(topology: TopologyFiles) -> tuple[str, ...]:
    """Check a manifest file as `up(topology=...)` will boot it: what it ignores, one line per kind of
    thing (InvalidInput naming the document and field when meshkit cannot model it)."""
    return read_topology(topology).notes


def up_local(home: str | os.PathLike | None = None, timeout: float = UP_TIMEOUT_S,
             capture: str | None = None, topology: TopologyFiles | None = None, xds: str | None = None,
             xds_pods: Mapping[str, str] | None = None) -> Mesh:
    """Start the local mesh in the background (or attach to the one running) and wait for it.

    `topology`: Kubernetes manifest files or folders (Services, Deployments, ...) to boot instead of the demo.
    `xds`: "delta" or "sotw" for every sidecar (default $MESHKIT_XDS, else delta); `xds_pods`:
    {pod or deployment: variant} for those that speak otherwise. A running mesh keeps its choice.
    """
    path = default_home(home)
    for variant in (xds, *(xds_pods or {}).values()):
        try:
            xds_variant(variant)  # said here, not after a boot attempt
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
    wanted = [str(p) for p in topology_files(topology)] if topology is not None else None
    for note in topology_notes(wanted) if wanted else ():
        log.warning("topology: %s", note)
    try:
        return _same_topology(connect_local(path), wanted)
    except Starting:
        return _same_topology(_wait_ready(path, None, timeout), wanted)
    except NotRunning:
        pass
    _clean_after_crash(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    (path / STATUS_FILE).unlink(missing_ok=True)
    argv = [sys.executable, "-m", "meshkit.daemon", "--home", str(path), *(["--capture", capture] if capture else []),
            *(arg for file in wanted or [] for arg in ("--topology", file)),
            *(["--xds", xds.lower()] if xds else []),
            *(arg for pod, variant in (xds_pods or {}).items() for arg in ("--xds-pod", f"{pod}={variant.lower()}"))]
    with open(path / "daemon.log", "ab") as logfile:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
                                   start_new_session=True, close_fds=True)
    return _wait_ready(path, process, timeout)


def _same_topology(mesh: Mesh, wanted: list[str] | None) -> Mesh:
    """The running mesh, unless it was booted from another topology than the one asked for."""
    try:
        running = json.loads((mesh.home / STATUS_FILE).read_text()).get("topology")
    except (OSError, ValueError):
        running = None
    if wanted is not None and running != wanted:
        running_text = ", ".join(running) if running else "the built-in demo"
        raise InvalidInput(f"a mesh already runs at {mesh.home} with {running_text}, not {', '.join(wanted)}: "
                           "stop it first (meshkit down), then boot the topology")
    return mesh


def down(home: str | os.PathLike | None = None) -> None:
    """Stop the mesh at `home` and remove everything it made, even if its process was killed."""
    path = default_home(home)
    pid = _daemon_pid(path)
    with contextlib.suppress(MeshError):
        ControlTransport(path).call(DOWN, {}, timeout=5.0)
    if pid:
        _wait_exit(pid, DOWN_TIMEOUT_S)
    PodProcesses.cleanup(path)
    (path / "control.sock").unlink(missing_ok=True)
    (path / STATUS_FILE).unlink(missing_ok=True)


def _clean_after_crash(path: Path) -> None:
    """A boss killed by SIGKILL leaves its pods and network behind: remove them before booting anew."""
    if owner_alive(path) is False:
        print(f"meshkit: the mesh at {path} lost its daemon (killed?); removing what it left and starting fresh",
              file=sys.stderr)
        down(path)


def _wait_ready(path: Path, process: subprocess.Popen | None, timeout: float) -> Mesh:
    deadline = time.monotonic() + timeout
    status_file = path / STATUS_FILE
    while time.monotonic() < deadline:
        if status_file.exists():
            status = json.loads(status_file.read_text() or "{}")
            if status.get("state") == "failed":
                raise EnvironmentProblem(status.get("error") or "the mesh failed to start",
                                         f"read {path}/daemon.log")
            if status.get("state") == "ready":
                return connect_local(path)
        if process is not None and process.poll() is not None:
            tail = (path / "daemon.log").read_text(errors="replace")[-2000:]
            raise EnvironmentProblem(f"the mesh process exited during start-up:\n{tail}")
        time.sleep(0.05)
    raise Timeout(f"the mesh did not become ready within {timeout:.0f}s; see {path}/daemon.log")


def _daemon_pid(path: Path) -> int | None:
    try:
        return int(json.loads((path / STATUS_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _wait_exit(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
