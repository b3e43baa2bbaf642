"""``index_corpus``: stream a corpus into a :class:`~qwen3_rag.FaissStore`, resumable exactly.

Documents stream through bounded batches: read, (chunk), embed, then staged in the store
directory: the rows (id, text, metadata JSON) in a SQLite database (``STORE/.indexing.sqlite``,
WAL journal), their vectors appended to a raw float32 file beside it
(``STORE/.indexing.vectors``; staged row ``seq`` is vector ``seq - 1``). Every ``commit_every``
documents the vectors file is fsynced, then one transaction records the new rows, how many
vectors are committed and how many source positions they cover; so a process killed at any
moment (SIGKILL included) loses only the uncommitted tail. A re-run cuts the vectors file back
to its committed length, skips the committed positions and continues with batches made
exactly as in an uninterrupted run, so the final store is the same (same ids, same vectors).

Meanwhile a background thread moves the committed rows into the store being built: vectors into
Faiss straight from the memory-mapped vectors file (large batches), rows into its documents
table in SQL (metadata stays JSON text). All Faiss work, the save included, runs in that thread.
With an engine pool on this host, while documents are still being embedded it gets the cores the
embedding leaves free (all cores less the engine pool's worker processes and two for this
process's reading and embedding threads: on a 16-core host with 4 engine workers, 10), so that
training and adding don't take CPU from the engines, which need it to keep the GPU busy; after
the stream it gets all cores. ``OMP_NUM_THREADS``, when set, is used throughout instead. So that
training and adding overlap the embedding, an index whose choice depends on the corpus size
(``index="auto"``, or an IVF kind's list count) is planned early: at the first commit past 2%
(``PLAN_AT``) of the source, for the source's size (where it can tell: files, sized iterables)
times the vectors per record seen so far (chunking), a plan kept for a resumed run. An index
that needs training (IVF) is then trained once half (``TRAIN_AT``) of the planned vectors are
committed, on an evenly spaced sample of those (a corpus sorted by topic thus trains its lists
on its first half: search stays correct, the lists are less even). Without a size, or when the
source ends before those points, the index is chosen and trained for the final size at the end,
on an evenly spaced sample of all vectors. When the source is exhausted only the last rows are
left to add; vectors of repeated ids are dropped (the last one wins), the store is saved
atomically and the staging files are removed.

Example:
    >>> from qwen3_rag import Qwen3Embedder, FaissStore, index_corpus
    >>> from qwen3_rag.testing import make_tiny_qwen3
    >>> emb = Qwen3Embedder(make_tiny_qwen3("/tmp/qwen3-rag-doctest-emb"), backend="hf")
    >>> docs = [{"id": "a", "text": "Paris is in France.", "lang": "en"}, {"id": "b", "text": "Hallo."}]
    >>> report = index_corpus(docs, "/tmp/qwen3-rag-doctest-idx", emb, resume=False, show_progress=False)
    >>> report.documents, len(FaissStore.load("/tmp/qwen3-rag-doctest-idx", emb))
    (2, 2)
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qwen3_rag import faiss_index as fx
from qwen3_rag.faiss_index import IndexSpec
from qwen3_rag.sources import BadInputError, EmptyCorpusError, Item, open_source
from qwen3_rag.store import CURRENT, FaissStore, check_fingerprint, fingerprint_of, read_manifest

logger = logging.getLogger("qwen3_rag")

STAGING = ".indexing.sqlite"
"""The staging database of an interrupted (or running) job, in the store directory."""
STAGED_VECTORS = ".indexing.vectors"
"""The staged vectors (raw float32, one row per staged row), beside :data:`STAGING`."""
Row = tuple[str, str, str]
"""(id, text, metadata JSON) of a staged row."""
ADD_BATCH = 65536
"""Staged vectors given to Faiss per call."""
PLAN_AT = 0.02
"""An index chosen by size is planned at the first commit past this fraction of the source."""
TRAIN_AT = 0.5
"""An index that needs training is trained once this fraction of the planned vectors is in."""


@dataclass
class IndexReport:
    """What :func:`index_corpus` did."""

    store_path: str
    positions: int
    """Source positions (records, bad lines included) consumed in total."""
    documents: int
    """Documents indexed (over all runs of this job)."""
    chunks: int
    """Vectors added (= documents without chunking)."""
    skipped: int
    """Bad lines skipped (``skip_bad_lines=True``)."""
    resumed_from: int
    """Source position this run started from (0 for a fresh run)."""
    store_size: int
    index_kind: str
    elapsed_s: float
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per phase: ``stream`` (read, embed, stage), ``build`` (after the stream, until the
    store is ready), ``save``; and, wherever they ran (mostly in the background during the
    stream), ``train`` and ``add`` (vectors into Faiss, rows into the store's database).
    ``qwen3-rag index`` puts ``load`` first: building the embedder's engines, before this ran."""
    replaced: int | None = None
    """Vectors added that replaced a document of the same id (an id repeated in the corpus, or
    already in the store: the later record wins); None where unknown (a run resumed after its
    store was saved)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def chunk_spans(tokenizer: Any, text: str, chunk_tokens: int, overlap: int) -> list[tuple[int, int]]:
    """Character spans of windows of ``chunk_tokens`` tokens, consecutive ones sharing ``overlap``."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) <= chunk_tokens:
        return [(0, len(text))]
    spans = []
    step = chunk_tokens - overlap
    for start in range(0, len(offsets), step):
        end = min(start + chunk_tokens, len(offsets))
        spans.append((int(offsets[start][0]), int(offsets[end - 1][1])))
        if end == len(offsets):
            break
    return spans


def chunk_document(
    doc_id: str, text: str, meta: dict[str, Any], tokenizer: Any, chunk_tokens: int, overlap: int
) -> list[tuple[str, str, dict[str, Any]]]:
    """A document as (id, text, metadata) chunks: ids ``"{doc_id}#{i}"``, metadata plus ``doc_id``,
    ``chunk``, ``n_chunks``, ``char_start``, ``char_end``."""
    spans = chunk_spans(tokenizer, text, chunk_tokens, overlap)
    return [
        (f"{doc_id}#{i}", text[a:b],
         {**meta, "doc_id": doc_id, "chunk": i, "n_chunks": len(spans), "char_start": a, "char_end": b})
        for i, (a, b) in enumerate(spans)
    ]


def document_of(record: dict[str, Any], text_field: str, id_field: str,
                position: int | None) -> tuple[str, str, dict[str, Any]] | str:
    """(id, text, metadata) of a record, or the reason it can't be indexed.

    A record without an id gets ``str(position)``; with ``position=None`` the id is required.
    """
    return _document(Item("", record), text_field, id_field, position)


class _Staging:
    """The staging files: committed rows (SQLite) and their vectors (raw float32, appended).

    The vectors file is fsynced before the transaction that records how many vectors are
    committed, so it always holds at least that many; bytes past them are an uncommitted tail,
    cut off by :meth:`open_vectors` before anything else touches the file.
    """

    def __init__(self, path: Path, dim: int):
        self.path = path
        self.vectors_path = path.with_name(STAGED_VECTORS)
        self.dim = dim
        self.row_bytes = 4 * dim
        self.committed = 0
        self.pending = 0
        self.file: Any = None
        self.conn = sqlite3.connect(path)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS rows (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, "
            "text TEXT NOT NULL, metadata TEXT NOT NULL)"
        )
        self.conn.commit()

    def get(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def open_vectors(self) -> None:
        """Open the vectors file for appending, cut back to the committed vectors."""
        self._upgrade()
        self.committed = int(self.get("vectors", 0))
        rows = int(self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM rows").fetchone()[0])
        fd = os.open(self.vectors_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            want = self.committed * self.row_bytes
            if rows != self.committed or size < want:
                raise ValueError(
                    f"{self.path}: the interrupted run's staging files are damaged ({rows} rows, "
                    f"{self.committed} vectors committed, {size // self.row_bytes} in "
                    f"{self.vectors_path.name}); re-run with resume=False (--no-resume) to start over"
                )
            if size > want:  # written, never committed: the run died between the two
                os.ftruncate(fd, want)
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self.file = open(fd, "ab")

    def _upgrade(self) -> None:
        """Move the vectors of a run staged by an older qwen3-rag (SQLite BLOBs) to the file."""
        if "vector" not in [r[1] for r in self.conn.execute("PRAGMA table_info(rows)")]:
            return
        with open(self.vectors_path, "wb") as f:
            for (blob,) in self.conn.execute("SELECT vector FROM rows ORDER BY seq"):
                if len(blob) != self.row_bytes:
                    raise ValueError(f"{self.path}: a staged vector has {len(blob) // 4} dimensions, "
                                     f"not {self.dim}; re-run with resume=False (--no-resume) to start over")
                f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        n = int(self.conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0])
        self.conn.execute("ALTER TABLE rows DROP COLUMN vector")
        self.set("vectors", n)
        self.conn.commit()

    def append(self, rows: list[Row], vectors: np.ndarray) -> None:
        """Stage rows and their vectors (float32, C-contiguous); durable at :meth:`commit`."""
        self.conn.executemany("INSERT INTO rows (id, text, metadata) VALUES (?, ?, ?)", rows)
        self.file.write(memoryview(vectors).cast("B"))
        self.pending += len(rows)

    def commit(self) -> None:
        """Make everything staged durable: fsync the vectors, then commit the transaction
        (which records how many vectors are committed)."""
        self.file.flush()
        os.fsync(self.file.fileno())
        total = self.committed + self.pending
        self.set("vectors", total)
        self.conn.commit()
        self.committed, self.pending = total, 0

    def rollback(self) -> None:
        self.conn.rollback()
        self.pending = 0  # the file's uncommitted tail is cut off when the run is resumed

    def uncache(self, first: int, last: int) -> None:
        """Let the OS drop the cached pages of committed vectors ``first`` to ``last - 1`` (in
        the store now): gigabytes of page cache a big save would otherwise write around."""
        if hasattr(os, "posix_fadvise") and last > first:
            fd = os.open(self.vectors_path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, first * self.row_bytes, (last - first) * self.row_bytes,
                                 os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)

    def vectors(self, n: int) -> np.ndarray:
        """The first ``n`` committed vectors, memory-mapped read-only."""
        if n == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.memmap(self.vectors_path, dtype=np.float32, mode="r", shape=(n, self.dim))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        self.conn.close()

    def remove(self) -> None:
        self.close()
        _remove_staging(self.path)


def interrupted_run(store: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What an interrupted (or running) ``index_corpus`` into ``store`` left: its ``settings``
    (source name, fields, chunking, the embedder's fingerprint), the source records it has
    ``consumed`` (committed: a resumed run starts after them) and the ``expected`` count (None
    where the source could not count); None without one.

    Example:
        >>> interrupted_run("/nonexistent/store") is None
        True
    """
    path = Path(store) / STAGING
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(path)
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        finally:
            conn.close()
    except sqlite3.Error:  # no meta table yet (killed while creating it), or not SQLite
        return None
    if "settings" not in meta:
        return None
    return {k: json.loads(meta[k]) if k in meta else None for k in ("settings", "consumed", "expected")}


def _remove_staging(path: Path) -> None:
    for p in (Path(str(path) + "-wal"), Path(str(path) + "-shm"), path.with_name(STAGED_VECTORS), path):
        p.unlink(missing_ok=True)


class _Indexer:
    """Moves committed staged rows into the store being built, in a background thread.

    Staged row ``seq`` becomes the store key ``base + seq - 1``. An index that needs training
    is trained once ``train_at`` vectors are committed, on an evenly spaced sample of the first
    ``train_at`` (``None``: in :meth:`finish`, on all of them). ``store`` is ``None`` until a
    new store whose index depends on the corpus size is planned (:meth:`plan`), or the end.
    """

    def __init__(self, store: FaissStore | None, st: _Staging, base: int, fresh: bool,
                 new_store: Callable[[int], FaissStore], threads: int | None = None):
        self.store = store
        self.bulk = store.bulk_load() if store is not None else None
        self.st = st
        self.base = base
        self.fresh = fresh  # a new store (nothing of it saved yet)
        self.new_store = new_store  # a new store for about n vectors
        self.train_at: int | None = None
        self.expected: int | None = None
        self.done = 0
        self.replaced: list[np.ndarray] = []
        self.timings = {"train": 0.0, "add": 0.0}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwen3-rag-index")
        self.job: Future[None] | None = None
        self.stopped = False
        self.threads = threads  # Faiss threads in the worker while streaming (None: OpenMP's default)
        self.default_threads: int | None = None  # OpenMP's default, read in the worker

    def ready(self) -> bool:
        index = self.store.index if self.store is not None else None
        return index is not None and bool(index.is_trained)

    def plan(self, n: int) -> None:
        """Build into a new store chosen for about ``n`` vectors, trained at ``TRAIN_AT`` of them."""
        self.store, self.expected = self.new_store(n), n
        self.bulk = self.store.bulk_load()
        if not self.ready() and self.store.spec.is_ivf:
            self.train_at = max(_train_size(self.store.spec, n, self.store.dim), int(n * TRAIN_AT))

    def feed(self, committed: int) -> None:
        """Catch up with ``committed`` staged rows in the background; never waits (a busy
        worker takes the new rows at the next call)."""
        if self.job is not None:
            if not self.job.done():
                return
            self.job.result()  # raises what went wrong there
            self.job = None
        if self.store is not None and committed > self.done:
            self.job = self.pool.submit(self._work, committed)

    def finish(self, total: int) -> FaissStore:
        """Add all ``total`` staged rows (the stream is over) and settle the store."""
        self.threads = None  # the stream is over: all cores (a running job takes them at its next batch)
        if self.job is not None:
            self.job.result()
            self.job = None
        self.run(self._set_threads)
        if self.store is None or (self.fresh and not self.ready()):
            self.plan(total)  # nothing was added yet: choose for the final size
        assert self.store is not None
        if not self.ready():
            self.train_at = total
        self.run(self._work, total)
        t0 = time.perf_counter()
        self.run(self.bulk.finish, self.base + total)
        self.timings["add"] += time.perf_counter() - t0
        return self.store

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the worker thread (Faiss work: see :meth:`_work`), waited for."""
        return self.pool.submit(fn, *args).result()

    def close(self, wait: bool = True) -> None:
        """Stop the worker (after the Faiss call it is in, when ``wait``)."""
        self.stopped = True
        self.pool.shutdown(wait=wait, cancel_futures=True)

    def _set_threads(self) -> None:
        """Set the worker thread's Faiss (OpenMP) threads: ``threads``, else the default."""
        faiss = fx.faiss_module()
        if self.default_threads is None:
            self.default_threads = faiss.omp_get_max_threads()
        threads = self.threads  # read once: the caller may clear it meanwhile
        faiss.omp_set_num_threads(min(threads, self.default_threads) if threads else self.default_threads)

    def _work(self, upto: int) -> None:
        """(Train, then) add staged rows up to ``upto`` (runs in the worker thread)."""
        # Faiss runs here, in a thread of our own: OpenMP gives it the process's default thread
        # count (OMP_NUM_THREADS, else all cores) even where the caller's thread was limited,
        # e.g. by torch.set_num_threads(1), which also limits Faiss in that thread.
        store = self.store
        assert store is not None
        self._set_threads()
        if not self.ready():
            if self.train_at is None or upto < self.train_at:
                return
            t0 = time.perf_counter()
            n, size = self.train_at, self.expected or self.train_at
            sample = fx.training_sample(self.st.vectors(n), _train_size(store.spec, size, store.dim) or n)
            store.train(sample, expected_size=size)
            del sample  # may be a view of the memory map
            self.timings["train"] += time.perf_counter() - t0
        while self.done < upto and not self.stopped:
            self._set_threads()  # the cap ends with the stream, also in the middle of a job
            t0 = time.perf_counter()
            a, b = self.done, min(upto, self.done + ADD_BATCH)
            self.bulk.add_keyed(self.st.vectors(b)[a:], np.arange(self.base + a, self.base + b, dtype=np.int64))
            self.st.uncache(a, b)  # (mapped no more: that view is gone)
            self.bulk.import_rows(self.st.path, a, b)
            self.done = b
            self.timings["add"] += time.perf_counter() - t0


def check_chunking(chunk_tokens: int | None, chunk_overlap: int) -> None:
    """Raise ``ValueError`` unless ``0 <= chunk_overlap < chunk_tokens`` (when chunking)."""
    if chunk_tokens is not None and not (0 <= chunk_overlap < chunk_tokens):
        raise ValueError(f"chunk_overlap (--chunk-overlap) must be >= 0 and smaller than chunk_tokens "
                         f"(--chunk-tokens), got {chunk_overlap} and {chunk_tokens}")


def _document(
    item: Item, text_field: str, id_field: str, position: int | None
) -> tuple[str, str, dict[str, Any]] | str:
    """(id, text, metadata) of a record, or the reason it can't be indexed."""
    rec = item.record or {}
    if text_field not in rec:
        fields = ", ".join(sorted(map(str, rec))) or "none"
        return f"no {text_field!r} field (fields: {fields})"
    text = rec[text_field]
    if not isinstance(text, str) or not text.strip():
        return f"{text_field!r} must be a non-empty string, got {text!r:.40}"
    raw_id = rec.get(id_field)
    if (raw_id is None or raw_id == "") and position is None:
        return f"no {id_field!r} (every record needs an id here)"
    if raw_id is None or raw_id == "":
        doc_id = str(position)
    elif isinstance(raw_id, str | int) and not isinstance(raw_id, bool):
        doc_id = str(raw_id)
    else:
        return f"{id_field!r} must be a string or an integer, got {raw_id!r:.40}"
    meta = {k: v for k, v in rec.items() if k not in (text_field, id_field)}
    try:  # dates etc. as text; NaN and infinity are not JSON (the store's SQL filters reject them)
        meta = json.loads(json.dumps(meta, ensure_ascii=False, default=str, allow_nan=False))
    except ValueError as e:
        return f"metadata is not valid JSON ({e})"
    return doc_id, text, meta


def index_corpus(
    source: Any,
    store_path: str | os.PathLike[str],
    embedder: Any,
    *,
    batch_size: int | None = None,
    commit_every: int = 1024,
    resume: bool = True,
    chunk_tokens: int | None = None,
    chunk_overlap: int = 32,
    text_field: str = "text",
    id_field: str = "id",
    skip_bad_lines: bool = False,
    show_progress: bool | None = None,
    index: Any = "auto",
    on_embedded: Callable[[], Any] | None = None,
) -> IndexReport:
    """Embed a corpus into the store at ``store_path``; resumable after any crash.

    Args:
        source: a ``.jsonl`` file (``{"id", "text", ...metadata}`` per line), a ``.csv`` or
            ``.parquet`` file with a text column, a folder of ``.txt``/``.md`` files (id = the
            relative path), or an iterable of dicts / strings (which must yield the same
            sequence again when a run is resumed).
        store_path: the store directory; an existing store is added to (same ids replaced).
        embedder: a ``Qwen3Embedder`` (its fingerprint is recorded and checked).
        batch_size: documents (chunks) embedded per batch (default: the embedder's
            ``batch_size``, i.e. what its backend prefers; a batch is embedded while the next
            is read and the previous one staged).
        commit_every: source records per durable commit (rounded up to whole batches).
        resume: continue an interrupted run of the same job; ``False`` discards it.
        chunk_tokens: split documents longer than this many tokens into overlapping chunks
            (ids ``"{doc_id}#{i}"``; metadata ``doc_id``, ``chunk``, ``n_chunks``,
            ``char_start``, ``char_end``). ``None`` embeds whole documents (cut at the
            embedder's ``max_length``).
        chunk_overlap: tokens shared by consecutive chunks.
        text_field, id_field: record keys of the text and the id (records without an id get
            their position in the source); every other key becomes metadata.
        skip_bad_lines: skip (and count) malformed lines instead of raising
            :class:`~qwen3_rag.sources.BadInputError`.
        show_progress: tqdm bar with docs/s and ETA (default: when stderr is a terminal).
        index: the store's index choice when it is created (see :class:`FaissStore`).
        on_embedded: called once every document is embedded, before the store is built and
            saved: the embedder is not used after that (``qwen3-rag index`` stops an engine
            pool's workers then, in the background, so the GPU is freed while the store is saved).

    Raises:
        FileNotFoundError: the source doesn't exist.
        BadInputError: a malformed record (message names the file and line).
        EmptyCorpusError: no usable document at all.
        EmbedderMismatchError: the store was built with another embedder.
    """
    if batch_size is None:
        batch_size = int(getattr(embedder, "batch_size", 64))
    if batch_size < 1 or commit_every < 1:
        raise ValueError(f"batch_size and commit_every must be positive, got {batch_size}, {commit_every}")
    check_chunking(chunk_tokens, chunk_overlap)
    started = time.perf_counter()
    src = open_source(source)
    root = Path(store_path)
    if root.exists() and not root.is_dir():
        raise ValueError(f"the store must be a directory, and {root} is a file")
    fp = fingerprint_of(embedder)
    assert fp is not None
    dim = fp["dimension"]
    has_store = (root / CURRENT).is_file()
    if has_store:
        _, manifest = read_manifest(root)
        check_fingerprint(manifest.get("embedder"), manifest["dimension"], embedder, f"store {root}")
        kind = (manifest.get("index") or {}).get("kind")
        if isinstance(index, str) and index != "auto" and kind and index != kind:
            raise ValueError(f"store {root} already has a {kind!r} index; index={index!r} (--index) is for "
                             "a new store: leave it out to add to this one")
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    if not resume:
        _remove_staging(root / STAGING)
    st = _Staging(root / STAGING, dim)
    settings = {
        "source": src.name, "text_field": text_field, "id_field": id_field, "chunk_tokens": chunk_tokens,
        "chunk_overlap": chunk_overlap if chunk_tokens else None, "batch_size": batch_size, "embedder": fp,
    }
    previous = st.get("settings")
    if previous is None:
        st.set("settings", settings)
        st.set("run_id", uuid.uuid4().hex)
        count = src.count()
        st.set("expected", int(count) if count else None)  # source records, to plan the index
        st.conn.commit()
    elif previous != settings:
        diff = sorted(k for k in settings if previous.get(k) != settings[k])
        st.close()
        raise ValueError(
            f"{root / STAGING} holds an interrupted run with other settings ({', '.join(diff)} "
            "differ); re-run with the same settings to resume it, or resume=False (--no-resume) to "
            "discard it"
        )
    run_id = st.get("run_id")
    expected = st.get("expected")
    resumed_from = st.get("consumed", 0)
    timings: dict[str, float] = {}
    indexer: _Indexer | None = None
    try:
        st.open_vectors()
        indexer = _indexer(root, st, embedder, dim, index, has_store)
        store = indexer.store
        applied = store is not None and store.extra.get("indexing_run") == run_id  # then interrupted
        # documents in the store before this job (None: this job's rows are in it already)
        before = None if applied else len(store) if store is not None else 0
        if not applied:
            if not st.get("complete", False):
                t0 = time.perf_counter()
                _stream(src, st, indexer, embedder, batch_size, commit_every, chunk_tokens, chunk_overlap,
                        text_field, id_field, skip_bad_lines, show_progress, resumed_from, expected)
                timings["stream"] = time.perf_counter() - t0
            if on_embedded is not None:
                on_embedded()
            t0 = time.perf_counter()
            store = _build(st, indexer, has_store, src.name)
            timings["build"] = time.perf_counter() - t0
            store.extra["indexing_run"] = run_id
            t0 = time.perf_counter()
            indexer.run(store.save, root)  # an index rebuilt by size (auto) trains in the worker too
            timings["save"] = time.perf_counter() - t0
            timings.update(indexer.timings)
    except BaseException as e:
        if indexer is not None:
            indexer.close(wait=not isinstance(e, KeyboardInterrupt))
        _discard(st, root, created, always=isinstance(e, EmptyCorpusError))
        raise
    indexer.close()
    chunks = st.get("chunks", 0)
    replaced = None if before is None else before + chunks - len(store)
    if replaced:
        logger.warning("qwen3_rag: %d of the %d vectors added replaced a document of the same id (ids are "
                       "unique in a store: the later record wins)", replaced, chunks)
    report = IndexReport(
        store_path=str(root), positions=st.get("consumed", 0), documents=st.get("documents", 0),
        chunks=chunks, skipped=st.get("skipped", 0), resumed_from=resumed_from,
        store_size=len(store), index_kind=store.index_kind, elapsed_s=time.perf_counter() - started,
        timings=timings, replaced=replaced,
    )
    st.remove()
    return report


def _indexer(root: Path, st: _Staging, embedder: Any, dim: int, index: Any, has_store: bool) -> _Indexer:
    """What the staged rows are built into (see the module docstring)."""

    def new_store(n: int) -> FaissStore:
        return FaissStore(dim, root, index=index, embedder=embedder, expected_size=n)

    threads = _stream_threads(embedder)
    if has_store:
        store = FaissStore.load(root, embedder)
        return _Indexer(store, st, base=store.bulk_load().base, fresh=False, new_store=new_store, threads=threads)
    indexer = _Indexer(None, st, base=0, fresh=True, new_store=new_store, threads=threads)
    probe = new_store(0)  # checks the index choice before anything is embedded
    if not (index == "auto" or probe.spec.is_ivf):
        indexer.store, indexer.bulk = probe, probe.bulk_load()  # an index that doesn't depend on the size
    elif st.get("plan") is not None:
        indexer.plan(st.get("plan"))  # a resumed run: as planned
    else:
        probe.close()
    return indexer


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _stream_threads(embedder: Any) -> int | None:
    """Faiss threads while ``embedder`` embeds; ``None``: OpenMP's default (``OMP_NUM_THREADS``,
    else all cores).

    Where the embedder runs an engine pool on this host (not of the ``remote`` backend) and
    ``OMP_NUM_THREADS`` is unset: the cores less one per pool worker and two for the reading and
    embedding threads (at least 1).
    """
    engine = getattr(embedder, "engine", None)
    remote = getattr(getattr(engine, "config", None), "backend", None) == "remote"  # HTTP clients
    if remote or os.environ.get("OMP_NUM_THREADS", "").strip():
        return None
    workers = len(getattr(getattr(engine, "pool", None), "procs", ()))
    return max(1, _cores() - workers - 2) if workers else None


def _train_size(spec: IndexSpec, n: int, dim: int) -> int:
    """Training vectors for an index of ``spec`` sized for ``n`` vectors (as ``FaissStore.train``)."""
    overrides = {k: v for k, v in spec.to_dict().items() if k != "kind"}
    return IndexSpec.for_size(spec.kind, n, dim, **overrides).train_size()


def _stream(src: Any, st: _Staging, indexer: _Indexer, embedder: Any, batch_size: int, commit_every: int,
            chunk_tokens: int | None, overlap: int, text_field: str, id_field: str,
            skip_bad_lines: bool, show_progress: bool | None, start: int, expected: int | None) -> None:
    from tqdm.auto import tqdm

    consumed, committed = start, start
    documents, chunks, skipped = st.get("documents", 0), st.get("chunks", 0), st.get("skipped", 0)
    visible = show_progress if show_progress is not None else sys.stderr.isatty()
    bar = tqdm(total=expected if visible else None, initial=start, unit="doc", desc="indexing",
               disable=not visible, dynamic_ncols=True)
    pending: list[Row] = []
    pending_positions = 0
    # One batch is embedded (in a worker thread; the engines release the GIL) while the next is
    # read and the previous one is staged: the batches and their order stay exactly the same.
    # Two threads: the next batch is handed to the embedder before the current one returns, so
    # an engine pool's workers always have queued work (engines in this process serialise).
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="qwen3-rag-embed")
    inflight: tuple[Any, list[Row], int, tuple[int, int, int]] | None = None
    indexer.feed(st.committed)  # a resumed run: the committed rows go in meanwhile

    def stage() -> None:
        nonlocal consumed, committed, inflight
        if inflight is None:
            return
        future, rows, positions, counts = inflight
        inflight = None
        if rows:
            st.append(rows, _checked(future.result(), len(rows), st.dim))
        consumed += positions
        st.set("consumed", consumed)
        st.set("documents", counts[0])
        st.set("chunks", counts[1])
        st.set("skipped", counts[2])
        if consumed - committed >= commit_every:
            plan = None
            if indexer.store is None and expected and consumed >= PLAN_AT * expected:
                vectors = st.committed + st.pending  # about n vectors: the size times vectors per record
                plan = max(vectors, round(vectors / consumed * expected))
                st.set("plan", plan)  # kept for a resumed run, in the same transaction
            st.commit()
            committed = consumed
            if plan is not None:
                indexer.plan(plan)
            indexer.feed(st.committed)
        bar.update(positions)

    def flush() -> None:
        nonlocal pending, pending_positions, inflight
        texts = [t for _, t, _ in pending]
        future = pool.submit(embedder.embed_documents, texts) if texts else None
        stage()
        inflight = (future, pending, pending_positions, (documents, chunks, skipped))
        pending, pending_positions = [], 0

    try:
        for position, item in enumerate(src.items(start), start=start):
            pending_positions += 1
            doc = _document(item, text_field, id_field, position) if item.record is not None else item.reason
            if isinstance(doc, str):
                if not skip_bad_lines:
                    raise BadInputError(f"{item.where}: {doc} (skip_bad_lines=True, --skip-bad-lines, "
                                        "skips and counts such records)")
                skipped += 1
                logger.warning("qwen3_rag: skipping %s: %s", item.where, doc)
            else:
                documents += 1
                doc_id, text, meta = doc
                if chunk_tokens is None:
                    pending.append((doc_id, text, json.dumps(meta, ensure_ascii=False)))
                    chunks += 1
                else:
                    parts = chunk_document(doc_id, text, meta, embedder.tokenizer, chunk_tokens, overlap)
                    pending += [(i, t, json.dumps(m, ensure_ascii=False)) for i, t, m in parts]
                    chunks += len(parts)
            if len(pending) >= batch_size:
                flush()
        flush()
        stage()
        st.set("complete", True)
        st.commit()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


def _checked(vectors: Any, n: int, dim: int) -> np.ndarray:
    """The embedder's output as staged: float32, C-contiguous, ``(n, dim)``, finite."""
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.shape != (n, dim):
        raise ValueError(f"the embedder returned vectors of shape {arr.shape} for {n} texts; "
                         f"expected ({n}, {dim})")
    if not np.isfinite(arr).all():
        raise ValueError("the embedder returned NaN or infinite values")
    return arr


def _discard(st: _Staging, root: Path, created: bool, always: bool) -> None:
    """After a failure, leave nothing behind unless there is committed work to resume."""
    st.rollback()
    if not always and st.get("consumed", 0) > 0:
        st.close()
        return  # committed work: kept for a resumed run
    st.remove()
    if created and root.is_dir() and not any(root.iterdir()):
        root.rmdir()


def _build(st: _Staging, indexer: _Indexer, has_store: bool, name: str) -> FaissStore:
    """The store with every staged row in it (what the background thread has not done yet)."""
    total = st.committed
    if total == 0 and (not has_store or indexer.store is None or len(indexer.store) == 0):
        skipped = st.get("skipped", 0)
        raise EmptyCorpusError(
            f"empty corpus: no documents in {name}" + (f" ({skipped} bad lines skipped)" if skipped else "")
        )
    return indexer.finish(total)


__all__ = ["IndexReport", "chunk_document", "document_of", "index_corpus", "interrupted_run"]
