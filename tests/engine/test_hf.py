"""The hf backend's batching and its checks of device and dtype."""

from __future__ import annotations

import pytest

from qwen3_rag import Qwen3Embedder
from qwen3_rag.engine import get_engine
from qwen3_rag.engine.hf import length_batches


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
    shapes = [tuple(eng.padded([seqs[i] for i in idx])[0].shape) for idx in eng.batches(seqs)]
    assert all(r <= 4 and (r == 1 or r * c <= 256) for r, c in shapes)


def test_bad_device_and_dtype_are_clear_errors(tiny_embedding):
    import torch

    with pytest.raises(ValueError, match=r"dtype must be a torch dtype name.*float99"):
        Qwen3Embedder(tiny_embedding, backend="hf", dtype="float99")
    with pytest.raises(ValueError, match="device must be"):
        Qwen3Embedder(tiny_embedding, backend="hf", device="gpu7")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            Qwen3Embedder(tiny_embedding, backend="hf", device="cuda")
