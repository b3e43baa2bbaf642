"""``Qwen3Embedding``: LlamaIndex ``BaseEmbedding`` over the core :class:`qwen3_rag.Qwen3Embedder`."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr

from qwen3_rag import Qwen3Embedder
from qwen3_rag.formats import DEFAULT_INSTRUCTION

DEFAULT_EMBED_BATCH_SIZE = 32


class Qwen3Embedding(BaseEmbedding):
    """Qwen3-Embedding for LlamaIndex: text embeddings as they are, queries with an instruction.

    A thin wrapper over :class:`qwen3_rag.Qwen3Embedder`; its engine is cached per process,
    so this and LangChain's ``Qwen3Embeddings`` built with the same settings share one model.

    Args:
        model_name: hub id or local directory of a Qwen3-Embedding checkpoint.
        backend: ``"auto"``, ``"vllm"``, ``"hf"`` or ``"remote"``.
        query_instruction: the task instruction put in front of queries only.
        dimensions: Matryoshka size; ``None`` keeps the model's full size.
        max_length: longest sequence in tokens.
        embed_batch_size: texts per call (LlamaIndex batches ``get_text_embedding_batch``).
        engine_kwargs: backend options (``device`` for hf, ``gpu_memory_utilization`` for vLLM...:
            :mod:`qwen3_rag.engine.options`); a misspelt name is an error naming the nearest one.

    Example:
        >>> from llama_index.embeddings.qwen3_rag import Qwen3Embedding
        >>> from llama_index.core import Settings
        >>> Settings.embed_model = Qwen3Embedding()   # doctest: +SKIP
    """

    # a misspelt or foreign argument (``model`` here, ``device`` outside engine_kwargs) is an
    # error, not a silent fall-back to the default model
    model_config = ConfigDict(extra="forbid")

    model_name: str | None = Field(default=None, description="Qwen3-Embedding id or dir (None: config).")
    embed_batch_size: int = Field(default=DEFAULT_EMBED_BATCH_SIZE, gt=0, description="Texts per call.")
    backend: str | None = Field(default=None, description="'auto', 'vllm', 'hf', 'remote' (None: config).")
    query_instruction: str = Field(default=DEFAULT_INSTRUCTION, description="Instruction for queries.")
    dimensions: int | None = Field(default=None, description="Matryoshka size (None: full).")
    max_length: int | None = Field(default=None, description="Longest sequence in tokens (None: config).")
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="Backend options.")

    _embedder: Qwen3Embedder = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._embedder = Qwen3Embedder(
            self.model_name,
            backend=self.backend,
            query_instruction=self.query_instruction,
            dimensions=self.dimensions,
            max_length=self.max_length,
            batch_size=self.embed_batch_size,
            **self.engine_kwargs,
        )
        self.model_name, self.backend = self._embedder.model, self._embedder.backend
        self.max_length = self._embedder.max_length

    @classmethod
    def class_name(cls) -> str:
        return "Qwen3Embedding"

    @property
    def embedder(self) -> Qwen3Embedder:
        """The core embedder doing the work."""
        return self._embedder

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embedder.embed_query(query).tolist()

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embedder.embed_documents([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embedder.embed_documents(texts).tolist()

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._embedder.aembed_queries([query]))[0].tolist()

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._embedder.aembed_documents([text]))[0].tolist()

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return (await self._embedder.aembed_documents(texts)).tolist()
