"""The vector store: :class:`FaissStore` and its parts.

A store is vectors in Faiss and ids / texts / metadata in SQLite, saved as a versioned
directory (atomic saves, nothing pickled). The parts, one concept each:

================================= ==============================================================
module                            owns
================================= ==============================================================
:mod:`~.faiss_store`              :class:`FaissStore`, the facade keeping the parts in step
:mod:`~.documents`                the SQLite documents table and metadata filters
:mod:`~.lexical`                  the FTS5 (BM25) index of the texts, its tokenizers
:mod:`~.modes`                    the search modes: dense, lexical, hybrid
:mod:`~.fusion`                   fusing two rankings (reciprocal rank, weighted scores)
:mod:`~.vectors`                  the Faiss index: add / remove by key, search, GPU copy
:mod:`~.kinds`                    index kinds (:class:`IndexSpec`), what ``index="auto"`` picks
:mod:`~.training`                 IVF training (two-level k-means for many lists)
:mod:`~.query`                    which search answers a query (filters, widening, exact)
:mod:`~.layout`                   the versioned directory on disk, manifest, atomic save
:mod:`~.fingerprint`              the embedder a store was built with, and the check
:mod:`~.bulk`                     :class:`BulkLoad`, many staged documents at once
:mod:`~.faiss_lib`                importing Faiss (with the CPU's OpenBLAS kernels)
================================= ==============================================================

Example:
    >>> import numpy as np
    >>> from qwen3_rag.store import FaissStore
    >>> store = FaissStore(2)
    >>> store.add(["north", "east"], np.eye(2, dtype="float32"), ids=["n", "e"])
    ['n', 'e']
    >>> store.search(np.array([0.9, 0.1], dtype="float32"), k=1)[0][0].id
    'n'
"""

from qwen3_rag.store.bulk import BulkLoad
from qwen3_rag.store.documents import FILTER_OPERATORS, Documents, Hit, Record, compile_filter
from qwen3_rag.store.faiss_lib import faiss_module
from qwen3_rag.store.faiss_store import FaissStore, StoreParts
from qwen3_rag.store.fingerprint import (
    EmbedderMismatchError,
    check_fingerprint,
    fingerprint_of,
    model_identity,
)
from qwen3_rag.store.kinds import (
    FLAT_MAX,
    INDEX_KINDS,
    SQ8_MIN,
    IndexSpec,
    build_index,
    choose_kind,
    spec_for_size,
    spec_of,
)
from qwen3_rag.store.layout import (
    CURRENT,
    DOCS_FILE,
    FORMAT_VERSION,
    INDEX_FILE,
    MANIFEST,
    StoreError,
    StoreWriteError,
    read_manifest,
)
from qwen3_rag.store.lexical import TOKENIZERS, LexicalConfig
from qwen3_rag.store.lock import StoreLockedError, writer_lock
from qwen3_rag.store.modes import SEARCH_MODES
from qwen3_rag.store.query import EXACT_FILTER_MAX
from qwen3_rag.store.training import train_index, training_sample
from qwen3_rag.store.vectors import VectorIndex

__all__ = [
    "CURRENT",
    "DOCS_FILE",
    "EXACT_FILTER_MAX",
    "FILTER_OPERATORS",
    "FLAT_MAX",
    "FORMAT_VERSION",
    "INDEX_FILE",
    "INDEX_KINDS",
    "MANIFEST",
    "SEARCH_MODES",
    "SQ8_MIN",
    "TOKENIZERS",
    "BulkLoad",
    "Documents",
    "EmbedderMismatchError",
    "FaissStore",
    "Hit",
    "IndexSpec",
    "LexicalConfig",
    "Record",
    "StoreError",
    "StoreLockedError",
    "StoreParts",
    "StoreWriteError",
    "VectorIndex",
    "build_index",
    "check_fingerprint",
    "choose_kind",
    "compile_filter",
    "faiss_module",
    "fingerprint_of",
    "model_identity",
    "read_manifest",
    "spec_for_size",
    "spec_of",
    "train_index",
    "training_sample",
    "writer_lock",
]
