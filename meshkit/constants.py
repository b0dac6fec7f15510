"""Names and numbers every layer shares; this module imports nothing from meshkit."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "MESHKIT_HOME"


def default_home(home: str | os.PathLike | None = None) -> Path:
    """The mesh's state folder: `home`, else `$MESHKIT_HOME`, else `~/.meshkit` (one rule for every command)."""
    chosen = home or os.environ.get(HOME_ENV) or Path.home() / ".meshkit"
    return Path(chosen).expanduser().resolve()

IPTABLES, USERSPACE, AUTO = "iptables", "userspace", "auto"
CAPTURES = (AUTO, IPTABLES, USERSPACE)
