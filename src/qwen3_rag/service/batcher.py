"""Micro-batching: concurrent requests share one engine call.

Each request submits its items (token-id sequences); one worker task takes the first waiting
request, optionally waits ``max_wait_s`` for others to arrive, collects requests up to
``max_items`` items, runs the engine once in a worker thread and hands every request its own
rows. While the engine runs, new requests queue up and form the next batch, so with no wait a
lone request runs at once and concurrent ones still share engine calls.

Example:
    >>> import asyncio
    >>> import numpy as np
    >>> calls = []
    >>> def double(items):
    ...     calls.append(len(items))
    ...     return np.asarray(items) * 2
    >>> async def main():
    ...     b = MicroBatcher(double, max_items=100, max_wait_s=0.01)
    ...     out = await asyncio.gather(*(b.submit([i]) for i in range(10)))
    ...     await b.close()
    ...     return [int(o[0]) for o in out]
    >>> asyncio.run(main())
    [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    >>> len(calls) < 10
    True
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("qwen3_rag")


@dataclass
class _Job:
    items: Sequence[Any]
    future: asyncio.Future[Any] = field(repr=False)


class MicroBatcher:
    """Collect concurrent :meth:`submit` calls into batched calls of ``fn``.

    Args:
        fn: blocking function taking a list of items and returning a sequence (e.g. an
            array) with one row per item, in order; it runs in a worker thread.
        max_items: most items per ``fn`` call (a single larger request runs alone).
        max_wait_s: how long the first request of a batch waits for others (0: not at all).
        on_batch: called with (number of requests, number of items, seconds) after each call.
    """

    def __init__(
        self,
        fn: Callable[[list[Any]], Sequence[Any]],
        *,
        max_items: int = 256,
        max_wait_s: float = 0.0,
        on_batch: Callable[[int, int, float], None] | None = None,
    ):
        if max_items < 1:
            raise ValueError(f"max_items must be positive, got {max_items}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        self.fn = fn
        self.max_items = max_items
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._carry: _Job | None = None
        # its own thread: engine calls never wait for (or starve) the loop's default executor,
        # where request handlers may be blocked waiting for this very batcher
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwen3-rag-batch")

    async def submit(self, items: Sequence[Any]) -> Any:
        """Run ``fn`` over ``items`` (possibly together with other requests' items)."""
        loop = asyncio.get_running_loop()
        if len(items) == 0:
            return await loop.run_in_executor(self._executor, self.fn, [])
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._carry = None
            self._worker = loop.create_task(self._run())
        job = _Job(items, loop.create_future())
        assert self._queue is not None
        self._queue.put_nowait(job)
        return await job.future

    async def close(self) -> None:
        """Stop the worker task (pending requests are cancelled)."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        self._executor.shutdown(wait=False)

    def _take(self) -> list[_Job]:
        """The jobs of the next batch, from the carried-over job and the queue."""
        assert self._queue is not None
        jobs: list[_Job] = []
        n = 0
        while True:
            if self._carry is not None:
                job, self._carry = self._carry, None
            else:
                try:
                    job = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
            if job.future.done():  # the client went away
                continue
            if jobs and n + len(job.items) > self.max_items:
                self._carry = job
                break
            jobs.append(job)
            n += len(job.items)
            if n >= self.max_items:
                break
        return jobs

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            if self._carry is None:
                self._carry = await self._queue.get()
            if self.max_wait_s and self._queue.qsize() + len(self._carry.items) < self.max_items:
                await asyncio.sleep(self.max_wait_s)
            jobs = self._take()
            if not jobs:
                continue
            items = [x for job in jobs for x in job.items]
            start = loop.time()
            try:
                out = await loop.run_in_executor(self._executor, self.fn, items)
            except Exception as e:
                if len(jobs) == 1:
                    _set(jobs[0], exception=e)
                else:  # let only the request(s) that break the engine fail
                    for job in jobs:
                        try:
                            alone = await loop.run_in_executor(self._executor, self.fn, list(job.items))
                            _set(job, result=alone)
                        except Exception as e1:
                            _set(job, exception=e1)
                continue
            if self.on_batch is not None:
                try:
                    self.on_batch(len(jobs), len(items), loop.time() - start)
                except Exception:  # pragma: no cover - metrics must not stop the worker
                    logger.exception("qwen3_rag: on_batch callback failed")
            offset = 0
            for job in jobs:
                _set(job, result=out[offset : offset + len(job.items)])
                offset += len(job.items)


def _set(job: _Job, *, result: Any = None, exception: BaseException | None = None) -> None:
    if job.future.done():
        return
    if exception is not None:
        job.future.set_exception(exception)
    else:
        job.future.set_result(result)
