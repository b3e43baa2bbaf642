"""``Qwen3FaissVectorStore``: a LlamaIndex vector store over the core :class:`qwen3_rag.FaissStore`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
from llama_index.core.schema import BaseNode, MetadataMode, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.simple import DEFAULT_VECTOR_STORE, NAMESPACE_SEP
from llama_index.core.vector_stores.types import (
    DEFAULT_PERSIST_FNAME,
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

from qwen3_rag import FaissStore
from qwen3_rag.engine.base import l2_normalize

REF_DOC_KEY = "ref_doc_id"
"""Metadata key holding a node's source document id (used by ``delete(ref_doc_id)``)."""

_OPERATORS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    FilterOperator.CONTAINS: "$contains",
    FilterOperator.ANY: "$any",
    FilterOperator.ALL: "$all",
    FilterOperator.TEXT_MATCH: "$text_match",
    FilterOperator.TEXT_MATCH_INSENSITIVE: "$text_match_insensitive",
    FilterOperator.IS_EMPTY: "$empty",
}
_CONDITIONS = {FilterCondition.AND: "$and", FilterCondition.OR: "$or"}


def to_store_filter(filters: MetadataFilters) -> dict[str, Any]:
    """Turn LlamaIndex ``MetadataFilters`` into a :meth:`qwen3_rag.FaissStore.search` filter.

    Every ``FilterOperator`` and the AND, OR and NOT conditions (NOT: none of the filters
    holds), nested, translate one to one into the store's operators; the store validates the
    result and raises ``ValueError`` naming anything it cannot evaluate.

    Example:
        >>> from llama_index.core.vector_stores import MetadataFilter, MetadataFilters
        >>> to_store_filter(MetadataFilters(filters=[
        ...     MetadataFilter(key="lang", value=["en", "fr"], operator="in"),
        ...     MetadataFilter(key="year", value=2020, operator=">=")], condition="or"))
        {'$or': [{'lang': {'$in': ['en', 'fr']}}, {'year': {'$gte': 2020}}]}
    """
    parts = [to_store_filter(f) if isinstance(f, MetadataFilters) else _condition(f) for f in filters.filters]
    if not parts:
        raise ValueError("MetadataFilters holds no filter")
    if filters.condition == FilterCondition.NOT:
        return {"$not": parts[0] if len(parts) == 1 else {"$or": parts}}
    op = _CONDITIONS.get(filters.condition or FilterCondition.AND)
    if op is None:
        raise ValueError(f"unsupported filter condition {filters.condition!r}")
    return parts[0] if len(parts) == 1 else {op: parts}


def _condition(f: Any) -> dict[str, Any]:
    op = _OPERATORS.get(f.operator)
    if op is None:
        raise ValueError(f"unsupported filter operator {f.operator!r} (on key {f.key!r})")
    return {f.key: {op: True if op == "$empty" else f.value}}


class Qwen3FaissVectorStore(BasePydanticVectorStore):
    """A Faiss vector store (the core :class:`qwen3_rag.FaissStore`) for LlamaIndex.

    Stores each node's text, id and metadata (plus ``ref_doc_id``) next to its vector, so a
    ``VectorStoreIndex`` needs no separate docstore. Saved stores are plain Faiss + SQLite +
    JSON directories (no pickle), the format of the ``qwen3-rag index`` CLI and of the
    LangChain ``Qwen3FaissVectorStore``: each opens the others' stores. Scores are cosine
    similarities (query and node vectors are L2-normalised on the way in).

    Args:
        faiss_store: an existing core ``FaissStore``; by default an empty one is created, at
            the first ``add`` (or now, when ``embed_model`` tells the dimension).
        embed_model: a ``Qwen3Embedding``: its model is recorded in a new store, and checked
            against an existing one.
        index: Faiss index choice for a new store (``"auto"``, ``"flat"``, ``"ivf"``...).
        score_threshold: default minimum similarity of query results; a retriever can set it
            per query with ``vector_store_kwargs={"score_threshold": 0.3}``.

    Node relationships other than the source document, and metadata exclusion lists, are
    not stored.

    Example:
        >>> from llama_index.core import StorageContext, VectorStoreIndex
        >>> from llama_index.embeddings.qwen3_rag import Qwen3Embedding
        >>> from llama_index.vector_stores.qwen3_rag import Qwen3FaissVectorStore
        >>> embed_model = Qwen3Embedding()                                     # doctest: +SKIP
        >>> store = Qwen3FaissVectorStore(embed_model=embed_model)             # doctest: +SKIP
        >>> index = VectorStoreIndex.from_documents(                           # doctest: +SKIP
        ...     docs, storage_context=StorageContext.from_defaults(vector_store=store),
        ...     embed_model=embed_model)
        >>> store.persist("my_index")                                          # doctest: +SKIP
        >>> index = VectorStoreIndex.from_vector_store(                        # doctest: +SKIP
        ...     Qwen3FaissVectorStore.from_persist_path("my_index"), embed_model=embed_model)
    """

    stores_text: bool = True
    index: str | dict[str, Any] = Field(default="auto", description="Faiss index choice for a new store.")
    score_threshold: float | None = Field(default=None, description="Default minimum similarity.")

    _store: FaissStore | None = PrivateAttr(default=None)

    def __init__(
        self,
        faiss_store: FaissStore | None = None,
        *,
        embed_model: Any = None,
        index: str | dict[str, Any] = "auto",
        score_threshold: float | None = None,
        check_model: bool = True,
        **kwargs: Any,
    ):
        super().__init__(index=index, score_threshold=score_threshold, **kwargs)
        embedder = _embedder_of(embed_model)
        if faiss_store is None and embedder is not None:
            faiss_store = FaissStore(embedder.dimension, index=index, embedder=embedder)
        elif faiss_store is not None:
            faiss_store.check_embedder(embedder, check_model=check_model)
        self._store = faiss_store

    @classmethod
    def class_name(cls) -> str:
        return "Qwen3FaissVectorStore"

    @property
    def client(self) -> FaissStore | None:
        """The core ``FaissStore`` (``None`` until the first add when its dimension was unknown)."""
        return self._store

    # ------------------------------------------------------------------ writes
    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Add nodes (with embeddings); re-adding a node id replaces it. Returns the ids."""
        if not nodes:
            return []
        vectors = l2_normalize([n.get_embedding() for n in nodes])
        metadatas = []
        for n in nodes:
            meta = dict(n.metadata)
            if n.ref_doc_id is not None:
                meta[REF_DOC_KEY] = n.ref_doc_id
            metadatas.append(meta)
        if self._store is None:
            self._store = FaissStore(int(vectors.shape[1]), index=self.index)
        return self._store.add(
            [n.get_content(metadata_mode=MetadataMode.NONE) for n in nodes],
            vectors,
            ids=[n.node_id for n in nodes],
            metadatas=metadatas,
        )

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document ``ref_doc_id`` (an index lookup in the store)."""
        if self._store is not None:
            self._store.delete([r.id for r in self._store.iter_records(filter={REF_DOC_KEY: ref_doc_id})])

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        """Delete the nodes of ``node_ids`` that match ``filters`` (either may be left out)."""
        if self._store is not None and (node_ids or filters is not None):
            self._store.delete([n.node_id for n in self.get_nodes(node_ids, filters)])

    def clear(self) -> None:
        """Remove every node (the store keeps its dimension, recorded embedder and lexical config)."""
        if self._store is not None:
            s = self._store
            self._store = FaissStore(s.dim, path=s.path, index=self.index, embedder=s.fingerprint,
                                     lexical=s.lexical or "unicode61")

    # ------------------------------------------------------------------ reads
    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """The nodes of ``node_ids`` (in that order; unknown ids are left out) that match
        ``filters``; with ``filters`` only, every matching node."""
        if self._store is None:
            return []
        flt = to_store_filter(filters) if filters is not None else None
        if node_ids is None:
            if flt is None:
                raise ValueError("get_nodes needs node_ids or filters")
            return [_node(r.id, r.text, r.metadata) for r in self._store.iter_records(filter=flt)]
        records = [r for r in self._store.get(node_ids) if r is not None]
        if flt is not None:
            keep = {r.id for r in self._store.iter_records(filter=flt)}
            records = [r for r in records if r.id in keep]
        return [_node(r.id, r.text, r.metadata) for r in records]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The best nodes matching ``query.filters`` and ``doc_ids``, in the query's mode.

        Modes: ``DEFAULT`` (the ``similarity_top_k`` nearest by cosine), ``MMR`` (re-ranks
        ``mmr_prefetch_factor``, default 4, times ``similarity_top_k`` filtered candidates with
        LlamaIndex's own MMR; ``mmr_threshold``, the query's or a keyword, default 0.5, weighs
        relevance against diversity), ``SPARSE`` and ``TEXT_SEARCH`` (BM25 over the texts of
        ``query.query_str``, in the store's lexical index: ``sparse_top_k`` or
        ``similarity_top_k`` nodes) and ``HYBRID`` (both, fused: reciprocal rank fusion, or with
        ``query.alpha`` ``alpha * dense + (1 - alpha) * lexical`` normalised scores;
        ``hybrid_top_k`` or ``similarity_top_k`` nodes). Similarities are the mode's scores
        (cosine, BM25, fused). Keyword ``score_threshold`` (also settable per retriever through
        ``vector_store_kwargs``) drops results scoring below it.
        """
        unknown = set(kwargs) - {"score_threshold", "mmr_threshold", "mmr_prefetch_factor"}
        if unknown:
            raise TypeError(f"unknown Qwen3FaissVectorStore.query option(s): {sorted(unknown)}")
        mode = _MODES.get(query.mode)
        if mode is None:
            raise ValueError("Qwen3FaissVectorStore supports the default, MMR, sparse, text_search and "
                             f"hybrid modes, not {query.mode.value!r}")
        if query.query_embedding is None and mode != "lexical":
            raise ValueError("Qwen3FaissVectorStore.query needs query.query_embedding")
        if mode != "dense" and not query.query_str:
            raise ValueError(f"Qwen3FaissVectorStore.query in {query.mode.value} mode needs query.query_str")
        if query.node_ids:
            raise NotImplementedError("Qwen3FaissVectorStore does not restrict queries to node_ids")
        if self._store is None:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        parts = [to_store_filter(query.filters)] if query.filters else []
        if query.doc_ids:
            parts.append({REF_DOC_KEY: {"$in": list(query.doc_ids)}})
        flt = None if not parts else parts[0] if len(parts) == 1 else {"$and": parts}
        mmr = query.mode == VectorStoreQueryMode.MMR
        k = _top_k(query) * (int(kwargs.get("mmr_prefetch_factor", 4)) if mmr else 1)
        q = l2_normalize([query.query_embedding]) if query.query_embedding is not None else None
        threshold = kwargs.get("score_threshold", self.score_threshold)
        text = {"query": query.query_str} if mode != "dense" else {}
        alpha = query.alpha if mode == "hybrid" else None  # a retriever's alpha weighs hybrid queries only
        hits = self._store.search(None if mode == "lexical" else q, k=k, filter=flt,
                                  score_threshold=threshold, mode=mode, alpha=alpha, **text)[0]
        scores = [h.score for h in hits]
        if mmr and hits and q is not None:
            ids = [h.id for h in hits]
            scores, ids = get_top_k_mmr_embeddings(
                q[0].tolist(), self._store.vectors(ids).tolist(), similarity_top_k=query.similarity_top_k,
                embedding_ids=ids, mmr_threshold=kwargs.get("mmr_threshold", query.mmr_threshold))
            by_id = {h.id: h for h in hits}
            hits = [by_id[i] for i in ids]
        return VectorStoreQueryResult(
            nodes=[_node(h.id, h.text, h.metadata) for h in hits],
            similarities=list(scores),
            ids=[h.id for h in hits],
        )

    # ------------------------------------------------------------------ persist
    def persist(self, persist_path: str, fs: Any = None) -> None:
        """Save the store to the directory ``persist_path`` (atomically; no pickle).

        ``StorageContext.persist(persist_dir)`` calls this with
        ``persist_dir/default__vector_store.json`` (a directory, despite its name);
        :meth:`from_persist_dir` finds it there.
        """
        if fs is not None and "file" not in _protocols(fs):
            raise NotImplementedError("Qwen3FaissVectorStore persists to the local filesystem only")
        if self._store is None:
            raise ValueError("nothing to persist: the store is empty and its dimension unknown")
        self._store.save(persist_path)

    @classmethod
    def from_persist_path(
        cls, persist_path: str | os.PathLike[str], embed_model: Any = None, *, check_model: bool = True,
        **kwargs: Any,
    ) -> Qwen3FaissVectorStore:
        """Open a saved store directory (from :meth:`persist`, the CLI or LangChain).

        Pass the ``Qwen3Embedding`` you query with as ``embed_model``: the store then checks it
        is the model (and dimension) it was built with, and raises ``EmbedderMismatchError``
        otherwise (``check_model=False``: only for another dimension, with a warning that the
        model isn't checked). Without it nothing is checked.
        """
        store = FaissStore.load(persist_path, embedder=_embedder_of(embed_model) if check_model else None)
        return cls(store, embed_model=embed_model, check_model=check_model, **kwargs)  # checked there

    @classmethod
    def from_persist_dir(
        cls,
        persist_dir: str | os.PathLike[str],
        namespace: str = DEFAULT_VECTOR_STORE,
        embed_model: Any = None,
        **kwargs: Any,
    ) -> Qwen3FaissVectorStore:
        """Open the store that ``StorageContext.persist(persist_dir)`` wrote."""
        path = Path(persist_dir) / f"{namespace}{NAMESPACE_SEP}{DEFAULT_PERSIST_FNAME}"
        return cls.from_persist_path(path, embed_model=embed_model, **kwargs)


_MODES = {
    VectorStoreQueryMode.DEFAULT: "dense",
    VectorStoreQueryMode.MMR: "dense",
    VectorStoreQueryMode.SPARSE: "lexical",
    VectorStoreQueryMode.TEXT_SEARCH: "lexical",
    VectorStoreQueryMode.HYBRID: "hybrid",
}
"""The core store's search mode of each supported LlamaIndex query mode."""


def _top_k(query: VectorStoreQuery) -> int:
    """How many nodes a query asks for in its mode."""
    if query.mode == VectorStoreQueryMode.HYBRID and query.hybrid_top_k:
        return query.hybrid_top_k
    if query.mode == VectorStoreQueryMode.SPARSE and query.sparse_top_k:
        return query.sparse_top_k
    return query.similarity_top_k


def _embedder_of(embed_model: Any) -> Any:
    """The core embedder behind a ``Qwen3Embedding`` (``None`` for other models)."""
    from llama_index.embeddings.qwen3_rag import Qwen3Embedding

    return embed_model.embedder if isinstance(embed_model, Qwen3Embedding) else None


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = getattr(fs, "protocol", ())
    return (proto,) if isinstance(proto, str) else tuple(proto)


def _node(node_id: str, text: str, metadata: Mapping[str, Any]) -> TextNode:
    meta = dict(metadata)
    ref = meta.pop(REF_DOC_KEY, None)
    relationships = {NodeRelationship.SOURCE: RelatedNodeInfo(node_id=str(ref))} if ref is not None else {}
    return TextNode(id_=node_id, text=text, metadata=meta, relationships=relationships)
