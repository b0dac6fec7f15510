"""The demo apps that live in the pods, and the command that starts the right one for a workload.

The apps are standalone stdlib scripts: started by file path in isolated mode (`python -I`), they
import nothing from meshkit, start in a few tens of milliseconds and run under any uid that can
read them. They run as an unprivileged uid, so the interpreter must be usable by it too: a venv
built on a Python under /root (pyenv) is not, and then the system's python3 runs the apps.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ...model import Workload
from ..errors import RuntimeProblem
from ..netns import usable_by_any_uid

HERE = Path(__file__).resolve().parent
BOOKINFO_SERVICES = ("productpage", "details", "reviews", "ratings")
PYTHONS = (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3")


def app_python() -> str:
    """An interpreter the apps' uid can run: this one if it can, else the system's python3."""
    for python in PYTHONS:
        if Path(python).exists() and usable_by_any_uid(Path(python)):
            return python
    raise RuntimeProblem(
        f"no Python usable by an unprivileged uid (tried {', '.join(PYTHONS)}; /root is 0700)",
        "install the system python3 (apt-get install python3), or make your Python world-readable",
    )


def app_command(workload: Workload, apps: Path = HERE) -> list[str]:
    """The argv that runs `workload`'s demo app (from the folder `apps`): its `app_spec`, else the
    built-in demo's app for its `app` label, on its first port."""
    port = str(workload.ports[0])
    python = [app_python(), "-I"]
    spec = workload.app_spec
    if spec is not None and spec.program == "generic":
        return [*python, str(apps / "generic.py"), "--pod", workload.name, "--app", workload.app,
                "--version", workload.version, "--namespace", workload.namespace,
                "--service-account", workload.service_account,
                *(arg for p in workload.ports for arg in ("--port", str(p))),
                *(arg for p in spec.tcp_ports for arg in ("--tcp-port", str(p))),
                *(arg for url in spec.calls for arg in ("--call", url))]
    if spec is not None and spec.program == "bookinfo":
        return [*python, str(apps / "bookinfo.py"), "--service", spec.service,
                "--version", spec.version or "v1", "--pod", workload.name, "--port", port]
    if workload.app in BOOKINFO_SERVICES:
        return [*python, str(apps / "bookinfo.py"), "--service", workload.app,
                "--version", workload.version or "v1", "--pod", workload.name, "--port", port]
    if workload.app == "tcp-echo":
        return [*python, str(apps / "tcp_echo.py"), "--pod", workload.name, "--port", port]
    raise RuntimeProblem(f"no demo app for workload {workload.name} (app={workload.app!r})",
                         f"use an app of the demo: {', '.join((*BOOKINFO_SERVICES, 'tcp-echo'))}")
