"""Query planning: filtered searches return k hits when k match; one query splits over IVF lists."""

from __future__ import annotations

import numpy as np
import pytest

from qwen3_rag import FaissStore
from qwen3_rag.store import query


@pytest.mark.parametrize("exact_max", [0, 50_000], ids=["widened-ann", "exact-subset"])
@pytest.mark.parametrize("kind", ["flat", "hnsw", {"kind": "ivf", "nlist": 8, "nprobe": 1}])
def test_filters_return_k_hits_when_k_match(data, kind, exact_max, monkeypatch, filled, exact_top):
    monkeypatch.setattr(query, "EXACT_FILTER_MAX", exact_max)
    vecs, ids, _texts, metas = data
    store = filled(index=kind)
    q = vecs[0]
    approximate = isinstance(kind, dict) and exact_max == 0  # IVF probing 1 list of 8
    hits = store.search(q, k=7, filter={"lang": "fr"})[0]
    fr = np.array([i for i, m in enumerate(metas) if m["lang"] == "fr"])
    assert len(hits) == 7 and all(h.metadata["lang"] == "fr" for h in hits)
    if not approximate:
        assert [h.id for h in hits] == [ids[i] for i in exact_top(vecs, q, 7, fr)]
    # only 3 documents match: all 3 come back, even though they are far from the query
    rare = store.search(q, k=10, filter={"rare": True})[0]
    assert sorted(h.id for h in rare) == ["doc-150", "doc-5", "doc-77"]
    both = store.search(q, k=30, filter={"lang": {"$in": ["en", "de"]}, "year": {"$gte": 2008}})[0]
    match = np.array([i for i, m in enumerate(metas) if m["lang"] != "fr" and m["year"] >= 2008])
    assert len(match) == 40 and len(both) == 30
    assert {h.id for h in both} <= {ids[i] for i in match}
    if not approximate:
        assert [h.id for h in both] == [ids[i] for i in exact_top(vecs, q, 30, match)]
    assert all(h.metadata["lang"] in ("en", "de") and h.metadata["year"] >= 2008 for h in both)
    assert store.search(q, k=5, filter={"lang": "zz"}) == [[]]
    with pytest.raises(ValueError, match="unknown filter operator"):
        store.search(q, k=5, filter={"lang": {"$like": "e%"}})


def test_single_query_ivf_search_splits_over_lists_with_same_results(unit):
    """One query runs over the probed lists in parallel (parallel_mode 1); a batch of queries
    splits over queries (mode 0); both give the hits of the other."""
    import faiss

    rng = np.random.default_rng(3)
    vecs = unit(rng, 4000, 32)
    store = FaissStore(32, index={"kind": "ivf", "nlist": 32, "nprobe": 8})
    store.train(vecs)
    store.add([f"t{i}" for i in range(4000)], vecs, ids=[f"d{i}" for i in range(4000)])
    queries = vecs[:12] + 0.05
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(max(2, threads))
    try:
        one_by_one = [store.search(q, k=10)[0] for q in queries]
        assert store.index.parallel_mode == 1
        reps = max(2, threads)  # 12 * reps queries: at least as many as threads
        batch = store.search(np.repeat(queries, reps, axis=0), k=10)[::reps]
        assert store.index.parallel_mode == 0
    finally:
        faiss.omp_set_num_threads(threads)
    assert [[h.id for h in r] for r in one_by_one] == [[h.id for h in r] for r in batch]
    assert all(len(r) == 10 for r in one_by_one)
