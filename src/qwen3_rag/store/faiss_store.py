"""``FaissStore``: vectors in Faiss, ids / texts / metadata in SQLite, atomic versioned saves.

The facade over the store's parts: :class:`~qwen3_rag.store.documents.Documents` (the SQLite
table, its filters and its lexical index), :class:`~qwen3_rag.store.vectors.VectorIndex` (the
Faiss index), :mod:`~qwen3_rag.store.modes` (dense, lexical and hybrid search) and
:mod:`~qwen3_rag.store.layout` (the versioned directory on disk). It keeps the parts in step
(one key per document, in each) under one lock.

In memory, Faiss holds the vectors and a SQLite database (a temporary file, not RAM) holds
the texts, so large collections don't keep their texts in Python objects. A loaded store
reads the saved database in place until its first change (copy on write).

Example:
    >>> import numpy as np
    >>> from qwen3_rag import FaissStore
    >>> store = FaissStore(4)
    >>> vecs = np.eye(4, dtype="float32")
    >>> store.add(["a", "b", "c", "d"], vecs, ids=["1", "2", "3", "4"],
    ...           metadatas=[{"lang": "en"}, {"lang": "fr"}, {"lang": "en"}, {"lang": "de"}])
    ['1', '2', '3', '4']
    >>> [h.id for h in store.search(vecs[2], k=2, filter={"lang": "en"})[0]]
    ['3', '1']
    >>> [(h.id, h.sources) for h in store.search(vecs[0], k=2, mode="hybrid", query="c")[0]]
    [('3', {'dense': 3, 'lexical': 1}), ('1', {'dense': 1})]
    >>> _ = store.save("/tmp/qwen3-rag-doctest-store")
    >>> len(FaissStore.load("/tmp/qwen3-rag-doctest-store"))
    4
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qwen3_rag.formats import check_texts
from qwen3_rag.store.bulk import BulkLoad
from qwen3_rag.store.documents import Documents, Hit, Record, document_rows
from qwen3_rag.store.faiss_lib import faiss_module
from qwen3_rag.store.fingerprint import check_fingerprint, fingerprint_of
from qwen3_rag.store.kinds import IndexSpec, auto_spec, spec_of
from qwen3_rag.store.layout import FORMAT_VERSION, check_base, check_count, open_version, save_version
from qwen3_rag.store.lexical import DEFAULT_TOKENIZER, LexicalConfig
from qwen3_rag.store.lock import writer_lock
from qwen3_rag.store.modes import DEFAULT_RRF_K, SearchPlan
from qwen3_rag.store.vectors import VectorIndex, as_matrix


@dataclass
class StoreParts:
    """What a :class:`FaissStore` is made of, for stores opened or assembled elsewhere
    (:meth:`FaissStore.load`, :meth:`FaissStore.from_index`)."""

    vectors: VectorIndex
    documents: Documents
    auto: bool = False
    """Re-choose the index kind by size on save (``index="auto"``)."""
    fingerprint: dict[str, Any] | None = None
    """The embedder recorded at build time."""
    created_at: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | os.PathLike[str], verify: str) -> tuple[str, dict[str, Any], StoreParts]:
        """The version name, manifest and parts of a saved store (see :meth:`FaissStore.load`)."""
        version, manifest, vectors, documents = open_version(path, verify)
        parts = cls(vectors, documents, auto=bool(manifest.get("auto", False)),
                    fingerprint=manifest.get("embedder"),
                    created_at=float(manifest.get("created_at", time.time())),
                    extra=dict(manifest.get("extra") or {}))
        return version, manifest, parts

    @classmethod
    def assemble(
        cls, index: Any, documents: Iterable[tuple[int, str, str, str | Mapping[str, Any]]], spec: IndexSpec,
        embedder: Any, auto: bool, batch_size: int, lexical: str | Mapping[str, Any] | LexicalConfig | None,
    ) -> tuple[int, StoreParts]:
        """The dimension and parts of :meth:`FaissStore.from_index` (see there), checked."""
        if getattr(index, "metric_type", None) != faiss_module().METRIC_INNER_PRODUCT:
            raise ValueError("the index must use inner product (faiss.METRIC_INNER_PRODUCT)")
        dim = int(index.d)
        fingerprint = fingerprint_of(embedder)
        if fingerprint is not None:
            check_fingerprint(None, dim, embedder, "this store")
        vectors = VectorIndex(dim, spec, index)
        docs = Documents.from_rows(documents, batch_size,
                                   None if lexical is None else LexicalConfig.of(lexical))
        try:
            if docs.count != vectors.ntotal:
                raise ValueError(f"the index holds {index.ntotal} vectors but {docs.count} documents "
                                 "were given")
            if docs.count:
                vectors.check_keys(np.array(docs.key_range(), dtype=np.int64))
        except BaseException:
            docs.close()
            raise
        return dim, cls(vectors, docs, auto=auto, fingerprint=fingerprint)


class FaissStore:
    """A vector store: Faiss for the vectors, SQLite for ids, texts and metadata.

    Args:
        dim: vector dimension.
        path: default directory for :meth:`save`.
        index: ``"auto"`` (exact search for small collections, IVF for large ones, 8-bit IVF
            from 5M; re-chosen by size on :meth:`optimize`, which :meth:`save` calls), a kind
            of :data:`qwen3_rag.store.INDEX_KINDS`, a dict of
            :class:`~qwen3_rag.store.IndexSpec` fields or an ``IndexSpec``.
        embedder: a ``Qwen3Embedder`` (or its ``fingerprint`` dict) whose model is recorded,
            so that :meth:`load` can refuse another embedder.
        gpu: search on all GPUs (``faiss.index_cpu_to_all_gpus``) when Faiss sees some
            (``"auto"``), never (``False``).
        expected_size: with ``index="auto"``, pick the index for this many vectors now
            (an IVF choice then needs :meth:`train` before the first :meth:`add`).
        lexical: the lexical (BM25) index's tokenizer, ``"unicode61"`` (words, diacritics
            removed) or ``"trigram"``, or a dict / :class:`~qwen3_rag.store.lexical.LexicalConfig`
            also naming metadata fields to index; ``None``: built at the first lexical search.
        parts: the parts of a store opened or assembled elsewhere (:meth:`load`,
            :meth:`from_index`); ``index``, ``embedder``, ``expected_size`` and ``lexical`` are
            then unused.

    Vectors are expected L2-normalised (what ``Qwen3Embedder`` returns): scores are inner
    products, i.e. cosine similarities. Re-adding an id replaces its text, vector and metadata.
    A store is safe to use from several threads; only one process should write a directory.
    """

    def __init__(
        self,
        dim: int,
        path: str | os.PathLike[str] | None = None,
        index: str | Mapping[str, Any] | IndexSpec = "auto",
        *,
        embedder: Any = None,
        gpu: bool | str = "auto",
        expected_size: int | None = None,
        lexical: str | Mapping[str, Any] | LexicalConfig | None = DEFAULT_TOKENIZER,
        parts: StoreParts | None = None,
    ):
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if parts is None:
            spec = spec_of(index, dim, expected_size)
            fingerprint = fingerprint_of(embedder)
            if fingerprint is not None:
                check_fingerprint(None, dim, embedder, "this store")
            documents = Documents.new(None if lexical is None else LexicalConfig.of(lexical))
            parts = StoreParts(VectorIndex.new(dim, spec), documents, auto=index == "auto",
                               fingerprint=fingerprint)
        self.dim = dim
        self.path = Path(path) if path is not None else None
        self.auto = parts.auto
        """Re-choose the index kind by size on :meth:`optimize` (``index="auto"``)."""
        self._vectors = parts.vectors
        self._vectors.gpu = gpu
        self._documents = parts.documents
        self._fingerprint = parts.fingerprint
        self._lock = threading.RLock()
        self.created_at = parts.created_at
        self.extra = parts.extra
        """JSON-serialisable notes saved in the manifest (e.g. the last indexing run)."""
        self._base: tuple[str, str] | None = None  # (store path, version) this store was loaded from

    # ------------------------------------------------------------------ basics
    @property
    def fingerprint(self) -> dict[str, Any] | None:
        """The embedder recorded at build time (``{"model", "dimension"}``), if any."""
        return dict(self._fingerprint) if self._fingerprint else None

    @property
    def version(self) -> str | None:
        """The version directory (``"v-000003"``) loaded from or last saved to, or ``None``."""
        return self._base[1] if self._base else None

    @property
    def spec(self) -> IndexSpec:
        """The index kind and parameters in use now."""
        return self._vectors.spec

    @property
    def index_kind(self) -> str:
        """The Faiss index kind in use now (``"flat"``, ``"ivf"``, ...)."""
        return self.spec.kind

    @property
    def index(self) -> Any:
        """The underlying Faiss index (CPU); ``None`` before an IVF index is trained."""
        return self._vectors.index

    @property
    def lexical(self) -> LexicalConfig | None:
        """The lexical index's config (``None``: not built yet; the first lexical search builds it)."""
        return self._documents.lexical

    @property
    def gpu(self) -> bool | str:
        """Whether searches use a GPU copy (``"auto"``: when Faiss sees GPUs)."""
        return self._vectors.gpu

    def __len__(self) -> int:
        return self._documents.count

    def __contains__(self, doc_id: object) -> bool:
        with self._lock:
            return doc_id in self._documents

    def __repr__(self) -> str:
        model = (self._fingerprint or {}).get("model")
        return f"FaissStore(dim={self.dim}, n={len(self)}, index={self.spec.kind!r}, model={model!r})"

    def check_embedder(self, embedder: Any, *, check_model: bool = True) -> None:
        """Raise :class:`EmbedderMismatchError` when ``embedder`` didn't build these vectors
        (``check_model=False``: only when its dimension differs; a warning says the model isn't checked)."""
        check_fingerprint(self._fingerprint, self.dim, embedder, f"store {self.path or '(in memory)'}",
                          check_model=check_model)

    # ------------------------------------------------------------------ writes
    def train(self, vectors: Any, expected_size: int | None = None) -> None:
        """Train an IVF index on sample vectors (``auto`` and ``flat`` need no training).

        ``expected_size`` (default: the sample size) sets ``nlist`` when it wasn't given.
        """
        sample = as_matrix(vectors, self.dim, "training vectors")
        with self._lock:
            self._vectors.train(sample, expected_size)

    def add(
        self,
        texts: Iterable[str],
        vectors: Any,
        ids: Iterable[str] | None = None,
        metadatas: Iterable[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Add (or replace, by id) documents with their vectors; returns their ids.

        Without ``ids``, random ids (uuid4 hex) are given. ``metadatas`` are JSON-serialisable
        dicts (filterable by key in :meth:`search`).
        """
        items = check_texts(texts)
        n = len(items)
        vecs = as_matrix(vectors, self.dim, "vectors") if n else np.empty((0, self.dim), np.float32)
        if len(vecs) != n:
            raise ValueError(f"got {n} texts but {len(vecs)} vectors")
        id_list, meta_json = document_rows(n, ids, metadatas)
        if n == 0:
            return []
        with self._lock:
            if not self._vectors.trained:
                if n < (self.spec.nlist or 16):
                    raise ValueError(
                        f"index {self.spec.kind!r} must be trained first: call store.train(vectors) "
                        "with a representative sample, or use index='auto'"
                    )
                self.train(vecs)
            old = self._documents.keys_of(id_list)
            keys = self._documents.next_keys(n)
            self._vectors.add(vecs, keys)
            self._documents.next_key += n
            try:
                self._documents.insert(keys, id_list, items, meta_json, replacing=old)
            except Exception:
                self._vectors.discard(keys)
                raise
            if len(old):
                self._vectors.remove(old)
        return id_list

    def bulk_load(self) -> BulkLoad:
        """Start a bulk load: documents staged in SQLite and their vectors as arrays, added
        without a Python object per document (see :mod:`qwen3_rag.store.bulk`)."""
        return BulkLoad(self._documents, self._vectors, self._lock)

    def delete(self, ids: Iterable[str]) -> int:
        """Delete documents by id (unknown ids are ignored); returns how many were deleted."""
        id_list = [ids] if isinstance(ids, str) else list(ids)
        with self._lock:
            old = self._documents.keys_of(id_list)
            if not len(old):
                return 0
            self._documents.delete_keys(old)
            self._vectors.remove(old)
            return len(old)

    def optimize(self, force: bool = False) -> bool:
        """With ``index="auto"``, rebuild into the kind suited to the current size.

        Returns True when the index was rebuilt. Also drops HNSW orphans (deleted vectors)
        when ``force`` is set.
        """
        with self._lock:
            if self.auto:
                want, suits = auto_spec(self.spec, len(self), self.dim)
                if suits and not force:
                    return False
            elif not force or self.index is None:
                return False
            else:
                want = self.spec
            self._vectors.rebuild(want, self._documents.keys(ordered=True))
            return True

    # ------------------------------------------------------------------ reads
    def get(self, ids: Iterable[str]) -> list[Record | None]:
        """Documents by id, in the order asked (``None`` for unknown ids)."""
        id_list = [ids] if isinstance(ids, str) else list(ids)
        with self._lock:
            return self._documents.get(id_list)

    def vectors(self, ids: Iterable[str]) -> np.ndarray:
        """Stored vectors of documents by id, float32 (n, d) (decoded for compressed indexes)."""
        id_list = [ids] if isinstance(ids, str) else list(ids)
        with self._lock:
            found = self._documents.key_map(id_list)
            missing = [d for d in id_list if d not in found]
            if missing:
                raise KeyError(f"unknown id {missing[0]!r}")
            return self._vectors.reconstruct(np.array([found[d] for d in id_list], dtype=np.int64))

    def iter_records(self, batch_size: int = 1000,
                     filter: Mapping[str, Any] | None = None) -> Iterator[Record]:
        """All documents (those matching ``filter``, as in :meth:`search`), in insertion order
        (streamed)."""
        last = -1
        while True:
            with self._lock:
                page = self._documents.page(last, batch_size, filter)
            if not page:
                return
            for _, record in page:
                yield record
            last = page[-1][0]

    def search(
        self,
        vectors: Any = None,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        score_threshold: float | None = None,
        *,
        mode: str = "dense",
        query: str | Sequence[str] | None = None,
        alpha: float | None = None,
        rrf_k: float = DEFAULT_RRF_K,
        candidates: int | None = None,
    ) -> list[list[Hit]]:
        """The ``k`` best documents for each query, best first.

        Args:
            vectors: (n, d) query vectors, or one (d,) vector (still one list of hits back);
                not needed in lexical mode.
            k: hits per query; fewer only when fewer documents (matching ``filter``) exist
                (or, lexically, contain a query word).
            filter: metadata conditions (:mod:`qwen3_rag.store.filters`): ``{"lang": "en"}``,
                ``{"lang": {"$in": ["en", "fr"]}}``, ``$ne``, ``$gt``, ``$or``, ``$not``...;
                one it cannot evaluate raises ``FilterError`` (a ``ValueError``). A filtered
                search still returns ``k`` hits when ``k`` documents match (the store widens
                the search, then scores them exactly). Every mode applies it the same way.
            score_threshold: drop hits scoring below this (cosine similarity in dense mode,
                BM25 in lexical mode, the fused score in hybrid mode).
            mode: ``"dense"`` (vectors), ``"lexical"`` (BM25 over the texts) or ``"hybrid"``
                (both, fused); see :mod:`qwen3_rag.store.modes`. Each hit's ``sources`` name
                the retrievers that found it, with its rank there.
            query: the query text (one per query vector), needed in lexical and hybrid mode.
            alpha, rrf_k, candidates: hybrid only: fuse by ``alpha * dense + (1 - alpha) *
                lexical`` min-max normalised scores, else by reciprocal rank fusion (rank
                constant ``rrf_k``), the ``candidates`` best of each (default ``max(4 k, 20)``).
        """
        plan = SearchPlan.of(self.dim, vectors, k, mode, query, alpha=alpha, rrf_k=rrf_k,
                             candidates=candidates)
        with self._lock:
            return plan.run(self._vectors, self._documents, filter, score_threshold)

    def lexical_ids(self) -> list[str]:
        """The ids of the documents the lexical index holds terms of (read from the FTS5 index
        itself), in key order; builds the index where there is none."""
        with self._lock:
            keys = self._documents.lexical_keys().tolist()
            rows = self._documents.rows(keys)
            return [rows[k][0] for k in keys]

    def rebuild_lexical(self, lexical: str | Mapping[str, Any] | LexicalConfig | None = None) -> None:
        """(Re)build the lexical index, with another tokenizer or fields when given (default:
        its config, or ``"unicode61"``); :meth:`save` then saves it."""
        config = LexicalConfig.of(lexical) if lexical is not None else self.lexical or LexicalConfig()
        with self._lock:
            self._documents.rebuild_lexical(config)

    # ------------------------------------------------------------------ persistence
    def manifest(self) -> dict[str, Any]:
        """What :meth:`save` records next to the index."""
        from qwen3_rag import __version__

        with self._lock:
            return {
                "format_version": FORMAT_VERSION,
                "dimension": self.dim,
                "count": len(self),
                "next_iid": self._documents.next_key,
                "index": self.spec.to_dict(),
                "auto": self.auto,
                "embedder": self.fingerprint,
                "lexical": self.lexical.to_dict() if self.lexical is not None else None,
                "metric": "inner_product",
                "created_at": self.created_at,
                "saved_at": time.time(),
                "qwen3_rag_version": __version__,
                "extra": self.extra,
            }

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the store to ``path`` (default: the store's path) atomically; returns the path.

        A new version directory is written and fsynced, then ``CURRENT`` is replaced with
        ``os.replace``; earlier versions are removed afterwards. A crash at any point leaves
        the previous version loadable (see :mod:`qwen3_rag.store.layout`). A save writes a
        complete new version: it needs that much free space next to the current one.

        Raises:
            StoreLockedError: another process is writing the directory (one writer per store).
            StoreError: the directory holds a newer version than the one this store was loaded
                from (another process saved it since: load it again), or the save failed for a
                full disk or a read-only directory (``StoreWriteError``, naming the path).
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no path: pass save(path) or create the store with path=...")
        with self._lock, writer_lock(target):
            check_base(target, self._base)
            if self.auto:
                self.optimize()
            self._vectors.ensure_index()
            version = save_version(target, self._vectors, self._documents, self.manifest())
            if self.path is None:
                self.path = target
            self._base = (os.path.realpath(target), version)
        return target

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], embedder: Any = None, *, gpu: bool | str = "auto",
        verify: str = "checksum", check_model: bool = True,
    ) -> FaissStore:
        """Open a saved store.

        Checks the format version and dimension, and each file against the size and checksum
        its manifest records (``verify="checksum"``, reading every byte once: about a second
        per GB; ``verify="size"`` checks sizes only, for very large stores); a damaged file
        raises :class:`StoreError` naming it and its version directory. With ``embedder`` (a
        ``Qwen3Embedder`` or its fingerprint dict), raises :class:`EmbedderMismatchError` when
        it isn't the embedder the store was built with (``check_model=False``: only for another
        dimension, with a warning that the model isn't checked). Loading needs no lock: readers can
        open a store while one process writes it.
        """
        version, manifest, parts = StoreParts.open(path, verify)
        store = cls(manifest["dimension"], path, gpu=gpu, parts=parts)
        store._base = (os.path.realpath(path), version)
        store.check_embedder(embedder, check_model=check_model)
        check_count(path, manifest, len(store))
        return store

    @classmethod
    def from_index(
        cls,
        index: Any,
        documents: Iterable[tuple[int, str, str, str | Mapping[str, Any]]],
        *,
        spec: IndexSpec,
        embedder: Any = None,
        auto: bool = False,
        path: str | os.PathLike[str] | None = None,
        batch_size: int = 8192,
        lexical: str | Mapping[str, Any] | LexicalConfig | None = DEFAULT_TOKENIZER,
    ) -> FaissStore:
        """A store around a Faiss index built elsewhere (e.g. per-shard indexes merged into one).

        Args:
            index: an inner-product Faiss index holding one vector per document under int64
                keys, of the kind ``spec`` describes (as :func:`~qwen3_rag.store.build_index`
                makes it).
            documents: ``(key, id, text, metadata)`` per document, streamed; ``key`` is the
                index key of its vector, ``metadata`` a dict or its JSON text (an object).
            spec: the index's :class:`~qwen3_rag.store.IndexSpec` (saved in the manifest).
            embedder: the embedder (or its fingerprint dict) that made the vectors.
            auto: behave as ``index="auto"`` from now on (re-chosen by size on save).
            lexical: the lexical index (as in :class:`FaissStore`), built once the documents are in.

        Raises ``ValueError`` when ids repeat, keys are not those of the index, or a metadata
        text is not a JSON object.
        """
        dim, parts = StoreParts.assemble(index, documents, spec, embedder, auto, batch_size, lexical)
        return cls(dim, path, parts=parts)

    def close(self) -> None:
        """Release the SQLite connection (the store is unusable afterwards)."""
        with self._lock:
            self._documents.close()
            self._vectors.release()


__all__ = ["FaissStore", "StoreParts"]
