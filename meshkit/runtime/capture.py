"""Traffic capture: Istio's istio-init rules applied in a pod.

The rules live in one shell script, `cluster/istio-iptables.sh`, which the kind init container
runs too; this module only runs it inside a pod's netns.
"""

from __future__ import annotations

from pathlib import Path

from .errors import RuntimeProblem
from .netns import command_in, run

SCRIPT = Path(__file__).resolve().parents[2] / "cluster" / "istio-iptables.sh"


def script() -> Path:
    """The capture script, or a RuntimeProblem if this checkout lacks it."""
    if not SCRIPT.is_file():
        raise RuntimeProblem(f"the capture script {SCRIPT} is missing",
                             "run meshkit from its source checkout (pip install -e .), which has cluster/")
    return SCRIPT


def rules(*args: str) -> str:
    """The iptables-restore input the script would apply (its `--dry-run`), for `args` like `-p 15001`."""
    return run(["sh", str(script()), *args, "--dry-run"])


def apply(netns: str, *args: str) -> None:
    """Apply the capture rules inside `netns` (replacing earlier ones)."""
    run(command_in(netns, ["sh", str(script()), *args]),
        fix="capture needs root and iptables with the nat table (nf_tables or legacy)")

