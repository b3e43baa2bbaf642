"""``index_corpus``: stream a corpus into a :class:`~qwen3_rag.FaissStore`, resumable exactly.

Documents stream through bounded batches: read, (chunk), embed, then append to a staging
SQLite database in the store directory (``STORE/.indexing.sqlite``, WAL journal). Every
``commit_every`` documents one transaction records the new rows *and* how many source
positions they cover, so a process killed at any moment (SIGKILL included) loses only the
uncommitted tail; a re-run skips the committed positions and continues with batches made
exactly as in an uninterrupted run, so the final store is the same (same ids, same vectors).
When the source is exhausted the staged rows go into the store (trained for its final size),
which is saved atomically; the staging database is then removed.

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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qwen3_rag.sources import BadInputError, EmptyCorpusError, Item, open_source
from qwen3_rag.store import CURRENT, FaissStore, check_fingerprint, fingerprint_of, read_manifest

logger = logging.getLogger("qwen3_rag")

STAGING = ".indexing.sqlite"
Row = tuple[str, str, str]
"""(id, text, metadata JSON) of a staged row."""
BUILD_BATCH = 8192


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
    """The staging database: committed rows and how far into the source they reach."""

    def __init__(self, path: Path):
        self.path = path
        self.conn = sqlite3.connect(path)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS rows (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, "
            "text TEXT NOT NULL, metadata TEXT NOT NULL, vector BLOB NOT NULL)"
        )
        self.conn.commit()

    def get(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0])

    def append(self, rows: list[Row], vectors: np.ndarray) -> None:
        self.conn.executemany(
            "INSERT INTO rows (id, text, metadata, vector) VALUES (?, ?, ?, ?)",
            [(i, t, m, v.tobytes()) for (i, t, m), v in zip(rows, vectors, strict=True)],
        )

    def sample(self, size: int, dim: int) -> np.ndarray:
        """Evenly spaced staged vectors (deterministic), for training an IVF index."""
        n = self.count()
        picks = np.unique(np.linspace(1, n, min(size, n)).astype(np.int64)).tolist()
        rows = self.conn.execute(
            "SELECT vector FROM rows WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY seq",
            (json.dumps(picks),),
        ).fetchall()
        return np.frombuffer(b"".join(r[0] for r in rows), dtype=np.float32).reshape(-1, dim)

    def batches(self, dim: int, size: int = BUILD_BATCH) -> Iterator[tuple[list[Row], np.ndarray]]:
        last = 0
        while True:
            rows = self.conn.execute(
                "SELECT seq, id, text, metadata, vector FROM rows WHERE seq > ? ORDER BY seq LIMIT ?",
                (last, size),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            latest = {r[1]: i for i, r in enumerate(rows)}  # a repeated id: the last one wins
            keep = [r for i, r in enumerate(rows) if latest[r[1]] == i]
            vecs = np.frombuffer(b"".join(r[4] for r in keep), dtype=np.float32).reshape(-1, dim)
            yield [(r[1], r[2], r[3]) for r in keep], vecs

    def remove(self) -> None:
        self.conn.close()
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                p.unlink()


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
    if chunk_tokens is not None and not (0 <= chunk_overlap < chunk_tokens):
        raise ValueError(f"need 0 <= chunk_overlap < chunk_tokens, got {chunk_overlap}, {chunk_tokens}")
    started = time.perf_counter()
    src = open_source(source)
    root = Path(store_path)
    fp = fingerprint_of(embedder)
    assert fp is not None
    dim = fp["dimension"]
    has_store = (root / CURRENT).is_file()
    if has_store:
        _, manifest = read_manifest(root)
        check_fingerprint(manifest.get("embedder"), manifest["dimension"], embedder, f"store {root}")
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    if not resume:
        _Staging(root / STAGING).remove()
    st = _Staging(root / STAGING)
    settings = {
        "source": src.name, "text_field": text_field, "id_field": id_field, "chunk_tokens": chunk_tokens,
        "chunk_overlap": chunk_overlap if chunk_tokens else None, "batch_size": batch_size, "embedder": fp,
    }
    previous = st.get("settings")
    if previous is None:
        st.set("settings", settings)
        st.set("run_id", uuid.uuid4().hex)
        st.conn.commit()
    elif previous != settings:
        diff = sorted(k for k in settings if previous.get(k) != settings[k])
        raise ValueError(
            f"{root / STAGING} holds an interrupted run with other settings ({', '.join(diff)} "
            "differ); re-run with the same settings to resume it, or resume=False to discard it"
        )
    run_id = st.get("run_id")
    resumed_from = st.get("consumed", 0)
    try:
        if not st.get("complete", False):
            _stream(src, st, embedder, batch_size, commit_every, chunk_tokens, chunk_overlap, text_field,
                    id_field, skip_bad_lines, show_progress, resumed_from)
        store = _build(root, st, embedder, dim, run_id, has_store, index, src.name)
    except BaseException as e:
        _discard(st, root, created, always=isinstance(e, EmptyCorpusError))
        raise
    report = IndexReport(
        store_path=str(root), positions=st.get("consumed", 0), documents=st.get("documents", 0),
        chunks=st.get("chunks", 0), skipped=st.get("skipped", 0), resumed_from=resumed_from,
        store_size=len(store), index_kind=store.index_kind, elapsed_s=time.perf_counter() - started,
    )
    st.remove()
    return report


def _stream(src: Any, st: _Staging, embedder: Any, batch_size: int, commit_every: int,
            chunk_tokens: int | None, overlap: int, text_field: str, id_field: str,
            skip_bad_lines: bool, show_progress: bool | None, start: int) -> None:
    from tqdm.auto import tqdm

    consumed, committed = start, start
    documents, chunks, skipped = st.get("documents", 0), st.get("chunks", 0), st.get("skipped", 0)
    visible = show_progress if show_progress is not None else sys.stderr.isatty()
    bar = tqdm(total=src.count() if visible else None, initial=start, unit="doc", desc="indexing",
               disable=not visible, dynamic_ncols=True)
    pending: list[Row] = []
    pending_positions = 0
    # One batch is embedded (in a worker thread; the engines release the GIL) while the next is
    # read and the previous one is staged: the batches and their order stay exactly the same.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwen3-rag-embed")
    inflight: tuple[Any, list[Row], int, tuple[int, int, int]] | None = None

    def stage() -> None:
        nonlocal consumed, committed, inflight
        if inflight is None:
            return
        future, rows, positions, counts = inflight
        inflight = None
        if rows:
            st.append(rows, np.asarray(future.result(), dtype=np.float32))
        consumed += positions
        st.set("consumed", consumed)
        st.set("documents", counts[0])
        st.set("chunks", counts[1])
        st.set("skipped", counts[2])
        if consumed - committed >= commit_every:
            st.conn.commit()
            committed = consumed
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
                    raise BadInputError(f"{item.where}: {doc}")
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
        st.conn.commit()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


def _discard(st: _Staging, root: Path, created: bool, always: bool) -> None:
    """After a failure, leave nothing behind unless there is committed work to resume."""
    st.conn.rollback()
    if not always and st.get("consumed", 0) > 0:
        return  # committed work: kept for a resumed run
    st.remove()
    if created and root.is_dir() and not any(root.iterdir()):
        root.rmdir()


def _build(root: Path, st: _Staging, embedder: Any, dim: int, run_id: str, has_store: bool,
           index: Any, name: str) -> FaissStore:
    """Move the staged rows into the store and save it (idempotent per run)."""
    if has_store:
        store = FaissStore.load(root, embedder)
        if store.extra.get("indexing_run") == run_id:
            return store  # this run was applied; only the staging file was left behind
    staged = st.count()
    if staged == 0 and (not has_store or len(store) == 0):
        skipped = st.get("skipped", 0)
        raise EmptyCorpusError(
            f"empty corpus: no documents in {name}" + (f" ({skipped} bad lines skipped)" if skipped else "")
        )
    if not has_store:
        store = FaissStore(dim, root, index=index, embedder=embedder, expected_size=staged)
    if store.index is None or not store.index.is_trained:
        sample_size = store.spec.train_size() or max(staged, 1)
        store.train(st.sample(sample_size, dim), expected_size=staged)
    for rows, vectors in st.batches(dim):
        store.add([t for _, t, _ in rows], vectors, ids=[i for i, _, _ in rows],
                  metadatas=[json.loads(m) for _, _, m in rows])
    store.extra["indexing_run"] = run_id
    store.save(root)
    return store


__all__ = ["IndexReport", "chunk_document", "document_of", "index_corpus"]
