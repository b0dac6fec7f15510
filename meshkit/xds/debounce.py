"""Debounce and batching: a burst of config changes becomes one push (istiod's push debouncing).

istiod waits until no change has arrived for PILOT_DEBOUNCE_AFTER (100 ms), at most
PILOT_DEBOUNCE_MAX (10 s) after the first, then pushes everything merged. meshkit keeps the merging
but not the wait when nothing is happening: a change arriving while the boss is idle is pushed at
once (with whatever arrives in the same event-loop step), so a learner's single edit reaches the
sidecars in milliseconds. Changes arriving while a push is in flight wait for it, and then until
`debounce_ms` pass without a new change (at most `max_ms` after the first), and go out as one
push whose record lists every merged reason. Pushes never overlap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

R = TypeVar("R")

# A lab is small and a learner waits on every edit: a much shorter window than istiod's 100 ms / 10 s.
DEBOUNCE_MS = 10.0
DEBOUNCE_MAX_MS = 1000.0


@dataclass
class Batch:
    """Changes merged into one push: which types to rebuild for which pods, and why."""

    first: float
    last: float
    idle: bool  # nothing was in flight when it began: it goes out at once
    types: dict[str, set[str]] = field(default_factory=dict)  # pod name -> xDS type URLs to rebuild
    reasons: list[str] = field(default_factory=list)
    timeout: float = 0.0

    def add(self, pods: Iterable[str], types: Iterable[str], reason: str, timeout: float) -> None:
        types = set(types)
        for pod in pods:
            self.types.setdefault(pod, set()).update(types)
        self.reasons.append(reason)
        self.timeout = max(self.timeout, timeout)


class Debouncer(Generic[R]):
    """Merges `submit`ted changes into batches and runs `run(batch)` for one batch at a time."""

    def __init__(self, run: Callable[[Batch], Awaitable[R]], debounce_ms: float = DEBOUNCE_MS,
                 max_ms: float = DEBOUNCE_MAX_MS, clock: Callable[[], float] = time.monotonic) -> None:
        if debounce_ms < 0 or max_ms < debounce_ms:
            raise ValueError(f"debounce {debounce_ms} ms / max {max_ms} ms: need 0 <= debounce <= max")
        self.run = run
        self.debounce_s = debounce_ms / 1000
        self.max_s = max_ms / 1000
        self.clock = clock
        self._pending: tuple[Batch, asyncio.Future[R]] | None = None
        self._busy = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, pods: Iterable[str], types: Iterable[str], reason: str, timeout: float) -> R:
        """Add one change to the next push and wait for that push's result."""
        now = self.clock()
        if self._pending is None:
            loop = asyncio.get_running_loop()
            batch = Batch(now, now, idle=not self._busy.locked())
            self._pending = (batch, loop.create_future())
            task = loop.create_task(self._flush(*self._pending))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        batch, result = self._pending
        batch.last = now
        batch.add(pods, types, reason, timeout)
        return await asyncio.shield(result)

    async def _flush(self, batch: Batch, result: asyncio.Future[R]) -> None:
        async with self._busy:
            await asyncio.sleep(0)  # what the same event-loop step submits joins this batch
            while not batch.idle:
                wait = min(batch.last + self.debounce_s, batch.first + self.max_s) - self.clock()
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            self._pending = None
            try:
                result.set_result(await self.run(batch))
            except asyncio.CancelledError:
                result.cancel()
                raise
            except Exception as exc:  # the submitters see the push's own error
                result.set_exception(exc)
