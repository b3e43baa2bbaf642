"""LangChain's own standard test suites (``langchain-tests``) run against the adapters."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_qwen3_rag import Qwen3Embeddings, Qwen3FaissVectorStore
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, VectorStoreIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests


class _TinyModel:
    """Points the suites at the session's tiny checkpoint on the CPU (hf) backend."""

    @pytest.fixture(autouse=True)
    def _tiny_path(self, tiny_embedding: str) -> None:
        self.tiny_path = tiny_embedding

    @property
    def embeddings_class(self) -> type[Qwen3Embeddings]:
        return Qwen3Embeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": self.tiny_path, "backend": "hf"}


class TestQwen3EmbeddingsUnit(_TinyModel, EmbeddingsUnitTests):
    pass


class TestQwen3EmbeddingsIntegration(_TinyModel, EmbeddingsIntegrationTests):
    pass


class TestQwen3FaissVectorStoreStandard(VectorStoreIntegrationTests):
    """The suite's own deterministic fake embeddings (size 6) over a real Faiss store."""

    @pytest.fixture
    def vectorstore(self) -> Qwen3FaissVectorStore:
        return Qwen3FaissVectorStore(self.get_embeddings())
