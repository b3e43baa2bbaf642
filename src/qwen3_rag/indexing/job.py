"""Corpus indexing as a job: :class:`IndexJob` (and :func:`index_corpus`, its one-call form).

A job is one source into one store directory. It checks the store and the embedder, opens the
staging files (:mod:`~qwen3_rag.indexing.staging`) and refuses to resume a run of other
settings, streams the source into them (:mod:`~qwen3_rag.indexing.stream`) while a
:class:`~qwen3_rag.indexing.builder.StoreBuilder` builds the store in the background, then
adds the last rows, saves the store atomically and removes the staging files. A job killed at
any point (SIGKILL included) is resumed by running it again: the committed source positions
are skipped and the batches after them are made exactly as in an uninterrupted run, so the
final store is the same (same ids, same vectors). Vectors of repeated ids are dropped (the
last record wins).

Running a job again on the same store is incremental: a record whose id, text and metadata,
and the job's model and chunking, are those the store holds is not embedded again; a changed
one replaces the store's documents of its id (all its chunks); ``delete_missing`` deletes the
documents whose source record is no longer in the source (see
:mod:`~qwen3_rag.indexing.changes`). When nothing changed no new version is saved.

Example:
    >>> IndexOptions(batch_size=8).settings("corpus.jsonl", {"model": "m", "dimension": 4})["batch_size"]
    8
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qwen3_rag.engine.base import looks_like_path
from qwen3_rag.indexing.builder import StoreBuilder
from qwen3_rag.indexing.changes import Changes, settings_digest
from qwen3_rag.indexing.chunking import check_chunking
from qwen3_rag.indexing.sources import EmptyCorpusError, open_source
from qwen3_rag.indexing.staging import STAGING, Staging, remove_staging
from qwen3_rag.indexing.stream import Streamer
from qwen3_rag.store import CURRENT, FaissStore, check_fingerprint, fingerprint_of, read_manifest
from qwen3_rag.store.layout import tidy
from qwen3_rag.store.lock import writer_lock

logger = logging.getLogger("qwen3_rag")


@dataclass(frozen=True)
class IndexOptions:
    """How a job reads, chunks, embeds and stages its source (see :func:`index_corpus`)."""

    batch_size: int = 64
    commit_every: int = 1024
    chunk_tokens: int | None = None
    chunk_overlap: int = 32
    text_field: str = "text"
    id_field: str = "id"
    skip_bad_lines: bool = False
    show_progress: bool | None = None
    index: Any = "auto"
    check_model: bool = True
    """Refuse a store built with another model (``False``: the dimension only, with a warning)."""
    delete_missing: bool = False
    """Delete the store's documents whose source record (id) is not in the source."""
    reranker_model: str | None = None
    """The reranker recorded for searching the store (:func:`recorded_reranker`); not loaded."""

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.commit_every < 1:
            raise ValueError(f"batch_size and commit_every must be positive, got {self.batch_size}, "
                             f"{self.commit_every}")
        check_chunking(self.chunk_tokens, self.chunk_overlap)

    def settings(self, source: str, fingerprint: dict[str, Any]) -> dict[str, Any]:
        """What a resumed run must share with the interrupted one (kept in the staging files)."""
        return {
            "source": source, "text_field": self.text_field, "id_field": self.id_field,
            "chunk_tokens": self.chunk_tokens,
            "chunk_overlap": self.chunk_overlap if self.chunk_tokens else None,
            "batch_size": self.batch_size, "embedder": fingerprint,
        }


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
    added: int = 0
    """Source records whose id the store did not have."""
    updated: int = 0
    """Source records that replaced the store's documents of their id (their content, the model
    or the chunking changed; or their id repeats an earlier record of the corpus)."""
    unchanged: int = 0
    """Source records the store already had as they are: not embedded again."""
    deleted: int = 0
    """Source records whose documents were deleted (``delete_missing``: not in the source)."""
    repeated: int = 0
    """Source records whose id an earlier record of the corpus had (the later one won)."""

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return asdict(self)


class IndexJob:
    """One corpus into one store directory, resumable exactly (see the module docstring).

    Args:
        source: what :func:`~qwen3_rag.indexing.sources.open_source` opens.
        store_path: the store directory (created, or added to).
        embedder: a ``Qwen3Embedder`` (or any object with ``embed_documents`` and a
            ``fingerprint``; a ``tokenizer`` when chunking).
        options: how to read, chunk, embed and stage.

    Raises ``FileNotFoundError`` for a missing source, ``ValueError`` for a store path that is
    a file or an index choice the existing store doesn't have, ``EmbedderMismatchError`` for
    another embedder than the store's.
    """

    def __init__(self, source: Any, store_path: str | os.PathLike[str], embedder: Any, options: IndexOptions):
        self.started = time.perf_counter()
        self.options = options
        self.source = open_source(source)
        self.root = Path(store_path)
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"the store must be a directory, and {self.root} is a file")
        self.embedder = embedder
        fingerprint = fingerprint_of(embedder)
        assert fingerprint is not None
        self.fingerprint = fingerprint
        self.has_store = (self.root / CURRENT).is_file()
        if self.has_store:
            self._check_store()
        self.created = False
        self.staging: Staging | None = None
        self.builder: StoreBuilder | None = None
        self.resumed_from = 0
        self.timings: dict[str, float] = {}

    def _check_store(self) -> None:
        _, manifest = read_manifest(self.root)
        check_fingerprint(manifest.get("embedder"), manifest["dimension"], self.embedder,
                          f"store {self.root}", check_model=self.options.check_model)
        kind = (manifest.get("index") or {}).get("kind")
        index = self.options.index
        if isinstance(index, str) and index != "auto" and kind and index != kind:
            raise ValueError(f"store {self.root} already has a {kind!r} index; index={index!r} (--index) is "
                             "for a new store: leave it out to add to this one")

    # ------------------------------------------------------------------ steps
    def open(self, resume: bool = True) -> Staging:
        """Create the store directory and open the staging files: a new run, or the interrupted
        one of the same settings (``resume=False`` discards it)."""
        self.created = self.created or not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        if not resume:
            remove_staging(self.root / STAGING)
        st = Staging(self.root / STAGING, self.fingerprint["dimension"])
        settings = self.options.settings(self.source.name, self.fingerprint)
        previous = st.get("settings")
        if previous is None:
            st.set("settings", settings)
            st.set("run_id", uuid.uuid4().hex)
            count = self.source.count()
            st.set("expected", int(count) if count else None)  # source records, to plan the index
            st.conn.commit()
        elif previous != settings:
            diff = sorted(k for k in settings if previous.get(k) != settings[k])
            st.close()
            raise ValueError(
                f"{self.root / STAGING} holds an interrupted run with other settings ({', '.join(diff)} "
                "differ); re-run with the same settings to resume it, or resume=False (--no-resume) to "
                "discard it"
            )
        st.fill_sources(chunked=self.options.chunk_tokens is not None)
        self.staging = st
        self.resumed_from = st.get("consumed", 0)
        return st

    def stream(self) -> None:
        """Read, embed and stage the source (from where an interrupted run stopped)."""
        st, builder = self._parts()
        opts = self.options
        changes = Changes(self.root if self.has_store else None, st,
                          settings_digest(self.fingerprint, opts.chunk_tokens, opts.chunk_overlap))
        try:
            Streamer(self.source, st, builder, self.embedder, opts, self.resumed_from,
                     st.get("expected"), changes).run()
        finally:
            changes.close()

    def build(self) -> FaissStore:
        """The store with every staged row in it (what the background thread has not done yet)."""
        st, builder = self._parts()
        total = st.committed
        if total == 0 and (not self.has_store or builder.store is None or len(builder.store) == 0):
            skipped = st.get("skipped", 0)
            raise EmptyCorpusError(f"empty corpus: no documents in {self.source.name}"
                                   + (f" ({skipped} bad lines skipped)" if skipped else ""))
        if self.options.delete_missing and st.get("documents", 0) == 0:
            raise EmptyCorpusError(f"no documents in {self.source.name}: delete_missing (--delete-missing) "
                                   "would delete the whole store")
        store = builder.finish(total, delete_unseen=self.options.delete_missing)
        st.set("deleted", builder.deleted[1])
        st.set("deleted_vectors", builder.deleted[0])
        st.conn.commit()  # for the report of a run resumed after its store was saved
        return store

    def save(self, store: FaissStore) -> None:
        """Save the store, marked with this job's run (an index rebuilt by size trains in the
        builder's thread too)."""
        st, builder = self._parts()
        store.extra["indexing_run"] = st.get("run_id")
        if self.options.reranker_model:
            store.extra["reranker"] = {"model": model_location(self.options.reranker_model)}
        builder.run(store.save, self.root)

    def run(self, *, resume: bool = True, on_embedded: Callable[[], Any] | None = None) -> IndexReport:
        """Open, stream, build and save; the report. ``on_embedded`` is called once every
        document is embedded (the embedder is not used after that). The store's writer lock is
        held throughout (:class:`~qwen3_rag.store.StoreLockedError` at once when another
        process writes the store), and what a killed save left is removed first."""
        self.created = self.created or not self.root.exists()
        try:
            with writer_lock(self.root):
                tidy(self.root)
                return self._run(resume, on_embedded)
        finally:
            if self.created and self.root.is_dir() and not any(self.root.iterdir()):
                self.root.rmdir()

    def _run(self, resume: bool, on_embedded: Callable[[], Any] | None) -> IndexReport:
        st = self.open(resume)
        try:
            st.open_vectors()
            self.builder = StoreBuilder.open(self.root, st, self.embedder, self.options.index, self.has_store,
                                             check_model=self.options.check_model)
            store = self.builder.store
            # saved with this run's rows already (then interrupted before the staging was removed)
            applied = store is not None and store.extra.get("indexing_run") == st.get("run_id")
            # documents in the store before this job (None: this job's rows are in it already)
            before = None if applied else len(store) if store is not None else 0
            if not applied:
                store = self._build_and_save(on_embedded)
        except BaseException as e:
            if self.builder is not None:
                self.builder.close(wait=not isinstance(e, KeyboardInterrupt))
            self.discard(always=isinstance(e, EmptyCorpusError))
            raise
        self.builder.close()
        assert store is not None
        return self.report(store, before)

    def _build_and_save(self, on_embedded: Callable[[], Any] | None) -> FaissStore:
        st, builder = self._parts()
        if not st.get("complete", False):
            t0 = time.perf_counter()
            self.stream()
            self.timings["stream"] = time.perf_counter() - t0
        if on_embedded is not None:
            on_embedded()
        t0 = time.perf_counter()
        store = self.build()
        self.timings["build"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        reranker = self.options.reranker_model
        if (not self.has_store or st.committed or st.get("deleted_vectors", 0)
                or (reranker and recorded_reranker(store.extra) != model_location(reranker))):
            self.save(store)  # (else nothing changed: the saved version stays current)
            self.timings["save"] = time.perf_counter() - t0
        self.timings.update(builder.timings)
        return store

    def report(self, store: FaissStore, before: int | None) -> IndexReport:
        """What the job did (``before``: documents in the store before it, if known); removes
        the staging files."""
        st, _ = self._parts()
        chunks = st.get("chunks", 0)
        replaced = None if before is None else before + chunks - st.get("deleted_vectors", 0) - len(store)
        repeated = st.get("repeated", 0)
        if repeated:
            logger.warning("qwen3_rag: %d records repeated the id of an earlier record of the corpus (ids "
                           "are unique in a store: the later record wins)", repeated)
        report = IndexReport(
            store_path=str(self.root), positions=st.get("consumed", 0), documents=st.get("documents", 0),
            chunks=chunks, skipped=st.get("skipped", 0), resumed_from=self.resumed_from,
            store_size=len(store), index_kind=store.index_kind,
            elapsed_s=time.perf_counter() - self.started, timings=self.timings, replaced=replaced,
            **{k: st.get(k, 0) for k in ("added", "updated", "unchanged", "deleted", "repeated")},
        )
        st.remove()
        return report

    def discard(self, always: bool = False) -> None:
        """After a failure, leave nothing behind unless there is committed work to resume."""
        st = self.staging
        if st is None:
            return
        st.rollback()
        if not always and st.get("consumed", 0) > 0:
            st.close()
            return  # committed work: kept for a resumed run
        st.remove()
        if self.created and self.root.is_dir() and not any(self.root.iterdir()):
            self.root.rmdir()

    def _parts(self) -> tuple[Staging, StoreBuilder]:
        if self.staging is None or self.builder is None:
            raise RuntimeError("the job is not open: call run(), or open() and set up its builder")
        return self.staging, self.builder


def model_location(model: str) -> str:
    """A model as a store records it: a local directory by its absolute path, a hub id as it is."""
    path = os.path.expanduser(model)
    return os.path.abspath(path) if looks_like_path(model) and os.path.isdir(path) else model


def recorded_reranker(extra: dict[str, Any]) -> str | None:
    """The reranker a store records for searching it (its manifest's ``extra``), or None.

    Example:
        >>> recorded_reranker({"reranker": {"model": "Qwen/Qwen3-Reranker-4B"}})
        'Qwen/Qwen3-Reranker-4B'
    """
    model = (extra.get("reranker") or {}).get("model") if isinstance(extra, dict) else None
    return model if isinstance(model, str) and model else None


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
    check_model: bool = True,
    delete_missing: bool = False,
    reranker_model: str | None = None,
) -> IndexReport:
    """Embed a corpus into the store at ``store_path``; resumable after any crash, incremental
    when run again (records the store has as they are are not embedded again).

    Args:
        source: a ``.jsonl`` file (``{"id", "text", ...metadata}`` per line), a ``.csv`` or
            ``.parquet`` file with a text column, a folder of ``.txt``/``.md`` files (id = the
            relative path), or an iterable of dicts / strings (which must yield the same
            sequence again when a run is resumed).
        store_path: the store directory; an existing store is added to (same ids replaced,
            records unchanged since they were indexed skipped: see the report's ``added``,
            ``updated``, ``unchanged``).
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
            :class:`~qwen3_rag.indexing.BadInputError`.
        show_progress: tqdm bar with docs/s and ETA (default: when stderr is a terminal).
        index: the store's index choice when it is created (see :class:`FaissStore`).
        on_embedded: called once every document is embedded, before the store is built and
            saved: the embedder is not used after that (``qwen3-rag index`` stops an engine
            pool's workers then, in the background, so the GPU is freed while the store is saved).
        check_model: ``False`` adds to a store built with another model (same dimension) instead
            of raising :class:`~qwen3_rag.store.EmbedderMismatchError`; a warning says so.
        delete_missing: delete the store's documents whose source record id is not in
            ``source`` (LangChain indexing's "full" cleanup; without it, "incremental"). A
            malformed record skipped with ``skip_bad_lines`` counts as missing.
        reranker_model: record this reranker (hub id or directory) in the store, for
            ``qwen3-rag search --rerank`` and ``serve`` to use by default (it is not loaded).

    Raises:
        FileNotFoundError: the source doesn't exist.
        BadInputError: a malformed record (message names the file and line).
        EmptyCorpusError: no usable document at all (with ``delete_missing``: even where the
            store has documents).
        EmbedderMismatchError: the store was built with another embedder.
    """
    if batch_size is None:
        batch_size = int(getattr(embedder, "batch_size", 64))
    options = IndexOptions(
        batch_size=batch_size, commit_every=commit_every, chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap, text_field=text_field, id_field=id_field,
        skip_bad_lines=skip_bad_lines, show_progress=show_progress, index=index, check_model=check_model,
        delete_missing=delete_missing, reranker_model=reranker_model,
    )
    return IndexJob(source, store_path, embedder, options).run(resume=resume, on_embedded=on_embedded)


__all__ = ["IndexJob", "IndexOptions", "IndexReport", "index_corpus", "model_location", "recorded_reranker"]
