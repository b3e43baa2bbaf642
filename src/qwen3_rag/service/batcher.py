"""Micro-batching with fair shares: concurrent requests share engine calls, and a large request
is cut into bounded calls that take turns with the others.

Each request submits its items (token-id sequences). One worker task plans each engine call
from the requests waiting: every request gets a share of the call (at most ``max_items``
sequences and, with ``max_tokens``, that many tokens in all), the requests are visited in
turn, and a request that still has items left after a call goes to the back of the line. So
a lone request runs at once (cut into bounded calls when large), concurrent small ones share
calls, and a small request that arrives behind a large one runs in the next call instead of
waiting for the large one to finish. Each request gets its own rows back, in order.

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

import numpy as np

logger = logging.getLogger("qwen3_rag")


@dataclass(eq=False)
class _Job:
    """One request: its items, how far the engine has got, and the rows computed so far."""

    items: Sequence[Any]
    future: asyncio.Future[Any] = field(repr=False)
    done: int = 0
    parts: list[Any] = field(default_factory=list, repr=False)

    @property
    def left(self) -> int:
        return len(self.items) - self.done


@dataclass
class _Piece:
    """The items ``start:end`` of a job, in one engine call."""

    job: _Job
    start: int
    end: int

    @property
    def items(self) -> Sequence[Any]:
        return self.job.items[self.start : self.end]


class MicroBatcher:
    """Collect concurrent :meth:`submit` calls into batched, bounded calls of ``fn``.

    Args:
        fn: blocking function taking a list of items and returning a sequence (e.g. an
            array) with one row per item, in order; it runs in a worker thread.
        max_items: most items per ``fn`` call (a larger request is cut into several calls).
        max_wait_s: how long the first request of a batch waits for others (0: not at all).
        max_tokens: most tokens per ``fn`` call, counting ``len(item)`` per item (``None``: no
            bound); a single item longer than this runs in a call of its own.
        on_batch: called with (number of requests, number of items, seconds) after each call.
    """

    def __init__(
        self,
        fn: Callable[[list[Any]], Sequence[Any]],
        *,
        max_items: int = 256,
        max_wait_s: float = 0.0,
        max_tokens: int | None = None,
        on_batch: Callable[[int, int, float], None] | None = None,
    ):
        if max_items < 1:
            raise ValueError(f"max_items must be positive, got {max_items}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        self.fn = fn
        self.max_items = max_items
        self.max_wait_s = max_wait_s
        self.max_tokens = max_tokens
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._line: list[_Job] = []  # the requests with items left, in turn order
        # its own thread: engine calls never wait for (or starve) the loop's default executor,
        # where request handlers may be blocked waiting for this very batcher
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwen3-rag-batch")

    async def submit(self, items: Sequence[Any]) -> Any:
        """Run ``fn`` over ``items`` (possibly cut into several calls, shared with other
        requests' items) and return the rows of ``items``, in order."""
        loop = asyncio.get_running_loop()
        if len(items) == 0:
            return await loop.run_in_executor(self._executor, self.fn, [])
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._line = []
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

    def _cost(self, item: Any) -> int:
        return len(item) if self.max_tokens is not None else 0

    def _plan(self) -> list[_Piece]:
        """The pieces of the next call: a first pass gives each waiting request an equal share
        of the call's items and tokens, a second pass hands what is left to them in turn."""
        self._line = [job for job in self._line if not job.future.done()]  # clients gone
        if not self._line:
            return []
        n = len(self._line)
        items_left, tokens_left = self.max_items, self.max_tokens or 0
        pieces: dict[int, _Piece] = {}
        shares = [(max(1, self.max_items // n), max(1, tokens_left // n)), (self.max_items, tokens_left)]
        for share_items, share_tokens in shares:
            for i, job in enumerate(self._line):
                piece = pieces.get(i) or _Piece(job, job.done, job.done)
                taken, tokens = 0, 0
                while piece.end < len(job.items) and taken < share_items and items_left > 0:
                    cost = self._cost(job.items[piece.end])
                    if self.max_tokens is not None and (tokens + cost > share_tokens or cost > tokens_left):
                        if pieces or piece.end > piece.start:  # a lone oversized item runs alone
                            break
                    piece.end += 1
                    taken, tokens = taken + 1, tokens + cost
                    items_left, tokens_left = items_left - 1, tokens_left - cost
                if piece.end > piece.start:
                    pieces[i] = piece
                if items_left == 0 or (self.max_tokens is not None and tokens_left <= 0):
                    break
        return [pieces[i] for i in sorted(pieces)]

    def _take_queued(self) -> None:
        assert self._queue is not None
        while not self._queue.empty():
            self._line.append(self._queue.get_nowait())

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._line:
                self._line.append(await self._queue.get())
                if self.max_wait_s and self._queue.qsize() + self._line[0].left < self.max_items:
                    await asyncio.sleep(self.max_wait_s)
            self._take_queued()
            pieces = self._plan()
            if not pieces:
                continue
            items = [x for piece in pieces for x in piece.items]
            start = loop.time()
            try:
                out = await loop.run_in_executor(self._executor, self.fn, items)
            except Exception as e:
                await self._run_alone(pieces, e)
            else:
                self._on_batch(len(pieces), len(items), loop.time() - start)
                offset = 0
                for piece in pieces:
                    _advance(piece, out[offset : offset + piece.end - piece.start])
                    offset += piece.end - piece.start
            served = {id(p.job) for p in pieces}
            # next turn: those not served this time first, then those served, in their order
            self._line = ([j for j in self._line if id(j) not in served]
                          + [j for j in self._line if id(j) in served and j.left and not j.future.done()])

    async def _run_alone(self, pieces: list[_Piece], error: Exception) -> None:
        """After a failed call: fail only the request(s) whose items break the engine."""
        if len(pieces) == 1:
            _set(pieces[0].job, exception=error)
            return
        loop = asyncio.get_running_loop()
        for piece in pieces:
            try:
                _advance(piece, await loop.run_in_executor(self._executor, self.fn, list(piece.items)))
            except Exception as e:
                _set(piece.job, exception=e)

    def _on_batch(self, n_requests: int, n_items: int, seconds: float) -> None:
        if self.on_batch is not None:
            try:
                self.on_batch(n_requests, n_items, seconds)
            except Exception:  # pragma: no cover - metrics must not stop the worker
                logger.exception("qwen3_rag: on_batch callback failed")


def _advance(piece: _Piece, rows: Any) -> None:
    """Record a piece's rows; complete its request when these were its last items."""
    job = piece.job
    if job.future.done():
        return
    job.done = piece.end
    if job.done == piece.end == len(job.items) and not job.parts:
        _set(job, result=rows)  # the whole request in one call: its rows as they are
        return
    job.parts.append(rows)
    if job.left == 0:
        parts = job.parts
        _set(job, result=np.concatenate(parts) if all(isinstance(p, np.ndarray) for p in parts)
             else [row for p in parts for row in p])


def _set(job: _Job, *, result: Any = None, exception: BaseException | None = None) -> None:
    if job.future.done():
        return
    if exception is not None:
        job.future.set_exception(exception)
    else:
        job.future.set_result(result)
