"""``Qwen3Embeddings``: LangChain ``Embeddings`` over the core :class:`qwen3_rag.Qwen3Embedder`."""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from qwen3_rag import Qwen3Embedder
from qwen3_rag.formats import DEFAULT_INSTRUCTION


class Qwen3Embeddings(BaseModel, Embeddings):
    """Qwen3-Embedding for LangChain: documents as they are, queries with an instruction.

    A thin wrapper: the core :class:`qwen3_rag.Qwen3Embedder` does the work, and its engine
    is cached per process, so every ``Qwen3Embeddings`` (or LlamaIndex ``Qwen3Embedding``)
    built with the same settings shares one loaded model.

    Args:
        model_name: hub id or local directory of a Qwen3-Embedding checkpoint (the argument
            ``HuggingFaceEmbeddings`` takes); ``model`` is the same argument under its older name.
        backend: ``"auto"`` (vLLM with a CUDA GPU, else transformers), ``"vllm"``, ``"hf"``
            or ``"remote"``.
        query_instruction: the task instruction put in front of queries (not documents).
        dimensions: Matryoshka size (32 to the model's size); ``None`` keeps the full size.
        max_length: longest sequence in tokens.
        batch_size: texts per engine call (default: the backend's preference).
        show_progress: tqdm progress bar on large inputs.
        engine_kwargs: backend options (``device`` for hf, ``gpu_memory_utilization`` for vLLM...:
            :mod:`qwen3_rag.engine.options`); a misspelt name is an error naming the nearest one.

    Example:
        >>> from langchain_qwen3_rag import Qwen3Embeddings
        >>> emb = Qwen3Embeddings(model_name="Qwen/Qwen3-Embedding-0.6B")  # doctest: +SKIP
        >>> vec = emb.embed_query("What is BM25?")     # doctest: +SKIP
        >>> docs = emb.embed_documents(["BM25 is a ranking function."])  # doctest: +SKIP
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_name: str | None = None
    """Hub id or local directory; ``None``: the configured one (:mod:`qwen3_rag.config`)."""
    model: str | None = None
    """The same as :attr:`model_name` (its older name); both hold the model in use."""
    backend: str | None = None
    query_instruction: str = DEFAULT_INSTRUCTION
    dimensions: int | None = None
    max_length: int | None = None
    batch_size: int | None = None
    show_progress: bool = False
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)

    _embedder: Qwen3Embedder = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        if self.model_name and self.model and self.model_name != self.model:
            raise ValueError(f"model_name={self.model_name!r} and model={self.model!r} disagree; pass one")
        self._embedder = Qwen3Embedder(
            self.model_name or self.model,
            backend=self.backend,
            query_instruction=self.query_instruction,
            dimensions=self.dimensions,
            max_length=self.max_length,
            batch_size=self.batch_size,
            show_progress=self.show_progress,
            **self.engine_kwargs,
        )
        self.model_name = self.model = self._embedder.model
        self.backend = self._embedder.backend
        self.max_length = self._embedder.max_length

    @property
    def embedder(self) -> Qwen3Embedder:
        """The core embedder doing the work."""
        return self._embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (no instruction); each vector L2-normalised."""
        return self._embedder.embed_documents(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed a query with :attr:`query_instruction`."""
        return self._embedder.embed_query(text).tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents` (runs off the event loop)."""
        return (await self._embedder.aembed_documents(texts)).tolist()

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query` (runs off the event loop)."""
        if not isinstance(text, str):
            raise TypeError(f"query must be a str, got {type(text).__name__}")
        return (await self._embedder.aembed_queries([text]))[0].tolist()
