"""Engine lanes: one micro-batcher per call an engine can compute at once.

An engine pool (``engines_per_gpu`` or ``data_parallel_size`` above 1) computes one call per
worker process at a time, while one :class:`~qwen3_rag.service.batcher.MicroBatcher` runs one
call at a time: over a pool it would leave every worker but one idle, however many requests
wait. :class:`Lanes` keeps ``engine.parallelism`` micro-batchers over the same engine, each with
its own thread, and hands each request to the lane with the fewest tokens waiting. A lone
request runs at once on an idle lane, requests that arrive while every lane is busy still share
calls within a lane, and up to ``lanes`` calls run at once.

Example:
    >>> import asyncio, threading, time
    >>> running, most = 0, 0
    >>> guard = threading.Lock()
    >>> def slow_double(items):
    ...     global running, most
    ...     with guard:
    ...         running += 1
    ...         most = max(most, running)
    ...     time.sleep(0.05)
    ...     with guard:
    ...         running -= 1
    ...     return [2 * x for x in items]
    >>> async def main():
    ...     lanes = Lanes(slow_double, lanes=3)
    ...     out = await asyncio.gather(*(lanes.submit([i]) for i in range(3)))
    ...     await lanes.close()
    ...     return out
    >>> asyncio.run(main()), most
    ([[0], [2], [4]], 3)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from qwen3_rag.service.batcher import MicroBatcher


def engine_parallelism(engine: Any) -> int:
    """How many calls ``engine`` computes at once (an engine pool: one per worker; else 1)."""
    return max(1, int(getattr(engine, "parallelism", 1)))


class Lanes:
    """``lanes`` micro-batchers over one blocking ``fn``; each request goes to the lane with the
    fewest tokens waiting (the first such lane on a tie).

    Args:
        fn: blocking function taking a list of items and returning one row per item, in order;
            safe to call from ``lanes`` threads at once.
        lanes: how many calls of ``fn`` may run at once.
        **batcher_options: the options of each lane's :class:`MicroBatcher` (``max_items``,
            ``max_tokens``, ``max_wait_s``, ``on_batch``).
    """

    def __init__(self, fn: Callable[[list[Any]], Sequence[Any]], *, lanes: int = 1, **batcher_options: Any):
        if lanes < 1:
            raise ValueError(f"lanes must be positive, got {lanes}")
        self.batchers = [MicroBatcher(fn, **batcher_options) for _ in range(lanes)]
        self.waiting = [0] * lanes  # tokens submitted to each lane and not answered yet

    @property
    def lanes(self) -> int:
        """How many calls may run at once."""
        return len(self.batchers)

    async def submit(self, items: Sequence[Any]) -> Any:
        """The rows of ``items``, computed on the least busy lane (see :meth:`MicroBatcher.submit`)."""
        lane = min(range(len(self.batchers)), key=self.waiting.__getitem__)
        cost = sum(len(x) if hasattr(x, "__len__") else 1 for x in items) or 1
        self.waiting[lane] += cost
        try:
            return await self.batchers[lane].submit(items)
        finally:
            self.waiting[lane] -= cost

    async def close(self) -> None:
        """Stop every lane (pending requests are cancelled)."""
        await asyncio.gather(*(b.close() for b in self.batchers))


__all__ = ["Lanes", "engine_parallelism"]
