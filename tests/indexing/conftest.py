"""Shared fixtures of the indexing tests (helpers the crash tests' subprocesses need too are in
``tests/indexing_support.py``)."""

from __future__ import annotations

import pytest

from qwen3_rag import Qwen3Embedder


@pytest.fixture(scope="module")
def emb(tiny_embedding) -> Qwen3Embedder:
    """The tiny random-weight Qwen3 embedder on transformers."""
    return Qwen3Embedder(tiny_embedding, backend="hf")
