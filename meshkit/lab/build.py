"""One source, two builds: the student notebooks in `labs/` are generated from `solutions/`.

In a solution notebook:
- a cell tagged `solution` holds a reference answer; the student build replaces its source with
  the starter in the cell's `metadata.meshkit.student` (or a plain "your turn" line);
- a cell tagged `instructor` holds notes for the instructor; the student build drops it;
- outputs and execution counts are stripped.

    python -m meshkit.lab.build           # regenerate labs/ from solutions/
    python -m meshkit.lab.build --check   # exit 1 if labs/ drifted from solutions/
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = ROOT / "solutions"
LABS = ROOT / "labs"
DEFAULT_STARTER = "# Your turn: write your answer here, then run the check below.\n"


def student_version(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook a learner gets: no solutions, no instructor notes, no outputs."""
    student = copy.deepcopy(notebook)
    cells = []
    for cell in student.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if "instructor" in tags:
            continue
        if "solution" in tags:
            starter = cell.get("metadata", {}).get("meshkit", {}).get("student", DEFAULT_STARTER)
            cell.source = starter
            cell.metadata["tags"] = sorted((tags - {"solution"}) | {"exercise"})
            cell.metadata.pop("meshkit", None)
        strip_outputs(cell)
        cells.append(cell)
    student.cells = cells
    return student


def strip_outputs(cell: nbformat.NotebookNode) -> None:
    if cell.cell_type == "code":
        cell.outputs = []
        cell.execution_count = None
    cell.metadata.pop("execution", None)


def solution_sources(notebook: nbformat.NotebookNode) -> list[str]:
    """The source of every solution cell (what must never appear in a student notebook)."""
    return [c.source for c in notebook.cells if "solution" in c.get("metadata", {}).get("tags", [])]


def build(solutions: Path = SOLUTIONS, labs: Path = LABS) -> list[Path]:
    labs.mkdir(exist_ok=True)
    written = []
    for source in sorted(solutions.glob("*.ipynb")):
        target = labs / source.name
        nbformat.write(student_version(nbformat.read(source, as_version=4)), target)
        written.append(target)
    return written


def drift(solutions: Path = SOLUTIONS, labs: Path = LABS) -> list[str]:
    """Every difference between `labs/` and what `build()` would write."""
    problems = []
    expected = {p.name for p in solutions.glob("*.ipynb")}
    actual = {p.name for p in labs.glob("*.ipynb")}
    problems += [f"labs/{name} is missing" for name in sorted(expected - actual)]
    problems += [f"labs/{name} has no solutions/ source" for name in sorted(actual - expected)]
    for name in sorted(expected & actual):
        want = student_version(nbformat.read(solutions / name, as_version=4))
        have = nbformat.read(labs / name, as_version=4)
        if [(c.cell_type, c.source) for c in want.cells] != [(c.cell_type, c.source) for c in have.cells]:
            problems.append(f"labs/{name} differs from its build from solutions/{name}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report drift instead of writing")
    args = parser.parse_args(argv)
    if args.check:
        problems = drift()
        for problem in problems:
            print(problem)
        if problems:
            print("run `python -m meshkit.lab.build` to regenerate labs/ from solutions/")
        return 1 if problems else 0
    for path in build():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
