"""Running a plan: each step's programs with their logs and friendly failures, the background
port-forwards, and the three `meshkit cluster` commands (`up`, `down`, `status`).

Nothing here talks to Kubernetes except through the `kind`, `docker` (or `podman`) and `kubectl`
programs, so tests put fakes on PATH.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ..errors import RuntimeProblem
from .config import PORT_BASE, ClusterInfo, Forward, KindConfig, engine, forwards, host_arch, state_dir
from .plan import ENGINE_FIX, ROLLOUT_TIMEOUT_S, Plan, Step, engine_problem, format_plan, tail

FORWARD_READY_S = 15.0


def run(argv: Sequence[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run a program to its end, whatever its exit code; RuntimeProblem if it is not installed."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as e:
        raise RuntimeProblem(f"`{argv[0]}` is not on PATH", "run `meshkit cluster up` to see what is missing") from e


class StepRunner:
    """The `StepContext` of a real run: prints each command, logs its output under `<dir>/logs`."""

    def __init__(self, plan: Plan, config: KindConfig, out: TextIO, progress: bool) -> None:
        self.plan, self.config, self.out, self.progress = plan, config, out, progress
        self.logs = plan.dir / "logs"
        self.pids: list[int] = []

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def probe(self, argv: Sequence[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        return run(argv, timeout)

    def run(self, step: Step, argv: Sequence[str], fix: str | None = None) -> str:
        """Run `argv` for `step`, appending to `logs/<step.key>.log`; stdout, or RuntimeProblem with the fix."""
        if self.progress:
            self.say(f"      $ {shlex.join(argv)}")
        started = time.monotonic()
        result = run(argv)
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{step.key}.log").open("a") as log:
            log.write(f"$ {shlex.join(argv)}\n{result.stdout}{result.stderr}\n")
        if self.progress and time.monotonic() - started > 5:
            self.say(f"        ({time.monotonic() - started:.0f}s)")
        if result.returncode != 0:
            raise RuntimeProblem(
                f"step '{step.title}' failed: `{shlex.join(argv)}` exited {result.returncode}:\n    "
                + tail(result.stderr or result.stdout), fix or step.fix or "read the error above")
        return result.stdout

    def start_forward(self, forward: Forward) -> int:
        return start_forward(forward, self.plan.dir, self.plan.kubeconfig)


def is_forward(pid: int) -> bool:
    """Whether `pid` is still a kubectl port-forward (and not a recycled pid)."""
    ps = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return "port-forward" in ps.stdout


def stop_forwards(directory: Path) -> int:
    """Stop the port-forwards an earlier `up` started (checking each pid is still a port-forward)."""
    record = directory / "forwards.json"
    if not record.exists():
        return 0
    stopped = 0
    for entry in json.loads(record.read_text()):
        if is_forward(entry["pid"]):
            os.killpg(entry["pid"], signal.SIGTERM)  # its own session: started with start_new_session
            stopped += 1
    record.unlink()
    return stopped


def start_forward(forward: Forward, directory: Path, kubeconfig: Path) -> int:
    """Start `forward` in its own session (so `down` can stop it and its children); its pid once it forwards."""
    log_path = directory / "logs" / f"forward-{forward.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        process = subprocess.Popen(forward.argv(kubeconfig), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + FORWARD_READY_S
    while time.monotonic() < deadline:
        if "Forwarding from" in log_path.read_text():
            return process.pid
        if process.poll() is not None:
            break
        time.sleep(0.1)
    if process.poll() is None:
        process.terminate()
    raise RuntimeProblem(
        f"port-forward to {forward.target} on 127.0.0.1:{forward.local_port} did not come up:\n    "
        + tail(log_path.read_text()),
        "free the port, check the pod runs (`meshkit cluster status`), then `meshkit cluster up` again")


def cluster_up(name: str = "meshkit", *, home: str | os.PathLike[str] | None = None, dry_run: bool = False,
               out: TextIO | None = None, progress: bool = True, port_base: int = PORT_BASE,
               rollout_timeout_s: int = ROLLOUT_TIMEOUT_S) -> ClusterInfo | None:
    """Boot (or re-use) kind cluster `name` with the control plane and sidecar-carrying pods.

    Its files go to `<home>/kind/<name>/`, `home` by meshkit's usual rule (`$MESHKIT_HOME`, else
    `~/.meshkit`). Prints each step with its elapsed time to `out` (and each command when
    `progress`). With `dry_run`, prints the whole plan and touches nothing, engine or not; returns
    None then.
    """
    out = out or sys.stdout
    plan = Plan(name, state_dir(name, home), host_arch() or "amd64", port_base, rollout_timeout_s)
    if dry_run:
        out.write(format_plan(plan))
        return None
    runner = StepRunner(plan, KindConfig.load(), out, progress)
    stop_forwards(plan.dir)
    steps = plan.steps()
    runner.say(f"meshkit cluster up: kind cluster {name!r}, files in {plan.dir}")
    for i, step in enumerate(steps, 1):
        runner.say(f"[{i}/{len(steps)}] {step.title}")
        started = time.monotonic()
        for note in step.run(runner):
            runner.say(f"      {note}")
        runner.say(f"      done in {time.monotonic() - started:.1f}s")
    fw = forwards(plan.topology, plan.port_base)
    records = tuple({**vars(f), "pid": pid} for f, pid in zip(fw, runner.pids, strict=True))
    (plan.dir / "forwards.json").write_text(json.dumps(records, indent=2))
    info = ClusterInfo(name, plan.dir, plan.kubeconfig, records)
    runner.say(f"ready: xDS server on {info.xds_address}; control on {info.control_address}; sidecar admin ports "
               + ", ".join(f"{f['name']} {f['local_port']}" for f in info.sidecar_forwards()))
    return info


def cluster_down(name: str = "meshkit", *, home: str | os.PathLike[str] | None = None,
                 out: TextIO | None = None) -> None:
    """Stop the port-forwards, delete the kind cluster (no error if absent), remove meshkit's folder."""
    out = out or sys.stdout
    directory = state_dir(name, home)
    print(f"stopped {stop_forwards(directory)} port-forward(s)", file=out)
    if shutil.which("kind") is None:
        raise RuntimeProblem("kind is not on PATH, so the cluster cannot be deleted",
                             f"install kind, or delete the node container: `{engine()} rm -f {name}-control-plane`")
    result = run(("kind", "delete", "cluster", "--name", name))
    if result.returncode != 0:
        problem = engine_problem(run)
        raise RuntimeProblem(f"`kind delete cluster --name {name}` failed:\n    {tail(result.stderr)}",
                             problem[1] if problem else "read kind's error above and retry")
    print(f"deleted kind cluster {name!r} (if it existed)", file=out)
    shutil.rmtree(directory, ignore_errors=True)


def cluster_status(name: str = "meshkit", *, home: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Whether the cluster exists, each Deployment's ready count, and each port-forward's liveness."""
    problem = engine_problem(run)
    if problem:
        raise RuntimeProblem(*problem)
    directory = state_dir(name, home)
    listed = run(("kind", "get", "clusters"))
    if listed.returncode != 0:
        raise RuntimeProblem(f"`kind get clusters` failed: {tail(listed.stderr, 1)}", ENGINE_FIX)
    status: dict[str, Any] = {"name": name, "dir": str(directory), "exists": name in listed.stdout.split(),
                              "deployments": {}, "forwards": []}
    kubeconfig = directory / "kubeconfig"
    if status["exists"] and kubeconfig.exists():
        got = run(("kubectl", "--kubeconfig", str(kubeconfig), "get", "deployments", "-A",
                   "-l", "app.kubernetes.io/managed-by=meshkit", "-o", "json"), timeout=60)
        if got.returncode != 0:
            raise RuntimeProblem(f"`kubectl get deployments` failed: {tail(got.stderr, 2)}",
                                 f"check the cluster answers: `kubectl --kubeconfig {kubeconfig} get nodes`")
        for item in json.loads(got.stdout)["items"]:
            key = f"{item['metadata']['namespace']}/{item['metadata']['name']}"
            ready = item.get("status", {}).get("readyReplicas", 0)
            status["deployments"][key] = f"{ready}/{item['spec'].get('replicas', 1)}"
    record = directory / "forwards.json"
    for entry in json.loads(record.read_text()) if record.exists() else []:
        status["forwards"].append({**entry, "alive": is_forward(entry["pid"])})
    return status
