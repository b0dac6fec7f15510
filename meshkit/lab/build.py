"""One source, two builds: the student notebooks in `labs/` are generated from `solutions/`.

In a solution notebook:
- a cell tagged `solution` holds a reference answer; the student build replaces its source with
  the starter in the cell's `metadata.meshkit.student` (or a plain "your turn" line);
- a cell tagged `instructor` holds notes for the instructor; the student build drops it;
- outputs and execution counts are stripped.

The Korean edition is built from the same notebooks: `solutions/ko/` and `labs/ko/` are copies
whose markdown cells come from `meshkit/lab/i18n/ko/<lab>.yaml` (keyed by cell id and a hash of
the English) and whose code cells are the English ones, byte for byte. A kernel started in
`labs/ko/` speaks Korean because of where it runs (meshkit/i18n.py), not because of its code.

    python -m meshkit.lab.build           # regenerate labs/, solutions/ko/ and labs/ko/ from solutions/
    python -m meshkit.lab.build --check   # exit 1 if any of them drifted, or a translation is missing
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


def edition(notebook: nbformat.NotebookNode, lab: str, lang: str) -> tuple[nbformat.NotebookNode, list]:
    """The solution notebook in `lang`: translated markdown, the same code cells, no outputs; and
    what lacks a translation (those cells stay English)."""
    from .i18n import translate_cells

    translated = copy.deepcopy(notebook)
    missing = translate_cells(translated.cells, lab, lang)
    for cell in translated.cells:
        strip_outputs(cell)
    translated.metadata.setdefault("meshkit", {})["lang"] = lang
    return translated, missing


def expected(solutions: Path = SOLUTIONS, labs: Path = LABS) -> dict[Path, nbformat.NotebookNode]:
    """Every generated notebook, by the path it belongs at: labs/, then each translated edition."""
    from .i18n import TRANSLATED

    out: dict[Path, nbformat.NotebookNode] = {}
    for source in sorted(solutions.glob("*.ipynb")):
        notebook = nbformat.read(source, as_version=4)
        out[labs / source.name] = student_version(notebook)
        for lang in TRANSLATED:
            translated, _ = edition(notebook, source.stem, lang)
            out[solutions / lang / source.name] = translated
            out[labs / lang / source.name] = student_version(translated)
    return out


def untranslated(solutions: Path = SOLUTIONS) -> list[str]:
    """Every markdown cell and lab text that lacks its translation (or whose English changed since)."""
    from .i18n import TRANSLATED, missing

    problems = []
    for source in sorted(solutions.glob("*.ipynb")):
        cells = nbformat.read(source, as_version=4).cells
        problems += [str(item) for lang in TRANSLATED for item in missing(source.stem, lang, cells)]
    return problems


def build(solutions: Path = SOLUTIONS, labs: Path = LABS) -> list[Path]:
    written = []
    for target, notebook in expected(solutions, labs).items():
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, target)
        written.append(target)
    return written


def drift(solutions: Path = SOLUTIONS, labs: Path = LABS) -> list[str]:
    """Every difference between the generated folders and what `build()` would write."""
    from .i18n import TRANSLATED

    problems = []
    want = expected(solutions, labs)
    folders = [labs, *(labs / lang for lang in TRANSLATED), *(solutions / lang for lang in TRANSLATED)]
    actual = {p for folder in folders for p in folder.glob("*.ipynb")}
    problems += [f"{_rel(p)} is missing" for p in sorted(set(want) - actual)]
    problems += [f"{_rel(p)} has no solutions/ source" for p in sorted(actual - set(want))]
    for path in sorted(set(want) & actual):
        have = nbformat.read(path, as_version=4)
        if [(c.cell_type, c.source) for c in want[path].cells] != [(c.cell_type, c.source) for c in have.cells]:
            problems.append(f"{_rel(path)} differs from its build from solutions/{path.name}")
    return problems


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


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
        missing = untranslated()
        for problem in missing:
            print(problem)
        if missing:
            print("translate them in meshkit/lab/i18n/<lang>/ (`python -m meshkit.lab.i18n todo` lists them)")
        return 1 if problems or missing else 0
    for path in build():
        print(f"wrote {_rel(path)}")
    for problem in untranslated():
        print(f"warning: {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
