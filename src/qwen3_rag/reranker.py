"""``Qwen3Reranker``: yes/no relevance scores from Qwen3-Reranker on any backend."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from qwen3_rag.batching import stream
from qwen3_rag.config import get_settings
from qwen3_rag.engine import get_engine, resolve_backend
from qwen3_rag.engine.base import RerankEngine, check_model
from qwen3_rag.engine.options import EngineOptions
from qwen3_rag.formats import DEFAULT_INSTRUCTION, RerankFormatter, check_texts
from qwen3_rag.ranking import RerankResult, check_rank_options, rank_scores, select_results
from qwen3_rag.tokenizer import load_tokenizer

logger = logging.getLogger("qwen3_rag")

# RerankResult, check_rank_options and rank_scores live in qwen3_rag.ranking; importable from here too
__all__ = ["Qwen3Reranker", "RerankResult", "check_rank_options", "rank_scores"]


class Qwen3Reranker:
    """Qwen3-Reranker: P(yes) that a document meets a query's requirements.

    Arguments left as ``None`` come from :mod:`qwen3_rag.config` (config file, environment),
    whose defaults are ``Qwen/Qwen3-Reranker-0.6B``, backend ``"auto"``, max_length 8192.

    Args:
        model: hub id or local directory of a Qwen3-Reranker checkpoint (the original
            causal-LM layout).
        backend: ``"auto"``, ``"vllm"``, ``"hf"`` or ``"remote"``.
        instruction: the task instruction of the prompt.
        max_length: longest prompt in tokens; only the document is cut to fit.
        batch_size: pairs handed to the engine per call (default: the backend's preference).
        **engine_options: the backend's options (:mod:`qwen3_rag.engine.options`), over the
            configured ones; checked as :class:`~qwen3_rag.Qwen3Embedder` checks its own.

    Example:
        >>> from qwen3_rag import Qwen3Reranker
        >>> from qwen3_rag.testing import make_tiny_qwen3
        >>> path = make_tiny_qwen3("/tmp/qwen3-rag-doctest-rr", kind="reranker")
        >>> rr = Qwen3Reranker(path, backend="hf")
        >>> scores = rr.score("capital of France?", ["Paris is in France.", "Bananas."])
        >>> scores.shape, bool(((scores >= 0) & (scores <= 1)).all())
        ((2,), True)
        >>> [r.index for r in rr.rerank("capital?", ["a", "b", "c"], top_n=2)].__len__()
        2
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        backend: str | None = None,
        instruction: str = DEFAULT_INSTRUCTION,
        max_length: int | None = None,
        batch_size: int | None = None,
        **engine_options: Any,
    ):
        settings = get_settings()
        model = model or settings.reranker_model
        self.model = model
        self.backend = resolve_backend(backend or settings.backend)
        self.instruction = instruction
        self.max_length = max_length = settings.max_length if max_length is None else max_length
        self.engine_options = {**settings.engine_options("reranker", self.backend), **engine_options}
        """The engine options as given, over the configured ones (:attr:`options`: typed)."""
        self.options = EngineOptions.build(self.backend, self.engine_options)
        batch_size = batch_size or settings.model_batch_size("reranker")
        tok_source = model if self.backend == "remote" else check_model(model)
        self.tokenizer = load_tokenizer(tok_source, self.options.tokenizer)
        self.formatter = RerankFormatter(self.tokenizer, max_length)
        self.engine: RerankEngine = get_engine(  # type: ignore[assignment]
            "reranker",
            model,
            self.backend,
            max_length=max_length,
            options=self.options,
            yes_id=self.formatter.yes_id,
            no_id=self.formatter.no_id,
        )
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size or self.engine.preferred_batch_size

    def score_pairs(self, pairs: Iterable[tuple[str, str]], instruction: str | None = None) -> np.ndarray:
        """P(yes) for each (query, document) pair: float32 (n,) in [0, 1]."""
        items = list(pairs)
        for i, p in enumerate(items):
            if not (isinstance(p, tuple | list) and len(p) == 2):
                raise TypeError(f"pairs[{i}] must be a (query, document) pair")
            if not (isinstance(p[0], str) and isinstance(p[1], str)):
                raise TypeError(
                    f"pairs[{i}] must hold two str, got {type(p[0]).__name__}, {type(p[1]).__name__}"
                )
        instr = self.instruction if instruction is None else instruction
        out = np.empty(len(items), dtype=np.float32)
        batches = stream(self.engine, self.formatter, "pairs", {"instruction": instr}, items, self.batch_size)
        for start, part, scores in batches:
            out[start : start + len(part)] = scores
        return out

    def score(self, query: str, documents: Iterable[str], instruction: str | None = None) -> np.ndarray:
        """P(yes) of each document for ``query``: float32 (n,) in [0, 1]."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        docs = check_texts(documents, "documents")
        return self.score_pairs([(query, d) for d in docs], instruction)

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        instruction: str | None = None,
        *,
        score_threshold: float | None = None,
        min_confidence: float | None = None,
    ) -> list[RerankResult]:
        """Documents' indices and scores, best first (stable on ties), at most ``top_n``.

        ``score_threshold`` drops results whose P(yes) is below it and ``min_confidence``
        those whose confidence ``|2p - 1|`` is below it; ``top_n`` applies after both.
        """
        check_rank_options(top_n, score_threshold, min_confidence)
        scores = self.score(query, documents, instruction)
        return select_results(scores, top_n, score_threshold, min_confidence).results

    async def ascore(
        self, query: str, documents: Iterable[str], instruction: str | None = None
    ) -> np.ndarray:
        """Async :meth:`score`, run in a thread."""
        return await asyncio.to_thread(self.score, query, list(documents), instruction)

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        instruction: str | None = None,
        *,
        score_threshold: float | None = None,
        min_confidence: float | None = None,
    ) -> list[RerankResult]:
        """Async :meth:`rerank`, run in a thread."""
        return await asyncio.to_thread(
            functools.partial(self.rerank, score_threshold=score_threshold, min_confidence=min_confidence),
            query,
            list(documents),
            top_n,
            instruction,
        )

    def __repr__(self) -> str:
        return f"Qwen3Reranker(model={self.model!r}, backend={self.backend!r})"
