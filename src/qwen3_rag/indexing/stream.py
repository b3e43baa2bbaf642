"""The stream of an indexing job: read, (chunk), embed and stage a source, batch after batch.

Documents stream through bounded batches. One batch is embedded (in a worker thread; the
engines release the GIL) while the next is read and the previous one is staged: the batches
and their order stay exactly those of an uninterrupted run, so a resumed run gives the same
store. Two embedding threads: the next batch is handed to the embedder before the current one
returns, so an engine pool's workers always have queued work (engines in this process
serialise).

Records are read a block (:data:`BLOCK` positions) at a time and classified against the store
(:class:`~qwen3_rag.indexing.changes.Changes`): unchanged ones are not embedded, only marked.

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
from dataclasses import astuple, dataclass, field, fields
from itertools import islice
from typing import Any

import numpy as np

from qwen3_rag.indexing.builder import StoreBuilder
from qwen3_rag.indexing.changes import Changes
from qwen3_rag.indexing.chunking import chunk_document
from qwen3_rag.indexing.records import Document, item_document
from qwen3_rag.indexing.sources import BadInputError, Item, Source
from qwen3_rag.indexing.staging import Row, Staging

logger = logging.getLogger("qwen3_rag")

PLAN_AT = 0.02
"""An index chosen by size is planned at the first commit past this fraction of the source."""
BLOCK = 512
"""Source positions read and classified (one SQL lookup) at a time."""


@dataclass
class Counts:
    """Running totals of a job (over all its runs), as staged with each batch."""

    documents: int = 0
    """Documents read (records that could be indexed)."""
    chunks: int = 0
    """Vectors made (= documents without chunking)."""
    skipped: int = 0
    """Bad records skipped."""
    added: int = 0
    """Records of ids the store did not have."""
    updated: int = 0
    """Records that replaced the store's documents of their id (other content, settings or model)."""
    unchanged: int = 0
    """Records the store had as they are: not embedded."""
    repeated: int = 0
    """Records staged whose id an earlier record of this run had (the later one wins)."""


@dataclass
class _Batch:
    """A batch handed to the embedder, staged once its vectors are back."""

    future: Future[Any] | None
    rows: list[Row]
    positions: int
    counts: tuple[int, ...]
    unchanged: list[str] = field(default_factory=list)


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
        changes: classifies records against the store.
    """

    def __init__(self, source: Source, staging: Staging, builder: StoreBuilder, embedder: Any,
                 options: Any, start: int, expected: int | None, changes: Changes):
        self.source, self.st, self.builder, self.embedder = source, staging, builder, embedder
        self.options = options
        self.start, self.expected = start, expected
        self.changes = changes
        self.consumed = self.committed = start
        self.counts = Counts(*(staging.get(f.name, 0) for f in fields(Counts)))
        self.pending: list[Row] = []
        self.pending_unchanged: list[str] = []
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
            items = enumerate(self.source.items(self.start), start=self.start)
            while block := list(islice(items, BLOCK)):
                self._read_block(block)
            self._flush()
            self._stage()
            self.st.set("complete", True)
            self.st.commit()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.bar.close()

    def _read_block(self, block: list[tuple[int, Item]]) -> None:
        """Read and classify a block of source positions, staging what changed."""
        opts = self.options
        docs: list[Document | str] = [
            item_document(item, opts.text_field, opts.id_field, position) if item.record is not None
            else (item.reason or "unreadable") for position, item in block]
        readable = [(d, self.changes.hash(d)) for d in docs if not isinstance(d, str)]
        batches = self.pending + (self.inflight.rows if self.inflight else [])
        kinds = iter(zip(readable, self.changes.classify(
            readable, {r[3] for r in batches},
            {*self.pending_unchanged, *(self.inflight.unchanged if self.inflight else [])}), strict=True))
        for (_position, item), doc in zip(block, docs, strict=True):
            self.pending_positions += 1
            if isinstance(doc, str):
                self._skip(item, doc)
            else:
                (_, h), (kind, repeated) = next(kinds)
                self._read(doc, h, kind, repeated)
            if len(self.pending) >= opts.batch_size or self.pending_positions >= opts.commit_every:
                self._flush()

    def _skip(self, item: Item, reason: str) -> None:
        """A bad record: skipped and counted, or the error."""
        if not self.options.skip_bad_lines:
            raise BadInputError(f"{item.where}: {reason} (skip_bad_lines=True, --skip-bad-lines, "
                                "skips and counts such records)")
        self.counts.skipped += 1
        logger.warning("qwen3_rag: skipping %s: %s", item.where, reason)

    def _read(self, doc: Document, h: str, kind: str, repeated: bool) -> None:
        """One record: its rows into the pending batch, or marked unchanged."""
        opts = self.options
        self.counts.documents += 1
        setattr(self.counts, kind, getattr(self.counts, kind) + 1)
        doc_id, text, meta = doc
        if kind == "unchanged":
            self.pending_unchanged.append(doc_id)
            return
        self.counts.repeated += repeated
        if opts.chunk_tokens is None:
            self.pending.append((doc_id, text, json.dumps(meta, ensure_ascii=False), doc_id, h))
            self.counts.chunks += 1
            return
        parts = chunk_document(doc_id, text, meta, self.embedder.tokenizer, opts.chunk_tokens,
                               opts.chunk_overlap)
        self.pending += [(i, t, json.dumps(m, ensure_ascii=False), doc_id, h) for i, t, m in parts]
        self.counts.chunks += len(parts)

    def _flush(self) -> None:
        """Hand the pending batch to the embedder, then stage the batch before it."""
        assert self.pool is not None
        texts = [row[1] for row in self.pending]
        future = self.pool.submit(self.embedder.embed_documents, texts) if texts else None
        self._stage()
        self.inflight = _Batch(future, self.pending, self.pending_positions, astuple(self.counts),
                               self.pending_unchanged)
        self.pending, self.pending_positions, self.pending_unchanged = [], 0, []

    def _stage(self) -> None:
        """Stage the batch in flight once embedded; commit when ``commit_every`` positions are due."""
        batch, self.inflight = self.inflight, None
        if batch is None:
            return
        if batch.rows:
            assert batch.future is not None
            self.st.append(batch.rows, checked_vectors(batch.future.result(), len(batch.rows), self.st.dim))
        self.st.mark_unchanged(batch.unchanged)
        self.consumed += batch.positions
        self.st.set("consumed", self.consumed)
        for key, value in zip((f.name for f in fields(Counts)), batch.counts, strict=True):
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


__all__ = ["BLOCK", "PLAN_AT", "Counts", "Streamer", "checked_vectors"]
