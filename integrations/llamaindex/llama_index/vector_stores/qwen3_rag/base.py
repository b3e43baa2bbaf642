"""``Qwen3FaissVectorStore``: a LlamaIndex vector store over the core :class:`qwen3_rag.FaissStore`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
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
}


def to_store_filter(filters: MetadataFilters) -> dict[str, dict[str, Any]]:
    """Turn LlamaIndex ``MetadataFilters`` into a :meth:`qwen3_rag.FaissStore.search` filter.

    Supports the operators ==, !=, >, >=, <, <=, in and nin, combined with AND (nested AND
    groups included); anything else raises ``ValueError`` naming what is unsupported.

    Example:
        >>> from llama_index.core.vector_stores import MetadataFilter, MetadataFilters
        >>> to_store_filter(MetadataFilters(filters=[
        ...     MetadataFilter(key="lang", value=["en", "fr"], operator="in"),
        ...     MetadataFilter(key="year", value=2020, operator=">=")]))
        {'lang': {'$in': ['en', 'fr']}, 'year': {'$gte': 2020}}
    """
    out: dict[str, dict[str, Any]] = {}
    _collect(filters, out)
    return out


def _collect(filters: MetadataFilters, out: dict[str, dict[str, Any]]) -> None:
    if filters.condition not in (None, FilterCondition.AND):
        raise ValueError(
            f"Qwen3FaissVectorStore supports only AND-combined filters, got condition "
            f"{filters.condition.value!r}"
        )
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            _collect(f, out)
            continue
        op = _OPERATORS.get(f.operator)
        if op is None:
            supported = ", ".join(o.value for o in _OPERATORS)
            raise ValueError(
                f"Qwen3FaissVectorStore does not support the filter operator {f.operator.value!r} "
                f"(on key {f.key!r}); supported: {supported}"
            )
        conds = out.setdefault(f.key, {})
        if op in conds and conds[op] != f.value:
            raise ValueError(f"two different {f.operator.value!r} conditions on key {f.key!r}")
        conds[op] = f.value


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
        """Delete every node of the source document ``ref_doc_id``."""
        if self._store is None:
            return
        ids = [r.id for r in self._store.iter_records() if r.metadata.get(REF_DOC_KEY) == ref_doc_id]
        self._store.delete(ids)

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        """Delete nodes by id (deleting by ``filters`` is not supported)."""
        if filters is not None:
            raise NotImplementedError("Qwen3FaissVectorStore.delete_nodes takes node_ids, not filters")
        if self._store is not None and node_ids:
            self._store.delete(node_ids)

    def clear(self) -> None:
        """Remove every node (the store keeps its dimension and recorded embedder)."""
        if self._store is not None:
            s = self._store
            self._store = FaissStore(s.dim, path=s.path, index=self.index, embedder=s.fingerprint)

    # ------------------------------------------------------------------ reads
    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """Nodes by id (unknown ids are left out; getting by ``filters`` is not supported)."""
        if filters is not None or node_ids is None:
            raise NotImplementedError("Qwen3FaissVectorStore.get_nodes supports node_ids only, not filters")
        if self._store is None:
            return []
        return [_node(r.id, r.text, r.metadata) for r in self._store.get(node_ids) if r is not None]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` nearest nodes matching ``query.filters`` and ``doc_ids``.

        Keyword ``score_threshold`` (also settable per retriever through
        ``vector_store_kwargs``) drops results below that cosine similarity.
        """
        unknown = set(kwargs) - {"score_threshold"}
        if unknown:
            raise TypeError(f"unknown Qwen3FaissVectorStore.query option(s): {sorted(unknown)}")
        if query.mode != VectorStoreQueryMode.DEFAULT:
            mode = query.mode.value
            raise ValueError(f"Qwen3FaissVectorStore supports the default dense mode, not {mode!r}")
        if query.query_embedding is None:
            raise ValueError("Qwen3FaissVectorStore.query needs query.query_embedding")
        if query.node_ids:
            raise NotImplementedError("Qwen3FaissVectorStore does not restrict queries to node_ids")
        if self._store is None:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        flt: dict[str, Any] = to_store_filter(query.filters) if query.filters else {}
        if query.doc_ids:
            flt.setdefault(REF_DOC_KEY, {})["$in"] = list(query.doc_ids)
        threshold = kwargs.get("score_threshold", self.score_threshold)
        hits = self._store.search(
            l2_normalize([query.query_embedding]),
            k=query.similarity_top_k,
            filter=flt or None,
            score_threshold=threshold,
        )[0]
        return VectorStoreQueryResult(
            nodes=[_node(h.id, h.text, h.metadata) for h in hits],
            similarities=[h.score for h in hits],
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
