"""Shared fixtures: tiny random-weight Qwen3 checkpoints with the real tokenizer."""

from __future__ import annotations

import pytest

from qwen3_rag.testing import make_tiny_qwen3, write_tokenizer


@pytest.fixture(scope="session")
def tiny_embedding(tmp_path_factory) -> str:
    return make_tiny_qwen3(tmp_path_factory.mktemp("tiny-emb"), kind="embedding", seed=0)


@pytest.fixture(scope="session")
def tiny_reranker(tmp_path_factory) -> str:
    return make_tiny_qwen3(tmp_path_factory.mktemp("tiny-rr"), kind="reranker", seed=1)


@pytest.fixture(scope="session")
def plain_tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(write_tokenizer(tmp_path_factory.mktemp("tok-plain")))


@pytest.fixture(scope="session")
def eos_tokenizer(tmp_path_factory):
    """A tokenizer that appends <|endoftext|> itself, like the published Qwen3-Embedding one."""
    from transformers import AutoTokenizer

    path = write_tokenizer(tmp_path_factory.mktemp("tok-eos"), append_eos=True)
    return AutoTokenizer.from_pretrained(path)
