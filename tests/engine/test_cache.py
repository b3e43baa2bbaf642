"""Backend choice and the process-wide engine cache (one engine per model and options)."""

from __future__ import annotations

import pytest

from qwen3_rag import Qwen3Embedder
from qwen3_rag.engine import loaded_engines, resolve_backend


def test_bad_backend():
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("tpu")


def test_auto_backend_falls_back_to_hf_without_vllm(tiny_embedding, caplog, without_vllm):
    with caplog.at_level("INFO", logger="qwen3_rag"):
        emb = Qwen3Embedder(tiny_embedding)
    assert emb.backend == "hf"
    assert "chose 'hf'" in caplog.text


def test_one_engine_per_model_and_settings(tiny_embedding):
    a = Qwen3Embedder(tiny_embedding, backend="hf", query_instruction="A")
    b = Qwen3Embedder(tiny_embedding, backend="hf", dimensions=32, query_instruction="B")
    assert a.engine is b.engine  # formatting settings don't reload the model
    c = Qwen3Embedder(tiny_embedding, backend="hf", max_batch_size=7)
    assert c.engine is not a.engine  # engine options do
    n = len(loaded_engines())
    Qwen3Embedder(tiny_embedding, backend="hf")
    assert len(loaded_engines()) == n
