"""The ordered steps of `cluster up`, each with its own executor, and the preflight checks with their fixes.

A plan only describes and decides: every program a step runs goes through the `StepContext` it is
handed (`execution.StepRunner` in a real run), so `--dry-run` prints exactly what a run would call.
"""

from __future__ import annotations

import json
import platform
import re
import shlex
import shutil
import socket
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ...model import Topology
from ..errors import RuntimeProblem
from .config import (
    ENVOY_IMAGE,
    IMAGES,
    IMAGES_DIR,
    KIND_MIN_VERSION,
    PORT_BASE,
    REPO,
    VIP_CIDR_NAME,
    Forward,
    KindConfig,
    engine,
    forwards,
    host_arch,
    image_ref,
)
from .rendering import deployments, kind_topology, render
from .validation import validate

CREATE_WAIT = "180s"
ROLLOUT_TIMEOUT_S = 300

ENGINE_FIX = (
    "kind runs each Kubernetes node as a container, so it needs a running container engine: "
    "install and start Docker Desktop (macOS/Windows), or on Debian/Ubuntu "
    "`sudo apt-get install docker.io && sudo systemctl start docker`, or use podman "
    "(`podman machine start` on macOS) with `export KIND_EXPERIMENTAL_PROVIDER=podman`; "
    "`meshkit cluster up --dry-run` shows the plan without one"
)

Probe = Callable[[Sequence[str], float | None], subprocess.CompletedProcess[str]]
"""Runs a program and returns its result whatever the exit code (`execution.run`)."""


class StepContext(Protocol):
    """What a step's executor may use: the plan, the cluster config, and the programs it runs."""

    plan: Plan
    config: KindConfig
    progress: bool
    pids: list[int]  # the port-forwards started so far, in `forwards()` order

    def say(self, text: str) -> None: ...

    def run(self, step: Step, argv: Sequence[str], fix: str | None = None) -> str:
        """Run `argv` as part of `step`; stdout, or RuntimeProblem naming the step and the fix."""
        ...

    def probe(self, argv: Sequence[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]: ...

    def start_forward(self, forward: Forward) -> int:
        """Start one `kubectl port-forward` in the background; its pid once it forwards."""
        ...


Executor = Callable[["Step", StepContext], list[str]]


def run_each(step: Step, ctx: StepContext) -> list[str]:
    """The plain executor: run the step's commands in order, stopping at the first failure."""
    for argv in step.commands:
        ctx.run(step, argv)
    return []


@dataclass(frozen=True)
class Step:
    """One printed step of `cluster up`: its commands, what to do when one fails, and how it runs.

    `key` names the step's log file (`logs/<key>.log`); what the step does is `execute`.
    """

    key: str
    title: str
    commands: tuple[tuple[str, ...], ...] = ()
    note: str = ""
    fix: str = ""
    execute: Executor = run_each

    def run(self, ctx: StepContext) -> list[str]:
        """Carry out the step; return notes worth printing under it."""
        return self.execute(self, ctx)


def _preflight(step: Step, ctx: StepContext) -> list[str]:
    return preflight(ctx.plan, ctx.config, ctx.probe)


def _render(step: Step, ctx: StepContext) -> list[str]:
    render(ctx.plan.name, ctx.plan.dir, ctx.plan.topology, ctx.config)
    return [f"wrote {ctx.plan.dir / 'manifests'}"]


def _validate(step: Step, ctx: StepContext) -> list[str]:
    return validate(ctx.plan.dir)


def _create(step: Step, ctx: StepContext) -> list[str]:
    """`kind get clusters` first: an existing cluster is re-used, only its kubeconfig exported."""
    plan = ctx.plan
    if plan.name in ctx.run(step, step.commands[0]).split():
        ctx.run(step, ("kind", "export", "kubeconfig", "--name", plan.name, "--kubeconfig", str(plan.kubeconfig)))
        return [f"cluster {plan.name!r} already exists: re-using it"]
    ctx.run(step, step.commands[1])
    return []


def _rollout(step: Step, ctx: StepContext) -> list[str]:
    """Each Deployment in turn, a failure naming that Deployment's namespace in its fix."""
    for argv, (ns, d) in zip(step.commands, deployments(ctx.plan.topology), strict=True):
        ctx.run(step, argv, step.fix.format(kc=ctx.plan.kubeconfig, ns=ns, d=d))
    return []


def _forward(step: Step, ctx: StepContext) -> list[str]:
    for forward in forwards(ctx.plan.topology, ctx.plan.port_base):
        if ctx.progress:
            ctx.say(f"      $ {shlex.join(forward.argv(ctx.plan.kubeconfig))} &")
        ctx.pids.append(ctx.start_forward(forward))
    return []


@dataclass
class Plan:
    name: str
    dir: Path
    arch: str
    port_base: int = PORT_BASE
    rollout_timeout_s: int = ROLLOUT_TIMEOUT_S
    topology: Topology = field(default_factory=kind_topology)

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    def kubectl(self, *args: str) -> tuple[str, ...]:
        return ("kubectl", "--kubeconfig", str(self.kubeconfig), *args)

    def steps(self) -> list[Step]:
        eng, manifests_dir = engine(), self.dir / "manifests"
        fw = forwards(self.topology, self.port_base)
        logs = self.dir / "logs"
        return [
            Step("preflight", "preflight", (
                (eng, "info", "--format", "{{.ServerVersion}}"), ("kind", "version"),
                ("kubectl", "version", "--client", "-o", "json")),
                note=f"also: host architecture amd64|arm64, 127.0.0.1:{fw[0].local_port}-"
                     f"{fw[-1].local_port} free", execute=_preflight),
            Step("render", "render manifests", note=f"write {self.dir}/kind.yaml and {manifests_dir}/*.yaml",
                 execute=_render),
            Step("validate", "validate offline",
                 note="kind config fields; kubernetes-validate --strict; Envoy bootstraps via xds-protos",
                 execute=_validate),
            Step("create", "create the kind cluster", (
                ("kind", "get", "clusters"),
                ("kind", "create", "cluster", "--name", self.name, "--config", str(self.dir / "kind.yaml"),
                 "--kubeconfig", str(self.kubeconfig), "--wait", CREATE_WAIT)),
                note=f"create only if `kind get clusters` does not list {self.name}; otherwise "
                     f"`kind export kubeconfig --name {self.name} --kubeconfig {self.kubeconfig}`",
                fix=f"read kind's error above; the engine needs ~2 GB free memory; to start over: "
                    f"`meshkit cluster down --name {self.name}`; to debug: `kind create cluster --retain` "
                    f"then `kind export logs`", execute=_create),
            Step("build", "build images", tuple(
                (eng, "build", "--platform", f"linux/{self.arch}", "-f", str(IMAGES_DIR / f"{image}.Dockerfile"),
                 "-t", image_ref(image), str(REPO)) for image in IMAGES),
                fix=f"the builds pip/apt-install from PyPI and Debian: check the engine reaches them; "
                    f"full output in {logs}"),
            Step("load", "load images into the node", tuple(
                ("kind", "load", "docker-image", image_ref(image), "--name", self.name) for image in IMAGES),
                note=f"{ENVOY_IMAGE} is pulled by the node itself",
                fix=f"if it says `content digest … not found` (Docker's containerd image store), load an "
                    f"archive instead: `{eng} save -o img.tar IMAGE && kind load image-archive img.tar "
                    f"--name {self.name}`; check that `kind get clusters` lists {self.name}"),
            Step("apply", "apply manifests", (
                self.kubectl("apply", "-f", str(manifests_dir / "00-servicecidr.yaml")),
                self.kubectl("wait", "--for=condition=Ready", f"servicecidr/{VIP_CIDR_NAME}", "--timeout=60s"),
                self.kubectl("apply", "-f", str(manifests_dir))),
                fix="the cluster must run Kubernetes ≥ 1.33 (ServiceCIDR, native sidecars); "
                    "check `kubectl get nodes`"),
            Step("rollout", "wait for rollouts", tuple(
                self.kubectl("-n", ns, "rollout", "status", f"deployment/{d}",
                             f"--timeout={self.rollout_timeout_s}s")
                for ns, d in deployments(self.topology)),
                fix="see why with `kubectl --kubeconfig {kc} -n {ns} describe pods` and "
                    "`kubectl --kubeconfig {kc} -n {ns} logs deployment/{d} --all-containers`; "
                    "first runs pull the Envoy image (slow networks: raise the timeout)", execute=_rollout),
            Step("forward", "port-forward to 127.0.0.1", tuple(tuple(f.argv(self.kubeconfig)) for f in fw),
                 note="each runs in the background; `meshkit cluster down` stops them",
                 fix="free the port (`meshkit cluster down` stops earlier forwards) and run up again",
                 execute=_forward),
        ]


def format_plan(plan: Plan) -> str:
    """The dry-run text: every command in order, as a shell would take it."""
    lines = [f"# meshkit cluster up --dry-run: kind cluster {plan.name!r}; nothing is run or written"]
    for i, step in enumerate(plan.steps(), 1):
        lines.append(f"# {i}. {step.title}" + (f" ({step.note})" if step.note else ""))
        lines.extend(shlex.join(argv) for argv in step.commands)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- preflight

def tail(text: str, lines: int = 8) -> str:
    """The last `lines` of a program's output, indented for a RuntimeProblem message."""
    return "\n    ".join(text.strip().splitlines()[-lines:]) or "(no output)"


def _version(text: str, pattern: str) -> tuple[int, ...] | None:
    match = re.search(pattern, text)
    return tuple(int(g) for g in match.groups()) if match else None


def engine_problem(probe: Probe) -> tuple[str, str] | None:
    """(problem, fix) when no container engine answers, else None; `cluster down/status` ask it too."""
    eng = engine()
    if shutil.which(eng) is None:
        return f"no container engine: `{eng}` is not on PATH", ENGINE_FIX
    info = probe((eng, "info", "--format", "{{.ServerVersion}}"), 30)
    if info.returncode != 0:
        reason = tail(info.stderr or info.stdout, 1)
        return (f"no {eng.capitalize()} engine answers: `{eng} info` failed ({reason})",
                f"start the engine if it is installed; otherwise {ENGINE_FIX}")
    return None


def _kind_problem(probe: Probe) -> tuple[str, str] | None:
    want = ".".join(map(str, KIND_MIN_VERSION))
    fix = (f"install kind v{want} or newer (https://kind.sigs.k8s.io/docs/user/quick-start/#installation, "
           f"or `go install sigs.k8s.io/kind@v{want}`)")
    if shutil.which("kind") is None:
        return "kind is not on PATH", fix
    found = _version(probe(("kind", "version"), 30).stdout, r"v(\d+)\.(\d+)\.(\d+)")
    if found is None or found < KIND_MIN_VERSION:
        return f"kind {'.'.join(map(str, found)) if found else '(unknown version)'} is too old", fix
    return None


def _kubectl_problem(config: KindConfig, probe: Probe) -> tuple[str, str] | None:
    major, minor = map(int, config.kubernetes_version.split(".")[:2])
    fix = (f"install kubectl {major}.{minor - 1} or newer (within one minor of the node's Kubernetes "
           f"{config.kubernetes_version}): https://kubernetes.io/docs/tasks/tools/")
    if shutil.which("kubectl") is None:
        return "kubectl is not on PATH", fix
    out = probe(("kubectl", "version", "--client", "-o", "json"), 30).stdout
    try:
        found = _version(json.loads(out)["clientVersion"]["gitVersion"], r"v(\d+)\.(\d+)")
    except (ValueError, KeyError):
        found = None
    if found is None or found < (major, minor - 1):
        return f"kubectl {'.'.join(map(str, found)) if found else '(unknown version)'} is too old", fix
    return None


def _port_problem(ports: list[int]) -> tuple[str, str] | None:
    busy = []
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    if busy:
        return (f"127.0.0.1 port(s) {', '.join(map(str, busy))} are in use; port-forwards need them",
                "stop what listens there (`ss -ltnp`), or `meshkit cluster down` if an earlier up holds them")
    return None


def preflight(plan: Plan, config: KindConfig, probe: Probe) -> list[str]:
    """Check engine, kind, kubectl, architecture and ports; raise one RuntimeProblem listing every gap."""
    problems = [p for p in (
        engine_problem(probe),
        _kind_problem(probe),
        _kubectl_problem(config, probe),
        None if host_arch() else (f"host architecture {platform.machine()} is not supported",
                                  "use an amd64 or arm64 machine (Envoy and kind images exist only for those)"),
        _port_problem([f.local_port for f in forwards(plan.topology, plan.port_base)]),
    ) if p]
    if len(problems) == 1:
        raise RuntimeProblem(*problems[0])
    if problems:
        raise RuntimeProblem(
            f"preflight found {len(problems)} problems:\n"
            + "\n".join(f"  - {p}. Fix: {f}" for p, f in problems),
            "fix each item above, then run `meshkit cluster up` again")
    return [f"{engine()} engine answers", "kind and kubectl recent enough", f"arch {host_arch()}", "ports free"]
