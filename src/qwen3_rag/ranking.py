"""Turning reranker scores into results: the one rank selection every caller shares.

:func:`select_results` filters P(yes) scores by ``score_threshold`` and ``min_confidence``,
sorts them best first (stable on ties: equal scores keep their input order) and cuts them to
``top_n``, returning the :class:`RerankResult` list and how many passed the thresholds.
``Qwen3Reranker.rerank``, :func:`qwen3_rag.retrieval.search_documents` (CLI search and the
service's ``/search``), the service's ``/rerank``, the pair-rerank job and the LangChain /
LlamaIndex rerankers all select through it, and :func:`check_rank_options` is the one check
of those options.

Example:
    >>> import numpy as np
    >>> ranking = select_results(np.array([0.2, 0.9, 0.55]), top_n=1, min_confidence=0.5)
    >>> [(r.index, r.score) for r in ranking.results], ranking.total
    ([(1, 0.9)], 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


def confidence(p: float) -> float:
    """How far a P(yes) is from undecided: ``|p − (1 − p)| = |2p − 1|``.

    Example:
        >>> confidence(0.9), confidence(0.5)
        (0.8, 0.0)
    """
    return abs(2.0 * p - 1.0)


@dataclass(frozen=True)
class RerankResult:
    """One reranked document: its index in the input list and its P(yes) score.

    Example:
        >>> r = RerankResult(index=3, score=0.25)
        >>> r.relevance_score, r.confidence
        (0.25, 0.5)
    """

    index: int
    score: float

    @property
    def relevance_score(self) -> float:
        """Alias of :attr:`score` (the name rerank APIs use)."""
        return self.score

    @property
    def confidence(self) -> float:
        """How far the model is from undecided: ``|2p - 1|``."""
        return confidence(self.score)


class Ranking(NamedTuple):
    """What :func:`select_results` returns: the results and how many passed the thresholds.

    ``total`` counts the results before the ``top_n`` cut (the ``total_found`` of the
    service's answers). A tuple, so ``results, total = select_results(...)`` works.
    """

    results: list[RerankResult]
    total: int


def check_rank_options(
    top_n: int | None = None, score_threshold: float | None = None, min_confidence: float | None = None
) -> None:
    """Validate the result-selection options of :func:`select_results` (``ValueError``).

    Example:
        >>> check_rank_options(top_n=3, min_confidence=0.2)
        >>> check_rank_options(score_threshold=1.5)
        Traceback (most recent call last):
        ...
        ValueError: score_threshold must be between 0 and 1, got 1.5
    """
    if top_n is not None and top_n < 0:
        raise ValueError(f"top_n must be >= 0, got {top_n}")
    for name, value in (("score_threshold", score_threshold), ("min_confidence", min_confidence)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value}")


def select_results(
    scores: np.ndarray | Sequence[float],
    top_n: int | None = None,
    score_threshold: float | None = None,
    min_confidence: float | None = None,
) -> Ranking:
    """Best-first results (stable on ties) passing the thresholds, cut to ``top_n``.

    Args:
        scores: P(yes) of each document, in input order.
        top_n: keep at most this many results (``None``: all).
        score_threshold: drop results whose P(yes) is below it.
        min_confidence: drop results whose confidence ``|2p - 1|`` is below it.

    Returns:
        ``Ranking(results, total)``; ``total`` counts the results passing both thresholds.

    Example:
        >>> res, total = select_results(np.array([0.2, 0.9, 0.55]), top_n=1, min_confidence=0.5)
        >>> [(r.index, r.score) for r in res], total
        ([(1, 0.9)], 2)
        >>> [r.index for r in select_results([0.5, 0.7, 0.5]).results]  # ties keep input order
        [1, 0, 2]
    """
    check_rank_options(top_n, score_threshold, min_confidence)
    values = np.asarray(scores)
    order = np.argsort(-values, kind="stable")
    results = [RerankResult(int(i), float(values[i])) for i in order]
    results = [
        r
        for r in results
        if (score_threshold is None or r.score >= score_threshold)
        and (min_confidence is None or r.confidence >= min_confidence)
    ]
    return Ranking(results if top_n is None else results[:top_n], len(results))


def rank_scores(
    scores: np.ndarray | Sequence[float],
    top_n: int | None = None,
    *,
    score_threshold: float | None = None,
    min_confidence: float | None = None,
) -> list[RerankResult]:
    """The results of :func:`select_results` alone (what ``Qwen3Reranker.rerank`` returns).

    Example:
        >>> [(r.index, r.score) for r in rank_scores(np.array([0.2, 0.9, 0.55]), min_confidence=0.5)]
        [(1, 0.9), (0, 0.2)]
    """
    return select_results(scores, top_n, score_threshold, min_confidence).results


__all__ = ["Ranking", "RerankResult", "check_rank_options", "confidence", "rank_scores", "select_results"]
