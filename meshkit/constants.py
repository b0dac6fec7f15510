"""Values every layer of meshkit may use; this module imports nothing from meshkit, so any may import it."""

from __future__ import annotations

import os
from pathlib import Path


def default_home() -> Path:
    """The state folder when no `--home` is given: `$MESHKIT_HOME`, else `~/.meshkit` (absolute)."""
    return Path(os.environ.get("MESHKIT_HOME") or Path.home() / ".meshkit").expanduser().resolve()
