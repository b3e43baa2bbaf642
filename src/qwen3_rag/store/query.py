"""Query planning: which search answers a query, so that it returns ``k`` hits when ``k`` exist.

* Without a filter: one approximate search of the index (on the GPU copy, if any), asking for
  as many more candidates as there are HNSW orphans (vectors of deleted documents).
* A filter matching at most :data:`EXACT_FILTER_MAX` documents (of an index other than flat):
  exact scoring of exactly those vectors.
* A larger filter: a search restricted to the matching keys (a Faiss selector).

An approximate search that finds fewer than ``k`` (an IVF probe missing lists, a selective
filter in HNSW) is widened, 4× more lists or candidates at a time up to 64×, then the store
falls back to exact scoring.

Example:
    >>> import numpy as np
    >>> from qwen3_rag.store.kinds import IndexSpec
    >>> from qwen3_rag.store.vectors import VectorIndex
    >>> vi = VectorIndex.new(2, IndexSpec("flat"))
    >>> vi.add(np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype="float32"), np.array([0, 1, 2]))
    >>> scores, keys = nearest(vi, np.array([[1, 0]], dtype="float32"), 2, count=3)
    >>> keys.tolist(), [round(s, 2) for s in scores[0].tolist()]
    ([[0, 2]], [1.0, 0.6])
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from qwen3_rag.store.documents import Hit
from qwen3_rag.store.vectors import VectorIndex

EXACT_FILTER_MAX = 50_000
"""A filter matching at most this many documents is answered by exact scoring of those."""
EXACT_BLOCK = 65536
"""Vectors scored per block in exact scoring."""
MAX_WIDEN = 64
"""The most an approximate search is widened before exact scoring takes over."""


def nearest(
    vectors: VectorIndex,
    q: np.ndarray,
    k: int,
    *,
    count: int,
    allowed: np.ndarray | None = None,
    all_keys: Callable[[], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw ``(scores, keys)`` of the ``k`` best live vectors per query (``-1`` keys pad a row).

    Args:
        vectors: the store's index.
        q: query vectors, float32 ``(nq, dim)``.
        k: hits wanted per query.
        count: live documents (the index may hold more: HNSW orphans).
        allowed: the keys a filter admits (``None``: all).
        all_keys: every live key, for the exact fallback of an unfiltered search.
    """
    live = count if allowed is None else len(allowed)
    want = min(k, live)
    if allowed is not None and len(allowed) <= EXACT_FILTER_MAX and vectors.spec.kind != "flat":
        return exact(vectors, q, k, allowed)
    selector = vectors.selector(allowed) if allowed is not None else None
    stale = vectors.ntotal - count if selector is None else 0  # HNSW orphans (deleted, still in the graph)
    kk = min(vectors.ntotal, k + stale)
    vectors.prepare_search(len(q))
    widen = 1
    while True:
        scores, keys = vectors.search(q, kk, selector, widen)
        found = (keys >= 0).sum(axis=1)
        if found.min() >= min(want + stale, kk) or vectors.exhaustive(widen):
            return scores, keys
        if widen >= MAX_WIDEN:
            break
        widen *= 4
    if allowed is None:
        allowed = all_keys() if all_keys is not None else np.empty(0, np.int64)
    return exact(vectors, q, k, allowed)


def exact(vectors: VectorIndex, q: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` over the vectors of ``allowed`` (decoded and scored in blocks)."""
    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_i = np.empty((len(q), 0), dtype=np.int64)
    for s in range(0, len(allowed), EXACT_BLOCK):
        part = allowed[s : s + EXACT_BLOCK]
        sc = q @ vectors.reconstruct(part).T
        cat_s = np.concatenate([best_s, sc], axis=1)
        cat_i = np.concatenate([best_i, np.broadcast_to(part, sc.shape)], axis=1)
        top = np.argsort(-cat_s, axis=1, kind="stable")[:, :k]
        best_s = np.take_along_axis(cat_s, top, axis=1)
        best_i = np.take_along_axis(cat_i, top, axis=1)
    return best_s, best_i


def hits(
    scores: np.ndarray, keys: np.ndarray, rows: dict[int, tuple[str, str, str]], k: int,
    score_threshold: float | None = None,
) -> list[list[Hit]]:
    """Search results from raw ``(scores, keys)`` and the documents ``rows`` of those keys
    (key → id, text, metadata JSON): unknown keys (orphans) and scores below the threshold are
    left out, at most ``k`` per query."""
    out: list[list[Hit]] = []
    for srow, irow in zip(scores, keys, strict=True):
        found: list[Hit] = []
        for s, i in zip(srow.tolist(), irow.tolist(), strict=True):
            row = rows.get(i)
            if row is None or (score_threshold is not None and s < score_threshold):
                continue
            found.append(Hit(row[0], float(s), row[1], json.loads(row[2])))
            if len(found) == k:
                break
        out.append(found)
    return out


__all__ = ["EXACT_FILTER_MAX", "exact", "hits", "nearest"]
