"""The stream of an indexing job: read, (chunk), embed and stage a source, batch after batch.

Documents stream through bounded batches. One batch is embedded (in a worker thread; the
engines release the GIL) while the next is read and the previous one is staged: the batches
and their order stay exactly those of an uninterrupted run, so a resumed run gives the same
store. Two embedding threads: the next batch is handed to the embedder before the current one
returns, so an engine pool's workers always have queued work (engines in this process
serialise).

Every ``commit_every`` source positions the staged batches are committed
(:meth:`Staging.commit <qwen3_rag.indexing.staging.Staging.commit>`) and handed to the
:class:`~qwen3_rag.indexing.builder.StoreBuilder`. At the first commit past
:data:`PLAN_AT` of the source, an index chosen by size is planned for the source's size (where
it can tell: files, sized iterables) times the vectors per record seen so far (chunking); the
plan is kept in the staging files for a resumed run.

Example:
    >>> checked_vectors([[1.0, 0.0]], 1, 2).dtype
    dtype('float32')
"""

from __future__ import annotations

import json
import logging
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import astuple, dataclass
from typing import Any

import numpy as np

from qwen3_rag.indexing.builder import StoreBuilder
from qwen3_rag.indexing.chunking import chunk_document
from qwen3_rag.indexing.records import item_document
from qwen3_rag.indexing.sources import BadInputError, Item, Source
from qwen3_rag.indexing.staging import Row, Staging

logger = logging.getLogger("qwen3_rag")

PLAN_AT = 0.02
"""An index chosen by size is planned at the first commit past this fraction of the source."""


@dataclass
class Counts:
    """Running totals of a job (over all its runs), as staged with each batch."""

    documents: int = 0
    """Documents read (records that could be indexed)."""
    chunks: int = 0
    """Vectors made (= documents without chunking)."""
    skipped: int = 0
    """Bad records skipped."""


@dataclass
class _Batch:
    """A batch handed to the embedder, staged once its vectors are back."""

    future: Future[Any] | None
    rows: list[Row]
    positions: int
    counts: tuple[int, int, int]


def checked_vectors(vectors: Any, n: int, dim: int) -> np.ndarray:
    """The embedder's output as staged: float32, C-contiguous, ``(n, dim)``, finite."""
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.shape != (n, dim):
        raise ValueError(f"the embedder returned vectors of shape {arr.shape} for {n} texts; "
                         f"expected ({n}, {dim})")
    if not np.isfinite(arr).all():
        raise ValueError("the embedder returned NaN or infinite values")
    return arr


class Streamer:
    """Streams one source into the staging files from position ``start`` (a resumed run's).

    Args:
        source: the corpus.
        staging: the job's staging files (vectors file open).
        builder: takes the committed rows in the background (and plans the index).
        embedder: embeds a batch of texts (``embed_documents``; ``tokenizer`` when chunking).
        options: the job's :class:`~qwen3_rag.indexing.job.IndexOptions`.
        start: source positions committed before this run.
        expected: the source's size (``None``: unknown), for the plan and the progress bar.
    """

    def __init__(self, source: Source, staging: Staging, builder: StoreBuilder, embedder: Any,
                 options: Any, start: int, expected: int | None):
        self.source, self.st, self.builder, self.embedder = source, staging, builder, embedder
        self.options = options
        self.start, self.expected = start, expected
        self.consumed = self.committed = start
        self.counts = Counts(staging.get("documents", 0), staging.get("chunks", 0), staging.get("skipped", 0))
        self.pending: list[Row] = []
        self.pending_positions = 0
        self.inflight: _Batch | None = None
        self.bar: Any = None
        self.pool: ThreadPoolExecutor | None = None

    def run(self) -> None:
        """Read the source to its end, staging and committing as it goes; marks it complete."""
        from tqdm.auto import tqdm

        show = self.options.show_progress
        visible = show if show is not None else sys.stderr.isatty()
        self.bar = tqdm(total=self.expected if visible else None, initial=self.start, unit="doc",
                        desc="indexing", disable=not visible, dynamic_ncols=True)
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="qwen3-rag-embed")
        self.builder.feed(self.st.committed)  # a resumed run: the committed rows go in meanwhile
        try:
            for position, item in enumerate(self.source.items(self.start), start=self.start):
                self._read(position, item)
                if len(self.pending) >= self.options.batch_size:
                    self._flush()
            self._flush()
            self._stage()
            self.st.set("complete", True)
            self.st.commit()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.bar.close()

    def _read(self, position: int, item: Item) -> None:
        """One source position: its rows into the pending batch, or a bad record skipped."""
        opts = self.options
        self.pending_positions += 1
        doc = item_document(item, opts.text_field, opts.id_field, position) if item.record is not None \
            else item.reason
        if isinstance(doc, str):
            if not opts.skip_bad_lines:
                raise BadInputError(f"{item.where}: {doc} (skip_bad_lines=True, --skip-bad-lines, "
                                    "skips and counts such records)")
            self.counts.skipped += 1
            logger.warning("qwen3_rag: skipping %s: %s", item.where, doc)
            return
        self.counts.documents += 1
        doc_id, text, meta = doc
        if opts.chunk_tokens is None:
            self.pending.append((doc_id, text, json.dumps(meta, ensure_ascii=False)))
            self.counts.chunks += 1
            return
        parts = chunk_document(doc_id, text, meta, self.embedder.tokenizer, opts.chunk_tokens,
                               opts.chunk_overlap)
        self.pending += [(i, t, json.dumps(m, ensure_ascii=False)) for i, t, m in parts]
        self.counts.chunks += len(parts)

    def _flush(self) -> None:
        """Hand the pending batch to the embedder, then stage the batch before it."""
        assert self.pool is not None
        texts = [t for _, t, _ in self.pending]
        future = self.pool.submit(self.embedder.embed_documents, texts) if texts else None
        self._stage()
        self.inflight = _Batch(future, self.pending, self.pending_positions, astuple(self.counts))
        self.pending, self.pending_positions = [], 0

    def _stage(self) -> None:
        """Stage the batch in flight once embedded; commit when ``commit_every`` positions are due."""
        batch, self.inflight = self.inflight, None
        if batch is None:
            return
        if batch.rows:
            assert batch.future is not None
            self.st.append(batch.rows, checked_vectors(batch.future.result(), len(batch.rows), self.st.dim))
        self.consumed += batch.positions
        self.st.set("consumed", self.consumed)
        for key, value in zip(("documents", "chunks", "skipped"), batch.counts, strict=True):
            self.st.set(key, value)
        if self.consumed - self.committed >= self.options.commit_every:
            self._commit()
        self.bar.update(batch.positions)

    def _commit(self) -> None:
        """Commit what is staged (with a plan for the index, when it is due) and feed the builder."""
        plan = None
        if self.builder.store is None and self.expected and self.consumed >= PLAN_AT * self.expected:
            vectors = self.st.committed + self.st.pending
            # about n vectors: the source's size times the vectors per record so far
            plan = max(vectors, round(vectors / self.consumed * self.expected))
            self.st.set("plan", plan)  # kept for a resumed run, in the same transaction
        self.st.commit()
        self.committed = self.consumed
        if plan is not None:
            self.builder.plan(plan)
        self.builder.feed(self.st.committed)


__all__ = ["PLAN_AT", "Counts", "Streamer", "checked_vectors"]
