"""The layers of docs/contracts.md, enforced: imports go downward only, and the client side
never pulls in the boss (daemon, services, ADS server, grpc)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "meshkit"

# Layer of each top-level part, and the layers it may import (docs/contracts.md).
LAYERS = {
    "base": (), "model": ("base",),
    "xds": ("model", "base"), "runtime": ("model", "base"), "inspect": ("model", "base"),
    "service": ("xds", "runtime", "model", "base"),
    "daemon": ("service", "xds", "runtime", "model", "base"),
    "client": ("inspect", "runtime", "model", "base"),
    "widgets": ("client", "inspect", "model", "base"), "lab": ("widgets", "client", "inspect", "model", "base"),
    "cli": ("lab", "client", "inspect", "runtime", "model", "base"),
}
PART = {"constants": "base", "errors": "base", "protocol": "base", "i18n": "base",
        "control": "daemon", "daemon": "daemon",
        "standalone": "daemon", "doctor": "cli", "cli": "cli", "__init__": "cli"}  # meshkit.cli.* is the cli package
# What the CLI may reach on the daemon side: only to start it (serve-xds) or run the kind plan.
CLI_STARTS = {"meshkit.standalone", "meshkit.doctor"}
HEAVY = ("grpc", "meshkit.daemon", "meshkit.service", "meshkit.xds.server", "meshkit.control")


def _part(module: str) -> str:
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else "__init__"
    return PART.get(head, head)


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """meshkit modules `path` imports (relative imports resolved), TYPE_CHECKING blocks left out."""
    tree = ast.parse(path.read_text())
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom) and not (top_level_only and inner):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                if base.startswith("meshkit"):
                    if base != "meshkit":  # `from .. import protocol` names a submodule, not the package
                        found.add(base)
                    found.update(f"{base}.{a.name}" for a in child.names
                                 if (PACKAGE.parent / f"{base}.{a.name}".replace(".", "/")).with_suffix(".py").exists()
                                 or (PACKAGE.parent / f"{base}.{a.name}".replace(".", "/")).is_dir())
            elif isinstance(child, ast.Import) and not (top_level_only and inner):
                found.update(a.name for a in child.names if a.name.startswith("meshkit"))
            visit(child, inner)

    visit(tree, False)
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "apps" not in p.relative_to(PACKAGE).parts)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_downward_only(path: Path) -> None:
    module = _module_name(path)
    mine = _part(module)
    allowed = {mine, *LAYERS[mine]}
    for imported in _imports(path, top_level_only=False):
        theirs = _part(imported)
        if mine == "cli" and imported in CLI_STARTS | {"meshkit.runtime.kind"}:
            continue
        assert theirs in allowed, f"{module} ({mine}) imports {imported} ({theirs}); allowed: {sorted(allowed)}"


def test_no_import_cycle_at_run_time() -> None:
    graph = {_module_name(p): _imports(p, top_level_only=True) for p in PACKAGE.rglob("*.py")}
    state: dict[str, int] = {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if nxt not in graph or nxt == node or node.startswith(nxt + "."):
                continue  # a package's own __init__ runs first: not a cycle
            if state.get(nxt) == 1:
                raise AssertionError(" -> ".join([*trail[trail.index(nxt):], nxt]) if nxt in trail else nxt)
            if nxt not in state:
                walk(nxt, [*trail, nxt])
        state[node] = 2

    for module in graph:
        if module not in state:
            walk(module, [module])


@pytest.mark.parametrize("entry", ["meshkit.client", "meshkit.widgets.editors", "meshkit.widgets.panels",
                                   "meshkit.widgets.graphs", "meshkit.lab", "meshkit.client.kind"])
def test_the_client_side_never_loads_the_boss(entry: str) -> None:
    code = (f"import sys, {entry}\n"
            f"bad = sorted(m for m in sys.modules if m.startswith({HEAVY!r}))\n"
            "print(','.join(bad))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"importing {entry} loads {loaded}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_source_file_is_too_long_to_read(path: Path) -> None:
    limit = 250 if path.name == "daemon.py" else 450
    assert len(path.read_text().splitlines()) <= limit


def test_comments_say_why_not_which_ticket() -> None:
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for phrase in ("issue 5", "issue 6", "--- end kind", "--- kind"):
            assert phrase not in text, f"{path}: {phrase!r}"
