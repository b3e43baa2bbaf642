"""Qwen3Reranker on the hf backend: empty input, errors, order, async."""

from __future__ import annotations

import numpy as np
import pytest

from qwen3_rag import Qwen3Reranker


def test_reranker_empty_and_errors(tiny_reranker):
    rr = Qwen3Reranker(tiny_reranker, backend="hf")
    assert rr.score("q", []).shape == (0,)
    assert rr.rerank("q", []) == []
    with pytest.raises(TypeError, match=r"documents\[1\]"):
        rr.score("q", ["ok", None])
    with pytest.raises(TypeError, match=r"pairs\[0\]"):
        rr.score_pairs([("q",)])
    with pytest.raises(ValueError, match="top_n"):
        rr.rerank("q", ["a"], top_n=-1)


def test_rerank_order_is_best_first_and_stable(tiny_reranker):
    rr = Qwen3Reranker(tiny_reranker, backend="hf")
    docs = ["same", "different text", "same", "another one", "same"]
    scores = rr.score("query", docs)
    res = rr.rerank("query", docs)
    assert [r.index for r in res] == sorted(range(5), key=lambda i: (-scores[i], i))
    assert [r.score for r in res] == sorted(scores.tolist(), reverse=True)
    same = [r.index for r in res if docs[r.index] == "same"]
    assert same == [0, 2, 4]  # ties keep input order
    top = rr.rerank("query", docs, top_n=2)
    assert [r.index for r in top] == [r.index for r in res[:2]]
    assert top[0].confidence == pytest.approx(abs(2 * top[0].score - 1))


async def test_reranker_async(tiny_reranker):
    rr = Qwen3Reranker(tiny_reranker, backend="hf")
    s = await rr.ascore("q", ["a", "b"])
    np.testing.assert_allclose(s, rr.score("q", ["a", "b"]), atol=1e-6)
    r = await rr.arerank("q", ["a", "b"], top_n=1)
    assert len(r) == 1
