"""Fusing a dense and a lexical ranking: reciprocal rank fusion, or a weighted sum of normalised scores.

Each retriever gives a ranking, best first, of ``(key, score)``. :func:`fuse` combines them:

* reciprocal rank fusion (``alpha=None``): ``score(d) = Σ_r 1 / (rrf_k + rank_r(d))`` over the
  rankings ``r`` that hold ``d`` (1-based ranks; ``rrf_k = 60`` as in Cormack et al., 2009);
* a weighted sum (``alpha`` in [0, 1]): each ranking's scores min-max normalised to [0, 1]
  (all 1 when they are equal), then ``alpha * dense + (1 - alpha) * lexical``, a ranking that
  misses ``d`` giving it 0. ``alpha = 1`` weighs the dense scores alone, ``0`` the lexical ones.

Equal scores are ordered by the best rank the document has in either ranking, then lexical
before dense (a lexical hit shares a word with the query, while the dense retriever ranks
every document), then by key. Each fused hit keeps its rank in each ranking that found it.

Example:
    >>> dense = [(7, 0.9), (3, 0.8), (5, 0.1)]
    >>> lexical = [(3, 12.0), (9, 4.0)]
    >>> fused = fuse(dense, lexical)
    >>> [(f.key, round(f.score, 5)) for f in fused]
    [(3, 0.03252), (7, 0.01639), (9, 0.01613), (5, 0.01587)]
    >>> fused[0].sources
    {'dense': 2, 'lexical': 1}
    >>> [(f.key, round(f.score, 3)) for f in fuse(dense, lexical, alpha=0.5)]
    [(3, 0.938), (7, 0.5), (9, 0.0), (5, 0.0)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

DEFAULT_RRF_K = 60
"""The rank constant of reciprocal rank fusion."""

Ranking = Sequence[tuple[int, float]]
"""``(key, score)`` pairs, best first."""


@dataclass
class Fused:
    """One fused result: the document's key, its fused score, and its 1-based rank in each
    ranking that holds it."""

    key: int
    score: float
    sources: dict[str, int] = field(default_factory=dict)


def check_fusion(alpha: float | None, rrf_k: float) -> None:
    """``ValueError`` unless ``alpha`` is ``None`` or in [0, 1] and ``rrf_k`` is positive."""
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, int | float)
                              or not 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be a number between 0 and 1 (the dense weight), got {alpha!r}")
    if (isinstance(rrf_k, bool) or not isinstance(rrf_k, int | float)
            or not (rrf_k > 0 and math.isfinite(rrf_k))):
        raise ValueError(f"rrf_k must be a positive number, got {rrf_k!r}")


def _normalised(ranking: Ranking) -> dict[int, float]:
    if not ranking:
        return {}
    scores = [s for _, s in ranking]
    lo, hi = min(scores), max(scores)
    return {key: (s - lo) / (hi - lo) if hi > lo else 1.0 for key, s in ranking}


def fuse(dense: Ranking, lexical: Ranking, *, alpha: float | None = None,
         rrf_k: float = DEFAULT_RRF_K) -> list[Fused]:
    """Every document of the two rankings, best first, by reciprocal rank fusion
    (``alpha=None``) or by ``alpha`` times its normalised dense score plus ``1 - alpha`` times
    its normalised lexical one."""
    check_fusion(alpha, rrf_k)
    fused: dict[int, Fused] = {}
    order: dict[int, tuple[int, int]] = {}  # key -> (best rank, 0 for lexical, 1 for dense)
    lexical_weight = None if alpha is None else 1.0 - alpha
    for tie, name, ranking, weight in ((1, "dense", dense, alpha), (0, "lexical", lexical, lexical_weight)):
        normalised = _normalised(ranking) if weight is not None else {}
        for rank, (key, _) in enumerate(ranking, start=1):
            hit = fused.setdefault(key, Fused(key, 0.0))
            if name in hit.sources:
                continue  # a ranking repeating a key counts it once, at its first rank
            hit.sources[name] = rank
            hit.score += weight * normalised[key] if weight is not None else 1.0 / (rrf_k + rank)
            order[key] = min(order.get(key, (rank, tie)), (rank, tie))
    return sorted(fused.values(), key=lambda f: (-f.score, *order[f.key], f.key))


__all__ = ["DEFAULT_RRF_K", "Fused", "Ranking", "check_fusion", "fuse"]
