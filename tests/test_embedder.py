"""Qwen3Embedder behaviour on the hf backend: shapes, errors, streaming, Matryoshka, async."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from qwen3_rag import Qwen3Embedder, Qwen3Reranker


def test_empty_input_gives_zero_rows(tiny_embedding):
    emb = Qwen3Embedder(tiny_embedding, backend="hf")
    assert emb.embed_documents([]).shape == (0, 64)
    assert emb.embed_queries([]).shape == (0, 64)


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


def test_progress_bar(tiny_embedding, capsys):
    emb = Qwen3Embedder(tiny_embedding, backend="hf", batch_size=10, show_progress=True)
    emb.embed_documents([f"t{i}" for i in range(30)])
    assert "30/30" in capsys.readouterr().err


async def test_async_does_not_block_event_loop(tiny_embedding):
    emb = Qwen3Embedder(tiny_embedding, backend="hf", batch_size=8)
    texts = ["a moderately long document " * 20] * 200
    ticks: list[float] = []  # one entry per tick of the event loop

    async def ticker():
        while True:
            await asyncio.sleep(0.005)
            ticks.append(time.perf_counter())

    t = asyncio.create_task(ticker())
    start = time.perf_counter()
    vecs = await emb.aembed_documents(texts)
    elapsed = time.perf_counter() - start
    t.cancel()
    assert vecs.shape == (200, 64)
    # the loop kept running while embedding happened in a worker thread
    assert len(ticks) >= max(3, int(elapsed / 0.005 * 0.2))
    q = await emb.aembed_queries(["x"])
    np.testing.assert_allclose(q, emb.embed_queries(["x"]), atol=1e-6)


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
