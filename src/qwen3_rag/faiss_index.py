"""Names of the store's Faiss layer, importable from here as well as from :mod:`qwen3_rag.store`.

Index kinds live in :mod:`qwen3_rag.store.kinds`, training in :mod:`qwen3_rag.store.training`,
the Faiss import in :mod:`qwen3_rag.store.faiss_lib` and index operations in
:mod:`qwen3_rag.store.vectors`; this module only re-exports them. Settings such as
``FLAT_MAX`` or ``TWO_LEVEL_MIN_NLIST`` are read from those modules: change them there.

Example:
    >>> from qwen3_rag.faiss_index import IndexSpec, choose_kind
    >>> choose_kind(1_000), IndexSpec.for_size("ivf", 1_000_000).nlist
    ('flat', 4096)
"""

from qwen3_rag.store.faiss_lib import cpu_flags, faiss_module, openblas_coretype
from qwen3_rag.store.kinds import (
    FLAT_MAX,
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    HNSW_M,
    INDEX_KINDS,
    SQ8_MIN,
    TRAIN_POINTS_PER_LIST,
    IndexSpec,
    build_index,
    choose_kind,
    default_nlist,
    default_nprobe,
    default_pq_m,
)
from qwen3_rag.store.training import (
    TWO_LEVEL_MIN_NLIST,
    split_shares,
    train_index,
    training_sample,
    two_level_centroids,
)
from qwen3_rag.store.vectors import (
    is_exhaustive,
    reconstruct,
    remove_ids,
    search_params,
    set_parallel_mode,
    supports_remove,
    to_gpu,
)

__all__ = [
    "FLAT_MAX",
    "HNSW_EF_CONSTRUCTION",
    "HNSW_EF_SEARCH",
    "HNSW_M",
    "INDEX_KINDS",
    "SQ8_MIN",
    "TRAIN_POINTS_PER_LIST",
    "TWO_LEVEL_MIN_NLIST",
    "IndexSpec",
    "build_index",
    "choose_kind",
    "cpu_flags",
    "default_nlist",
    "default_nprobe",
    "default_pq_m",
    "faiss_module",
    "is_exhaustive",
    "openblas_coretype",
    "reconstruct",
    "remove_ids",
    "search_params",
    "set_parallel_mode",
    "split_shares",
    "supports_remove",
    "to_gpu",
    "train_index",
    "training_sample",
    "two_level_centroids",
]
