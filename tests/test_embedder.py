"""Qwen3Embedder / Qwen3Reranker behaviour on the hf backend: shapes, errors, streaming, sharing."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from qwen3_rag import Qwen3Embedder, Qwen3Reranker
from qwen3_rag.engine import get_engine, loaded_engines, resolve_backend
from qwen3_rag.engine.hf import length_batches


def test_empty_input_gives_zero_rows(tiny_embedding):
    emb = Qwen3Embedder(tiny_embedding, backend="hf")
    assert emb.embed_documents([]).shape == (0, 64)
    assert emb.embed_queries([]).shape == (0, 64)


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


def test_non_str_item_names_its_index(tiny_embedding):
    emb = Qwen3Embedder(tiny_embedding, backend="hf")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        emb.embed_documents(["fine", 42])
    with pytest.raises(TypeError, match=r"queries\[0\]"):
        emb.embed_queries([b"bytes"])


def test_missing_local_path_is_named(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        Qwen3Embedder(str(missing), backend="hf")
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        Qwen3Reranker(str(missing), backend="hf")


def test_bad_backend():
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("tpu")


def test_auto_backend_falls_back_to_hf_without_vllm(tiny_embedding, caplog):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    with caplog.at_level("INFO", logger="qwen3_rag"):
        emb = Qwen3Embedder(tiny_embedding)
    assert emb.backend == "hf"
    assert "chose 'hf'" in caplog.text


def test_matryoshka_dimensions(tiny_embedding):
    full = Qwen3Embedder(tiny_embedding, backend="hf")
    small = Qwen3Embedder(tiny_embedding, backend="hf", dimensions=32)
    docs = ["one document", "another document"]
    f, s = full.embed_documents(docs), small.embed_documents(docs)
    assert s.shape == (2, 32) and small.dimension == 32
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-5)
    expected = f[:, :32] / np.linalg.norm(f[:, :32], axis=1, keepdims=True)
    np.testing.assert_allclose(s, expected, atol=1e-5)
    for bad in (31, 65, 0):
        with pytest.raises(ValueError, match="dimensions"):
            Qwen3Embedder(tiny_embedding, backend="hf", dimensions=bad)


def test_one_engine_per_model_and_settings(tiny_embedding):
    a = Qwen3Embedder(tiny_embedding, backend="hf", query_instruction="A")
    b = Qwen3Embedder(tiny_embedding, backend="hf", dimensions=32, query_instruction="B")
    assert a.engine is b.engine  # formatting settings don't reload the model
    c = Qwen3Embedder(tiny_embedding, backend="hf", max_batch_size=7)
    assert c.engine is not a.engine  # engine options do
    n = len(loaded_engines())
    Qwen3Embedder(tiny_embedding, backend="hf")
    assert len(loaded_engines()) == n


def test_large_input_streams_through_bounded_batches(tiny_embedding, monkeypatch):
    emb = Qwen3Embedder(tiny_embedding, backend="hf", batch_size=100)
    seen: list[int] = []
    real = emb.engine.embed

    def spy(token_ids):
        seen.append(len(token_ids))
        return real(token_ids)

    monkeypatch.setattr(emb.engine, "embed", spy)
    texts = [f"doc {i} " + "word " * (i % 17) for i in range(1050)]
    out = emb.embed_documents(texts)
    assert out.shape == (1050, 64)
    assert max(seen) == 100 and sum(seen) == 1050
    # same vectors as a one-by-one run for a sample
    np.testing.assert_allclose(
        out[[0, 517, 1049]], emb.embed_documents([texts[0], texts[517], texts[1049]]), atol=1e-5
    )


def test_length_batches_are_bounded():
    lengths = [5, 300, 7, 1000, 2, 2, 64] * 20
    batches = list(length_batches(lengths, max_batch_size=8, max_batch_tokens=2048))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 8
        assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 2048


def test_hf_engine_padded_batches_respect_token_budget(tiny_embedding):
    eng = get_engine(
        "embedding",
        tiny_embedding,
        "hf",
        max_length=8192,
        options={"max_batch_tokens": 256, "max_batch_size": 4},
    )
    seqs = [[100 + (i % 50)] * (1 + (i * 7) % 90) for i in range(40)]
    shapes = [tuple(eng._padded([seqs[i] for i in idx])[0].shape) for idx in eng._batches(seqs)]
    assert all(r <= 4 and (r == 1 or r * c <= 256) for r, c in shapes)


def test_progress_bar(tiny_embedding, capsys):
    emb = Qwen3Embedder(tiny_embedding, backend="hf", batch_size=10, show_progress=True)
    emb.embed_documents([f"t{i}" for i in range(30)])
    assert "30/30" in capsys.readouterr().err


async def test_async_does_not_block_event_loop(tiny_embedding):
    emb = Qwen3Embedder(tiny_embedding, backend="hf", batch_size=8)
    texts = ["a moderately long document " * 20] * 200
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    t = asyncio.create_task(ticker())
    start = time.perf_counter()
    vecs = await emb.aembed_documents(texts)
    elapsed = time.perf_counter() - start
    t.cancel()
    assert vecs.shape == (200, 64)
    # the loop kept running while embedding happened in a worker thread
    assert ticks >= max(3, int(elapsed / 0.005 * 0.2))
    q = await emb.aembed_queries(["x"])
    np.testing.assert_allclose(q, emb.embed_queries(["x"]), atol=1e-6)


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


def test_bad_device_and_dtype_are_clear_errors(tiny_embedding):
    import torch

    with pytest.raises(ValueError, match=r"dtype must be a torch dtype name.*float99"):
        Qwen3Embedder(tiny_embedding, backend="hf", dtype="float99")
    with pytest.raises(ValueError, match="device must be"):
        Qwen3Embedder(tiny_embedding, backend="hf", device="gpu7")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            Qwen3Embedder(tiny_embedding, backend="hf", device="cuda")


def test_chunk_overlap_error_names_both_settings(tmp_path, tiny_embedding):
    from qwen3_rag import index_corpus

    emb = Qwen3Embedder(tiny_embedding, backend="hf")
    msg = r"chunk_overlap \(--chunk-overlap\).*chunk_tokens \(--chunk-tokens\)"
    with pytest.raises(ValueError, match=msg):
        index_corpus([{"id": "a", "text": "x"}], tmp_path / "s", emb, chunk_tokens=32, chunk_overlap=32)


def test_max_length_zero_is_an_error_not_the_default(tiny_embedding, tiny_reranker):
    with pytest.raises(ValueError, match="max_length must be at least 2, got 0"):
        Qwen3Embedder(tiny_embedding, backend="hf", max_length=0)
    with pytest.raises(ValueError, match="max_length=0 is shorter than the reranker prompt"):
        Qwen3Reranker(tiny_reranker, backend="hf", max_length=0)
