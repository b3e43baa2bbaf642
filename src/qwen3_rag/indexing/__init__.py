"""Corpus indexing: a corpus into a :class:`~qwen3_rag.FaissStore`, streamed and resumable exactly.

============================ ===============================================================
module                       owns
============================ ===============================================================
:mod:`~.job`                 :class:`IndexJob`, :func:`index_corpus`, :class:`IndexReport`
:mod:`~.sources`             the readers: JSONL, CSV, Parquet, folders of text, iterables
:mod:`~.records`             a record → (id, text, metadata), or why not
:mod:`~.chunking`            long documents as overlapping token windows
:mod:`~.staging`             the staging files that make a killed job resumable
:mod:`~.stream`              read, chunk, embed, stage, commit
:mod:`~.builder`             the store built in the background while the corpus is embedded
============================ ===============================================================

Example:
    >>> from qwen3_rag import Qwen3Embedder, FaissStore, index_corpus
    >>> from qwen3_rag.testing import make_tiny_qwen3
    >>> emb = Qwen3Embedder(make_tiny_qwen3("/tmp/qwen3-rag-doctest-emb"), backend="hf")
    >>> docs = [{"id": "a", "text": "Paris is in France.", "lang": "en"}, {"id": "b", "text": "Hallo."}]
    >>> report = index_corpus(docs, "/tmp/qwen3-rag-doctest-idx", emb, resume=False, show_progress=False)
    >>> report.documents, len(FaissStore.load("/tmp/qwen3-rag-doctest-idx", emb))
    (2, 2)
"""

from qwen3_rag.indexing.builder import ADD_BATCH, TRAIN_AT, StoreBuilder
from qwen3_rag.indexing.chunking import check_chunking, chunk_document, chunk_spans
from qwen3_rag.indexing.job import IndexJob, IndexOptions, IndexReport, index_corpus, recorded_reranker
from qwen3_rag.indexing.records import document_of
from qwen3_rag.indexing.sources import BadInputError, EmptyCorpusError, Item, Source, open_source
from qwen3_rag.indexing.staging import STAGED_VECTORS, STAGING, Row, Staging, interrupted_run
from qwen3_rag.indexing.stream import PLAN_AT

__all__ = [
    "ADD_BATCH",
    "PLAN_AT",
    "STAGED_VECTORS",
    "STAGING",
    "TRAIN_AT",
    "BadInputError",
    "EmptyCorpusError",
    "IndexJob",
    "IndexOptions",
    "IndexReport",
    "Item",
    "Row",
    "Source",
    "Staging",
    "StoreBuilder",
    "check_chunking",
    "chunk_document",
    "chunk_spans",
    "document_of",
    "index_corpus",
    "interrupted_run",
    "open_source",
    "recorded_reranker",
]
