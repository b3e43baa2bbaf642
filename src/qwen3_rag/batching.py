"""How inputs stream through an engine: fixed-size batches, tokenized ahead, submitted ahead.

``Qwen3Embedder`` and ``Qwen3Reranker`` run every large input the same way: the items are cut
into batches (:func:`chunks`), the next batch is tokenized in a thread while the current one
runs (:func:`prefetched`), and the engine is handed batch k+1 before batch k's result is
collected (:func:`pipelined`), so an engine pool's workers never wait for the caller;
:func:`stream` puts these together (and leaves tokenization to an engine pool's workers).

Example:
    >>> list(chunks("abcde", 2))
    [(0, 'ab'), (2, 'cd'), (4, 'e')]
    >>> parts = prefetched(chunks(["a b", "c"], 1), lambda p: [t.split() for t in p])
    >>> [(start, ids) for start, _, ids in parts]
    [(0, [['a', 'b']]), (1, [['c']])]
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
    submit: Callable[[Any], Future[np.ndarray]],
    parts: Iterator[tuple[int, Sequence[Any], Any]],
    depth: int = PIPELINE_DEPTH,
) -> Iterator[tuple[int, Sequence[Any], np.ndarray]]:
    """Yield (start, part, result) in order, with up to ``depth`` batches submitted ahead.

    ``submit(payload)`` returns a future: engines in this process finish the batch before
    returning, an engine pool queues it for its workers, which then always have work queued.
    """
    inflight: deque[tuple[int, Sequence[Any], Any]] = deque()
    try:
        for start, part, payload in parts:
            inflight.append((start, part, submit(payload)))
            while len(inflight) > depth:
                s, p, fut = inflight.popleft()
                yield s, p, fut.result()
        while inflight:
            s, p, fut = inflight.popleft()
            yield s, p, fut.result()
    finally:
        for _, _, fut in inflight:  # an error or an abandoned generator: drop queued work
            fut.cancel()


def stream(
    engine: Any, formatter: Any, method: str, kwargs: dict[str, Any], items: Sequence[Any], batch_size: int
) -> Iterator[tuple[int, Sequence[Any], np.ndarray]]:
    """Run ``items`` through ``engine`` in batches: yield (start, part, result) in order.

    Each batch is formatted and tokenized by ``formatter.<method>(part, **kwargs)``: here, in
    a thread ahead of the engine, or, for engines that format in their own worker processes
    (``formats_in_workers``, the engine pool), there, so this process only hands over texts.
    """
    if getattr(engine, "formats_in_workers", False):
        texts = ((start, part, part) for start, part in chunks(items, batch_size))
        return pipelined(functools.partial(engine.submit_texts, method, kwargs), texts)
    build = functools.partial(getattr(formatter, method), **kwargs)
    return pipelined(engine.submit, prefetched(chunks(items, batch_size), build))
