"""LangChain and LlamaIndex adapters built with the same settings share one loaded model."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from langchain_qwen3_rag import Qwen3Embeddings, Qwen3Rerank
from llama_index.embeddings.qwen3_rag import Qwen3Embedding
from llama_index.postprocessor.qwen3_rag import Qwen3Rerank as LlamaQwen3Rerank

from qwen3_rag.engine import loaded_engines
from qwen3_rag.testing import make_tiny_qwen3


def _engines_for(path: str, kind: str) -> list:
    return [e for e in loaded_engines() if e.config.model == os.path.abspath(path) and e.config.kind == kind]


def test_embedders_of_both_frameworks_load_the_model_once(tmp_path):
    path = make_tiny_qwen3(tmp_path / "emb", kind="embedding", seed=3)
    assert _engines_for(path, "embedding") == []
    lc = Qwen3Embeddings(model=path, backend="hf")
    li = Qwen3Embedding(model_name=path, backend="hf")
    lc.embed_query("q")
    li.get_query_embedding("q")
    engines = _engines_for(path, "embedding")
    assert len(engines) == 1
    assert lc.embedder.engine is li.embedder.engine is engines[0]
    # different settings (here max_length) are a different engine, by design
    Qwen3Embedding(model_name=path, backend="hf", max_length=128)
    assert len(_engines_for(path, "embedding")) == 2


def test_rerankers_of_both_frameworks_load_the_model_once(tmp_path):
    path = make_tiny_qwen3(tmp_path / "rr", kind="reranker", seed=4)
    lc = Qwen3Rerank(model=path, backend="hf")
    li = LlamaQwen3Rerank(model=path, backend="hf")
    assert len(_engines_for(path, "reranker")) == 1
    assert lc.reranker.engine is li.reranker.engine
