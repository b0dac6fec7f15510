"""`cluster up/down/status` against fake docker, kind and kubectl: the command plan and each failure path."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shlex
import signal
import socket
from pathlib import Path

import pytest

from meshkit import cli, client
from meshkit.runtime import kind
from meshkit.runtime.errors import RuntimeProblem

from .fake_tools import FAKES, calls, use_fake_tools

TOOLS = ("docker", "kind", "kubectl")


def free_port_base(count: int = 9) -> int:
    """A run of `count` free ports on 127.0.0.1."""
    for base in range(31000, 60000, 97):
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no free port range")


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Fake tools first on PATH, every call logged to the returned file; meshkit's home in tmp."""
    monkeypatch.setenv("MESHKIT_HOME", str(tmp_path / "home"))
    return use_fake_tools(monkeypatch, tmp_path / "calls.log", (
        "FAKE_FAIL", "FAKE_KIND_CLUSTERS", "FAKE_KIND_VERSION", "FAKE_KUBECTL_VERSION", "FAKE_KUBECTL_GET",
        "KIND_EXPERIMENTAL_PROVIDER"))


def up(port_base: int, **kwargs: object) -> tuple[kind.ClusterInfo | None, str]:
    out = io.StringIO()
    try:
        return kind.cluster_up("meshkit", out=out, port_base=port_base, **kwargs), out.getvalue()
    finally:
        kind.stop_forwards(kind.state_dir("meshkit"))  # never leave fake port-forwards behind


def assert_up_refused(*phrases: str, port_base: int | None = None, **kwargs: object) -> None:
    """`cluster up` stops with a RuntimeProblem saying every one of `phrases` (on free ports unless given a base)."""
    with pytest.raises(RuntimeProblem) as caught:
        up(free_port_base() if port_base is None else port_base, **kwargs)
    for phrase in phrases:
        assert phrase in str(caught.value)


def planned(port_base: int) -> list[list[str]]:
    plan = kind.Plan("meshkit", kind.state_dir("meshkit"), kind.host_arch() or "amd64", port_base)
    return [list(argv) for step in plan.steps() for argv in step.commands]


def test_dry_run_prints_every_command_and_runs_nothing_even_without_any_tool(
        fakes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    out = io.StringIO()
    assert kind.cluster_up("meshkit", dry_run=True, out=out, port_base=25000) is None
    printed = [shlex.split(line) for line in out.getvalue().splitlines() if not line.startswith("#")]
    assert printed == planned(25000)
    assert calls(fakes) == []
    assert not kind.home().exists()
    text = out.getvalue()
    for needle in ("kind create cluster --name meshkit", "docker build", "kind load docker-image",
                   "kubectl --kubeconfig", "rollout status deployment/reviews-v2", "port-forward"):
        assert needle in text


def test_up_runs_the_plan_in_order_then_down_undoes_it(fakes: Path) -> None:
    base = free_port_base()
    info, out = up(base)
    assert info is not None
    want = planned(base)
    assert calls(fakes) == want, "the real run calls exactly what --dry-run prints, in order"
    assert [line for line in out.splitlines() if line.startswith("[")] == [
        "[1/9] preflight", "[2/9] render manifests", "[3/9] validate offline", "[4/9] create the kind cluster",
        "[5/9] build images", "[6/9] load images into the node", "[7/9] apply manifests",
        "[8/9] wait for rollouts", "[9/9] port-forward to 127.0.0.1"]
    assert out.count("done in") == 9
    assert info.xds_address == f"127.0.0.1:{base}"
    assert info.admin_address("reviews-v2") == f"127.0.0.1:{base + 4}"
    assert (info.dir / "manifests" / "30-reviews-v2.yaml").exists()


def test_status_and_down(fakes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = free_port_base()
    out = io.StringIO()
    info = kind.cluster_up("meshkit", out=out, port_base=base)
    assert info is not None
    try:
        monkeypatch.setenv("FAKE_KIND_CLUSTERS", "other meshkit")
        monkeypatch.setenv("FAKE_KUBECTL_GET", json.dumps({"items": [{
            "metadata": {"namespace": "default", "name": "reviews-v2"},
            "spec": {"replicas": 1}, "status": {"readyReplicas": 1}}]}))
        status = kind.cluster_status("meshkit")
        assert status["exists"] is True
        assert status["deployments"] == {"default/reviews-v2": "1/1"}
        assert [f["alive"] for f in status["forwards"]] == [True] * 10  # xDS, 8 admins (the gate's too), control
        assert status["forwards"][-1]["name"] == kind.CONTROL_NAME
        assert info.control_address == f"127.0.0.1:{base + 9}"
        kind.cluster_down("meshkit", out=out)
    finally:
        kind.stop_forwards(info.dir)
    assert "stopped 10 port-forward(s)" in out.getvalue()
    assert calls(fakes)[-1] == ["kind", "delete", "cluster", "--name", "meshkit"]
    assert not info.dir.exists()


def test_each_step_carries_its_own_executor_so_its_key_and_title_are_only_labels(fakes: Path) -> None:
    base = free_port_base()
    plan = kind.Plan("meshkit", kind.state_dir("meshkit"), kind.host_arch() or "amd64", base)
    steps = plan.steps()
    own = {s.key: s.execute for s in steps if s.execute is not kind.run_each}
    assert set(own) == {"preflight", "render", "validate", "create", "rollout", "forward"}
    assert len(set(own.values())) == len(own), "no two steps share a special executor"
    runner = kind.StepRunner(plan, kind.KindConfig.load(), io.StringIO(), progress=False)
    try:  # renamed steps still do the whole run: nothing looks a step up by its key or title
        for i, step in enumerate(steps):
            dataclasses.replace(step, key=f"step-{i}", title=f"renamed {i}").run(runner)
    finally:
        for pid in runner.pids:
            os.killpg(pid, signal.SIGTERM)
    assert calls(fakes) == planned(base)
    assert len(runner.pids) == len(kind.forwards(plan.topology, base))
    assert (plan.dir / "manifests" / "30-reviews-v2.yaml").exists()
    assert sorted(p.name for p in (plan.dir / "logs").glob("step-*.log")) == [
        f"step-{i}.log" for i in (3, 4, 5, 6, 7)], "the steps that run commands log under their own key"


def test_cluster_commands_keep_their_files_under_the_home_given_with_dash_dash_home(
        fakes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    chosen = tmp_path / "chosen"  # MESHKIT_HOME (set by `fakes`) points elsewhere: --home wins
    state = chosen / "kind" / "demo"
    assert cli.main(["--home", str(chosen), "cluster", "up", "--dry-run", "--name", "demo"]) == 0
    printed = capsys.readouterr().out
    assert f"--config {state / 'kind.yaml'} --kubeconfig {state / 'kubeconfig'}" in printed
    assert f"--kubeconfig {state / 'kubeconfig'} apply -f {state / 'manifests'}" in printed
    assert str(kind.home()) not in printed
    assert not chosen.exists() and calls(fakes) == [], "a dry run writes and runs nothing"

    info = kind.cluster_up("demo", home=chosen, out=io.StringIO(), port_base=free_port_base())
    assert info is not None
    try:
        assert info.dir == state and (state / "forwards.json").exists() and (state / "manifests").is_dir()
        assert not kind.state_dir("demo").exists()
        monkeypatch.setenv("FAKE_KIND_CLUSTERS", "demo")
        assert cli.main(["--home", str(chosen), "cluster", "status", "--name", "demo"]) == 0
        printed = capsys.readouterr().out
        assert f"cluster demo: exists ({state})" in printed
        assert printed.count("alive") == 10, "status read the forwards.json under --home"
        assert cli.main(["--home", str(chosen), "cluster", "down", "--name", "demo"]) == 0
    finally:
        kind.stop_forwards(state)
    assert "stopped 10 port-forward(s)" in capsys.readouterr().out
    assert not state.exists()


def test_without_home_the_cluster_lives_where_every_other_command_keeps_state(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MESHKIT_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    want = tmp_path / ".meshkit" / "kind" / "meshkit"
    assert kind.state_dir("meshkit") == want == client.home_dir() / "kind" / "meshkit"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MESHKIT_HOME", "rel")
    assert kind.state_dir("x") == tmp_path / "rel" / "kind" / "x" == client.home_dir() / "kind" / "x"
    assert kind.state_dir("x", "elsewhere") == tmp_path / "elsewhere" / "kind" / "x"


def test_without_a_docker_engine_up_names_the_engine_and_how_to_get_one(
        fakes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FAIL", "docker info*")
    assert_up_refused("no Docker engine answers", "Cannot connect to the Docker daemon",
                      "Docker Desktop", "apt-get install docker.io", "KIND_EXPERIMENTAL_PROVIDER=podman")
    assert not any(c[:2] == ["kind", "create"] for c in calls(fakes))


def test_without_a_docker_cli_up_says_so(fakes: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    only = tmp_path / "bin"
    only.mkdir()
    for tool in ("kind", "kubectl"):
        (only / tool).symlink_to(FAKES / tool)
    monkeypatch.setenv("PATH", f"{only}{os.pathsep}/usr/bin{os.pathsep}/bin")
    with pytest.raises(RuntimeProblem, match=r"no container engine: `docker` is not on PATH.*Docker Desktop"):
        up(free_port_base())


def test_preflight_lists_every_gap_with_its_fix(fakes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_KIND_VERSION", "v0.20.0")
    monkeypatch.setenv("FAKE_KUBECTL_VERSION", "v1.32.4")
    base = free_port_base()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", base + 3))
        busy.listen()
        assert_up_refused("preflight found 3 problems",
                          "kind 0.20.0 is too old. Fix: install kind v0.32.0 or newer",
                          "kubectl 1.32 is too old. Fix: install kubectl 1.35 or newer",
                          f"port(s) {base + 3} are in use", port_base=base)


def test_an_existing_cluster_is_reused_not_created(fakes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_KIND_CLUSTERS", "meshkit")
    _, out = up(free_port_base())
    made = calls(fakes)
    assert not any(c[:3] == ["kind", "create", "cluster"] for c in made)
    assert ["kind", "export", "kubeconfig", "--name", "meshkit", "--kubeconfig",
            str(kind.state_dir("meshkit") / "kubeconfig")] in made
    assert "cluster 'meshkit' already exists: re-using it" in out


def test_an_image_load_failure_stops_before_apply_with_the_archive_workaround(
        fakes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FAIL", "kind load docker-image meshkit.local/app*")
    assert_up_refused("step 'load images into the node' failed", "content digest sha256:",
                      "kind load image-archive img.tar --name meshkit")
    assert not any("apply" in c for c in calls(fakes))


def test_a_rollout_timeout_names_the_deployment_and_how_to_look(
        fakes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FAIL", "kubectl *rollout status deployment/reviews-v2*")
    assert_up_refused("rollout status deployment/reviews-v2 --timeout=5s` exited 1",
                      "timed out waiting for the condition", "-n default describe pods",
                      "logs deployment/reviews-v2 --all-containers", rollout_timeout_s=5)
    assert not any("port-forward" in c for c in calls(fakes))
    assert (kind.state_dir("meshkit") / "logs" / "rollout.log").exists()


def test_down_without_an_engine_names_it(fakes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FAIL", "docker info*;kind delete*")
    with pytest.raises(RuntimeProblem, match=r"(?s)kind delete cluster --name meshkit` failed.*Docker Desktop"):
        kind.cluster_down("meshkit", out=io.StringIO())


def test_status_without_an_engine_names_it(fakes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FAIL", "docker info*")
    with pytest.raises(RuntimeProblem, match="no Docker engine answers"):
        kind.cluster_status("meshkit")
