"""The boss's answers to the control protocol, between the control socket and the control plane.

`PlaneService` answers the operations that need only the control plane (the local daemon and the
in-cluster boss both compose it); `PodService` the ones that reach into local pods. `handlers()`
builds the table the control socket serves from `meshkit.protocol.OPERATIONS`, and refuses to
build one with an operation left unanswered.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..protocol import OPERATIONS, Scope
from .plane import PlaneService
from .pods import PodService

Handler = Callable[..., Awaitable[Any]]

__all__ = ["Handler", "PlaneService", "PodService", "handlers"]


def handlers(*services: object, extra: Mapping[str, Handler] | None = None,
             scopes: tuple[Scope, ...] = (Scope.PLANE, Scope.POD)) -> dict[str, Handler]:
    """op name → coroutine, taken from the first service with a method of that name (then `extra`).

    Every operation of the given scopes must be answered: a missing one is a bug caught here.
    """
    table: dict[str, Handler] = dict(extra or {})
    for name, op in OPERATIONS.items():
        if op.scope not in scopes or name in table:
            continue
        for service in services:
            method = getattr(service, name, None)
            if inspect.iscoroutinefunction(method):  # a plain helper of the same name is not an operation
                table[name] = method
                break
        else:
            raise TypeError(f"no service answers the protocol operation {name!r}")
    return table
