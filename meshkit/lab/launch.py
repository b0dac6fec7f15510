"""What `meshkit lab` starts: JupyterLab on the right edition's folder, with the kernels' settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .. import i18n
from . import build, modes


def lab_command(mode: str, lang: str, port: int = 8888, no_browser: bool = False) -> tuple[list[str], Path, dict]:
    """What `meshkit lab` runs: JupyterLab's argv, the notebook folder it opens (solutions/ in
    instructor mode, labs/ otherwise; their `ko/` for Korean) and the kernels' environment."""
    folder = build.SOLUTIONS if mode == modes.INSTRUCTOR else build.LABS
    if lang != i18n.EN:
        folder = folder / lang
    argv = [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={folder}", "--ServerApp.ip=127.0.0.1",
            f"--port={port}"] + (["--no-browser"] if no_browser else [])
    if os.geteuid() == 0:  # `sudo make lab` (iptables capture): JupyterLab refuses root unless told
        argv.append("--allow-root")
    return argv, folder, {"MESHKIT_MODE": mode, "MESHKIT_LANG": lang}
