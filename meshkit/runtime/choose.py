"""Which capture a local mesh uses: `iptables` when this process can, `userspace` otherwise.

iptables capture (LocalRuntime) needs root: it creates network namespaces, a bridge and nat
rules, and starts the proxy as uid 1337. (Unprivileged user namespaces would be enough for the
kernel, but the runtime also needs uids 1000 and 1337 mapped, which plain `unshare -r` cannot
give; `meshkit doctor` reports whether they are available.) Everything else gets `userspace`.
`--capture` / `MESHKIT_CAPTURE` forces one.

The mesh is the built-in demo (`model.demo`: Bookinfo and its front gate) unless `topology` names a Kubernetes manifest
file (`meshkit up --topology FILE`): then `model.manifests` builds it on the runtime's addresses.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from ..constants import AUTO, CAPTURES, IPTABLES, USERSPACE
from ..errors import InvalidInput
from ..model import Topology, demo
from ..model.manifests import Manifest, ManifestError, parse_manifests
from .base import Runtime
from .errors import RuntimeProblem
from .local import TOOLS, LocalRuntime
from .supervisor import PodHealth
from .userspace import UserspaceRuntime

__all__ = ["AUTO", "CAPTURES", "IPTABLES", "USERSPACE", "create", "iptables_problem", "read_topology", "resolve"]


def iptables_problem() -> str | None:
    """Why iptables capture cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "not root"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed"
    return None


def resolve(requested: str | None = None) -> str:
    """`iptables` or `userspace` for a request of auto/iptables/userspace (None: $MESHKIT_CAPTURE, else auto)."""
    wanted = (requested or os.environ.get("MESHKIT_CAPTURE") or AUTO).lower()
    if wanted not in CAPTURES:
        raise RuntimeProblem(f"unknown capture {wanted!r}", f"choose one of {', '.join(CAPTURES)}")
    if wanted == AUTO:
        return USERSPACE if iptables_problem() else IPTABLES
    return wanted


TopologyFiles = str | os.PathLike | Sequence[str | os.PathLike]


def topology_files(topology: TopologyFiles) -> list[Path]:
    """The manifest files `topology` names: a file, a folder's *.yaml/*.yml/*.json (sorted), or a list of those."""
    files: list[Path] = []
    for entry in [topology] if isinstance(topology, str | os.PathLike) else topology:
        path = Path(entry).resolve()
        files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json")) if path.is_dir() \
            else [path]
    if not files:
        raise InvalidInput(f"no manifest files in {topology}: give a .yaml file, or a folder holding some")
    return files


def read_topology(topology: TopologyFiles, pod_subnet: str | None = None) -> Manifest:
    """The mesh manifest files describe (on `pod_subnet`, default the demo's), or InvalidInput naming
    the file, document and field at fault: checked before anything starts, so nothing half-boots."""
    texts = []
    for path in topology_files(topology):
        try:
            texts.append((path.name, path.read_text()))
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read the topology file {path}: {exc}") from exc
    try:
        return parse_manifests(texts, **({"pod_subnet": pod_subnet} if pod_subnet else {}))
    except ManifestError as exc:
        raise InvalidInput(str(exc)) from exc


def create(home: Path, requested: str | None = None, topology: TopologyFiles | None = None,
           on_pod_health: PodHealth | None = None) -> Runtime:
    """The runtime for `home` with its topology (`.topology`) on free addresses; `.capture` says which.

    `topology`: Kubernetes manifest files to build the mesh from (default: the built-in demo).
    `on_pod_health(pod, healthy)` is called when a pod stops or starts being ready (supervisor.py).
    """
    build: Callable[[str], Topology] = demo if topology is None else \
        (lambda subnet: read_topology(topology, subnet).topology)
    if resolve(requested) == USERSPACE:
        return UserspaceRuntime.create(home, build, on_pod_health)
    return LocalRuntime(home, build(LocalRuntime.allocate_subnet(home)), on_pod_health)
