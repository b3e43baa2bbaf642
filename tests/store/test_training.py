"""IVF training: two-level k-means for many lists (recall, determinism) and its share split."""

from __future__ import annotations

import numpy as np
import pytest

from qwen3_rag import FaissStore


@pytest.mark.parametrize("kind", ["ivf", "ivf-sq8", "ivf-pq"])
def test_many_lists_train_by_two_level_kmeans_with_recall(monkeypatch, kind, unit, exact_top):
    """From TWO_LEVEL_MIN_NLIST lists the coarse centroids come from two-level k-means (much
    less arithmetic than one k-means over all lists) and training keeps them; search keeps its
    recall, and the same sample gives the same index."""
    import faiss

    from qwen3_rag.store import training

    made: list[np.ndarray] = []
    original = training.two_level_centroids

    def spy(sample, k, **kw):
        made.append(original(sample, k, **kw))
        return made[-1]

    monkeypatch.setattr(training, "two_level_centroids", spy)
    monkeypatch.setattr(training, "TWO_LEVEL_MIN_NLIST", 64)
    rng = np.random.default_rng(3)
    d, n = 32, 20_000
    centers = unit(rng, 200, d)  # clustered data, as embeddings are
    vecs = centers[rng.integers(0, 200, n)] + 0.15 * rng.normal(size=(n, d)).astype(np.float32)
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    stores = []
    for _ in range(2):
        store = FaissStore(d, index={"kind": kind, "nlist": 64, "nprobe": 8})
        store.train(vecs[::4])
        store.add([str(i) for i in range(n)], vecs, ids=[str(i) for i in range(n)])
        stores.append(store)
        kept = faiss.rev_swig_ptr(faiss.downcast_index(store.index.quantizer).get_xb(), 64 * d)
        np.testing.assert_array_equal(np.array(kept).reshape(64, d), made[-1])
    assert len(made) == 2
    np.testing.assert_array_equal(made[0], made[1])
    queries = vecs[rng.integers(0, n, 200)] + 0.05 * rng.normal(size=(200, d)).astype(np.float32)
    hits = stores[0].search(queries, k=10)
    recall = np.mean([len({int(h.id) for h in row} & set(exact_top(vecs, q, 10))) / 10
                      for row, q in zip(hits, queries, strict=True)])
    assert recall >= (0.9 if kind != "ivf-pq" else 0.5), recall
    again = stores[1].search(queries, k=10)
    assert [[h.id for h in r] for r in again] == [[h.id for h in r] for r in hits]

    made.clear()
    monkeypatch.setattr(training, "TWO_LEVEL_MIN_NLIST", 65)  # below it: Faiss's own k-means
    FaissStore(d, index={"kind": kind, "nlist": 64}).train(vecs[::4])
    assert made == []


def test_two_level_kmeans_gives_a_small_cluster_its_own_centroid():
    """A tight cluster smaller than len(sample)/k: Faiss's two_level_clustering gives it no
    sub-centroid and fails on this data (k-means of 0 centroids; faiss-cpu 1.15.1); ours gives
    it one."""
    from qwen3_rag.store.training import two_level_centroids

    rng = np.random.default_rng(0)
    d, n, k = 32, 12_800, 256
    centers = rng.normal(size=(17, d))
    x = centers[rng.integers(0, 17, n - 20)] + 0.05 * rng.normal(size=(n - 20, d))
    outliers = rng.normal(size=d) + 0.001 * rng.normal(size=(20, d))
    x = np.vstack([x, outliers]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    centroids = two_level_centroids(x, k)
    assert centroids.shape == (k, d) and centroids.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1, atol=1e-5)  # spherical
    assert (x[-20:] @ centroids.T).max(axis=1).min() > 0.99  # the outliers have a list of their own


def test_split_shares_is_proportional_and_bounded():
    from qwen3_rag.store.training import split_shares

    rng = np.random.default_rng(0)
    for _ in range(500):
        sizes = rng.integers(0, 60, rng.integers(1, 30))
        sizes[0] += 1
        k = int(rng.integers(1, sizes.sum() + 1))
        shares = split_shares(sizes, k)
        assert shares.sum() == k and (shares >= 0).all() and (shares <= sizes).all()
        if k >= (sizes > 0).sum():
            assert (shares[sizes > 0] >= 1).all()
        exact = sizes * k / sizes.sum()
        if (exact[sizes > 0] >= 1).all():  # no cluster lifted to the minimum: largest remainders
            assert (np.abs(shares - exact) < 1).all()
    with pytest.raises(ValueError, match="cannot split 5 centroids over 4 vectors"):
        split_shares(np.array([1, 3]), 5)
