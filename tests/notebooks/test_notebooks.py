"""Every lab notebook runs in a real kernel against the live mesh.

Solutions: every cell runs and every `lab.check(...)` reports done.
Student builds (labs/): no cell raises and every check reports "not yet".
Both: every lab shows at least one live widget, and every graph cell (ProxyGraph, MeshGraph,
TraceView) draws a live widget, not an error or the text fallback; 10 of the 11 labs draw a graph.
The Korean edition (solutions/ko, labs/ko) runs the same code cells; its kernels speak Korean because
of the folder they run in, so every verdict must be Korean: 완료 / 아직, with a Korean message.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from meshkit import i18n
from meshkit.lab.build import drift, solution_sources

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
LABS = sorted((ROOT / "labs").glob("*.ipynb"))
KO_SOLUTIONS = sorted((ROOT / "solutions" / "ko").glob("*.ipynb"))
KO_LABS = sorted((ROOT / "labs" / "ko").glob("*.ipynb"))
CELL_TIMEOUT_S = 120
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
GRAPHS = ("ProxyGraph(", "MeshGraph(", "TraceView(", "projector(")

pytestmark = pytest.mark.notebook
TIMING = "notebook_seconds"  # a test's user property: ("solutions/03-lds.ipynb", seconds), summed up at the end


def run(path: Path, home: Path) -> tuple[nbformat.NotebookNode, float]:
    notebook = nbformat.read(path, as_version=4)
    os.environ["MESHKIT_HOME"] = str(home)
    os.environ.pop("MESHKIT_LANG", None)  # the notebook's folder alone picks its language
    start = time.perf_counter()
    NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return notebook, time.perf_counter() - start


@pytest.fixture
def execute(mesh, mesh_home: Path, request: pytest.FixtureRequest):
    """Runs a notebook on the session's mesh; its time goes into the run's notebook summary
    (as a report property, so it reaches the summary from an xdist worker too)."""
    def execute(path: Path) -> tuple[nbformat.NotebookNode, float]:
        notebook, seconds = run(path, mesh_home)
        request.node.user_properties.append((TIMING, (str(path.relative_to(ROOT)), seconds)))
        return notebook, seconds
    return execute


def check_outputs(notebook: nbformat.NotebookNode) -> list[str]:
    """The text of every `lab.check(...)` result in the executed notebook."""
    found = []
    for cell in notebook.cells:
        if cell.cell_type != "code" or "lab.check(" not in cell.source:
            continue
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain") or output.get("text", "")
            found += [line for line in str(text).splitlines() if ": " in line]
    return found


def widget_views(cell: nbformat.NotebookNode) -> int:
    """How many live ipywidgets views the cell's outputs hold."""
    return sum(WIDGET_VIEW in output.get("data", {}) for output in cell.get("outputs", []))


def graph_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """The code cells that draw a graph (ProxyGraph, MeshGraph, TraceView, the projector's MeshGraph)."""
    return [c for c in notebook.cells if c.cell_type == "code" and any(g in c.source for g in GRAPHS)]


def assert_live_pictures(notebook: nbformat.NotebookNode) -> None:
    """At least one live widget, and every graph cell drew one (not an exception or plain text)."""
    assert sum(widget_views(c) for c in notebook.cells if c.cell_type == "code") >= 1, "no live widget in this lab"
    dead = [c.source.splitlines()[-1] for c in graph_cells(notebook) if not widget_views(c)]
    assert not dead, f"graph cells without a live widget output: {dead}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_notebook_completes_every_check(path: Path, execute):
    notebook, seconds = execute(path)
    results = check_outputs(notebook)
    print(f"{path.name}: {seconds:.1f}s, {len(results)} checks, {len(graph_cells(notebook))} graph cells")
    assert results, "a lab without checks"
    assert all("done" in line for line in results), results
    assert_live_pictures(notebook)


def test_ten_of_the_eleven_labs_draw_a_graph():
    """The story is told in pictures: all labs but (at most) one draw a ProxyGraph, MeshGraph or TraceView."""
    core = SOLUTIONS[:11]  # labs 00-10; later labs bring their own pictures
    drawn = [p.name for p in core if graph_cells(nbformat.read(p, as_version=4))]
    assert len(core) == 11 and len(drawn) >= 10, drawn


@pytest.mark.parametrize("path", LABS, ids=lambda p: p.name)
def test_student_notebook_says_not_yet(path: Path, execute):
    notebook, seconds = execute(path)
    results = check_outputs(notebook)
    print(f"{path.name}: {seconds:.1f}s, {len(results)} checks")
    assert results and all("not yet" in line for line in results), results
    assert_live_pictures(notebook)


def korean_verdicts(results: list[str], outcome: str) -> list[str]:
    """The check lines that are not `outcome` in Korean with a Korean message (empty when all are)."""
    return [line for line in results if f": {outcome}" not in line
            or (" — " in line and i18n.hangul_share(line.split(" — ", 1)[1]) == 0)]


@pytest.mark.parametrize("path", KO_SOLUTIONS, ids=lambda p: "ko-" + p.name)
def test_korean_solution_notebook_completes_every_check_in_korean(path: Path, execute):
    notebook, seconds = execute(path)
    results = check_outputs(notebook)
    print(f"ko/{path.name}: {seconds:.1f}s, {len(results)} checks", *results, sep="\n  ")
    assert results, "a lab without checks"
    assert korean_verdicts(results, "완료") == [], results
    assert_live_pictures(notebook)


@pytest.mark.parametrize("path", KO_LABS, ids=lambda p: "ko-" + p.name)
def test_korean_student_notebook_says_not_yet_in_korean(path: Path, execute):
    notebook, seconds = execute(path)
    results = check_outputs(notebook)
    print(f"ko/{path.name}: {seconds:.1f}s, {len(results)} checks", *results, sep="\n  ")
    assert results and korean_verdicts(results, "아직") == [], results
    assert_live_pictures(notebook)


def test_every_lab_has_its_korean_edition():
    assert [p.name for p in KO_SOLUTIONS] == [p.name for p in SOLUTIONS]
    assert [p.name for p in KO_LABS] == [p.name for p in LABS]


def test_labs_are_built_from_solutions():
    assert drift() == []


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_no_solution_code_in_student_notebook(path: Path):
    student = nbformat.read(ROOT / "labs" / path.name, as_version=4)
    sources = {c.source.strip() for c in student.cells}
    leaked = [s for s in solution_sources(nbformat.read(path, as_version=4)) if s.strip() in sources]
    assert not leaked
    assert not any("instructor" in c.get("metadata", {}).get("tags", []) for c in student.cells)
    assert not any(c.get("outputs") for c in student.cells if c.cell_type == "code")
