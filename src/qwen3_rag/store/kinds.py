"""Faiss index choices for :class:`qwen3_rag.FaissStore`: what ``index="auto"`` picks, and how.

Vectors are L2-normalised, so every index uses inner product (= cosine). The kinds:

========== ============================================ ==========================================
kind       Faiss index                                  use
========== ============================================ ==========================================
``flat``   ``IndexIDMap2(IndexFlatIP)``                 exact; ``auto`` below ``FLAT_MAX`` vectors
``ivf``    ``IndexIVFFlat`` (``nlist`` ≈ 4·√n)          ``auto`` up to ``SQ8_MIN`` vectors
``ivf-sq8`` ``IndexIVFScalarQuantizer`` (8-bit)         4× smaller; ``auto`` from ``SQ8_MIN`` (~10M)
``ivf-pq`` ``IndexIVFPQ`` (``d/4`` bytes per vector)    16× smaller, lower recall (explicit only)
``hnsw``   ``IndexIDMap2(IndexHNSWFlat(M=32))``         graph index, no native delete (explicit only)
========== ============================================ ==========================================

Recall@10 of each kind at these defaults is measured by ``benchmarks/faiss_recall.py``
(figures in ``docs/faiss_store.md``).

Example:
    >>> from qwen3_rag.faiss_index import IndexSpec, choose_kind
    >>> choose_kind(1_000), choose_kind(1_000_000), choose_kind(20_000_000)
    ('flat', 'ivf', 'ivf-sq8')
    >>> IndexSpec.for_size("ivf", 1_000_000).nlist
    4096
"""

from __future__ import annotations

import math
import os
import platform
import sys
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

INDEX_KINDS = ("flat", "ivf", "ivf-sq8", "ivf-pq", "hnsw")
FLAT_MAX = 200_000
"""Below this many vectors ``auto`` keeps exact search."""
SQ8_MIN = 5_000_000
"""From this many vectors ``auto`` stores 8-bit codes (IVF-SQ8) instead of float32."""
TRAIN_POINTS_PER_LIST = 50
TWO_LEVEL_MIN_NLIST = 2048
"""From this many IVF lists the coarse centroids come from two-level k-means (see :func:`train_index`)."""
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


def openblas_coretype(flags: set[str]) -> str | None:
    """The OpenBLAS kernels (``OPENBLAS_CORETYPE``) for an x86-64 CPU with these
    ``/proc/cpuinfo`` flags: ``SkylakeX`` with AVX-512, ``Haswell`` with AVX2 and FMA, else None.

    Example:
        >>> openblas_coretype({"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"})
        'SkylakeX'
        >>> openblas_coretype({"avx2", "fma"}), openblas_coretype({"sse4_2"})
        ('Haswell', None)
    """
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def cpu_flags() -> set[str]:
    """This CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def faiss_module() -> Any:
    """Import faiss with a clear message when it is missing.

    The faiss-cpu wheels (1.15.1 and earlier) bundle OpenBLAS 0.3.15, which falls back to its
    slowest kernels ("Prescott", SSE3) on Intel CPUs it does not know (OpenMathLib/OpenBLAS#4267,
    fixed in 0.3.25): every matrix product of Faiss, such as assigning vectors to IVF lists,
    then runs ~6x slower (31 against 193 GFLOP/s on the dev VM). So the first import names the
    kernels the CPU supports in ``OPENBLAS_CORETYPE``, read once when the library loads, and
    removes the variable again. A value the user set is left alone.
    """
    if "faiss" in sys.modules:
        return sys.modules["faiss"]
    coretype = None
    if "OPENBLAS_CORETYPE" not in os.environ and platform.machine() in ("x86_64", "AMD64"):
        coretype = openblas_coretype(cpu_flags())
    if coretype:
        os.environ["OPENBLAS_CORETYPE"] = coretype
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("FaissStore needs faiss: pip install faiss-cpu (or faiss-gpu)") from e
    finally:
        if coretype:
            os.environ.pop("OPENBLAS_CORETYPE", None)
    return faiss


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

    def to_dict(self) -> dict[str, Any]:
        """The parameters that matter for this kind (for manifests and display)."""
        hnsw = ("hnsw_m", "ef_construction", "ef_search")
        return {k: v for k, v in asdict(self).items()
                if v is not None and (self.kind == "hnsw" or k not in hnsw)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexSpec:
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


def train_index(index: Any, sample: np.ndarray) -> None:
    """Train ``index`` (an IVF index from :func:`build_index`) on ``sample``.

    With ``TWO_LEVEL_MIN_NLIST`` lists or more the coarse centroids come from two-level k-means
    (:func:`two_level_centroids`): for 4,096 lists over 1024-d vectors training took 12.9 s
    against 144.9 s for one k-means over all lists on 2 cores, with the same recall@10 in
    ``benchmarks/faiss_recall.py`` (docs/faiss_store.md). Smaller indexes use Faiss's k-means.
    """
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    nlist = int(getattr(index, "nlist", 0))
    if nlist >= TWO_LEVEL_MIN_NLIST and len(sample) >= nlist:
        index.quantizer.add(two_level_centroids(sample, nlist))  # then train() keeps them
    index.train(sample)


def two_level_centroids(sample: np.ndarray, k: int, niter: int = 10, seed: int = 1234) -> np.ndarray:
    """``k`` spherical k-means centroids of ``sample`` in two levels, as Faiss's
    ``faiss.contrib.clustering.two_level_clustering``: √k clusters first, then each one split
    into a share of ``k`` in proportion to its size, with at least one centroid per cluster
    (Faiss's version gives a cluster smaller than ``len(sample) / k`` none, and fails).

    Example:
        >>> x = np.random.default_rng(0).normal(size=(2000, 8)).astype(np.float32)
        >>> two_level_centroids(x / np.linalg.norm(x, axis=1, keepdims=True), 64).shape
        (64, 8)
    """
    faiss = faiss_module()
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if len(sample) < k:
        raise ValueError(f"two-level k-means of {k} centroids needs at least {k} vectors, got {len(sample)}")
    d = sample.shape[1]
    opts = {"niter": niter, "spherical": True, "seed": seed, "min_points_per_centroid": 1}
    first = faiss.Kmeans(d, max(1, round(math.sqrt(k))), max_points_per_centroid=2000, **opts)
    first.train(sample)
    _, assign = first.index.search(sample, 1)
    assign = assign.ravel()
    shares = split_shares(np.bincount(assign, minlength=first.k), k)
    parts = []
    for c in np.flatnonzero(shares):
        members = sample[assign == c]
        if shares[c] == len(members):
            parts.append(members)  # as many centroids as points: the points themselves
            continue
        km = faiss.Kmeans(d, int(shares[c]), max_points_per_centroid=256, **opts)
        km.train(members)
        parts.append(km.centroids)
    return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)


def split_shares(sizes: np.ndarray, k: int) -> np.ndarray:
    """``k`` split over clusters of ``sizes`` in proportion (largest remainders), every non-empty
    cluster getting at least 1 (where ``k`` allows) and at most its size.

    Example:
        >>> split_shares(np.array([900, 3, 0, 97]), 20).tolist()
        [18, 1, 0, 1]
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if k > sizes.sum():
        raise ValueError(f"cannot split {k} centroids over {int(sizes.sum())} vectors")
    exact = sizes * k / max(1, sizes.sum())
    shares = np.minimum(np.maximum(np.floor(exact).astype(np.int64), (sizes > 0).astype(np.int64)), sizes)
    while shares.sum() < k:  # to the largest remainders that have room
        room = np.where(shares < sizes, exact - shares, -np.inf)
        shares[int(np.argmax(room))] += 1
    while shares.sum() > k:  # from the most over their share that keep one
        over = np.where(shares > 1, shares - exact, -np.inf)
        if np.isneginf(over.max()):  # fewer centroids than clusters: the smallest get none
            over = np.where(shares > 0, -exact, -np.inf)
        shares[int(np.argmax(over))] -= 1
    return shares


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


def reconstruct(index: Any, iids: np.ndarray, batch: int = 65536) -> np.ndarray:
    """The stored vectors of ``iids`` (decoded, for compressed kinds), float32 (n, d)."""
    out = np.empty((len(iids), index.d), dtype=np.float32)
    for s in range(0, len(iids), batch):
        part = np.ascontiguousarray(iids[s : s + batch], dtype=np.int64)
        out[s : s + len(part)] = index.reconstruct_batch(part)
    return out


def training_sample(vectors: np.ndarray, size: int) -> np.ndarray:
    """Evenly spaced rows (deterministic), at most ``size`` of them."""
    n = len(vectors)
    if n <= size:
        return vectors
    rows = np.linspace(0, n - 1, size).astype(np.int64)
    return vectors[rows]


def to_gpu(index: Any) -> Any | None:
    """A copy of ``index`` on all visible GPUs, or ``None`` when none (or unsupported)."""
    faiss = faiss_module()
    if not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() == 0:
        return None
    return faiss.index_cpu_to_all_gpus(index)


__all__ = [
    "FLAT_MAX",
    "INDEX_KINDS",
    "SQ8_MIN",
    "IndexSpec",
    "build_index",
    "choose_kind",
    "default_nlist",
    "default_nprobe",
    "split_shares",
    "train_index",
    "two_level_centroids",
]
