"""``Qwen3FaissVectorStore``: a LangChain ``VectorStore`` over the core :class:`qwen3_rag.FaissStore`."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore, VectorStoreRetriever
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from langchain_qwen3_rag.embeddings import Qwen3Embeddings
from qwen3_rag import FaissStore, Hit
from qwen3_rag.engine.base import l2_normalize


def _embedder_of(embedding: Embeddings) -> Any:
    """The core embedder behind ``embedding`` (for the store's fingerprint), if it has one."""
    return embedding.embedder if isinstance(embedding, Qwen3Embeddings) else None


class Qwen3FaissVectorStore(VectorStore):
    """A Faiss vector store (the core :class:`qwen3_rag.FaissStore`) for LangChain.

    Texts, ids and metadata are stored next to the vectors; scores are cosine similarities
    (vectors are L2-normalised on the way in, which leaves Qwen3 vectors as they are).
    Saved stores are plain Faiss + SQLite + JSON directories (no pickle), the same format as
    the ``qwen3-rag index`` CLI and the LlamaIndex ``Qwen3FaissVectorStore``: each opens
    the others' stores.

    Args:
        embedding: the LangChain embeddings (``Qwen3Embeddings`` records its model in the
            store, so that :meth:`load_local` refuses another model).
        store: an existing core ``FaissStore``; by default an empty one is created (at the
            first ``add_texts`` when the embedding dimension is not known in advance).
        index: Faiss index choice for a new store (``"auto"``, ``"flat"``, ``"ivf"``...).

    Search types: ``"similarity"`` (dense vectors, the default), ``"lexical"`` (BM25 over the
    texts, in the store's FTS5 index) and ``"hybrid"`` (both, fused by reciprocal rank fusion,
    or with ``alpha`` by ``alpha * dense + (1 - alpha) * lexical`` normalised scores), as
    ``similarity_search(query, search_type="hybrid")`` or
    ``as_retriever(search_type="hybrid", search_kwargs={"k": 5, "alpha": 0.5})``; each
    document's ``metadata`` is the stored one (the retrievers' ranks are the core hits'
    ``sources``).

    Filters are the core store's (``qwen3_rag.store.filters``), passed as they are:
    ``{"lang": "en"}``, ``{"lang": ["en", "fr"]}`` (``$in``), ``$ne``, ``$nin``, ``$gt``,
    ``$gte``, ``$lt``, ``$lte``, ``$and``, ``$or``, ``$not``, dotted keys into nested metadata;
    comparisons are type-strict, and a filter the store cannot evaluate raises ``ValueError``.

    Example:
        >>> from langchain_qwen3_rag import Qwen3Embeddings, Qwen3FaissVectorStore
        >>> store = Qwen3FaissVectorStore.from_texts(                      # doctest: +SKIP
        ...     ["Paris is in France.", "Bananas."], Qwen3Embeddings(), metadatas=[{"n": 1}, {"n": 2}])
        >>> store.similarity_search("capital of France?", k=1, filter={"n": 1})  # doctest: +SKIP
        >>> store.save_local("my_index")                                  # doctest: +SKIP
        >>> retriever = Qwen3FaissVectorStore.load_local("my_index", Qwen3Embeddings()).as_retriever(
        ...     search_kwargs={"k": 20, "score_threshold": 0.3})         # doctest: +SKIP
    """

    def __init__(
        self,
        embedding: Embeddings,
        store: FaissStore | None = None,
        *,
        index: str | Mapping[str, Any] = "auto",
        check_model: bool = True,
    ):
        if not isinstance(embedding, Embeddings):
            raise TypeError(f"embedding must be a LangChain Embeddings, got {type(embedding).__name__}")
        self.embedding = embedding
        self._index = index
        embedder = _embedder_of(embedding)
        if store is None and embedder is not None:
            store = FaissStore(embedder.dimension, index=index, embedder=embedder)
        elif store is not None:
            store.check_embedder(embedder, check_model=check_model)
        self._store = store

    @property
    def embeddings(self) -> Embeddings:
        """The embeddings this store embeds texts and queries with."""
        return self.embedding

    @property
    def store(self) -> FaissStore | None:
        """The core ``FaissStore`` (``None`` until the first add when its dimension was unknown)."""
        return self._store

    def __len__(self) -> int:
        return 0 if self._store is None else len(self._store)

    # ------------------------------------------------------------------ writes
    def _vectors(self, vectors: Sequence[Sequence[float]]) -> np.ndarray:
        arr = np.asarray(vectors, dtype=np.float32)
        return l2_normalize(arr.reshape(len(arr), -1))

    def _ensure_store(self, dim: int) -> FaissStore:
        if self._store is None:
            self._store = FaissStore(dim, index=self._index)
        return self._store

    def add_embeddings(
        self,
        texts: Sequence[str],
        embeddings: Sequence[Sequence[float]],
        metadatas: Sequence[dict] | None = None,
        ids: Sequence[str | None] | None = None,
    ) -> list[str]:
        """Add texts with precomputed embeddings; returns their ids (new ids where ``None``)."""
        if not texts:
            return []
        vecs = self._vectors(embeddings)
        id_list = None if ids is None else [d if d else _new_id() for d in ids]
        return self._ensure_store(vecs.shape[1]).add(texts, vecs, ids=id_list, metadatas=metadatas)

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        *,
        ids: list[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and add texts (re-adding an id replaces that document); returns their ids."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not a single string")
        items = list(texts)
        return self.add_embeddings(items, self.embedding.embed_documents(items), metadatas, ids)

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        *,
        ids: list[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async :meth:`add_texts`: embeds with ``aembed_documents``."""
        items = list(texts)
        vectors = await self.embedding.aembed_documents(items)
        return self.add_embeddings(items, vectors, metadatas, ids)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete documents by id (unknown ids are ignored)."""
        if ids is None:
            raise ValueError("delete() needs the ids of the documents to delete")
        if self._store is not None:
            self._store.delete(ids)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents by id (unknown ids are left out)."""
        if self._store is None:
            return []
        return [
            Document(page_content=r.text, metadata=r.metadata, id=r.id)
            for r in self._store.get(list(ids))
            if r is not None
        ]

    # ------------------------------------------------------------------ search
    def similarity_search_with_score_by_vector(
        self,
        embedding: Sequence[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        score_threshold: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """The ``k`` best documents for a query vector with their cosine similarity."""
        if self._store is None:
            return []
        hits = self._store.search(
            self._vectors([embedding]), k=k, filter=filter, score_threshold=score_threshold
        )[0]
        return [(_document(h), h.score) for h in hits]

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        score_threshold: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The ``k`` best documents for a query vector."""
        pairs = self.similarity_search_with_score_by_vector(embedding, k, filter, score_threshold)
        return [doc for doc, _ in pairs]

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        score_threshold: float | None = None,
        *,
        search_type: str = "similarity",
        alpha: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """The ``k`` best documents for ``query`` with their scores, best first.

        ``search_type``: ``"similarity"`` (cosine similarities), ``"lexical"`` (BM25 scores)
        or ``"hybrid"`` (fused scores; ``alpha`` weighs dense against lexical, default:
        reciprocal rank fusion). ``score_threshold`` drops documents scoring below it;
        ``filter`` keeps documents whose metadata match.
        """
        mode = _mode(search_type)
        if self._store is None:
            return []
        vec = None if mode == "lexical" else self.embedding.embed_query(query)
        return self._search(query, vec, k, filter, score_threshold, mode, alpha)

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async :meth:`similarity_search_with_score`: embeds with ``aembed_query``."""
        mode = _mode(kwargs.pop("search_type", "similarity"))
        if self._store is None:
            return []
        vec = None if mode == "lexical" else await self.embedding.aembed_query(query)
        return self._search(query, vec, k, kwargs.get("filter"), kwargs.get("score_threshold"), mode,
                            kwargs.get("alpha"))

    def _search(
        self, query: str, vec: Sequence[float] | None, k: int, filter: Mapping[str, Any] | None,
        score_threshold: float | None, mode: str, alpha: float | None,
    ) -> list[tuple[Document, float]]:
        """The core store's search in ``mode`` (it checks the options)."""
        assert self._store is not None
        text = {"query": query} if mode != "dense" else {}
        hits = self._store.search(None if vec is None else self._vectors([vec]), k=k, filter=filter,
                                  score_threshold=score_threshold, mode=mode, alpha=alpha, **text)[0]
        return [(_document(h), h.score) for h in hits]

    def similarity_search(
        self,
        query: str,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        score_threshold: float | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The ``k`` best documents for ``query``, best first (``search_type``, ``alpha``: as in
        :meth:`similarity_search_with_score`)."""
        pairs = self.similarity_search_with_score(query, k, filter, score_threshold, **kwargs)
        return [doc for doc, _ in pairs]

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """Async :meth:`similarity_search`."""
        return [doc for doc, _ in await self.asimilarity_search_with_score(query, k, **kwargs)]

    def as_retriever(self, **kwargs: Any) -> Qwen3VectorStoreRetriever:
        """A retriever over this store; ``search_type`` may also be ``"lexical"`` or ``"hybrid"``
        (``search_kwargs`` then take ``k``, ``filter``, ``score_threshold`` and ``alpha``)."""
        tags = kwargs.pop("tags", None) or [*self._get_retriever_tags()]
        return Qwen3VectorStoreRetriever(vectorstore=self, tags=tags, **kwargs)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # Scores are cosine similarities; LangChain wants relevance in [0, 1]: clipping keeps
        # `search_type="similarity_score_threshold"` thresholds on the cosine scale.
        return lambda score: min(1.0, max(0.0, score))

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Diverse results: MMR over the ``fetch_k`` nearest documents."""
        if self._store is None:
            return []
        query = self._vectors([embedding])
        hits = self._store.search(query, k=fetch_k, filter=filter)[0]
        if not hits:
            return []
        stored = self._store.vectors([h.id for h in hits])
        chosen = maximal_marginal_relevance(query[0], stored.tolist(), lambda_mult=lambda_mult, k=k)
        return [_document(hits[i]) for i in chosen]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Diverse results for ``query``: MMR over the ``fetch_k`` nearest documents."""
        vec = self.embedding.embed_query(query)
        return self.max_marginal_relevance_search_by_vector(vec, k, fetch_k, lambda_mult, filter)

    # ------------------------------------------------------------------ build / persist
    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        index: str | Mapping[str, Any] = "auto",
        **kwargs: Any,
    ) -> Qwen3FaissVectorStore:
        """A new store holding ``texts`` (embedded with ``embedding``)."""
        store = cls(embedding, index=index)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    def save_local(self, folder_path: str | os.PathLike[str]) -> None:
        """Save to a directory (atomically; Faiss + SQLite + JSON, no pickle)."""
        if self._store is None:
            raise ValueError("nothing to save: the store is empty and its dimension unknown")
        self._store.save(folder_path)

    @classmethod
    def load_local(
        cls, folder_path: str | os.PathLike[str], embeddings: Embeddings, *, check_model: bool = True,
        **kwargs: Any,
    ) -> Qwen3FaissVectorStore:
        """Open a saved store (from :meth:`save_local`, the CLI or LlamaIndex).

        No ``allow_dangerous_deserialization`` is needed: nothing is unpickled. Raises
        ``EmbedderMismatchError`` when ``embeddings`` is a ``Qwen3Embeddings`` of another model
        or size than the store was built with (``check_model=False``: only of another size, with
        a warning that the model isn't checked).
        """
        store = FaissStore.load(folder_path, embedder=_embedder_of(embeddings) if check_model else None)
        return cls(embeddings, store, check_model=check_model)  # (checked there without the model)


class Qwen3VectorStoreRetriever(VectorStoreRetriever):
    """LangChain's ``VectorStoreRetriever`` with the store's ``"lexical"`` and ``"hybrid"``
    search types too (from :meth:`Qwen3FaissVectorStore.as_retriever`)."""

    allowed_search_types: ClassVar[Collection[str]] = (*VectorStoreRetriever.allowed_search_types,
                                                        "lexical", "hybrid")

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        if self.search_type not in _TEXT_SEARCH_TYPES:
            return super()._get_relevant_documents(query, run_manager=run_manager, **kwargs)
        return self.vectorstore.similarity_search(query, search_type=self.search_type,
                                                  **(self.search_kwargs | kwargs))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        if self.search_type not in _TEXT_SEARCH_TYPES:
            return await super()._aget_relevant_documents(query, run_manager=run_manager, **kwargs)
        return await self.vectorstore.asimilarity_search(query, search_type=self.search_type,
                                                         **(self.search_kwargs | kwargs))


_TEXT_SEARCH_TYPES = ("lexical", "hybrid")
_MODES = {"similarity": "dense", "dense": "dense", "lexical": "lexical", "hybrid": "hybrid"}


def _mode(search_type: str) -> str:
    """The core store's search mode for a LangChain ``search_type``."""
    if search_type not in _MODES:
        raise ValueError(f"search_type must be one of {sorted(_MODES)}, got {search_type!r}")
    return _MODES[search_type]


def _document(hit: Hit) -> Document:
    return Document(page_content=hit.text, metadata=hit.metadata, id=hit.id)


def _new_id() -> str:
    return uuid.uuid4().hex
