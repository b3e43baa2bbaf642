"""Search modes: a rare exact term is found first lexically and in hybrid mode where dense
ranking misses it; hybrid rankings equal a reference fusion of the dense and lexical rankings
(reciprocal rank fusion and alpha-weighted), filters apply to both retrievers; bad options are
refused with errors naming them."""

from __future__ import annotations

import numpy as np
import pytest

from qwen3_rag import FaissStore, Qwen3Embedder

WORDS = ["river", "stone", "light", "garden", "engine", "paper", "winter", "market", "signal", "forest",
         *(f"word{i}" for i in range(90))]


def _corpus(n: int, seed: int = 0) -> list[str]:
    """``n`` texts of 4 to 11 words of :data:`WORDS` (each in about 8 % of the texts)."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 12)))) + f" number {i}" for i in range(n)]


def test_a_rare_exact_term_is_found_first_lexically_and_hybrid_where_dense_misses_it(tiny_embedding):
    emb = Qwen3Embedder(tiny_embedding, backend="hf")
    texts = _corpus(60)
    texts[37] = texts[37] + " part number QX-7731-B"  # the only document naming it
    store = FaissStore(emb.dimension, embedder=emb)
    ids = [f"doc{i}" for i in range(len(texts))]
    store.add(texts, emb.embed_documents(texts), ids=ids)
    query = "QX-7731-B"
    qv = emb.embed_queries([query])
    dense = [h.id for h in store.search(qv, k=60)[0]]
    assert dense[0] != "doc37"  # random tiny weights: the dense ranking doesn't put it first
    lexical = store.search(k=5, mode="lexical", query=query)[0]
    assert [h.id for h in lexical] == ["doc37"] and lexical[0].sources == {"lexical": 1}
    for options in ({}, {"alpha": 0.5}, {"alpha": 0.2}, {"candidates": 5}):
        hybrid = store.search(qv, k=5, mode="hybrid", query=query, **options)[0]
        assert hybrid[0].id == "doc37", options
        assert hybrid[0].sources["lexical"] == 1
        dense_rank = dense.index("doc37") + 1
        fused = dense_rank <= options.get("candidates", 20)  # among the dense candidates fused
        assert hybrid[0].sources.get("dense") == (dense_rank if fused else None)
    # outside the dense candidates it ties with the best dense hit (1 / 61 each): a lexical hit goes first
    [only] = store.search(qv, k=1, mode="hybrid", query=query, candidates=1)[0]
    assert dense_rank > 1 and (only.id, only.sources) == ("doc37", {"lexical": 1})


def _reference_fusion(dense: list, lexical: list, alpha: float | None, rrf_k: float = 60) -> list[tuple]:
    """Fusion written out from its definition: (id, score, {retriever: rank}), best first."""
    scores: dict[str, float] = {}
    sources: dict[str, dict[str, int]] = {}
    for name, hits in (("dense", dense), ("lexical", lexical)):
        if alpha is None:
            part = {h.id: 1.0 / (rrf_k + rank) for rank, h in enumerate(hits, start=1)}
        else:
            raw = np.array([h.score for h in hits])
            spread = raw.max() - raw.min() if len(raw) else 0.0
            norm = (raw - raw.min()) / spread if spread > 0 else np.ones_like(raw)
            weight = alpha if name == "dense" else 1 - alpha
            part = {h.id: weight * float(v) for h, v in zip(hits, norm, strict=True)}
        for rank, h in enumerate(hits, start=1):
            scores[h.id] = scores.get(h.id, 0.0) + part[h.id]
            sources.setdefault(h.id, {})[name] = rank

    def tie(doc: str) -> tuple:
        best = min(sources[doc].values())
        return (-scores[doc], best, 0 if sources[doc].get("lexical") == best else 1, int(doc[1:]))

    return [(d, scores[d], sources[d]) for d in sorted(scores, key=tie)]


@pytest.mark.parametrize("alpha", [None, 0.0, 0.3, 1.0])
@pytest.mark.parametrize("flt", [None, {"group": {"$in": [0, 2]}}])
def test_hybrid_equals_a_reference_fusion_of_the_two_rankings(alpha, flt, unit):
    rng = np.random.default_rng(7)
    n, depth = 400, 30
    texts = _corpus(n, seed=1)
    store = FaissStore(16, index="flat")
    store.add(texts, unit(rng, n, 16), ids=[f"d{i}" for i in range(n)],
              metadatas=[{"group": i % 4} for i in range(n)])
    queries = ["river stone", "signal engine winter", "light paper"]
    qv = unit(rng, len(queries), 16)
    got = store.search(qv, k=10, filter=flt, mode="hybrid", query=queries, alpha=alpha, candidates=depth)
    assert len(got) == len(queries)
    for i, q in enumerate(queries):
        dense = store.search(qv[i], k=depth, filter=flt)[0]
        lexical = store.search(k=depth, filter=flt, mode="lexical", query=q)[0]
        assert len(dense) == depth and len(lexical) >= 20  # (lexical: every document naming a word)
        want = _reference_fusion(dense, lexical, alpha)[:10]
        assert [(h.id, h.sources) for h in got[i]] == [(d, s) for d, _, s in want]
        np.testing.assert_allclose([h.score for h in got[i]], [s for _, s, _ in want], rtol=1e-6)
        if flt is not None:
            assert all(h.metadata["group"] in (0, 2) for h in got[i])


def test_dense_mode_is_unchanged_and_says_its_ranks(data, filled, exact_top):
    vecs, ids, _, _ = data
    store = filled(index="flat")
    hits = store.search(vecs[3], k=5)[0]
    assert [h.id for h in hits] == [ids[i] for i in exact_top(vecs, vecs[3], 5)]
    assert [h.sources for h in hits] == [{"dense": r} for r in range(1, 6)]
    assert store.search(vecs[3], k=5, mode="dense", query="ignored")[0] == hits


def test_search_options_are_checked(data, filled):
    vecs = data[0]
    store = filled(index="flat")
    cases = [
        (dict(mode="sparse", query="x"), ValueError, "mode must be one of"),
        (dict(mode="lexical"), ValueError, "needs the query text"),
        (dict(mode="hybrid", query="x", vectors=None), ValueError, "needs query vectors"),
        (dict(mode="hybrid", query=["a", "b"]), ValueError, "1 query vectors but 2 query texts"),
        (dict(mode="hybrid", query=3), TypeError, "query must be a str"),
        (dict(mode="hybrid", query="x", alpha=1.5), ValueError, "alpha must be a number between 0 and 1"),
        (dict(mode="dense", alpha=0.5), ValueError, "alpha weighs the two retrievers of hybrid search"),
        (dict(mode="hybrid", query="x", rrf_k=0), ValueError, "rrf_k must be a positive number"),
        (dict(mode="hybrid", query="x", candidates=0), ValueError, "candidates must be a positive int"),
    ]
    for kw, error, message in cases:
        kw = {"vectors": vecs[0], **kw}
        with pytest.raises(error, match=message):
            store.search(kw.pop("vectors"), k=3, **kw)
    assert store.search(k=3, mode="lexical", query="document 7")[0][0].id == "doc-7"
    assert store.search(k=0, mode="lexical", query="document") == [[]]
    assert FaissStore(16).search(vecs[0], k=3, mode="hybrid", query="document") == [[]]
