"""The one error the runtime raises: what went wrong and what the learner can do about it."""

from __future__ import annotations

from ..errors import EnvironmentProblem


class RuntimeProblem(EnvironmentProblem):
    """A runtime failure whose message names the problem and the fix, so nobody has to guess."""
