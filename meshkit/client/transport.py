"""How a `Mesh` reaches its boss and pods: one small interface, a transport per runtime.

A transport carries every operation of `meshkit.protocol`. `ControlTransport` sends them all to a
boss that can answer them (the local daemon over its private unix socket); the kind transport
(`client/kind.py`) sends the control-plane operations to the in-cluster boss and does the pod
operations itself with kubectl. Tests use `FakeTransport` (`client/fake.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from ..protocol import Operation
from . import wire

R = TypeVar("R")


@runtime_checkable
class Transport(Protocol):
    """What `Mesh` needs from a runtime's way of reaching the mesh."""

    runtime: str  # "local" or "kind"
    home: Path  # where this mesh's records live

    def call(self, op: Operation[R], args: dict[str, Any], timeout: float = 60.0) -> R:
        """Run one protocol operation; its result, or a `meshkit.errors` exception."""
        ...

    def down(self) -> None:
        """Stop the mesh and everything it started (or say how, where this runtime cannot)."""
        ...


class ControlTransport:
    """Every operation over one control socket: the local daemon's `<home>/control.sock`."""

    runtime = "local"

    def __init__(self, home: Path) -> None:
        self.home = home
        self.address = home / "control.sock"

    def __repr__(self) -> str:
        return f"ControlTransport({str(self.address)!r})"

    def call(self, op: Operation[R], args: dict[str, Any], timeout: float = 60.0) -> R:
        return wire.call(self.address, op.name, op.request(args), timeout=timeout)

    def down(self) -> None:
        from .local import down

        down(self.home)


_: type[Transport] = ControlTransport
