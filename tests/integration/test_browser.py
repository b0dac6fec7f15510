"""A real browser: JupyterLab on 127.0.0.1, Debian's headless Chromium, the first widget cell run with
Shift+Enter, and the live graph drawn by ipywidgets (not the text/html fallback) in the output.

The screenshot lands in tests/artifacts/ (gitignored) for a human to look at.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from .chromium import Chromium, find_chromium

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
LAB_START_S = 45.0
GRAPH_S = 30.0

FIRST_WIDGET_CELL = """\
import meshkit
from meshkit.widgets import ProxyGraph

mesh = meshkit.connect()  # MESHKIT_HOME points at the test's mesh
ProxyGraph(mesh, "productpage-v1", listeners=["0.0.0.0_9080"])"""

pytestmark = [
    pytest.mark.mesh,
    pytest.mark.skipif(find_chromium() is None,
                       reason="chromium is not installed: apt-get install chromium (.ci/run and `make system` do)"),
]

# Every cell output's live ipywidgets view, and what it holds; the fallback HTML has no .jupyter-widgets.
PROBE = """(() => {
  const outputs = [...document.querySelectorAll('.jp-OutputArea-output')];
  const widgets = outputs.flatMap(o => [...o.querySelectorAll('.jupyter-widgets')]);
  const svgs = outputs.flatMap(o => [...o.querySelectorAll('.jupyter-widgets svg')]);
  const errors = outputs.filter(o => o.matches('[data-mime-type="application/vnd.jupyter.stderr"]'))
                        .map(o => o.textContent.slice(0, 500));
  return {
    widgets: widgets.length,
    svgs: svgs.length,
    nodes: svgs.reduce((n, s) => n + s.querySelectorAll('g.node').length, 0),
    edges: svgs.reduce((n, s) => n + s.querySelectorAll('g.edge').length, 0),
    labels: svgs.flatMap(s => [...s.querySelectorAll('g.node text')].map(t => t.textContent)).slice(0, 80),
    button: outputs.some(o => [...o.querySelectorAll('button')].some(b => b.textContent.includes('Redraw'))),
    errors,
  };
})()"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# meshkit in a real browser"),
                nbformat.v4.new_code_cell(FIRST_WIDGET_CELL)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


class JupyterLab:
    """`jupyter lab` on 127.0.0.1 with a token, a fresh config/runtime/data dir, nothing fetched from outside."""

    def __init__(self, root: Path, state: Path, env: dict[str, str]) -> None:
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        for sub in ("config", "runtime", "data"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        settings = state / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
        self.env = {**env, "JUPYTER_CONFIG_DIR": str(state / "config"), "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
                    "JUPYTER_DATA_DIR": str(state / "data"), "JUPYTER_PLATFORM_DIRS": "1"}
        self.args = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
                     "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                     f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
                     "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        self.log = state / "jupyterlab.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(self.args, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + LAB_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/api/status?token={self.token}",
                                                                      timeout=2):
                return
            time.sleep(0.2)
        raise RuntimeError(f"jupyter lab did not answer in {LAB_START_S:.0f}s:\n{self.log.read_text()[-3000:]}")

    def kernels(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.url}/api/kernels?token={self.token}", timeout=5) as reply:
            return json.load(reply)

    def wait_for_connected_kernel(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                kernels = self.kernels()
            except OSError:  # the server may answer 500 while a kernel is still starting: ask again
                kernels = []
            if any(k.get("connections", 0) >= 1 and k.get("execution_state") == "idle" for k in kernels):
                return
            time.sleep(0.1)
        raise RuntimeError(f"no kernel with a browser connection after {timeout:.0f}s: {self.kernels()}")

    def stop(self) -> None:
        """SIGTERM lets the server shut its kernels down; then the whole group goes, whatever is left."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


def test_jupyterlab_renders_the_live_proxy_graph_in_chromium(mesh, tmp_path: Path) -> None:
    began = time.monotonic()
    root = tmp_path / "notebooks"
    root.mkdir()
    notebook(root / "first-widget.ipynb")
    env = {**os.environ, "MESHKIT_HOME": str(mesh.home)}
    lab = JupyterLab(root, tmp_path / "jupyter", env)
    shot = ARTIFACTS / "browser-proxy-graph.png"
    shot.unlink(missing_ok=True)
    browser = Chromium(tmp_path / "chromium-profile", size=(1600, 1000))
    page = None
    try:
        lab.start()
        browser.start()
        page = browser.page()
        page.navigate(f"{lab.url}/lab/tree/first-widget.ipynb?reset&token={lab.token}")
        # the notebook is shown (no loading spinner), its kernel started and the page is connected to it;
        # the page's own indicator also says "idle" before any kernel exists, so ask the server first
        page.wait_for("document.querySelector('.jp-Notebook .jp-CodeCell .cm-content') !== null"
                      " && document.querySelector('.jp-Spinner') === null", LAB_START_S, "the notebook's code cell")
        lab.wait_for_connected_kernel(LAB_START_S)
        page.wait_for("""[...document.querySelectorAll('.jp-Notebook-ExecutionIndicator')]
                         .some(e => e.getAttribute('data-status') === 'idle')""", LAB_START_S, "an idle kernel")
        # more room for the graph: fold the file browser away (a click on its open tab)
        page.click(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
        # as a learner would: click into the cell, Shift+Enter
        page.click(".jp-Notebook .jp-CodeCell .cm-content")
        page.key("Enter", "Enter", 13, modifiers=8)
        try:
            found = page.wait_for(f"(() => {{ const p = {PROBE}; return (p.nodes > 0 && p.button) ? p : null; }})()",
                                  GRAPH_S, "the widget's SVG graph in the cell output")
        finally:
            page.screenshot(shot)  # also when it failed: the picture says why
        # the content, not just "an svg": what productpage-v1's Envoy holds for 0.0.0.0_9080
        print(f"\nbrowser: {found['nodes']} graph nodes, {found['edges']} edges in {found['svgs']} SVG; "
              f"screenshot {shot}")
        assert found["widgets"] >= 1 and found["svgs"] == 1, found
        assert not found["errors"], found["errors"]
        labels = " ".join(found["labels"])
        assert "0.0.0.0_9080" in labels, labels
        assert "reviews.default.svc.cluster.local" in labels, labels
        assert shot.stat().st_size > 10_000
        assert len(lab.kernels()) == 1
    except Exception:
        print(f"\n--- jupyterlab.log (tail) ---\n{lab.log.read_text(errors='replace')[-4000:]}")
        print(f"--- browser console ---\n{chr(10).join(page.console[-20:]) if page else ''}")
        raise
    finally:
        browser.stop()
        lab.stop()
    elapsed = time.monotonic() - began
    print(f"browser test took {elapsed:.1f} s (JupyterLab + Chromium start, kernel, cell, screenshot, stop)")
    if lab.process is not None:
        assert lab.process.poll() is not None, "jupyter lab is still running"
    assert browser.process is not None and browser.process.poll() is not None, "chromium is still running"
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in ps, [line for line in ps.splitlines() if str(tmp_path) in line]
    assert elapsed < 60, f"the browser test took {elapsed:.0f}s; keep it under 60s"
