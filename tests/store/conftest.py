"""Shared data for the store tests: unit vectors, exact top-k, and a filled store."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from qwen3_rag import FaissStore


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _exact_top(vecs: np.ndarray, q: np.ndarray, k: int, rows: np.ndarray | None = None) -> list[int]:
    rows = np.arange(len(vecs)) if rows is None else rows
    scores = vecs[rows] @ q
    return [int(rows[i]) for i in np.argsort(-scores, kind="stable")[:k]]


@pytest.fixture()
def unit() -> Callable[[np.random.Generator, int, int], np.ndarray]:
    """``unit(rng, n, d)``: ``n`` random L2-normalised float32 vectors."""
    return _unit


@pytest.fixture()
def exact_top() -> Callable[..., list[int]]:
    """``exact_top(vecs, q, k, rows=None)``: the rows of the ``k`` best inner products, exactly."""
    return _exact_top


@pytest.fixture()
def data():
    """300 documents of 16-d vectors with ``lang``, ``year`` and ``rare`` metadata."""
    rng = np.random.default_rng(0)
    n, d = 300, 16
    vecs = _unit(rng, n, d)
    ids = [f"doc-{i}" for i in range(n)]
    texts = [f"text of document {i}" for i in range(n)]
    metas = [{"lang": ["en", "fr", "de"][i % 3], "year": 2000 + i % 10, "rare": i in (5, 77, 150)}
             for i in range(n)]
    return vecs, ids, texts, metas


@pytest.fixture()
def filled(data) -> Callable[..., FaissStore]:
    """``filled(**kw)``: a ``FaissStore(16, **kw)`` holding :func:`data`."""

    def make(**kw) -> FaissStore:
        vecs, ids, texts, metas = data
        store = FaissStore(vecs.shape[1], **kw)
        assert store.add(texts, vecs, ids=ids, metadatas=metas) == ids
        return store

    return make
