"""What a lab is made of: exercises with live checks, tiered hints and a reference solution.

A check reads the lieutenant (Envoy's admin API, real requests) and answers with a `Verdict`.
It never reveals the expected value: a "wrong" verdict says what to look at, not the answer.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..client import Mesh


class Outcome(enum.Enum):
    DONE = "done"
    NOT_YET = "not yet"
    WRONG = "wrong"
    REJECTED = "rejected"
    ENVIRONMENT = "environment problem"
    ELSEWHERE = "not on this runtime"  # the exercise needs the other runtime (local or kind)


RUNTIMES = ("local", "kind")


@dataclass(frozen=True)
class Verdict:
    """A check's answer: the outcome and one sentence a learner can act on."""

    outcome: Outcome
    message: str = ""

    @classmethod
    def done(cls, message: str = "") -> Verdict:
        return cls(Outcome.DONE, message)

    @classmethod
    def not_yet(cls, message: str = "") -> Verdict:
        return cls(Outcome.NOT_YET, message)

    @classmethod
    def wrong(cls, message: str) -> Verdict:
        return cls(Outcome.WRONG, message)

    @classmethod
    def rejected(cls, message: str) -> Verdict:
        return cls(Outcome.REJECTED, message)


Check = Callable[["Mesh"], Verdict]
Action = Callable[["Mesh"], object]


@dataclass(frozen=True)
class Exercise:
    """One exercise: its check, hints from gentle to explicit, and the reference solution."""

    id: str
    title: str
    check: Check
    hints: tuple[str, ...]
    solution: str  # what `lab.solution(id)` shows: YAML or Python, as the learner would write it
    apply: Action  # does what the solution does, for skip_to() and solution(apply=True)
    deadline_s: float = 10.0  # how long the check waits for the mesh to converge
    runtimes: tuple[str, ...] = RUNTIMES  # where it can run: ("local",) marks it local-only
    elsewhere: str = ""  # why it cannot run on the other runtimes (shown instead of a check)


@dataclass(frozen=True)
class LabSpec:
    """A lab: its story position, its starting state and its exercises."""

    name: str  # "04-rds"
    title: str
    objectives: tuple[str, ...]
    exercises: tuple[Exercise, ...]
    setup: Action | None = None  # extra starting state on top of the default mesh
    minutes: int = 30
    notes: tuple[str, ...] = field(default_factory=tuple)  # where meshkit differs from Istio
    # (runtime, note): what differs on that runtime, e.g. ("kind", "pod_info('iptables') is istio-init's log")
    runtime_notes: tuple[tuple[str, str], ...] = ()

    def notes_for(self, runtime: str) -> list[str]:
        """What a learner on `runtime` should know: its notes, then the exercises it cannot run."""
        notes = [note for where, note in self.runtime_notes if where == runtime]
        notes += [f"{e.id} runs on {' or '.join(e.runtimes)} only: {e.elsewhere or 'skip it here'}"
                  for e in self.exercises if runtime not in e.runtimes]
        return notes

    def exercise(self, exercise_id: str) -> Exercise:
        for exercise in self.exercises:
            if exercise.id == exercise_id:
                return exercise
        known = ", ".join(e.id for e in self.exercises)
        raise KeyError(f"lab {self.name} has no exercise {exercise_id!r}; it has {known}")
