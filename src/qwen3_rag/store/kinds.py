"""Faiss index kinds of :class:`qwen3_rag.FaissStore`: what ``index="auto"`` picks, with which
parameters, and how each kind's empty Faiss index is built.

Vectors are L2-normalised, so every index uses inner product (= cosine). The kinds:

========== ============================================ ==========================================
kind       Faiss index                                  use
========== ============================================ ==========================================
``flat``   ``IndexIDMap2(IndexFlatIP)``                 exact; ``auto`` below ``FLAT_MAX`` vectors
``ivf``    ``IndexIVFFlat`` (``nlist`` ≈ 4·√n)          ``auto`` up to ``SQ8_MIN`` vectors
``ivf-sq8`` ``IndexIVFScalarQuantizer`` (8-bit)         4× smaller; ``auto`` from ``SQ8_MIN`` (5M)
``ivf-pq`` ``IndexIVFPQ`` (``d/4`` bytes per vector)    16× smaller, lower recall (explicit only)
``hnsw``   ``IndexIDMap2(IndexHNSWFlat(M=32))``         graph index, no native delete (explicit only)
========== ============================================ ==========================================

Recall@10 of each kind at these defaults is measured by ``benchmarks/faiss_recall.py``
(figures in ``docs/performance.md``). Training lives in :mod:`qwen3_rag.store.training`.

Example:
    >>> from qwen3_rag.store import IndexSpec, choose_kind
    >>> choose_kind(1_000), choose_kind(1_000_000), choose_kind(20_000_000)
    ('flat', 'ivf', 'ivf-sq8')
    >>> IndexSpec.for_size("ivf", 1_000_000).nlist
    4096
    >>> spec_of({"kind": "ivf", "nprobe": 4}, dim=8).resized(10_000, 8).to_dict()
    {'kind': 'ivf', 'nlist': 512, 'nprobe': 4}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from qwen3_rag.store.faiss_lib import faiss_module

INDEX_KINDS = ("flat", "ivf", "ivf-sq8", "ivf-pq", "hnsw")
FLAT_MAX = 200_000
"""Below this many vectors ``auto`` keeps exact search."""
SQ8_MIN = 5_000_000
"""From this many vectors ``auto`` stores 8-bit codes (IVF-SQ8) instead of float32."""
TRAIN_POINTS_PER_LIST = 50
"""Training vectors per IVF list."""
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


def choose_kind(n: int) -> str:
    """The index kind ``index="auto"`` uses for ``n`` vectors."""
    if n < FLAT_MAX:
        return "flat"
    return "ivf" if n < SQ8_MIN else "ivf-sq8"


def default_nlist(n: int) -> int:
    """IVF list count for ``n`` vectors: the power of two nearest 4·√n, in [16, 65536]."""
    target = 4.0 * math.sqrt(max(n, 1))
    return int(min(65536, max(16, 2 ** round(math.log2(target)))))


def default_nprobe(nlist: int) -> int:
    """Lists probed per query: nlist/16 (at least 16) — recall@10 ≥ 0.95 in the benchmark."""
    return int(min(nlist, max(16, nlist // 16)))


def default_pq_m(dim: int) -> int:
    """PQ sub-quantizers: the largest divisor of ``dim`` not above ``dim / 4`` (1 byte each)."""
    for m in range(max(1, dim // 4), 0, -1):
        if dim % m == 0:
            return m
    return 1  # pragma: no cover - 1 always divides


@dataclass(frozen=True)
class IndexSpec:
    """A concrete index choice and its parameters (recorded in the store's manifest)."""

    kind: str = "flat"
    nlist: int | None = None
    nprobe: int | None = None
    pq_m: int | None = None
    hnsw_m: int = HNSW_M
    ef_construction: int = HNSW_EF_CONSTRUCTION
    ef_search: int = HNSW_EF_SEARCH

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"index kind must be 'auto' or one of {INDEX_KINDS}, got {self.kind!r}")

    @property
    def is_ivf(self) -> bool:
        """An inverted-file kind (``ivf``, ``ivf-sq8``, ``ivf-pq``): needs training."""
        return self.kind.startswith("ivf")

    @classmethod
    def for_size(cls, kind: str, n: int, dim: int | None = None, **overrides: Any) -> IndexSpec:
        """Default parameters of ``kind`` for a collection of ``n`` vectors."""
        spec = cls(kind=kind, **overrides)
        if spec.is_ivf and spec.nlist is None:
            spec = replace(spec, nlist=default_nlist(n))
        if spec.is_ivf and spec.nprobe is None:
            spec = replace(spec, nprobe=default_nprobe(spec.nlist or 16))
        if spec.kind == "ivf-pq" and spec.pq_m is None and dim is not None:
            spec = replace(spec, pq_m=default_pq_m(dim))
        return spec

    def resized(self, n: int, dim: int | None = None) -> IndexSpec:
        """This kind for ``n`` vectors: the parameters set here kept, the unset ones defaulted."""
        given = {k: v for k, v in self.to_dict().items() if k != "kind"}
        return IndexSpec.for_size(self.kind, n, dim, **given)

    def to_dict(self) -> dict[str, Any]:
        """The parameters that matter for this kind (for manifests and display)."""
        hnsw = ("hnsw_m", "ef_construction", "ef_search")
        return {k: v for k, v in asdict(self).items()
                if v is not None and (self.kind == "hnsw" or k not in hnsw)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexSpec:
        """The spec a manifest recorded (:meth:`to_dict`); unknown keys are ignored."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def train_size(self) -> int:
        """How many vectors training should see (0 when the kind needs no training)."""
        return TRAIN_POINTS_PER_LIST * (self.nlist or 0) if self.is_ivf else 0


def build_index(spec: IndexSpec, dim: int) -> Any:
    """A new, empty Faiss index for ``spec`` that accepts ``add_with_ids``."""
    faiss = faiss_module()
    ip = faiss.METRIC_INNER_PRODUCT
    if spec.kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if spec.kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, spec.hnsw_m, ip)
        inner.hnsw.efConstruction = spec.ef_construction
        inner.hnsw.efSearch = spec.ef_search
        return faiss.IndexIDMap2(inner)
    nlist = spec.nlist or 16
    quantizer = faiss.IndexFlatIP(dim)
    if spec.kind == "ivf":
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, ip)
    elif spec.kind == "ivf-sq8":
        index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, ip)
    else:
        m = spec.pq_m or default_pq_m(dim)
        if dim % m:
            raise ValueError(f"pq_m={m} must divide the dimension {dim}")
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8, ip)
    index.quantizer_trains_alone = 0
    index.own_fields = True
    quantizer.this.disown()  # the IVF index owns (and frees) its quantizer
    # ids are the store's int64 keys: a hash-table direct map allows reconstruct() and removal
    index.set_direct_map_type(faiss.DirectMap.Hashtable)
    index.nprobe = spec.nprobe or default_nprobe(nlist)
    return index


def spec_of(
    index: str | Mapping[str, Any] | IndexSpec, dim: int, expected_size: int | None = None
) -> IndexSpec:
    """The spec a store starts with for its ``index`` argument.

    ``"auto"`` is the kind for ``expected_size`` vectors (flat for none); a kind name or a dict
    of :class:`IndexSpec` fields leaves unset IVF parameters to training time.
    """
    if isinstance(index, str) and index == "auto":
        n = expected_size or 0
        return IndexSpec.for_size(choose_kind(n), n, dim)
    if isinstance(index, IndexSpec):
        return index
    if isinstance(index, Mapping):
        return IndexSpec(**index)
    if isinstance(index, str):
        return IndexSpec(index)
    raise TypeError(f"index must be 'auto', a kind name, a dict or an IndexSpec, got {index!r}")


def spec_for_size(index: str | IndexSpec, n: int, dim: int) -> IndexSpec:
    """The spec of an index built at once for ``n`` vectors: ``"auto"``, a kind or a spec, sized."""
    if isinstance(index, str) and index == "auto":
        return IndexSpec.for_size(choose_kind(n), n, dim)
    if isinstance(index, IndexSpec):
        return index.resized(n, dim)
    if isinstance(index, str):
        return IndexSpec.for_size(index, n, dim)
    raise TypeError(f"index must be 'auto', a kind of {INDEX_KINDS} or an IndexSpec, got {index!r}")


def auto_spec(current: IndexSpec, n: int, dim: int) -> tuple[IndexSpec, bool]:
    """The spec ``index="auto"`` wants for ``n`` vectors, and whether ``current`` still suits
    them (the same kind and, for IVF, a list count within a factor of 4 of the wanted one)."""
    want = IndexSpec.for_size(choose_kind(n), n, dim)
    ratio = (current.nlist or 1) / (want.nlist or 1)
    return want, want.kind == current.kind and (not want.is_ivf or 0.25 <= ratio <= 4)


__all__ = [
    "FLAT_MAX",
    "INDEX_KINDS",
    "SQ8_MIN",
    "IndexSpec",
    "auto_spec",
    "build_index",
    "choose_kind",
    "default_nlist",
    "default_nprobe",
    "default_pq_m",
    "spec_for_size",
    "spec_of",
]
