"""``Qwen3Rerank``: a LangChain document compressor over the core :class:`qwen3_rag.Qwen3Reranker`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, PrivateAttr, field_validator

from qwen3_rag import Qwen3Reranker, RerankResult
from qwen3_rag.formats import DEFAULT_INSTRUCTION
from qwen3_rag.ranking import check_rank_options


class Qwen3Rerank(BaseDocumentCompressor):
    """Qwen3-Reranker as a LangChain ``BaseDocumentCompressor``.

    Returns at most ``top_n`` documents, best first, each a copy of the input document with
    ``metadata["relevance_score"]`` (P(yes) in [0, 1]) and ``metadata["confidence"]``
    (``|2p - 1|``). Use it on its own or inside ``ContextualCompressionRetriever``. The
    thresholds apply first, then ``top_n``, as everywhere (:func:`qwen3_rag.ranking.select_results`).

    Args:
        model: hub id or local directory of a Qwen3-Reranker checkpoint.
        backend: ``"auto"``, ``"vllm"``, ``"hf"`` or ``"remote"``.
        instruction: the task instruction of the reranker prompt.
        top_n: how many documents to return (``None``: all).
        score_threshold: drop documents whose relevance score is below it.
        min_confidence: drop documents whose confidence ``|2p - 1|`` is below it.
        max_length: longest prompt in tokens (only the document is cut).
        batch_size: pairs per engine call (default: the backend's preference).
        engine_kwargs: backend options.

    Example:
        >>> from langchain_core.documents import Document
        >>> from langchain_qwen3_rag import Qwen3Rerank
        >>> rerank = Qwen3Rerank(top_n=1, score_threshold=0.5)           # doctest: +SKIP
        >>> docs = [Document(page_content="Paris is in France."), Document(page_content="Bananas.")]
        >>> best = rerank.compress_documents(docs, "capital of France?")  # doctest: +SKIP
        >>> best[0].metadata["relevance_score"]                           # doctest: +SKIP
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str | None = None
    """Hub id or local directory; ``None``: the configured one (:mod:`qwen3_rag.config`)."""
    backend: str | None = None
    instruction: str = DEFAULT_INSTRUCTION
    top_n: int | None = 3
    score_threshold: float | None = None
    min_confidence: float | None = None
    max_length: int | None = None
    batch_size: int | None = None
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)

    _reranker: Qwen3Reranker = PrivateAttr()

    @field_validator("top_n", "score_threshold", "min_confidence")
    @classmethod
    def _check_selection(cls, v: Any, info: Any) -> Any:
        check_rank_options(**{info.field_name: v})  # the core's one check (qwen3_rag.ranking)
        return v

    def model_post_init(self, context: Any, /) -> None:
        self._reranker = Qwen3Reranker(
            self.model,
            backend=self.backend,
            instruction=self.instruction,
            max_length=self.max_length,
            batch_size=self.batch_size,
            **self.engine_kwargs,
        )
        self.model, self.backend = self._reranker.model, self._reranker.backend
        self.max_length = self._reranker.max_length

    @property
    def reranker(self) -> Qwen3Reranker:
        """The core reranker doing the work."""
        return self._reranker

    def _options(self) -> dict[str, Any]:
        return {
            "top_n": self.top_n,
            "score_threshold": self.score_threshold,
            "min_confidence": self.min_confidence,
        }

    def _documents(self, documents: Sequence[Document], results: Sequence[RerankResult]) -> list[Document]:
        out = []
        for r in results:
            doc = documents[r.index]
            metadata = {**doc.metadata, "relevance_score": r.relevance_score, "confidence": r.confidence}
            out.append(doc.model_copy(update={"metadata": metadata}))
        return out

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Rerank ``documents`` for ``query``: the ``top_n`` best, with their scores in metadata."""
        if not documents:
            return []
        results = self._reranker.rerank(query, [d.page_content for d in documents], **self._options())
        return self._documents(documents, results)

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents` (runs off the event loop)."""
        if not documents:
            return []
        results = await self._reranker.arerank(
            query, [d.page_content for d in documents], **self._options()
        )
        return self._documents(documents, results)
