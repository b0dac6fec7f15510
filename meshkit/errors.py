"""Errors a caller can catch by type, on either side of the control socket.

    MeshError                   anything meshkit reports; `.problem` names it on the wire
     ├── NotRunning             no mesh answers at this home (start one with `meshkit up`)
     ├── Starting               the mesh is still booting; try again in a moment
     ├── InvalidInput           a document, field, name or argument is wrong; nothing was applied
     ├── NotFound               a pod or resource the request names does not exist
     ├── Nack                   Envoy rejected the config; `.push` holds the record with its text
     ├── EnvironmentProblem     this machine lacks something; `.fix` says what to do
     ├── Unsupported            the operation does not exist on this runtime (e.g. on kind)
     ├── Timeout                the mesh did not answer or converge in time
     └── InternalError          a bug in meshkit; the daemon log has the traceback

The boss raises these in its handlers; the wire carries `problem`, message and detail; the client
raises the same class again (`from_wire`). The CLI maps each class to its exit code.

>>> err = from_wire("nack", "Envoy rejected the config", {"id": 3})
>>> isinstance(err, Nack), err.push["id"], err.exit_code
(True, 3, 3)
>>> isinstance(from_wire("no-such-problem", "?"), MeshError)
True
>>> class Missing(EnvironmentProblem): ...
>>> Missing.problem, Missing.exit_code
('environment', 5)
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "EnvironmentProblem", "InternalError", "InvalidInput", "MeshError", "Nack", "NotFound", "NotRunning",
    "Starting", "Timeout", "Unsupported", "from_wire",
]


class MeshError(Exception):
    """Something meshkit reports to a learner; the message names the problem and the fix."""

    problem: ClassVar[str] = "error"
    exit_code: ClassVar[int] = 1

    def __init_subclass__(cls, problem: str = "", exit_code: int = 0, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)  # a subclass that names neither keeps its parent's
        cls.problem, cls.exit_code = problem or cls.problem, exit_code or cls.exit_code

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.detail = detail


class NotRunning(MeshError, problem="not-running", exit_code=4):
    """No mesh answers at this home (or kind port-forward)."""


class Starting(MeshError, problem="starting", exit_code=4):
    """The mesh is still booting."""


class InvalidInput(MeshError, problem="invalid", exit_code=2):
    """A document, field, name or argument is wrong; nothing was applied."""


class NotFound(MeshError, problem="not-found", exit_code=2):
    """A pod or resource named in the request does not exist."""


class Nack(MeshError, problem="nack", exit_code=3):
    """Envoy rejected the pushed config; it keeps serving its last good one.

    `push` is the push record (who ACKed, who NACKed, Envoy's error text per pod).
    """

    @property
    def push(self) -> dict:
        return self.detail if isinstance(self.detail, dict) else {}


class EnvironmentProblem(MeshError, problem="environment", exit_code=5):
    """This machine lacks something the mesh needs; `fix` says what to do about it."""

    def __init__(self, problem: str, fix: str = "", detail: Any = None) -> None:
        super().__init__(f"{problem}. Fix: {fix}" if fix else problem, detail)
        self.what = problem
        self.fix = fix


class Unsupported(MeshError, problem="unsupported", exit_code=2):
    """The operation does not exist on this runtime."""


class Timeout(MeshError, problem="timeout", exit_code=4):
    """The mesh did not answer, start or converge in time."""


class InternalError(MeshError, problem="internal", exit_code=70):
    """A bug in meshkit: the daemon logged the traceback."""


_BY_PROBLEM: dict[str, type[MeshError]] = {
    cls.problem: cls
    for cls in (NotRunning, Starting, InvalidInput, NotFound, Nack, EnvironmentProblem, Unsupported, Timeout,
                InternalError)
}


def from_wire(problem: str, message: str, detail: Any = None) -> MeshError:
    """The error the boss reported, as the class it raised (MeshError for an unknown problem)."""
    cls = _BY_PROBLEM.get(problem, MeshError)
    if cls is EnvironmentProblem:
        error: MeshError = EnvironmentProblem(message, detail=detail)
    else:
        error = cls(message, detail)
    return error
