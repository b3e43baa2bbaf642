"""How inputs stream through an engine: fixed-size batches, tokenized ahead, submitted ahead.

``Qwen3Embedder`` and ``Qwen3Reranker`` run every large input the same way: the items are cut
into batches (:func:`chunks`), the next batch is tokenized in a thread while the current one
runs (:func:`prefetched`), and the engine is handed batch k+1 before batch k's result is
collected (:func:`pipelined`), so an engine pool's workers never wait for the caller.

Example:
    >>> list(chunks("abcde", 2))
    [(0, 'ab'), (2, 'cd'), (4, 'e')]
    >>> parts = prefetched(chunks(["a b", "c"], 1), lambda p: [t.split() for t in p])
    >>> [(start, ids) for start, _, ids in parts]
    [(0, [['a', 'b']]), (1, [['c']])]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

#: batches an engine may hold beyond the one being collected
PIPELINE_DEPTH = 2


def chunks(items: Sequence[Any], size: int) -> Iterator[tuple[int, Sequence[Any]]]:
    """Yield (start, slice) pairs of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


def prefetched(
    parts: Iterator[tuple[int, Sequence[Any]]], build: Callable[[Sequence[Any]], list[list[int]]]
) -> Iterator[tuple[int, Sequence[Any], list[list[int]]]]:
    """Yield (start, part, build(part)), tokenizing the next part in a thread meanwhile.

    The Rust tokenizer releases the GIL, so tokenization of batch k+1 overlaps the engine's
    work on batch k.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwen3-rag-tok") as pool:
        pending = None
        for start, part in parts:
            fut = pool.submit(build, part)
            if pending is not None:
                yield pending[0], pending[1], pending[2].result()
            pending = (start, part, fut)
        if pending is not None:
            yield pending[0], pending[1], pending[2].result()


def pipelined(
    engine: Any, parts: Iterator[tuple[int, Sequence[Any], list[list[int]]]], depth: int = PIPELINE_DEPTH
) -> Iterator[tuple[int, Sequence[Any], np.ndarray]]:
    """Yield (start, part, result) in order, with up to ``depth`` batches submitted ahead.

    ``engine.submit`` returns a future; engines in this process finish the batch before
    returning, an engine pool queues it for its workers, which then always have work queued.
    """
    inflight: deque[tuple[int, Sequence[Any], Any]] = deque()
    try:
        for start, part, token_ids in parts:
            inflight.append((start, part, engine.submit(token_ids)))
            while len(inflight) > depth:
                s, p, fut = inflight.popleft()
                yield s, p, fut.result()
        while inflight:
            s, p, fut = inflight.popleft()
            yield s, p, fut.result()
    finally:
        for _, _, fut in inflight:  # an error or an abandoned generator: drop queued work
            fut.cancel()
