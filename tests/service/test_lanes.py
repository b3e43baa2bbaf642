"""Engine lanes: several engine calls at once over an engine pool, answers as if alone."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import numpy as np
import pytest

from qwen3_rag.service.lanes import Lanes, engine_parallelism
from qwen3_rag.service.state import ServiceState


class Recorder:
    """A blocking engine function that records how many of its calls overlap."""

    def __init__(self, seconds: float = 0.05):
        self.seconds = seconds
        self.guard = threading.Lock()
        self.running = 0
        self.most = 0
        self.calls: list[list[list[int]]] = []

    def __call__(self, items: list[list[int]]) -> list[int]:
        with self.guard:
            self.running += 1
            self.most = max(self.most, self.running)
            self.calls.append(items)
        try:
            if any(-1 in x for x in items):
                raise ValueError("this batch holds a poisoned item")
            time.sleep(self.seconds * (1 + sum(len(x) for x in items) / 64))
            return [sum(x) for x in items]
        finally:
            with self.guard:
                self.running -= 1


def gather(lanes: Lanes, requests: list[list[list[int]]]) -> list[object]:
    async def main() -> list[object]:
        try:
            return await asyncio.gather(*(lanes.submit(r) for r in requests), return_exceptions=True)
        finally:
            await lanes.close()

    return asyncio.run(main())


@pytest.mark.parametrize("n_lanes", [1, 3])
def test_calls_overlap_up_to_the_number_of_lanes(n_lanes):
    fn = Recorder()
    out = gather(Lanes(fn, lanes=n_lanes), [[[i]] for i in range(6)])
    assert out == [[i] for i in range(6)]
    assert fn.most == n_lanes


def test_a_small_request_takes_an_idle_lane_and_finishes_first():
    fn = Recorder(seconds=0.02)
    lanes = Lanes(fn, lanes=2, max_items=8)
    finished: list[str] = []

    async def main() -> None:
        async def one(name: str, items: list[list[int]]) -> None:
            await lanes.submit(items)
            finished.append(name)

        big = asyncio.ensure_future(one("big", [[1] * 32] * 64))  # 8 calls of 8 items on one lane
        await asyncio.sleep(0.01)
        await one("small", [[2]])
        await big
        await lanes.close()

    asyncio.run(main())
    assert finished == ["small", "big"]


def test_every_request_is_answered_once_with_its_own_rows():
    rng = random.Random(7)
    def request() -> list[list[int]]:
        return [[rng.randrange(100) for _ in range(rng.randrange(1, 9))] for _ in range(rng.randrange(1, 12))]

    requests = [request() for _ in range(150)]
    fn = Recorder(seconds=0.001)
    out = gather(Lanes(fn, lanes=4, max_items=16, max_tokens=64), requests)
    assert out == [[sum(x) for x in r] for r in requests]
    assert sum(len(c) for c in fn.calls) == sum(len(r) for r in requests)  # no item computed twice
    assert fn.most > 1


def test_a_failing_request_does_not_fail_the_others():
    requests = [[[1], [2]], [[3], [-1]], [[4]], [[5], [6]]]
    out = gather(Lanes(Recorder(), lanes=2), requests * 3)
    for request, answer in zip(requests * 3, out, strict=True):
        if any(-1 in x for x in request):
            assert isinstance(answer, ValueError)
        else:
            assert answer == [sum(x) for x in request]


def test_lanes_must_be_positive():
    with pytest.raises(ValueError, match="lanes must be positive"):
        Lanes(Recorder(), lanes=0)


@pytest.mark.slow  # starts two engine worker processes
def test_an_engine_pool_gets_one_lane_per_worker_and_the_answers_of_one_engine(tiny_embedding):
    from qwen3_rag import Qwen3Embedder

    single = Qwen3Embedder(tiny_embedding, backend="hf")
    pooled = Qwen3Embedder(tiny_embedding, backend="hf", engines_per_gpu=2)
    assert engine_parallelism(single.engine) == 1
    assert engine_parallelism(pooled.engine) == 2
    texts = [f"query number {i} about {'rivers' if i % 2 else 'mountains'}" for i in range(40)]
    ids = [single.formatter.documents([t])[0] for t in texts]
    alone = single.engine.embed(ids)
    out = gather(Lanes(pooled.engine.embed, lanes=engine_parallelism(pooled.engine)), [[x] for x in ids])
    np.testing.assert_allclose(np.vstack(out), alone, atol=1e-4)

    state = ServiceState(pooled)  # the service gives the pool's embedder a lane per worker

    async def through_the_service() -> list[np.ndarray]:
        try:
            return await asyncio.gather(*(state.embed_ids([x], None) for x in ids))
        finally:
            await state.close()

    assert state.embed_batcher.lanes == 2
    np.testing.assert_allclose(np.vstack(asyncio.run(through_the_service())), alone, atol=1e-4)
