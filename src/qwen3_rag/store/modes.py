"""The search modes of a store: ``dense`` (vectors), ``lexical`` (BM25) and ``hybrid`` (both, fused).

* ``dense``: the nearest vectors (:func:`~qwen3_rag.store.query.nearest`), scored by inner
  product (cosine for normalised vectors).
* ``lexical``: the BM25 ranking of the query text in the store's FTS5 index
  (:mod:`~qwen3_rag.store.lexical`).
* ``hybrid``: the ``candidates`` best of each, fused (:func:`~qwen3_rag.store.fusion.fuse`:
  reciprocal rank fusion, or a weighted sum of normalised scores with ``alpha``).

A filter restricts every retriever to the same documents. ``score_threshold`` applies to the
score of the mode (cosine, BM25 or fused). Each hit's ``sources`` give its rank in each
retriever that found it.

Example:
    >>> import numpy as np
    >>> from qwen3_rag.store.documents import Documents, document_rows
    >>> from qwen3_rag.store.kinds import IndexSpec
    >>> from qwen3_rag.store.lexical import LexicalConfig
    >>> from qwen3_rag.store.vectors import VectorIndex
    >>> docs, vi = Documents.new(LexicalConfig()), VectorIndex.new(2, IndexSpec("flat"))
    >>> ids, metas = document_rows(2, ["a", "b"], None)
    >>> docs.insert(docs.next_keys(2), ids, ["alpha particle", "error E-42"], metas)
    >>> vi.add(np.eye(2, dtype="float32"), np.arange(2))
    >>> plan = SearchPlan.of(2, np.array([[1.0, 0.0]]), 2, "hybrid", "E-42")
    >>> [(h.id, h.sources) for h in plan.run(vi, docs)[0]]
    [('b', {'dense': 2, 'lexical': 1}), ('a', {'dense': 1})]
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from qwen3_rag.store.documents import Documents, Hit
from qwen3_rag.store.fusion import DEFAULT_RRF_K, Fused, check_fusion, fuse
from qwen3_rag.store.query import nearest
from qwen3_rag.store.vectors import VectorIndex, as_matrix

SEARCH_MODES = ("dense", "lexical", "hybrid")
"""What :meth:`FaissStore.search <qwen3_rag.store.FaissStore.search>` can rank by."""


def default_candidates(k: int) -> int:
    """How many hits of each retriever a hybrid search fuses, by default: ``max(4 k, 20)``."""
    return max(4 * k, 20)


def _texts(query: str | Sequence[str] | None, mode: str, n: int | None) -> list[str]:
    if query is None:
        raise ValueError(f"{mode} search needs the query text: pass query=...")
    texts = [query] if isinstance(query, str) else list(query) if isinstance(query, Sequence) else [query]
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"query must be a str or a list of str, got a {type(bad[0]).__name__}")
    if n is not None and len(texts) != n:
        raise ValueError(f"got {n} query vectors but {len(texts)} query texts")
    return texts


@dataclass(frozen=True)
class SearchPlan:
    """One checked search: its mode, the query vectors and texts it needs, and its options."""

    mode: str
    k: int
    vectors: np.ndarray | None
    texts: list[str] | None
    alpha: float | None = None
    rrf_k: float = DEFAULT_RRF_K
    candidates: int = 0

    @classmethod
    def of(cls, dim: int, vectors: Any, k: int, mode: str = "dense", query: str | Sequence[str] | None = None,
           *, alpha: float | None = None, rrf_k: float = DEFAULT_RRF_K,
           candidates: int | None = None) -> SearchPlan:
        """A plan from :meth:`FaissStore.search`'s arguments; ``ValueError`` / ``TypeError``
        naming what is wrong."""
        if mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {SEARCH_MODES}, got {mode!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"k must be a non-negative int, got {k!r}")
        if mode != "hybrid" and alpha is not None:
            raise ValueError(f"alpha weighs the two retrievers of hybrid search, not of {mode} search")
        check_fusion(alpha, rrf_k)
        if candidates is not None and (isinstance(candidates, bool) or not isinstance(candidates, int)
                                       or candidates < 1):
            raise ValueError(f"candidates must be a positive int, got {candidates!r}")
        q = None
        if mode != "lexical" or vectors is not None:
            if vectors is None:
                raise ValueError(f"{mode} search needs query vectors")
            q = as_matrix(vectors, dim, "query vectors")
        texts = _texts(query, mode, None if q is None else len(q)) if mode != "dense" else None
        return cls(mode, k, q, texts, alpha, rrf_k, max(k, candidates or default_candidates(k)))

    @property
    def count(self) -> int:
        """How many queries."""
        return len(self.vectors) if self.vectors is not None else len(self.texts or ())

    def run(self, vectors: VectorIndex, documents: Documents, flt: Mapping[str, Any] | None = None,
            score_threshold: float | None = None) -> list[list[Hit]]:
        """The hits of each query, best first, at most ``k``."""
        empty: list[list[Hit]] = [[] for _ in range(self.count)]
        if self.k == 0 or len(documents) == 0:
            return empty
        depth = self.candidates if self.mode == "hybrid" else self.k
        rows: dict[int, tuple[str, str, str]] = {}
        dense = lexical = job = None
        if self.mode != "dense":
            documents.ensure_lexical()  # (a first build may copy the saved database: before any search)
            texts = self.texts or []
            job = _in_parallel(lambda: [documents.lexical_search(t, depth, flt) for t in texts],
                               parallel=self.mode == "hybrid")
        try:
            if self.mode != "lexical":
                allowed = documents.filter_keys(flt) if flt is not None else None
                dense = (self._dense(vectors, documents, depth, allowed, rows)
                         if allowed is None or len(allowed) else [[] for _ in range(self.count)])
        finally:
            lexical = job.result() if job is not None else None
        fused = [self._fuse(dense[i] if dense else None, lexical[i] if lexical else None)
                 for i in range(self.count)]
        kept = [[f for f in fs if score_threshold is None or f.score >= score_threshold][: self.k]
                for fs in fused]
        rows.update(documents.rows({f.key for fs in kept for f in fs if f.key not in rows}))
        return [[_hit(f, rows[f.key]) for f in fs] for fs in kept]

    def _dense(self, vectors: VectorIndex, documents: Documents, depth: int, allowed: np.ndarray | None,
               rows: dict[int, tuple[str, str, str]]) -> list[list[tuple[int, float]]]:
        """Each query's nearest live documents, ``(key, cosine)`` best first (``rows`` gets theirs)."""
        if vectors.index is None:  # an IVF index not trained yet holds nothing
            return [[] for _ in range(self.count)]
        assert self.vectors is not None
        scores, keys = nearest(vectors, self.vectors, depth, count=len(documents), allowed=allowed,
                               all_keys=documents.keys)
        rows.update(documents.rows(np.unique(keys[keys >= 0])))
        out = []
        for srow, krow in zip(scores.tolist(), keys.tolist(), strict=True):
            out.append([(key, s) for s, key in zip(srow, krow, strict=True) if key in rows][:depth])
        return out

    def _fuse(self, dense: list[tuple[int, float]] | None,
              lexical: list[tuple[int, float]] | None) -> list[Fused]:
        if dense is not None and lexical is not None:
            return fuse(dense, lexical, alpha=self.alpha, rrf_k=self.rrf_k)
        name, ranking = ("dense", dense) if dense is not None else ("lexical", lexical or [])
        return [Fused(key, score, {name: rank}) for rank, (key, score) in enumerate(ranking, start=1)]


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _in_parallel(fn: Callable[[], Any], parallel: bool) -> Future[Any]:
    """``fn()`` in a worker thread when ``parallel`` (and SQLite connections may be shared by
    threads), else now: a hybrid search's lexical retriever runs while the dense one searches
    Faiss (both release the GIL)."""
    global _POOL
    if not parallel or sqlite3.threadsafety != 3:
        done: Future[Any] = Future()
        try:
            done.set_result(fn())
        except BaseException as e:
            done.set_exception(e)
        return done
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="qwen3-rag-lexical")
    return _POOL.submit(fn)


def _hit(f: Fused, row: tuple[str, str, str]) -> Hit:
    return Hit(row[0], float(f.score), row[1], json.loads(row[2]), f.sources)


__all__ = ["SEARCH_MODES", "SearchPlan", "default_candidates"]
