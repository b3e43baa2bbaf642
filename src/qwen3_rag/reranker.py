"""``Qwen3Reranker``: yes/no relevance scores from Qwen3-Reranker on any backend."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qwen3_rag.batching import stream
from qwen3_rag.config import get_settings
from qwen3_rag.engine import get_engine, resolve_backend
from qwen3_rag.engine.base import RerankEngine, check_model
from qwen3_rag.formats import DEFAULT_INSTRUCTION, RerankFormatter, check_texts
from qwen3_rag.tokenizer import load_tokenizer

logger = logging.getLogger("qwen3_rag")


@dataclass(frozen=True)
class RerankResult:
    """One reranked document: its index in the input list and its P(yes) score."""

    index: int
    score: float

    @property
    def relevance_score(self) -> float:
        """Alias of :attr:`score` (the name rerank APIs use)."""
        return self.score

    @property
    def confidence(self) -> float:
        """How far the model is from undecided: ``|2p - 1|``."""
        return abs(2.0 * self.score - 1.0)


def check_rank_options(
    top_n: int | None, score_threshold: float | None, min_confidence: float | None
) -> None:
    """Validate the result-selection options of :func:`rank_scores`."""
    if top_n is not None and top_n < 0:
        raise ValueError(f"top_n must be >= 0, got {top_n}")
    for name, value in (("score_threshold", score_threshold), ("min_confidence", min_confidence)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value}")


def rank_scores(
    scores: np.ndarray,
    top_n: int | None = None,
    *,
    score_threshold: float | None = None,
    min_confidence: float | None = None,
) -> list[RerankResult]:
    """Best-first results (stable on ties) passing the thresholds, then cut to ``top_n``.

    The one place that turns reranker scores into results: ``Qwen3Reranker.rerank``, the
    service and the pair-rerank job all select through it.

    Example:
        >>> [(r.index, r.score) for r in rank_scores(np.array([0.2, 0.9, 0.55]), min_confidence=0.5)]
        [(1, 0.9), (0, 0.2)]
    """
    check_rank_options(top_n, score_threshold, min_confidence)
    order = np.argsort(-np.asarray(scores), kind="stable")
    results = [RerankResult(int(i), float(scores[i])) for i in order]
    results = [
        r
        for r in results
        if (score_threshold is None or r.score >= score_threshold)
        and (min_confidence is None or r.confidence >= min_confidence)
    ]
    return results if top_n is None else results[:top_n]


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
        **engine_options: passed to the backend.

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
        engine_options = {**settings.engine_options("reranker", self.backend), **engine_options}
        self.engine_options = engine_options
        batch_size = batch_size or settings.model_batch_size("reranker")
        tok_source = model if self.backend == "remote" else check_model(model)
        self.tokenizer = load_tokenizer(tok_source, engine_options)
        self.formatter = RerankFormatter(self.tokenizer, max_length)
        self.engine: RerankEngine = get_engine(  # type: ignore[assignment]
            "reranker",
            model,
            self.backend,
            max_length=max_length,
            options=engine_options,
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
        return rank_scores(scores, top_n, score_threshold=score_threshold, min_confidence=min_confidence)

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
