"""MicroBatcher without a wait: a lone request runs at once, requests that arrive while the
engine runs share the next call."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from qwen3_rag.service.batcher import MicroBatcher


async def test_no_wait_runs_alone_then_batches_what_queued_meanwhile():
    calls: list[list[int]] = []
    release = threading.Event()

    def fn(items: list[int]) -> np.ndarray:
        calls.append(list(items))
        if len(calls) == 1:
            release.wait(5)  # the first call blocks while the others queue up
        return np.asarray(items) * 10

    b = MicroBatcher(fn, max_items=100, max_wait_s=0.0)
    first = asyncio.create_task(b.submit([1]))
    while not calls:
        await asyncio.sleep(0.001)
    assert calls == [[1]]  # ran without waiting for company
    rest = [asyncio.create_task(b.submit([i, i + 1])) for i in (2, 4, 6)]
    await asyncio.sleep(0.05)
    release.set()
    out = await asyncio.gather(first, *rest)
    await b.close()
    assert [o.tolist() for o in out] == [[10], [20, 30], [40, 50], [60, 70]]
    assert calls == [[1], [2, 3, 4, 5, 6, 7]]  # the three queued requests: one engine call
