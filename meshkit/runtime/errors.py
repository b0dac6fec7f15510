"""The runtime's errors: what went wrong and what the learner can do about it (see meshkit.errors)."""

from __future__ import annotations

from ..errors import EnvironmentProblem, Unsupported


class RuntimeProblem(EnvironmentProblem):
    """A runtime failure whose message names the problem and the fix, so nobody has to guess."""


class NotOnThisRuntime(Unsupported):
    """An operation this runtime cannot do (e.g. entering a pod from the in-cluster boss)."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}. Instead: {fix}")
