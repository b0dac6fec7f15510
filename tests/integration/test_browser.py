"""A real browser: JupyterLab on 127.0.0.1, Debian's headless Chromium, widget cells run with
Shift+Enter, and the live graphs drawn by ipywidgets (not the text/html fallback) in the output.

The first test runs the first lab's first widget cell. The second draws ProxyGraph (with a NACKed
listener and one request's path) and MeshGraph and measures them in the page: each SVG fits its
output area (no horizontal scroll) with text no smaller than 11 px.

Screenshots land in tests/artifacts/ (gitignored) for a human to look at.
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
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import nbformat
import pytest

from .chromium import BrowserError, Chromium, Page, find_chromium
from .test_local_mesh import BAD_LISTENER  # two chains with the same match: Envoy NACKs it

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

    def wait_for_connected_kernel(self, timeout: float, exclude: Iterable[str] = ()) -> None:
        """Wait for a kernel with a browser connection that is idle (not one of the `exclude` ids)."""
        deadline, old = time.monotonic() + timeout, set(exclude)
        while time.monotonic() < deadline:
            try:
                kernels = self.kernels()
            except OSError:  # the server may answer 500 while a kernel is still starting: ask again
                kernels = []
            if any(k.get("connections", 0) >= 1 and k.get("execution_state") == "idle" and k.get("id") not in old
                   for k in kernels):
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


@contextlib.contextmanager
def running(lab: JupyterLab, browser: Chromium, after: Callable[[], object] = lambda: None) -> Iterator[None]:
    """Stop both however the test ends (then `after`); on a failure, print what they said."""
    try:
        yield
    except Exception:
        page = browser._pages[-1] if browser._pages else None
        print(f"\n--- jupyterlab.log (tail) ---\n{lab.log.read_text(errors='replace')[-4000:]}")
        print(f"--- browser console ---\n{chr(10).join(page.console[-20:]) if page else ''}")
        raise
    finally:
        browser.stop()
        lab.stop()
        after()


def run_notebook(lab: JupyterLab, browser: Chromium, name: str, cells: int) -> Page:
    """Start both, open notebook `name` and run its first `cells` cells as a learner would."""
    lab.start()
    browser.start()
    return open_notebook(lab, browser.page(), name, cells)


def open_notebook(lab: JupyterLab, page: Page, name: str, cells: int, old_kernels: Iterable[str] = ()) -> Page:
    """Open notebook `name` in `page` and run its first `cells` cells (`old_kernels`: those of notebooks before)."""
    page.navigate(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")
    # the notebook is shown (no loading spinner), its kernel started and the page is connected to it;
    # the page's own indicator also says "idle" before any kernel exists, so ask the server first
    page.wait_for("document.querySelector('.jp-Notebook .jp-CodeCell .cm-content') !== null"
                  " && document.querySelector('.jp-Spinner') === null", LAB_START_S, "the notebook's code cell")
    lab.wait_for_connected_kernel(LAB_START_S, old_kernels)
    page.wait_for("""[...document.querySelectorAll('.jp-Notebook-ExecutionIndicator')]
                     .some(e => e.getAttribute('data-status') === 'idle')""", LAB_START_S, "an idle kernel")
    # more room for the graph: fold the file browser away (a click on its open tab), if it is open
    if page.evaluate("document.querySelector('.jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current') !== null"):
        page.click(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    # as a learner would: click into the first cell, Shift+Enter (which moves on to the next cell)
    page.click(".jp-Notebook .jp-CodeCell .cm-content")
    for _ in range(cells):
        page.key("Enter", "Enter", 13, modifiers=8)
    return page


def test_jupyterlab_renders_the_live_proxy_graph_in_chromium(mesh, tmp_path: Path) -> None:
    began = time.monotonic()
    root = tmp_path / "notebooks"
    root.mkdir()
    notebook(root / "first-widget.ipynb")
    env = {**os.environ, "MESHKIT_HOME": str(mesh.home)}
    lab = JupyterLab(root, tmp_path / "jupyter", env)
    shot = ARTIFACTS / "browser-first-widget.png"
    shot.unlink(missing_ok=True)
    browser = Chromium(tmp_path / "chromium-profile", size=(1600, 1000))
    with running(lab, browser):
        page = run_notebook(lab, browser, "first-widget.ipynb", 1)
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
        assert "reviews." in labels and "default:9080" in labels, labels  # reviews.default.svc.cluster.local:9080
        assert shot.stat().st_size > 10_000
        assert len(lab.kernels()) == 1
    elapsed = time.monotonic() - began
    print(f"browser test took {elapsed:.1f} s (JupyterLab + Chromium start, kernel, cell, screenshot, stop)")
    if lab.process is not None:
        assert lab.process.poll() is not None, "jupyter lab is still running"
    assert browser.process is not None and browser.process.poll() is not None, "chromium is still running"
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in ps, [line for line in ps.splitlines() if str(tmp_path) in line]
    assert elapsed < 60, f"the browser test took {elapsed:.0f}s; keep it under 60s"


# The raw listener Envoy refuses, sent to productpage-v1 only; then one request, then the mesh.
STORY_CELLS = [f'''\
import meshkit
from meshkit.errors import Nack
from meshkit.widgets import MeshGraph, ProxyGraph

mesh = meshkit.connect()
BROKEN = """{BAD_LISTENER}"""
try:
    mesh.apply(BROKEN, pods=["productpage-v1"])
except Nack as nack:
    print("NACK:", str(nack)[:80])
proxy = ProxyGraph(mesh, "productpage-v1")
proxy.send("http://reviews:9080/reviews/0")
proxy''', "MeshGraph(mesh)"]

# Per graph output: is the SVG inside its output area, can the area scroll sideways, how big is the text?
MEASURE = """(() => [...document.querySelectorAll('.jp-OutputArea-output')]
  .filter(o => o.querySelector('svg.meshkit-graph')).map(o => {
    const svg = o.querySelector('svg.meshkit-graph');
    const texts = [...svg.querySelectorAll('text')];
    const px = texts.map(t => t.getScreenCTM().a * parseFloat(t.getAttribute('font-size') || '14'));
    const scrollers = [o, ...o.querySelectorAll('*')].filter(e => e.scrollWidth > e.clientWidth + 1
        && ['auto', 'scroll'].includes(getComputedStyle(e).overflowX));
    return {
      svgWidth: svg.getBoundingClientRect().width, areaWidth: o.getBoundingClientRect().width,
      areaScroll: o.scrollWidth - o.clientWidth, scrollers: scrollers.length,
      scrolling: scrollers.map(e => `${e.tagName}.${e.className} ${e.scrollWidth}/${e.clientWidth}`),
      minFontPx: Math.min(...px), labels: texts.map(t => t.textContent).join(' | ').slice(0, 3000),
      lit: svg.querySelectorAll('[stroke="#1155cc"]').length,
      red: svg.querySelectorAll('[stroke="#cc0000"]').length,
      nodes: svg.querySelectorAll('g.node').length, edges: svg.querySelectorAll('g.edge').length,
    };
  }))()"""


def assert_finished(name: str, began: float, limit_s: float, shots: Iterable[Path], browser: Chromium,
                    tmp_path: Path) -> None:
    """Screenshots written, browser and server gone, nothing of the test left running, in time."""
    for shot in shots:
        assert shot.stat().st_size > 10_000, shot
    elapsed = time.monotonic() - began
    print(f"{name} browser test took {elapsed:.1f} s")
    assert browser.process is not None and browser.process.poll() is not None, "chromium is still running"
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in ps, [line for line in ps.splitlines() if str(tmp_path) in line]
    assert elapsed < limit_s, f"the {name} browser test took {elapsed:.0f}s; keep it under {limit_s:.0f}s"


def test_proxy_and_mesh_graphs_fit_the_notebook_and_tell_the_story(mesh, tmp_path: Path) -> None:
    began = time.monotonic()
    root = tmp_path / "notebooks"
    root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(cell) for cell in STORY_CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "story.ipynb")
    lab = JupyterLab(root, tmp_path / "jupyter", {**os.environ, "MESHKIT_HOME": str(mesh.home)})
    shots = {"proxy": ARTIFACTS / "browser-proxy-graph.png", "mesh": ARTIFACTS / "browser-mesh-graph.png"}
    browser = Chromium(tmp_path / "chromium-profile", size=(1600, 1000))
    with running(lab, browser, after=lambda: mesh.revert(["productpage-v1"])):
        page = run_notebook(lab, browser, "story.ipynb", len(STORY_CELLS))
        try:
            page.wait_for(f"(() => {{ const g = {MEASURE}; return g.length === 2 && g.every(x => x.nodes > 3)"
                          " && g[0].lit > 0 ? g : null; })()", GRAPH_S, "both graphs, the request path lit")
        except BrowserError:
            page.screenshot(shots["proxy"])  # the page as it was: the picture says why
            raise
        # the boss's ACK event makes the graphs redraw; measure what the learner sees once it settles
        time.sleep(1.0)
        graphs = page.evaluate(MEASURE)
        for name, selector in (("proxy", 0), ("mesh", 1)):
            page.screenshot(shots[name], f".jp-Notebook .jp-CodeCell:nth-child({selector + 1}) .jp-OutputArea")
        proxy, whole = graphs
        for name, found in (("ProxyGraph", proxy), ("MeshGraph", whole)):
            print(f"\nbrowser {name}: SVG {found['svgWidth']:.0f} px in a {found['areaWidth']:.0f} px output area, "
                  f"text ≥ {found['minFontPx']:.1f} px, {found['nodes']} nodes, {found['edges']} edges")
            assert found["svgWidth"] <= found["areaWidth"] + 0.5, found
            assert found["svgWidth"] <= 900.5, found  # ≤ 900 px by default
            assert found["areaScroll"] <= 1 and found["scrollers"] == 0, found["scrolling"]  # no horizontal scroll
            assert found["minFontPx"] >= 11.0 - 0.05, found
        assert "Downstream" in proxy["labels"] and "Upstream" in proxy["labels"], proxy["labels"]
        assert "▶ 200" in proxy["labels"] and proxy["lit"] >= 8, proxy  # the request's path, with its code
        assert "NACK" in proxy["labels"] and "broken" in proxy["labels"] and proxy["red"] > 0, proxy["labels"]
        assert "same matching rules" in proxy["labels"] or "matching" in proxy["labels"], proxy["labels"]
        assert "the boss | (istiod)" in whole["labels"] and "outsider" in whole["labels"], whole["labels"]
        assert "no traffic" in whole["labels"] or "rq" in whole["labels"], whole["labels"]
    assert_finished("story", began, 90, shots.values(), browser, tmp_path)


# Every live graph of a lab notebook (ProxyGraph, MeshGraph, TraceView), told apart by what it says;
# each output gets data-meshkit-shot so a screenshot can find it again.
LAB_MEASURE = """(() => [...document.querySelectorAll('.jp-OutputArea-output')]
  .filter(o => o.querySelector('.jupyter-widgets svg')).map((o, i) => {
    const svg = o.querySelector('.jupyter-widgets svg');
    const texts = [...svg.querySelectorAll('text')];
    const labels = texts.map(t => t.textContent).join(' | ');
    const kind = labels.includes('Downstream') ? 'proxy' : labels.includes('the boss') ? 'mesh' : 'trace';
    o.setAttribute('data-meshkit-shot', `${kind}-${i}`);
    const px = texts.map(t => t.getScreenCTM().a * parseFloat(t.getAttribute('font-size') || '14'));
    const scrollers = [o, ...o.querySelectorAll('*')].filter(e => e.scrollWidth > e.clientWidth + 1
        && ['auto', 'scroll'].includes(getComputedStyle(e).overflowX));
    return {
      kind, shot: `${kind}-${i}`, svgWidth: svg.getBoundingClientRect().width,
      areaWidth: o.getBoundingClientRect().width, areaScroll: o.scrollWidth - o.clientWidth,
      scrollers: scrollers.map(e => `${e.tagName}.${e.className} ${e.scrollWidth}/${e.clientWidth}`),
      minFontPx: Math.min(...px), labels: labels.slice(0, 3000), status: o.textContent.slice(0, 600),
      lit: svg.querySelectorAll('[stroke="#1155cc"]').length, red: svg.querySelectorAll('[stroke="#cc0000"]').length,
      nodes: svg.querySelectorAll('g.node').length, edges: svg.querySelectorAll('g.edge').length,
    };
  }))()"""


def cells_up_to(path: Path, marker: str) -> int:
    """How many Shift+Enters run `path` from its first code cell through the cell containing `marker`."""
    cells = nbformat.read(path, as_version=4).cells
    first = next(i for i, c in enumerate(cells) if c.cell_type == "code")
    return next(i for i, c in enumerate(cells) if marker in c.source) - first + 1


def lab_copy(name: str, root: Path) -> Path:
    """The solution notebook `name` without outputs, where JupyterLab may save it (not in the repo)."""
    nb = nbformat.read(Path(__file__).resolve().parents[2] / "solutions" / name, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, root / name)
    return root / name


def assert_fits(found: dict) -> None:
    print(f"\nbrowser lab {found['kind']}: SVG {found['svgWidth']:.0f} px in a {found['areaWidth']:.0f} px output "
          f"area, text ≥ {found['minFontPx']:.1f} px, {found['nodes']} nodes, {found['edges']} edges")
    assert found["svgWidth"] <= found["areaWidth"] + 0.5, found
    assert found["areaScroll"] <= 1 and not found["scrollers"], found["scrollers"]  # no horizontal scroll


def test_lab_notebooks_draw_their_graphs_readably_in_chromium(mesh, tmp_path: Path) -> None:
    """Lab 04 (ProxyGraph with one request's path, TraceView of a 404 NR) and lab 08 (MeshGraph with a NACK),
    run cell by cell in JupyterLab as a learner would; every graph fits its output area."""
    from meshkit.lab.session import restore_default

    began = time.monotonic()
    root = tmp_path / "notebooks"
    root.mkdir()
    rds, wrong = lab_copy("04-rds.ipynb", root), lab_copy("08-wrong-orders.ipynb", root)
    lab = JupyterLab(root, tmp_path / "jupyter", {**os.environ, "MESHKIT_HOME": str(mesh.home)})
    # every cell stays in the page (JupyterLab may otherwise drop cells scrolled far out of view)
    tracker = tmp_path / "jupyter" / "config" / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    shots = {kind: ARTIFACTS / f"browser-lab-{kind}.png" for kind in ("proxy-graph", "trace", "mesh-graph")}
    for shot in shots.values():
        shot.unlink(missing_ok=True)
    browser = Chromium(tmp_path / "chromium-profile", size=(1366, 900))  # a laptop's notebook width
    with running(lab, browser, after=lambda: restore_default(mesh)):
        page = run_notebook(lab, browser, rds.name, cells_up_to(rds, 'TraceView(mesh, POD, "http://details'))
        try:
            graphs = page.wait_for(f"(() => {{ const g = {LAB_MEASURE}; const k = g.map(x => x.kind);"
                                   " return k.includes('proxy') && k.includes('trace') && g.every(x => x.nodes > 1)"
                                   " && g.some(x => x.kind === 'proxy' && x.lit > 0) ? g : null; })()",
                                   LAB_START_S + GRAPH_S, "lab 04's ProxyGraph with a lit path and its TraceView")
        except BrowserError:
            page.screenshot(shots["proxy-graph"])  # the page as it was: the picture says why
            raise
        time.sleep(1.0)  # the ACK-driven redraws settle
        graphs = page.evaluate(LAB_MEASURE)
        proxy = next(g for g in graphs if g["kind"] == "proxy")
        trace = next(g for g in graphs if g["kind"] == "trace")
        page.screenshot(shots["proxy-graph"], f'[data-meshkit-shot="{proxy["shot"]}"]')
        page.screenshot(shots["trace"], f'[data-meshkit-shot="{trace["shot"]}"]')
        for found in (proxy, trace):
            assert_fits(found)
        # a focused ProxyGraph is drawn at Graphviz's own size: its smallest labels are about 10.8 px
        assert proxy["minFontPx"] >= 10.5, proxy
        assert "Downstream" in proxy["labels"] and "Upstream" in proxy["labels"], proxy["labels"]
        assert "reviews." in proxy["labels"] and "default:9080" in proxy["labels"], proxy["labels"]  # the vhost
        assert "▶ 200" in proxy["labels"] and proxy["lit"] >= 8, proxy  # the request's path, with its answer
        assert trace["red"] > 0 and "NR" in trace["status"] + trace["labels"], trace  # where it stopped, and why

        # a second tab, as a learner opens the next lab (leaving an unsaved notebook would ask "leave the page?")
        old, page = [k["id"] for k in lab.kernels()], browser.new_page()
        open_notebook(lab, page, wrong.name, cells_up_to(wrong, "wrong_view = mw.MeshGraph(mesh)"), old)
        try:
            graphs = page.wait_for(f"(() => {{ const g = {LAB_MEASURE}.filter(x => x.kind === 'mesh');"
                                   " return g.length >= 2 && g[g.length - 1].labels.includes('ERROR') ? g : null; })()",
                                   LAB_START_S + GRAPH_S, "lab 08's projector and its MeshGraph with the NACK")
        except BrowserError:
            page.screenshot(shots["mesh-graph"])
            raise
        time.sleep(1.0)
        graphs = [g for g in page.evaluate(LAB_MEASURE) if g["kind"] == "mesh"]
        wall, whole = graphs[0], graphs[-1]
        page.screenshot(shots["mesh-graph"], f'[data-meshkit-shot="{whole["shot"]}"]')
        # the projector wraps the table under the graph at this width: a taller window shows both at once
        page.call("Emulation.setDeviceMetricsOverride", width=1366, height=2200, deviceScaleFactor=1, mobile=False)
        time.sleep(0.5)
        page.screenshot(ARTIFACTS / "browser-lab-projector.png", f'[data-meshkit-shot="{wall["shot"]}"]')
        for found in (whole, wall):
            assert_fits(found)
        assert whole["minFontPx"] >= 11.0 - 0.05, whole
        assert "the boss | (istiod)" in whole["labels"] and "productpage-v1" in whole["labels"], whole["labels"]
        assert "ERROR" in whole["labels"] and whole["red"] > 0, whole  # the NACKed stream, in red
        assert wall["minFontPx"] >= whole["minFontPx"] * 1.2, (wall, whole)  # the projector's type is larger
        table_px = page.evaluate(f"parseFloat(getComputedStyle(document.querySelector("
                                 f"'[data-meshkit-shot=\"{wall['shot']}\"] table td')).fontSize)")
        print(f"browser lab projector: sync table text {table_px:.1f} px")
        assert table_px >= 18, table_px  # 1.6 × 13 px: readable from the back of the room
    assert_finished("lab", began, 150, shots.values(), browser, tmp_path)
