"""``Qwen3Embedder``: instruction-aware Qwen3-Embedding vectors on any backend.

This module owns the embedder: its settings (from arguments, else :mod:`qwen3_rag.config`),
the query and document formats it applies (:mod:`qwen3_rag.formats`) and Matryoshka cuts; the
engine that computes the vectors comes from :func:`qwen3_rag.engine.get_engine`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from qwen3_rag.batching import stream
from qwen3_rag.config import get_settings
from qwen3_rag.engine import get_engine, resolve_backend
from qwen3_rag.engine.base import EmbeddingEngine, l2_normalize
from qwen3_rag.engine.options import EngineOptions
from qwen3_rag.formats import DEFAULT_INSTRUCTION, EmbeddingFormatter, check_texts
from qwen3_rag.tokenizer import load_tokenizer

logger = logging.getLogger("qwen3_rag")

MIN_DIMENSIONS = 32


def matryoshka(vectors: np.ndarray, dimensions: int) -> np.ndarray:
    """The first ``dimensions`` components, re-normalised: full-size vectors cut as
    ``Qwen3Embedder(dimensions=...)`` cuts them (Qwen3-Embedding is trained for this, MRL)."""
    return l2_normalize(np.asarray(vectors, dtype=np.float32)[:, :dimensions])


class Qwen3Embedder:
    """Qwen3-Embedding: documents as they are, queries with an instruction.

    Arguments left as ``None`` come from :mod:`qwen3_rag.config` (config file, environment),
    whose defaults are ``Qwen/Qwen3-Embedding-0.6B``, backend ``"auto"``, max_length 8192.

    Args:
        model: hub id or local directory of a Qwen3-Embedding checkpoint.
        backend: ``"auto"`` (vLLM with CUDA, else transformers), ``"vllm"``, ``"hf"`` or
            ``"remote"``.
        query_instruction: the task instruction put in front of queries.
        dimensions: Matryoshka size (32 to the model's dimension): vectors are truncated,
            then re-normalised. ``None`` keeps the full size.
        max_length: longest sequence in tokens (the final ``<|endoftext|>`` included).
        batch_size: texts handed to the engine per call (default: the backend's preference);
            a large input streams through in batches of this size.
        show_progress: show a tqdm progress bar for large inputs.
        **engine_options: the backend's options (e.g. ``gpu_memory_utilization`` for vLLM,
            ``device`` for hf; :mod:`qwen3_rag.engine.options`), over the configured ones. A
            name no backend knows is a ``ValueError`` naming the nearest option; an option of
            another backend is an error too (configured ones are passed over instead).

    Example:
        >>> from qwen3_rag import Qwen3Embedder
        >>> from qwen3_rag.testing import make_tiny_qwen3
        >>> path = make_tiny_qwen3("/tmp/qwen3-rag-doctest-emb")
        >>> emb = Qwen3Embedder(path, backend="hf")
        >>> emb.embed_documents(["Paris is the capital of France."]).shape
        (1, 64)
        >>> q = emb.embed_queries(["capital of France?"])
        >>> round(float((q**2).sum()), 4)
        1.0
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        backend: str | None = None,
        query_instruction: str = DEFAULT_INSTRUCTION,
        dimensions: int | None = None,
        max_length: int | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
        **engine_options: Any,
    ):
        settings = get_settings()
        model = model or settings.embedding_model
        self.model = model
        self.backend = resolve_backend(backend or settings.backend)
        self.query_instruction = query_instruction
        self.max_length = max_length = settings.max_length if max_length is None else max_length
        EmbeddingFormatter.check_max_length(max_length)  # the formatter itself loads on first use
        self.show_progress = show_progress
        self.engine_options = {**settings.engine_options("embedding", self.backend), **engine_options}
        """The engine options as given, over the configured ones (:attr:`options`: typed)."""
        self.options = EngineOptions.build(self.backend, self.engine_options)
        batch_size = batch_size or settings.model_batch_size("embedding")
        self.engine: EmbeddingEngine = get_engine(  # type: ignore[assignment]
            "embedding", model, self.backend, max_length=max_length, options=self.options
        )
        self._formatter: EmbeddingFormatter | None = None  # loaded on first use (see formatter)
        self._formatter_lock = threading.Lock()
        full = self.engine.dimension
        if dimensions is not None and not (MIN_DIMENSIONS <= dimensions <= full):
            raise ValueError(
                f"dimensions must be between {MIN_DIMENSIONS} and the model's {full}, got {dimensions}"
            )
        self.dimensions = dimensions
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size or self.engine.preferred_batch_size

    @property
    def formatter(self) -> EmbeddingFormatter:
        """Formats and tokenizes queries and documents; loads the tokenizer on first use.

        An engine pool formats in its worker processes, so embedding through one never loads
        the tokenizer here (``qwen3-rag index`` saves the import of transformers and the load).
        """
        with self._formatter_lock:
            if self._formatter is None:
                tokenizer = load_tokenizer(self.engine.config.model, self.options.tokenizer)
                self._formatter = EmbeddingFormatter(tokenizer, self.max_length)
            return self._formatter

    @property
    def tokenizer_loaded(self) -> bool:
        """Whether this embedder loaded its tokenizer here (an engine pool tokenizes in its workers)."""
        return self._formatter is not None

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (loaded on first use)."""
        return self.formatter.tokenizer

    @property
    def dimension(self) -> int:
        """Size of the vectors this embedder returns."""
        return self.dimensions or self.engine.dimension

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What a vector store records to recognise vectors from this embedder: the model's
        name and the vectors' dimension, plus, where the model's files are on this machine (a
        directory, or a hub id's snapshot in the Hugging Face cache), a digest of its
        configuration, tokenizer and weights and its hub revision (computed once)."""
        if not hasattr(self, "_checkpoint"):
            from qwen3_rag.store.fingerprint import model_checkpoint

            revision = self.engine_options.get("revision")
            self._checkpoint = model_checkpoint(self.model, revision if isinstance(revision, str) else None)
        return {"model": self.model, "dimension": self.dimension, **self._checkpoint}

    def _run(self, texts: Sequence[str], method: str, **kwargs: Any) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        bar = None
        if self.show_progress and len(texts) > self.batch_size:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), unit="text", desc="embedding")
        in_workers = getattr(self.engine, "formats_in_workers", False)  # then no tokenizer here
        batches = stream(self.engine, None if in_workers else self.formatter, method, kwargs, texts,
                         self.batch_size)
        try:
            for start, part, vecs in batches:
                if self.dimensions is not None:
                    vecs = matryoshka(vecs, self.dimensions)
                out[start : start + len(part)] = vecs
                if bar is not None:
                    bar.update(len(part))
        finally:
            if bar is not None:
                bar.close()
        return out

    def embed_documents(self, texts: Iterable[str]) -> np.ndarray:
        """Embed documents (no instruction): float32 (n, d), rows L2-normalised."""
        items = check_texts(texts)
        return self._run(items, "documents")

    def embed_queries(self, queries: Iterable[str], instruction: str | None = None) -> np.ndarray:
        """Embed queries as ``Instruct: {instruction}\\nQuery:{query}``: float32 (n, d)."""
        items = check_texts(queries, "queries")
        instr = self.query_instruction if instruction is None else instruction
        return self._run(items, "queries", instruction=instr)

    def embed_query(self, query: str, instruction: str | None = None) -> np.ndarray:
        """Embed one query: float32 (d,)."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        return self.embed_queries([query], instruction)[0]

    async def aembed_documents(self, texts: Iterable[str]) -> np.ndarray:
        """Async :meth:`embed_documents`; the work runs in a thread, not on the event loop."""
        return await asyncio.to_thread(self.embed_documents, list(texts))

    async def aembed_queries(self, queries: Iterable[str], instruction: str | None = None) -> np.ndarray:
        """Async :meth:`embed_queries`; the work runs in a thread, not on the event loop."""
        return await asyncio.to_thread(self.embed_queries, list(queries), instruction)

    def __repr__(self) -> str:
        return f"Qwen3Embedder(model={self.model!r}, backend={self.backend!r}, dimension={self.dimension})"
