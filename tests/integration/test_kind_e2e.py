"""The real kind path: create a cluster, run lab 04's solution against it, delete the cluster.

Needs a container engine that answers `docker info` (or podman with KIND_EXPERIMENTAL_PROVIDER=podman),
kind and kubectl; skipped, with the reason, anywhere the engine does not answer.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshkit.runtime import kind

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "solutions" / "04-rds.ipynb"
CLUSTER = "meshkit-e2e"

pytestmark = pytest.mark.kind


def engine_unavailable_reason() -> str | None:
    """Why no kind cluster can be made here (None when the engine answers)."""
    try:
        info = subprocess.run([kind.engine(), "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, text=True, timeout=30, check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired) as e:
        return f"no container engine: `{kind.engine()} info` could not run ({e})"
    if info.returncode != 0:
        return f"`{kind.engine()} info` does not answer: {(info.stderr.strip().splitlines() or ['-'])[-1]}"
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kind.ClusterInfo]:
    reason = engine_unavailable_reason()
    if reason:
        pytest.skip(f"kind e2e skipped: {reason}")
    monkey = pytest.MonkeyPatch()
    monkey.setenv("MESHKIT_HOME", str(tmp_path_factory.mktemp("kind-home")))
    out = io.StringIO()
    try:
        info = kind.cluster_up(CLUSTER, out=out)
        assert info is not None
        yield info
    finally:
        print(out.getvalue())
        kind.cluster_down(CLUSTER, out=out)
        monkey.undo()


def test_every_deployment_is_ready(cluster: kind.ClusterInfo) -> None:
    status = kind.cluster_status(cluster.name)
    assert status["exists"]
    assert all(ready == "1/1" for ready in status["deployments"].values()), status["deployments"]
    assert len(status["deployments"]) == len(kind.deployments(kind.kind_topology()))
    assert all(f["alive"] for f in status["forwards"])


def test_lab_04_solution_runs_against_the_cluster(cluster: kind.ClusterInfo,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    if not NOTEBOOK.exists():
        pytest.skip(f"{NOTEBOOK.relative_to(REPO)} does not exist yet")
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("MESHKIT_RUNTIME", "kind")
    monkeypatch.setenv("MESHKIT_KIND_CLUSTER", cluster.name)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
