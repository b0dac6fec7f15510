"""Which capture a local mesh uses: `iptables` when this process can, `userspace` otherwise.

iptables capture (LocalRuntime) needs root: it creates network namespaces, a bridge and nat
rules, and starts the proxy as uid 1337. (Unprivileged user namespaces would be enough for the
kernel, but the runtime also needs uids 1000 and 1337 mapped, which plain `unshare -r` cannot
give; `meshkit doctor` reports whether they are available.) Everything else gets `userspace`.
`--capture` / `MESHKIT_CAPTURE` forces one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..constants import AUTO, CAPTURES, IPTABLES, USERSPACE
from ..model import bookinfo
from .base import Runtime
from .errors import RuntimeProblem
from .local import TOOLS, LocalRuntime
from .userspace import UserspaceRuntime

__all__ = ["AUTO", "CAPTURES", "IPTABLES", "USERSPACE", "create", "iptables_problem", "resolve"]


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


def create(home: Path, requested: str | None = None) -> Runtime:
    """The runtime for `home` with its topology (`.topology`) on free addresses; `.capture` says which."""
    if resolve(requested) == USERSPACE:
        return UserspaceRuntime.create(home)
    return LocalRuntime(home, bookinfo(pod_subnet=LocalRuntime.allocate_subnet(home), ingress=True))
