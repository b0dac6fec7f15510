"""Shared fixtures: one live local mesh per test session, stopped and verified gone at the end."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def mesh_unavailable_reason() -> str | None:
    """Why a live mesh cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "the local mesh with iptables capture needs root (CI runs as root)"
    for tool in ("ip", "iptables", "setpriv"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install iproute2 iptables util-linux)"
    return None


def leftovers(home: Path) -> list[str]:
    """Anything a mesh at `home` made that still exists: netns, bridge, /etc/netns, processes."""
    from meshkit.runtime.local import LocalRuntime

    found = []
    prefix = LocalRuntime.netns_prefix(home)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {line.split()[0]}" for line in namespaces.splitlines() if line.startswith(prefix)]
    bridge = LocalRuntime.bridge_name(home)
    if subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0:
        found.append(f"bridge {bridge}")
    found += [f"/etc/netns/{p.name}" for p in Path("/etc/netns").glob(prefix + "*")]
    ps = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    found += [f"process {line.strip()}" for line in ps.splitlines() if str(home) in line]
    return found


def session_mesh_reason() -> str | None:
    """Why the session's mesh cannot run (None when it can): userspace capture runs anywhere."""
    from meshkit.runtime.choose import USERSPACE, resolve

    return None if resolve() == USERSPACE else mesh_unavailable_reason()


@pytest.fixture(scope="session")
def mesh_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mesh")


@pytest.fixture(scope="session")
def mesh(mesh_home: Path):
    """A running local Bookinfo mesh for the whole session."""
    reason = session_mesh_reason()  # MESHKIT_CAPTURE picks the mode; auto: iptables as root
    if reason:
        pytest.skip(reason)
    import meshkit

    running = meshkit.up(mesh_home)
    yield running
    meshkit.down(mesh_home)
    left = leftovers(mesh_home)
    assert not left, f"meshkit down left these behind: {left}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print how long the notebook suite took, notebook by notebook (issue: the run prints it)."""
    from tests.notebooks.test_notebooks import TIMING

    timings = dict(value for reports in terminalreporter.stats.values() for report in reports
                   for key, value in getattr(report, "user_properties", ()) if key == TIMING)
    if timings:
        terminalreporter.section("notebooks")
        for name, seconds in sorted(timings.items()):
            terminalreporter.write_line(f"{seconds:6.1f}s  {name}")
        terminalreporter.write_line(f"{sum(timings.values()):6.1f}s  all {len(timings)} notebooks")


def pytest_collection_modifyitems(config, items):
    """The notebooks first: under xdist (`-n 2 --dist loadfile`, as `make test` runs) their file, the
    longest, starts at once on one worker while the other takes every other file."""
    items.sort(key=lambda item: "tests/notebooks/" not in item.nodeid)
