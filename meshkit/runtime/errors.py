"""The one error the runtime raises: what went wrong and what the learner can do about it."""

from __future__ import annotations


class RuntimeProblem(Exception):
    """A runtime failure whose message names the problem and the fix, so nobody has to guess."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(f"{problem}. Fix: {fix}" if fix else problem)
        self.problem = problem
        self.fix = fix


class NotOnThisRuntime(RuntimeProblem):
    """An operation this runtime cannot do (e.g. entering a pod from the in-cluster boss)."""
