"""The vLLM backend's request building and output parsing, without a GPU or vLLM."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from qwen3_rag.engine.base import EngineConfig
from qwen3_rag.engine.vllm import (
    build_prompts,
    engine_kwargs,
    parse_embeddings,
    parse_probabilities,
    start_method,
)
from qwen3_rag.formats import RerankFormatter


def test_build_prompts_are_token_prompts():
    prompts = build_prompts([[1, 2, 3], np.array([4, 5])])
    assert prompts == [{"prompt_token_ids": [1, 2, 3]}, {"prompt_token_ids": [4, 5]}]
    assert all(type(t) is int for t in prompts[1]["prompt_token_ids"])
    with pytest.raises(ValueError, match="1 is empty"):
        build_prompts([[1], []])


def out(data):
    """A stand-in for vLLM's PoolingRequestOutput (``.outputs.data`` is a tensor)."""
    return SimpleNamespace(outputs=SimpleNamespace(data=torch.tensor(data, dtype=torch.bfloat16)))


def test_parse_embeddings_normalises_in_order():
    arr = parse_embeddings([out([3.0, 4.0]), out([0.0, 2.0])])
    assert arr.dtype == np.float32
    np.testing.assert_allclose(arr, [[0.6, 0.8], [0.0, 1.0]], atol=1e-3)
    with pytest.raises(ValueError, match="no outputs"):
        parse_embeddings([])


def test_parse_probabilities():
    np.testing.assert_allclose(parse_probabilities([out([0.9]), out([0.125])]), [0.9, 0.125], atol=4e-3)
    np.testing.assert_allclose(parse_probabilities([out([0.25, 0.75])]), [0.75])
    with pytest.raises(ValueError, match="3 classes"):
        parse_probabilities([out([0.1, 0.2, 0.7])])


def test_engine_kwargs_embedding_and_reranker():
    emb = engine_kwargs(EngineConfig("embedding", "/m", "vllm", 512), {"max_num_seqs": 64})
    assert emb["runner"] == "pooling" and emb["model"] == "/m" and emb["max_model_len"] == 512
    assert emb["max_num_seqs"] == 64 and "gpu_memory_utilization" in emb
    assert "hf_overrides" not in emb
    rr = engine_kwargs(
        EngineConfig("reranker", "/r", "vllm", 512),
        {"gpu_memory_utilization": 0.2, "multiprocessing": "spawn"},
    )
    assert rr["hf_overrides"] == {
        "architectures": ["Qwen3ForSequenceClassification"],
        "classifier_from_token": ["no", "yes"],
        "is_original_qwen3_reranker": True,
    }
    assert rr["gpu_memory_utilization"] == 0.2 and "multiprocessing" not in rr


def test_default_memory_leaves_room_for_two_engines():
    a = engine_kwargs(EngineConfig("embedding", "/m", "vllm", 512), {})
    b = engine_kwargs(EngineConfig("reranker", "/r", "vllm", 512), {})
    assert a["gpu_memory_utilization"] + b["gpu_memory_utilization"] <= 0.9


def test_reranker_class_tokens_match_formatter(plain_tokenizer):
    f = RerankFormatter(plain_tokenizer, 512)
    no, yes = engine_kwargs(EngineConfig("reranker", "/r", "vllm", 512), {})["hf_overrides"][
        "classifier_from_token"
    ]
    assert plain_tokenizer.convert_tokens_to_ids([no, yes]) == [f.no_id, f.yes_id]


def test_start_method_is_set_only_during_construction(monkeypatch):
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    monkeypatch.delenv("VLLM_WORKER_MULTIPROC_METHOD", raising=False)
    with start_method("off"):
        assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in os.environ
    main = sys.modules["__main__"]
    had_file = getattr(main, "__file__", None)
    with start_method("spawn"):
        assert os.environ["VLLM_WORKER_MULTIPROC_METHOD"] == "spawn"
        assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"
        assert getattr(main, "__file__", None) is None  # a spawned child won't re-run the script
    assert "VLLM_WORKER_MULTIPROC_METHOD" not in os.environ
    assert getattr(main, "__file__", None) == had_file
    with pytest.raises(ValueError, match="multiprocessing"), start_method("threads"):
        pass


def test_user_start_method_is_respected(monkeypatch):
    monkeypatch.setenv("VLLM_WORKER_MULTIPROC_METHOD", "fork")
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    with start_method("off"):
        assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in os.environ
        assert os.environ["VLLM_WORKER_MULTIPROC_METHOD"] == "fork"


@pytest.mark.slow
def test_vllm_backend_without_vllm_is_a_clear_error(tiny_embedding, without_vllm):
    from qwen3_rag import Qwen3Embedder

    with pytest.raises(ImportError, match=r"qwen3-rag\[vllm\]"):
        Qwen3Embedder(tiny_embedding, backend="vllm")
    # an engine pool's workers import vLLM first thing, and say the same
    with pytest.raises(RuntimeError, match=r"worker failed to start: ImportError: .*qwen3-rag\[vllm\]"):
        Qwen3Embedder(tiny_embedding, backend="vllm", engines_per_gpu=2, kv_cache_memory_bytes=10**9)


def test_second_inprocess_engine_is_spawned(monkeypatch):
    """Two in-process vLLM engines would clash: the second asks for 'off' and gets 'spawn';
    once the first is closed, 'off' is granted again."""
    import types

    from qwen3_rag.engine import vllm as ev

    seen: list[tuple[str | None, str | None]] = []

    class FakeLLM:
        def __init__(self, **kwargs):
            seen.append((os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING"),
                         os.environ.get("VLLM_WORKER_MULTIPROC_METHOD")))
            cfg = SimpleNamespace(get_hidden_size=lambda: 8)
            self.llm_engine = SimpleNamespace(model_config=cfg)

    fake = types.ModuleType("vllm")
    fake.LLM = FakeLLM
    fake_config = types.ModuleType("vllm.config")
    fake_config.PoolerConfig = lambda **kw: kw
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setitem(sys.modules, "vllm.config", fake_config)
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    monkeypatch.delenv("VLLM_WORKER_MULTIPROC_METHOD", raising=False)
    assert ev.inprocess_engines() == 0
    cfg = EngineConfig("embedding", "m", "vllm", 64)
    first = ev.VLLMEmbeddingEngine(cfg, {"multiprocessing": "off"})
    second = ev.VLLMEmbeddingEngine(cfg, {"multiprocessing": "off"})
    assert (first.inprocess, second.inprocess) == (True, False)
    assert seen == [("0", None), ("1", "spawn")]
    second.close()
    first.close()
    third = ev.VLLMEmbeddingEngine(cfg, {"multiprocessing": "off"})
    assert third.inprocess and seen[-1] == ("0", None)
    third.close()
    assert ev.inprocess_engines() == 0
