"""Waiting on the live mesh: read it again until a condition holds or a deadline passes.

xDS is eventually consistent, so a check or a status line often has to give the mesh a moment:
`poll` is that loop, once; `retry_wrong` wraps a check so a "wrong" verdict is read again for a
few seconds before it stands (a new gateway pod connecting, pooled connections draining).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from .spec import Check, Outcome, Verdict

if TYPE_CHECKING:
    from ..client import Mesh

T = TypeVar("T")


def poll(read: Callable[[], T], until: Callable[[T], bool], seconds: float, every: float) -> T:
    """`read()` every `every` seconds until `until` holds for its value or `seconds` have passed;
    the last value read (read once at least, and once more after the deadline's last sleep)."""
    deadline = time.monotonic() + seconds
    while True:
        value = read()
        if until(value) or time.monotonic() > deadline:
            return value
        time.sleep(every)


def retry_wrong(check: Check, seconds: float, every: float = 0.3) -> Check:
    """`check`, run again while it answers "wrong", for up to `seconds`; its last verdict."""

    def run(mesh: Mesh) -> Verdict:
        return poll(lambda: check(mesh), lambda verdict: verdict.outcome is not Outcome.WRONG, seconds, every)

    run.__doc__ = check.__doc__
    return run
