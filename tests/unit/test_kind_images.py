"""The kind images: what each Dockerfile copies, and that the init image runs the local runtime's script."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import yaml

from meshkit.runtime import capture, kind

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "iptables-rules.golden"


def copies(dockerfile: str) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY in `cluster/images/<dockerfile>`."""
    found = []
    for line in (kind.IMAGES_DIR / dockerfile).read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"]:
            paths = [w for w in words[1:] if not w.startswith("--")]
            found.append((paths[:-1], paths[-1]))
    return found


def test_each_image_has_a_dockerfile_whose_sources_survive_its_dockerignore() -> None:
    for image in kind.IMAGES:
        ignore = (kind.IMAGES_DIR / f"{image}.Dockerfile.dockerignore").read_text().splitlines()
        assert ignore[0] == "*"
        for sources, _ in copies(f"{image}.Dockerfile"):
            for source in sources:
                assert (kind.REPO / source).exists(), source
                assert f"!{source.rstrip('/')}" in {line.rstrip("/") for line in ignore}, source


def test_the_init_image_runs_the_very_script_the_local_runtime_runs() -> None:
    (sources, destination), = copies("init.Dockerfile")
    assert [kind.REPO / s for s in sources] == [capture.SCRIPT]
    assert destination == kind.INIT_SCRIPT_PATH
    assert "--chmod=0755" in (kind.IMAGES_DIR / "init.Dockerfile").read_text()


def test_the_init_containers_rules_equal_the_golden(tmp_path: Path) -> None:
    rendered = kind.render("meshkit", tmp_path)
    deployment = list(yaml.safe_load_all((rendered / "manifests" / "30-productpage-v1.yaml").read_text()))[1]
    command = deployment["spec"]["template"]["spec"]["initContainers"][0]["command"]
    assert command[0] == kind.INIT_SCRIPT_PATH
    rules = subprocess.run(["sh", str(capture.SCRIPT), *command[1:], "--dry-run"],
                           capture_output=True, text=True, check=True).stdout
    assert rules == GOLDEN.read_text()


def test_the_app_image_holds_the_scripts_the_pods_run_and_they_need_only_the_stdlib_and_each_other() -> None:
    (sources, destination), = copies("app.Dockerfile")
    assert destination.rstrip("/") == kind.APPS_DIR
    run = {Path(kind.app_command(w)[2]).name for w in kind.kind_topology().workloads if w.ports}
    assert run <= {Path(s).name for s in sources}
    for source in sources:
        tree = ast.parse((kind.REPO / source).read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
        siblings = {Path(s).stem for s in sources}  # pod_client.py imports curl.py, copied beside it
        allowed = set(sys.stdlib_module_names) | siblings
        assert imported <= allowed, (source, imported - allowed)


def test_the_xds_image_installs_meshkit_for_the_serve_xds_command() -> None:
    text = (kind.IMAGES_DIR / "xds.Dockerfile").read_text()
    assert (["meshkit"], "./meshkit") in copies("xds.Dockerfile")
    assert "RUN pip install ." in text
