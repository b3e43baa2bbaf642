"""Building the store while the corpus is still being embedded: a background thread of Faiss work.

:class:`StoreBuilder` moves committed staged rows into the store being built through the
store's public bulk-load API (:meth:`FaissStore.bulk_load <qwen3_rag.FaissStore.bulk_load>`):
vectors into Faiss straight from the memory-mapped vectors file (large batches), rows into its
documents table in SQL (metadata stays JSON text). All Faiss work, the save included, runs in
that one thread.

With an engine pool on this host, while documents are still being embedded the thread gets
the cores the embedding leaves free (all cores less the engine pool's worker processes and two
for this process's reading and embedding threads: on a 16-core host with 4 engine workers,
10), so that training and adding don't take CPU from the engines, which need it to keep the
GPU busy; after the stream it gets all cores. ``OMP_NUM_THREADS``, when set, is used
throughout instead.

An index whose choice depends on the corpus size (``index="auto"``, or an IVF kind's list
count) is planned early (:meth:`StoreBuilder.plan`, see :mod:`qwen3_rag.indexing.stream`)
so that training and adding overlap the embedding. An index that needs training (IVF) is
trained once half (:data:`TRAIN_AT`) of the planned vectors are committed, on an evenly
spaced sample of those (a corpus sorted by topic thus trains its lists on its first half:
search stays correct, the lists are less even). Without a plan, or when the source ends
before that point, the index is chosen and trained for the final size at the end, on an
evenly spaced sample of all vectors.

Example:
    >>> stream_threads(object()) is None  # no engine pool: OpenMP's default
    True
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from qwen3_rag.indexing.staging import Staging
from qwen3_rag.store import BulkLoad, FaissStore, IndexSpec, faiss_module, training_sample

ADD_BATCH = 65536
"""Staged vectors given to Faiss per call."""
TRAIN_AT = 0.5
"""An index that needs training is trained once this fraction of the planned vectors is in."""


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def stream_threads(embedder: Any) -> int | None:
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
    return max(1, cores() - workers - 2) if workers else None


def train_size(spec: IndexSpec, n: int, dim: int) -> int:
    """Training vectors for an index of ``spec`` sized for ``n`` vectors (as ``FaissStore.train``)."""
    return spec.resized(n, dim).train_size()


class StoreBuilder:
    """Moves committed staged rows into the store being built, in a background thread.

    Staged row ``seq`` becomes the store key ``base + seq - 1`` (``base``: the store's next key
    when the build began). An index that needs training is trained once ``train_at`` vectors
    are committed, on an evenly spaced sample of the first ``train_at`` (``None``: in
    :meth:`finish`, on all of them). ``store`` is ``None`` until a new store whose index depends
    on the corpus size is planned (:meth:`plan`), or the end.

    Args:
        store: the store to build into now (``None``: planned later).
        staging: the job's staging files.
        fresh: the store is new (nothing of it saved yet).
        new_store: a new store for about ``n`` vectors.
        threads: Faiss threads in the worker while streaming (``None``: OpenMP's default).
    """

    def __init__(self, store: FaissStore | None, staging: Staging, fresh: bool,
                 new_store: Callable[[int], FaissStore], threads: int | None = None):
        self.store: FaissStore | None = None
        self.bulk: BulkLoad | None = None
        self.st = staging
        self.fresh = fresh
        self.new_store = new_store
        self.train_at: int | None = None
        self.expected: int | None = None
        self.done = 0
        self.timings = {"train": 0.0, "add": 0.0}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwen3-rag-index")
        self.job: Future[None] | None = None
        self.stopped = False
        self.threads = threads
        self.default_threads: int | None = None  # OpenMP's default, read in the worker
        self.deleted = (0, 0)
        """(documents, source records) :meth:`finish` deleted."""
        if store is not None:
            self.use(store)

    @classmethod
    def open(cls, root: Path, staging: Staging, embedder: Any, index: Any, has_store: bool, *,
             check_model: bool = True) -> StoreBuilder:
        """What the staged rows of a job into ``root`` are built into: the saved store, a new
        store of an index that doesn't depend on the corpus size, or (planned later) none yet.
        ``check_model=False``: the saved store is opened without its model check (the job has
        checked the dimension and warned)."""
        dim = staging.dim

        def new_store(n: int) -> FaissStore:
            return FaissStore(dim, root, index=index, embedder=embedder, expected_size=n)

        threads = stream_threads(embedder)
        if has_store:
            return cls(FaissStore.load(root, embedder if check_model else None), staging, fresh=False,
                       new_store=new_store, threads=threads)
        builder = cls(None, staging, fresh=True, new_store=new_store, threads=threads)
        probe = new_store(0)  # checks the index choice before anything is embedded
        if not (index == "auto" or probe.spec.is_ivf):
            builder.use(probe)  # an index that doesn't depend on the corpus size
            return builder
        probe.close()
        if staging.get("plan") is not None:
            builder.plan(staging.get("plan"))  # a resumed run: as planned
        return builder

    @property
    def base(self) -> int:
        """The store key of staged row 1."""
        return self.bulk.base if self.bulk is not None else 0

    def use(self, store: FaissStore) -> None:
        """Build into ``store`` (nothing is in it from this job yet) instead of the one before."""
        if self.store is not None:
            self.store.close()  # a new store planned before anything was added to it
        self.store, self.bulk = store, store.bulk_load()

    def ready(self) -> bool:
        """The store exists and its index takes vectors."""
        index = self.store.index if self.store is not None else None
        return index is not None and bool(index.is_trained)

    def plan(self, n: int) -> None:
        """Build into a new store chosen for about ``n`` vectors, trained at ``TRAIN_AT`` of them."""
        self.use(self.new_store(n))
        self.expected = n
        assert self.store is not None
        if not self.ready() and self.store.spec.is_ivf:
            self.train_at = max(train_size(self.store.spec, n, self.store.dim), int(n * TRAIN_AT))

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

    def finish(self, total: int, delete_unseen: bool = False) -> FaissStore:
        """Add all ``total`` staged rows (the stream is over) and settle the store;
        ``delete_unseen``: then delete the documents of source records the staging files don't
        have (how many: :attr:`deleted`, documents and source records)."""
        self.threads = None  # the stream is over: all cores (a running job takes them at its next batch)
        if self.job is not None:
            self.job.result()
            self.job = None
        self.run(self._set_threads)
        if self.store is None or (self.fresh and not self.ready()):
            self.plan(total)  # nothing was added yet: choose for the final size
        assert self.store is not None and self.bulk is not None
        if not self.ready():
            self.train_at = total
        self.run(self._work, total)
        t0 = time.perf_counter()
        if delete_unseen and not self.fresh:
            self.deleted = self.run(self.bulk.delete_unseen, self.st.path)
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
        faiss = faiss_module()
        if self.default_threads is None:
            self.default_threads = faiss.omp_get_max_threads()
        threads = self.threads  # read once: the caller may clear it meanwhile
        faiss.omp_set_num_threads(min(threads, self.default_threads) if threads else self.default_threads)

    def _work(self, upto: int) -> None:
        """(Train, then) add staged rows up to ``upto`` (runs in the worker thread)."""
        # Faiss runs here, in a thread of our own: OpenMP gives it the process's default thread
        # count (OMP_NUM_THREADS, else all cores) even where the caller's thread was limited,
        # e.g. by torch.set_num_threads(1), which also limits Faiss in that thread.
        self._set_threads()
        if not self.ready() and not self._train(upto):
            return
        assert self.bulk is not None
        while self.done < upto and not self.stopped:
            self._set_threads()  # the cap ends with the stream, also in the middle of a job
            t0 = time.perf_counter()
            a, b = self.done, min(upto, self.done + ADD_BATCH)
            self.bulk.add_keyed(self.st.vectors(b)[a:], self.bulk.keys(a, b))
            self.st.uncache(a, b)  # (mapped no more: that view is gone)
            self.bulk.import_rows(self.st.path, a, b)
            self.done = b
            self.timings["add"] += time.perf_counter() - t0

    def _train(self, upto: int) -> bool:
        """Train the index once ``train_at`` rows are committed; whether it is trained now."""
        store = self.store
        assert store is not None
        if self.train_at is None or upto < self.train_at:
            return False
        t0 = time.perf_counter()
        n, size = self.train_at, self.expected or self.train_at
        sample = training_sample(self.st.vectors(n), train_size(store.spec, size, store.dim) or n)
        store.train(sample, expected_size=size)
        del sample  # may be a view of the memory map
        self.timings["train"] += time.perf_counter() - t0
        return True


__all__ = ["ADD_BATCH", "TRAIN_AT", "StoreBuilder", "cores", "stream_threads", "train_size"]
