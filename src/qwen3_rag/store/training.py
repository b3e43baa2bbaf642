"""Training IVF indexes: the coarse centroids (two-level k-means for many lists) and the sample.

Example:
    >>> import numpy as np
    >>> training_sample(np.arange(10).reshape(10, 1), 4).ravel().tolist()
    [0, 3, 6, 9]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from qwen3_rag.store.faiss_lib import faiss_module

TWO_LEVEL_MIN_NLIST = 2048
"""From this many IVF lists the coarse centroids come from two-level k-means (see :func:`train_index`)."""


def train_index(index: Any, sample: np.ndarray) -> None:
    """Train ``index`` (an IVF index from :func:`~qwen3_rag.store.kinds.build_index`) on ``sample``.

    With ``TWO_LEVEL_MIN_NLIST`` lists or more the coarse centroids come from two-level k-means
    (:func:`two_level_centroids`): an IVF build takes about half the time it takes with one
    k-means over all lists, at the same recall@10 (``benchmarks/run.py ivf-recall``; figures in
    docs/performance.md).
    Smaller indexes use Faiss's k-means.
    """
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    nlist = int(getattr(index, "nlist", 0))
    if nlist >= TWO_LEVEL_MIN_NLIST and len(sample) >= nlist:
        index.quantizer.add(two_level_centroids(sample, nlist))  # then train() keeps them
    index.train(sample)


def two_level_centroids(sample: np.ndarray, k: int, niter: int = 10, seed: int = 1234) -> np.ndarray:
    """``k`` spherical k-means centroids of ``sample`` in two levels, as Faiss's
    ``faiss.contrib.clustering.two_level_clustering``: √k clusters first, then each one split
    into a share of ``k`` in proportion to its size, with at least one centroid per cluster
    (Faiss's version gives a cluster smaller than ``len(sample) / k`` none, and fails).

    Example:
        >>> x = np.random.default_rng(0).normal(size=(2000, 8)).astype(np.float32)
        >>> two_level_centroids(x / np.linalg.norm(x, axis=1, keepdims=True), 64).shape
        (64, 8)
    """
    faiss = faiss_module()
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if len(sample) < k:
        raise ValueError(f"two-level k-means of {k} centroids needs at least {k} vectors, got {len(sample)}")
    d = sample.shape[1]
    opts = {"niter": niter, "spherical": True, "seed": seed, "min_points_per_centroid": 1}
    first = faiss.Kmeans(d, max(1, round(math.sqrt(k))), max_points_per_centroid=2000, **opts)
    first.train(sample)
    _, assign = first.index.search(sample, 1)
    assign = assign.ravel()
    shares = split_shares(np.bincount(assign, minlength=first.k), k)
    parts = []
    for c in np.flatnonzero(shares):
        members = sample[assign == c]
        if shares[c] == len(members):
            parts.append(members)  # as many centroids as points: the points themselves
            continue
        km = faiss.Kmeans(d, int(shares[c]), max_points_per_centroid=256, **opts)
        km.train(members)
        parts.append(km.centroids)
    return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)


def split_shares(sizes: np.ndarray, k: int) -> np.ndarray:
    """``k`` split over clusters of ``sizes`` in proportion (largest remainders), every non-empty
    cluster getting at least 1 (where ``k`` allows) and at most its size.

    Example:
        >>> split_shares(np.array([900, 3, 0, 97]), 20).tolist()
        [18, 1, 0, 1]
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if k > sizes.sum():
        raise ValueError(f"cannot split {k} centroids over {int(sizes.sum())} vectors")
    exact = sizes * k / max(1, sizes.sum())
    shares = np.minimum(np.maximum(np.floor(exact).astype(np.int64), (sizes > 0).astype(np.int64)), sizes)
    while shares.sum() < k:  # to the largest remainders that have room
        room = np.where(shares < sizes, exact - shares, -np.inf)
        shares[int(np.argmax(room))] += 1
    while shares.sum() > k:  # from the most over their share that keep one
        over = np.where(shares > 1, shares - exact, -np.inf)
        if np.isneginf(over.max()):  # fewer centroids than clusters: the smallest get none
            over = np.where(shares > 0, -exact, -np.inf)
        shares[int(np.argmax(over))] -= 1
    return shares


def training_sample(vectors: np.ndarray, size: int) -> np.ndarray:
    """Evenly spaced rows (deterministic), at most ``size`` of them."""
    n = len(vectors)
    if n <= size:
        return vectors
    rows = np.linspace(0, n - 1, size).astype(np.int64)
    return vectors[rows]


__all__ = ["TWO_LEVEL_MIN_NLIST", "split_shares", "train_index", "training_sample", "two_level_centroids"]
