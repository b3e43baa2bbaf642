"""The vectors of a store: one Faiss index under int64 keys, its training, search and GPU copy.

:class:`VectorIndex` owns the index of a :class:`~qwen3_rag.store.kinds.IndexSpec` (``None``
until an IVF index whose list count depends on the data is trained), adds and removes vectors
by key, decodes them (:meth:`~VectorIndex.reconstruct`), rebuilds into another kind, and
searches, on a copy on all GPUs when Faiss sees some. Which search to run for a query (filters,
widening, exact scoring) is :mod:`qwen3_rag.store.query`'s.

:class:`VectorIndex` is not thread-safe: :class:`~qwen3_rag.store.FaissStore` calls it under
its lock.

Example:
    >>> import numpy as np
    >>> vi = VectorIndex.new(4, IndexSpec("flat"))
    >>> vi.add(np.eye(4, dtype="float32"), np.array([10, 11, 12, 13]))
    >>> vi.ntotal, vi.reconstruct(np.array([12])).tolist()
    (4, [[0.0, 0.0, 1.0, 0.0]])
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from qwen3_rag.store.faiss_lib import faiss_module
from qwen3_rag.store.kinds import IndexSpec, build_index, default_nprobe
from qwen3_rag.store.training import train_index, training_sample

logger = logging.getLogger("qwen3_rag")

ADD_BATCH = 65536
"""Vectors given to Faiss per call when an index is rebuilt, and rows per block of exact scoring."""


def as_matrix(vectors: Any, dim: int, what: str) -> np.ndarray:
    """``vectors`` as a C-contiguous float32 ``(n, dim)`` array (one ``(dim,)`` vector: one row);
    ``ValueError`` for another shape, NaN or infinity (``what`` names them)."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{what} must have shape (n, {dim}), got {np.shape(vectors)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return np.ascontiguousarray(arr)


def search_params(spec: IndexSpec, index: Any, selector: Any = None, widen: int = 1) -> Any:
    """Faiss ``SearchParameters`` for one search; ``widen`` multiplies nprobe / efSearch."""
    faiss = faiss_module()
    if spec.is_ivf:
        nlist = int(index.nlist)
        nprobe = min(nlist, (spec.nprobe or default_nprobe(nlist)) * widen)
        return faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
    if spec.kind == "hnsw":
        return faiss.SearchParametersHNSW(sel=selector, efSearch=spec.ef_search * widen)
    return faiss.SearchParameters(sel=selector)


def set_parallel_mode(index: Any, nq: int) -> None:
    """Split an IVF search over inverted lists when there are fewer queries than threads.

    Faiss splits a search over its queries by default (``parallel_mode`` 0), so a single query
    runs on one core; over the probed lists (mode 1) it uses them all: on 16 cores a single
    query over 1M vectors is several times faster. Batches of queries keep mode 0.
    Non-IVF indexes are left alone. Results are the same either way.
    """
    faiss = faiss_module()
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.parallel_mode = 1 if nq < faiss.omp_get_max_threads() else 0


def is_exhaustive(spec: IndexSpec, index: Any, widen: int) -> bool:
    """True when a search with this ``widen`` already looks at every vector."""
    if spec.kind == "flat":
        return True
    if spec.is_ivf:
        return (spec.nprobe or 1) * widen >= int(index.nlist)
    return False


def supports_remove(spec: IndexSpec) -> bool:
    """HNSW graphs cannot drop vectors: the store leaves them as unreachable orphans."""
    return spec.kind != "hnsw"


def remove_ids(index: Any, iids: np.ndarray) -> None:
    """Remove int64 keys from an index (IDMap2 or IVF with a hash-table direct map)."""
    if len(iids):
        faiss = faiss_module()
        keys = np.ascontiguousarray(iids, dtype=np.int64)
        # An IVF hash-table direct map takes the keys as an array; the other indexes test every
        # stored vector for membership, which a batch selector (a hash set) answers in O(1).
        ivf = faiss.try_extract_index_ivf(index) is not None
        index.remove_ids(faiss.IDSelectorArray(keys) if ivf else faiss.IDSelectorBatch(keys))


def reconstruct(index: Any, iids: np.ndarray, batch: int = ADD_BATCH) -> np.ndarray:
    """The stored vectors of ``iids`` (decoded, for compressed kinds), float32 (n, d)."""
    out = np.empty((len(iids), index.d), dtype=np.float32)
    for s in range(0, len(iids), batch):
        part = np.ascontiguousarray(iids[s : s + batch], dtype=np.int64)
        out[s : s + len(part)] = index.reconstruct_batch(part)
    return out


def to_gpu(index: Any) -> Any | None:
    """A copy of ``index`` on all visible GPUs, or ``None`` when none (or unsupported)."""
    faiss = faiss_module()
    if not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() == 0:
        return None
    return faiss.index_cpu_to_all_gpus(index)


class VectorIndex:
    """A store's Faiss index (inner product, int64 keys) and its spec.

    Args:
        dim: vector dimension.
        spec: what ``index`` is (recorded in the manifest).
        index: the Faiss index (CPU), or ``None`` before an IVF index is trained.
        gpu: search on a copy on all GPUs when Faiss sees some (``"auto"``), never (``False``).
    """

    def __init__(self, dim: int, spec: IndexSpec, index: Any = None, *, gpu: bool | str = "auto"):
        self.dim = dim
        self.spec = spec
        self.index = index
        self.gpu = gpu
        self._gpu_index: Any = None

    @classmethod
    def new(cls, dim: int, spec: IndexSpec, *, gpu: bool | str = "auto") -> VectorIndex:
        """An empty index of ``spec`` (none yet for an IVF kind without ``nlist``: see :meth:`train`)."""
        return cls(dim, spec, build_index(spec, dim) if not spec.is_ivf or spec.nlist else None, gpu=gpu)

    @classmethod
    def read(cls, path: str | os.PathLike[str], spec: IndexSpec) -> VectorIndex:
        """A saved ``index.faiss`` of ``spec``, with its search parameters set (Faiss raises
        ``RuntimeError`` for a damaged file)."""
        faiss = faiss_module()
        index = faiss.read_index(os.fspath(path))
        if spec.is_ivf:
            faiss.extract_index_ivf(index).nprobe = spec.nprobe or 16
        elif spec.kind == "hnsw":
            faiss.downcast_index(index.index).hnsw.efSearch = spec.ef_search
        return cls(int(index.d), spec, index)

    def write(self, path: str | os.PathLike[str]) -> None:
        """Save the index as a Faiss file."""
        faiss_module().write_index(self.index, os.fspath(path))

    @property
    def ntotal(self) -> int:
        """Vectors in the index (HNSW orphans included)."""
        return int(self.index.ntotal) if self.index is not None else 0

    @property
    def trained(self) -> bool:
        """The index exists and takes vectors."""
        return self.index is not None and bool(self.index.is_trained)

    # ------------------------------------------------------------------ changes
    def train(self, sample: np.ndarray, expected_size: int | None = None) -> None:
        """Build and train an IVF index on ``sample`` (no-op for other kinds), its unset
        parameters sized for ``expected_size`` vectors (default: the sample's size)."""
        if not self.spec.is_ivf:
            return
        if self.index is not None and self.index.ntotal:
            raise ValueError("the IVF index already holds vectors; train before the first add")
        self.spec = self.spec.resized(expected_size or len(sample), self.dim)
        if len(sample) < (self.spec.nlist or 0):
            raise ValueError(
                f"an IVF index with nlist={self.spec.nlist} needs at least {self.spec.nlist} "
                f"training vectors (about {self.spec.train_size()} recommended), got {len(sample)}"
            )
        index = build_index(self.spec, self.dim)
        train_index(index, training_sample(sample, self.spec.train_size()))
        self._replace(index, self.spec)

    def add(self, vectors: np.ndarray, keys: np.ndarray) -> None:
        """Add float32 C-contiguous ``(n, dim)`` vectors under new ``keys``."""
        self._gpu_index = None
        self.index.add_with_ids(vectors, np.ascontiguousarray(keys, dtype=np.int64))

    def remove(self, keys: np.ndarray) -> None:
        """Drop the vectors of deleted or replaced documents (HNSW keeps them as orphans)."""
        self._gpu_index = None
        if supports_remove(self.spec):
            remove_ids(self.index, keys)

    def discard(self, keys: np.ndarray) -> None:
        """Undo :meth:`add` of ``keys`` (its documents could not be stored)."""
        self._gpu_index = None
        remove_ids(self.index, keys)

    def ensure_index(self) -> None:
        """An untrained IVF store (no vectors at all) is saved as an empty flat index."""
        if self.index is None:
            self._replace(build_index(IndexSpec("flat"), self.dim), IndexSpec("flat"))

    def rebuild(self, spec: IndexSpec, keys: np.ndarray) -> None:
        """Rebuild into ``spec`` holding the vectors of ``keys`` (trained on them for IVF)."""
        vecs = self.reconstruct(keys)
        index = build_index(spec, self.dim)
        if spec.is_ivf:
            train_index(index, training_sample(vecs, spec.train_size()))
        for s in range(0, len(keys), ADD_BATCH):
            index.add_with_ids(vecs[s : s + ADD_BATCH], keys[s : s + ADD_BATCH])
        logger.info("qwen3_rag: store index rebuilt as %s for %d vectors", spec.kind, len(keys))
        self._replace(index, spec)

    def _replace(self, index: Any, spec: IndexSpec) -> None:
        self.index, self.spec, self._gpu_index = index, spec, None

    # ------------------------------------------------------------------ reads
    def reconstruct(self, keys: np.ndarray) -> np.ndarray:
        """The stored vectors of ``keys``, float32 ``(n, dim)`` (decoded for compressed kinds)."""
        return reconstruct(self.index, keys) if len(keys) else np.empty((0, self.dim), np.float32)

    def check_keys(self, keys: np.ndarray) -> None:
        """``ValueError`` unless every one of ``keys`` is a key of the index."""
        try:
            reconstruct(self.index, np.asarray(keys, dtype=np.int64))
        except RuntimeError as e:
            raise ValueError(f"document keys {keys[0]}..{keys[-1]} are not all keys of the index: {e}") from e

    def search(
        self, q: np.ndarray, k: int, selector: Any = None, widen: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw Faiss search: ``(scores, keys)``, ``-1`` keys where fewer than ``k`` were found.

        Without a ``selector`` and ``widen`` the search runs on the GPU copy, if any (on the
        CPU should the GPU fail); ``widen`` multiplies the lists (IVF) or candidates (HNSW)
        looked at.
        """
        if selector is None and widen == 1:
            try:
                return self._search_index().search(q, k)
            except Exception:  # pragma: no cover - GPU failure: stay on CPU
                return self.index.search(q, k, params=search_params(self.spec, self.index))
        return self.index.search(q, k, params=search_params(self.spec, self.index, selector, widen))

    def selector(self, keys: np.ndarray) -> Any:
        """A Faiss selector admitting only ``keys``."""
        return faiss_module().IDSelectorBatch(keys)

    def exhaustive(self, widen: int) -> bool:
        """A search with this ``widen`` already looks at every vector."""
        return is_exhaustive(self.spec, self.index, widen)

    def prepare_search(self, nq: int) -> None:
        """Set the index up for a search of ``nq`` queries (see :func:`set_parallel_mode`)."""
        set_parallel_mode(self.index, nq)

    def _search_index(self) -> Any:
        """The GPU copy when there is one (made on first use), else the CPU index."""
        if self.gpu is False or self.spec.kind == "hnsw":
            return self.index
        if self._gpu_index is None:
            try:
                self._gpu_index = to_gpu(self.index)
                if self._gpu_index is not None and self.spec.is_ivf:
                    faiss_module().GpuParameterSpace().set_index_parameter(
                        self._gpu_index, "nprobe", self.spec.nprobe or 16
                    )
            except Exception as e:  # pragma: no cover - needs GPU Faiss
                logger.warning("qwen3_rag: GPU Faiss unavailable for this index (%s); using CPU", e)
                self.gpu = False
                self._gpu_index = None
        return self._gpu_index if self._gpu_index is not None else self.index

    def release(self) -> None:
        """Drop the GPU copy."""
        self._gpu_index = None


__all__ = [
    "VectorIndex",
    "as_matrix",
    "is_exhaustive",
    "reconstruct",
    "remove_ids",
    "search_params",
    "set_parallel_mode",
    "supports_remove",
    "to_gpu",
]
