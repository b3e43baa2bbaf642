"""Data parallelism: several engine processes, on one GPU or across GPUs.

A 0.6B model leaves a GPU's matrix units idle while one Python process prepares requests
and reads outputs, and a 0.6B model needs no tensor parallelism. The pool engines start
``data_parallel_size x engines_per_gpu`` worker processes (spawned, ``__main__`` hidden),
each with its own engine pinned to one GPU through ``CUDA_VISIBLE_DEVICES``, and gathers their
results in order.

Batches go through one shared queue in parts (:func:`plan_parts`) that idle workers take,
and :meth:`submit` returns a future at once, so callers keep the queue filled
(:func:`qwen3_rag.batching.pipelined`).

Its options are :class:`~qwen3_rag.engine.options.PoolOptions` (any backend):

* ``data_parallel_size``: number of GPUs to use (default 1),
* ``engines_per_gpu``: engine processes per GPU (default 1); ``gpu_memory_utilization`` is
  divided between them. Their processes start together; their vLLM engines are built one
  after another (vLLM profiles free memory to size its KV cache) unless
  ``kv_cache_memory_bytes`` sets each engine's KV cache.

The pool takes work as soon as its first worker is ready; the others take parts from the
shared queue as they come up (:meth:`EnginePool.wait_ready` waits for all; a worker that fails
to start later closes the pool with its error). Where a GPU's engines are built in turn, work
waits for all of them: a working engine would skew the free memory the next one sizes its
cache from.

Texts travel as they are and the workers (:mod:`qwen3_rag.engine.worker`) format and tokenize
them: the parent process would otherwise be the bottleneck (tokenizing ~8,000 documents a
second takes a core).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing as mp
import multiprocessing.util as mp_util
import os
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from qwen3_rag.engine.base import EmbeddingEngine, EngineConfig, RerankEngine
from qwen3_rag.engine.options import BackendOptions, EngineOptions, VLLMOptions
from qwen3_rag.engine.spawn import hidden_main
from qwen3_rag.engine.worker import EngineWorkerError, WorkerSpec, pack, worker_main

logger = logging.getLogger("qwen3_rag")


def split_by_tokens(lengths: Sequence[int], parts: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) ranges with about equal token counts (empty ranges dropped).

    Each cut goes at the boundary whose running token count is closest to k/parts of the total.
    """
    cum = np.cumsum(np.asarray(lengths, dtype=np.float64))
    if len(cum) == 0:
        return []
    cuts = [0]
    for k in range(1, parts):
        target = cum[-1] * k / parts
        i = int(np.searchsorted(cum, target))
        if i > 0 and abs(cum[i - 1] - target) <= abs(cum[min(i, len(cum) - 1)] - target):
            i -= 1
        cuts.append(max(cuts[-1], min(i + 1, len(cum))))
    cuts.append(len(cum))
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


#: tokens per queued part of a large batch: parts this size keep every worker busy to the end
PART_TOKENS = 131072
#: seconds the workers get to finish their current part and stop when the pool closes
CLOSE_TIMEOUT = 60.0
#: batches smaller than this stay in one part (one worker): small requests need no scatter
SPLIT_MIN_TOKENS = 8192


def builds_together(options: BackendOptions) -> bool:
    """Whether engines sharing a GPU may be built at the same time (else one after another).

    vLLM profiles the GPU's free memory to size its KV cache, so its engines on one GPU are
    built in turn, unless ``kv_cache_memory_bytes`` fixes the size.
    """
    return not isinstance(options, VLLMOptions) or bool(options.kv_cache_memory_bytes)


def approx_tokens(item: Any) -> int:
    """A token count guess for planning parts before tokenization (~4 characters a token)."""
    if isinstance(item, str):
        return len(item) // 4 + 1
    return sum(len(x) for x in item) // 4 + 64  # a (query, document) pair and its prompt


def plan_parts(lengths: Sequence[int], workers: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) parts of a batch for the pool's shared queue.

    A small batch is one part; a large one is cut into parts of about :data:`PART_TOKENS`
    tokens, as many as a whole number of rounds over the workers needs (so the batch's last
    round keeps every worker busy, not one).
    """
    total = int(sum(lengths))
    if total < SPLIT_MIN_TOKENS:
        return [(0, len(lengths))] if len(lengths) else []
    rounds = -(-total // (PART_TOKENS * workers))
    return split_by_tokens(lengths, min(rounds * workers, len(lengths)))


@dataclass(frozen=True)
class PoolLayout:
    """Where a pool's workers run and with what options.

    Attributes:
        size: number of workers.
        per_gpu: workers per GPU (``engines_per_gpu``).
        gpus: the GPU each group of ``per_gpu`` workers runs on (``None``: the parent's devices).
        worker_options: each worker's engine options.
        together: whether engines on one GPU are built at the same time (:func:`builds_together`).
    """

    size: int
    per_gpu: int
    gpus: tuple[str, ...] | None
    worker_options: EngineOptions
    together: bool = True

    @classmethod
    def plan(cls, config: EngineConfig, options: EngineOptions) -> PoolLayout:
        """The layout for ``options.pool``: GPUs from ``CUDA_VISIBLE_DEVICES`` (or 0..G-1)."""
        dp, per_gpu = options.pool.data_parallel_size, options.pool.engines_per_gpu
        worker = cls.worker_options(options)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = visible.split(",") if visible else [str(i) for i in range(dp)]
        if config.backend in ("vllm", "hf") and dp > len(gpus):
            raise ValueError(f"data_parallel_size={dp} but only GPUs {gpus} are visible")
        pinned = tuple(gpus[:dp]) if dp > 1 and config.backend != "remote" else None
        return cls(dp * per_gpu, per_gpu, pinned, worker, builds_together(worker.engine))

    @staticmethod
    def worker_options(options: EngineOptions) -> EngineOptions:
        """One worker's options: no pool; on vLLM ``gpu_memory_utilization`` divided between the
        engines of a GPU, and the engine core in the worker itself (``multiprocessing="off"``)
        unless set: one process per engine rather than two, and no message per prompt between
        them (the same throughput for less CPU, ``docs/performance.md``)."""
        inner = options.without_pool()
        engine = inner.engine
        if isinstance(engine, VLLMOptions):
            per_gpu = options.pool.engines_per_gpu
            util = engine.gpu_memory_utilization
            util = round(util / per_gpu, 4) if per_gpu > 1 else util
            engine = replace(engine, gpu_memory_utilization=util,
                             multiprocessing=engine.multiprocessing or "off")
        return replace(inner, engine=engine)

    def gpu(self, worker: int) -> str | None:
        """The ``CUDA_VISIBLE_DEVICES`` of worker ``worker`` (``None``: unchanged)."""
        return None if self.gpus is None else self.gpus[worker // self.per_gpu]


class StartupRecord:
    """The pool's start-up: which workers are ready, when, and where their time went.

    ``summary`` holds ``first`` and ``seconds`` (until one and until all were ready) and
    ``workers`` (each ready worker's ``imports``/``wait`` (for its GPU's build lock)/``engine``/
    ``tokenizer`` seconds, in worker order); ``all_ready`` is set once every worker is.
    """

    def __init__(self, kind: str, size: int, together: bool):
        self.kind, self.size, self.together = kind, size, together
        self.ready: dict[int, dict[str, float]] = {}
        self.summary: dict[str, Any] = {"first": None, "seconds": None, "workers": []}
        self.all_ready = threading.Event()
        self._started = time.perf_counter()

    def worker_ready(self, worker: int, laps: dict[str, float]) -> None:
        """Note worker ``worker``'s start-up laps; log the first and the last."""
        self.ready[worker] = laps
        seconds = round(time.perf_counter() - self._started, 2)
        self.summary["workers"] = [self.ready[i] for i in sorted(self.ready)]
        if len(self.ready) == 1:
            self.summary["first"] = seconds
            if self.size > 1 and self.together:
                logger.info("qwen3_rag: the first of %d %s engine workers is ready after %.1f s; work starts",
                            self.size, self.kind, seconds)
        if len(self.ready) < self.size:
            return
        self.summary["seconds"] = seconds
        ready = [sum(t.values()) for t in self.summary["workers"]]  # each worker's own clock
        slowest = self.summary["workers"][ready.index(max(ready))]
        logger.info("qwen3_rag: %d %s engine workers ready in %.1f s (each after %s s; slowest: %s)",
                    self.size, self.kind, seconds, "/".join(f"{r:.1f}" for r in sorted(ready)),
                    ", ".join(f"{k} {v:.1f} s" for k, v in slowest.items()))
        self.all_ready.set()


def _settle(future: Future[np.ndarray], result: Any = None, error: BaseException | None = None) -> None:
    """Give a future its result or error, unless its caller cancelled it meanwhile."""
    with contextlib.suppress(InvalidStateError):
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class _Job:
    """A submitted batch: its future and the parts still missing."""

    def __init__(self, parts: int):
        self.future: Future[np.ndarray] = Future()
        self.results: list[Any] = [None] * parts
        self.missing = parts


class EnginePool:
    """Worker processes fed from one shared queue, and a thread that gathers their results.

    A batch is cut into parts (:func:`plan_parts`); idle workers take the next part from the
    queue, so a fast worker is never held up by a slow one and, with batches submitted ahead,
    no worker waits for the caller. A worker that dies fails the batches in flight with an
    error naming it, instead of leaving the caller waiting.

    Attributes:
        size: number of workers (fixed: the pool never shrinks, it breaks).
        procs: the worker processes (empty once closed).
        dimension: the embedding size the workers reported (``None`` for a reranker).
        parts_done: batch parts each worker has delivered (the shared queue balances them).
        startup: :attr:`StartupRecord.summary` (where the start-up went).
        all_ready: set once every worker is ready.
        on_close: called once the pool has failed or closed.
    """

    def __init__(self, config: EngineConfig, options: EngineOptions, yes_id: int | None = None,
                 no_id: int | None = None):
        layout = PoolLayout.plan(config, options)
        ctx = mp.get_context("spawn")
        self.outbox = ctx.Queue()
        self.tasks = ctx.Queue()
        self.lock = threading.Lock()
        self.jobs = itertools.count()
        self.pending: dict[int, _Job] = {}
        self.broken: str | None = None
        self.on_close: Any = None
        self.size = layout.size
        self._close_lock = threading.Lock()
        self.parts_done = [0] * self.size
        self.collector: threading.Thread | None = None
        self.dimension = None
        self.record = StartupRecord(config.kind, self.size, layout.together)
        self.startup = self.record.summary
        self.all_ready = self.record.all_ready
        self.procs = self._workers(ctx, config, layout, yes_id, no_id)
        # At interpreter exit multiprocessing joins non-daemon children; close the workers first
        # (finalizers with an exit priority run before that join), or exit would wait forever.
        mp_util.Finalize(self, EnginePool.close, args=(self,), exitpriority=100)
        with hidden_main():
            for p in self.procs:  # all start at once: their imports run in parallel
                p.start()
        # Work starts as soon as one worker is ready (the shared queue feeds whoever is); the
        # collector takes the others' ready messages as they come (:meth:`wait_ready` waits).
        # Not where engines on a GPU are built in turn: those still to build size their KV cache
        # from the free memory they measure, which a working engine would skew.
        self._await_ready(1 if layout.together else self.size)
        self.collector = threading.Thread(target=self._collect, name="qwen3-rag-pool", daemon=True)
        self.collector.start()

    def _workers(self, ctx: Any, config: EngineConfig, layout: PoolLayout, yes_id: int | None,
                 no_id: int | None) -> list[Any]:
        """The worker processes (not started), with a build lock per GPU where engines on a GPU
        are built in turn."""
        # vLLM sizes its KV cache from the free memory it profiles, and engines profiling side
        # by side on one GPU misread each other ("No available memory for the cache blocks").
        # GPUs proceed in parallel, and so do all engines when ``kv_cache_memory_bytes`` fixes
        # each one's KV cache, or off vLLM.
        if not layout.together and layout.per_gpu > 1:
            logger.warning("qwen3_rag: the %d vLLM engines on each GPU are built one after another; set "
                           "kv_cache_memory_bytes (e.g. 8000000000) to build them at once", layout.per_gpu)
        groups = -(-layout.size // layout.per_gpu)
        # held for the pool's life: a lock freed here is gone before a worker unpickles it
        self._gpu_locks = gpu_locks = [None if layout.together else ctx.Lock() for _ in range(groups)]
        procs = []
        for w in range(layout.size):
            spec = WorkerSpec(config.kind, config.model, config.backend, config.max_length,
                              layout.worker_options, w, layout.gpu(w), yes_id, no_id)
            procs.append(ctx.Process(target=worker_main, name=f"qwen3-rag-{config.kind}-{w}", daemon=False,
                                     args=(spec, self.tasks, self.outbox, gpu_locks[w // layout.per_gpu])))
        return procs

    def _await_ready(self, count: int) -> None:
        """Wait for ``count`` workers' ready messages; a start-up error closes the pool."""
        for _ in range(count):
            status, w, value = self._startup_message()
            if status == "error":
                self.close()
                raise RuntimeError(f"an engine worker failed to start: {value}")
            self._worker_ready(w, value)

    def _worker_ready(self, w: int, value: tuple[Any, dict[str, float]]) -> None:
        """Note worker ``w``'s ready message: its dimension and start-up laps."""
        self.dimension, laps = value
        self.record.worker_ready(w, laps)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until every worker is ready (the pool takes work as soon as one is).

        Raises ``RuntimeError`` if the pool broke meanwhile (a worker failed to start), and
        ``TimeoutError`` after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.all_ready.wait(0.2):
            if self.broken:
                raise RuntimeError(self.broken)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.record.ready)} of {self.size} engine workers ready "
                                   f"after {timeout} s")

    def _startup_message(self) -> tuple[str, int, Any]:
        while True:
            try:
                return self.outbox.get(timeout=5.0)
            except queue.Empty:
                dead = [p for p in self.procs if p.exitcode is not None]
                if dead:
                    self.close()
                    raise RuntimeError(
                        f"engine worker {dead[0].name} exited with code {dead[0].exitcode} while starting"
                    ) from None

    def submit(self, token_ids: Sequence[Sequence[int]]) -> Future[np.ndarray]:
        """Queue a batch of token ids; the future gives the results concatenated in order."""
        parts = plan_parts([len(t) for t in token_ids], self.size)
        return self._queue([("ids", *pack(token_ids[a:b])) for a, b in parts])

    def submit_texts(self, method: str, kwargs: dict[str, Any], items: Sequence[Any]) -> Future[np.ndarray]:
        """Queue a batch of texts (or pairs) that the workers format and tokenize themselves."""
        parts = plan_parts([approx_tokens(x) for x in items], self.size)
        return self._queue([("texts", method, kwargs, list(items[a:b])) for a, b in parts])

    def _queue(self, tasks: list[tuple[Any, ...]]) -> Future[np.ndarray]:
        with self.lock:
            if self.broken:
                raise RuntimeError(self.broken)
            job_id = next(self.jobs)
            job = _Job(len(tasks))
            self.pending[job_id] = job
            for i, task in enumerate(tasks):
                self.tasks.put((job_id, i, *task))
        return job.future

    def _collect(self) -> None:
        checked = time.monotonic()
        while True:
            try:
                msg = self.outbox.get(timeout=1.0)
            except queue.Empty:
                msg = ()
            except (OSError, ValueError, EOFError):  # queue closed
                return
            if msg is None or not self.procs:
                return
            if msg and not self._handle(msg):
                return
            if time.monotonic() - checked > 1.0:
                checked = time.monotonic()
                if not self._check_workers():
                    return

    def _check_workers(self) -> bool:
        """False (and the pool failed and closed) when a worker has exited. What a worker says
        before it leaves (a start-up error, a failed batch) explains its exit best, so the
        messages still queued are handled first."""
        dead = [p for p in self.procs if p.exitcode is not None]
        if not dead:
            return True
        while True:
            try:
                msg = self.outbox.get_nowait()
            except queue.Empty:
                break
            except (OSError, ValueError, EOFError):
                return False
            if msg is None or not self._handle(msg):
                return False
        # Its part of a batch is lost: fail what is in flight and close the pool, so the engine
        # cache starts a fresh one for the next embedder or reranker.
        self._break(f"engine worker {dead[0].name} exited with code {dead[0].exitcode}", EngineWorkerError)
        return False

    def _handle(self, msg: tuple[Any, ...]) -> bool:
        """Handle one message from a worker; False when the pool failed (and closed) on it."""
        if msg[0] == "ready":  # a worker that started after the first
            self._worker_ready(msg[1], msg[2])
            return True
        if msg[0] == "error":  # a worker that failed to start: the pool is not what was asked
            self._break(f"an engine worker failed to start: {msg[2]}")
            return False
        job_id, part, worker, value = msg
        if isinstance(value, EngineWorkerError):  # the worker left: nothing in flight can finish
            self._break(str(value), EngineWorkerError)
            return False
        with self.lock:
            self.parts_done[worker] += 1
            job = self.pending.get(job_id)
            if job is None:
                return True
            if isinstance(value, Exception):
                del self.pending[job_id]
                _settle(job.future, error=value)
                return True
            job.results[part] = value
            job.missing -= 1
            if job.missing:
                return True
            del self.pending[job_id]
        _settle(job.future, np.concatenate(job.results))
        return True

    def _drain(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                self.tasks.get_nowait()

    def _fail(self, reason: str, error: type[RuntimeError] = RuntimeError) -> None:
        with self.lock:
            if self.broken is None:
                self.broken = reason
            jobs, self.pending = list(self.pending.values()), {}
        for job in jobs:
            _settle(job.future, error=error(reason))
        if self.on_close is not None:
            self.on_close()

    def _break(self, reason: str, error: type[RuntimeError] = RuntimeError) -> None:
        """Fail what is in flight with ``error(reason)`` and close the pool."""
        self._fail(reason, error)
        self.close()

    def close(self) -> None:
        """Stop the workers (each finishes its current part), fail what is in flight. Runs once;
        a second caller waits for the first. Workers still starting hold no work and are
        stopped at once rather than waited for."""
        with self._close_lock:
            procs, self.procs = self.procs, []
            if procs:
                self._stop(procs)
        self._fail(self.broken or "the engine pool is closed")
        if self.collector is not None and self.collector is not threading.current_thread():
            with contextlib.suppress(Exception):
                self.outbox.put(None)
            self.collector.join(timeout=10)
        for q in (self.tasks, self.outbox):
            with contextlib.suppress(Exception):
                q.cancel_join_thread()  # nobody reads what is left: don't wait to flush it
                q.close()

    def _stop(self, procs: list[Any]) -> None:
        self._drain()  # queued parts nobody will collect: workers should see the stop at once
        for _ in procs:
            with contextlib.suppress(Exception):
                self.tasks.put(None)
        deadline = time.monotonic() + CLOSE_TIMEOUT
        for w, p in enumerate(procs):
            if p.pid is None:  # never started
                continue
            if w in self.record.ready:  # a working engine: let it finish its part and stop
                p.join(timeout=max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.terminate()
                p.join(timeout=10)
            if p.is_alive():
                p.kill()


class _PoolMixin:
    """What both pool engines share: submit to the pool, close it."""

    pool: EnginePool
    #: the workers format and tokenize texts themselves (see :func:`qwen3_rag.batching.stream`)
    formats_in_workers = True

    def _empty(self) -> np.ndarray:
        raise NotImplementedError

    def _pool_closed(self) -> None:
        self.closed = True  # the engine cache loads a new engine for the next user

    def submit(self, token_ids: Sequence[Sequence[int]]) -> Future[np.ndarray]:
        if not token_ids:
            fut: Future[np.ndarray] = Future()
            fut.set_result(self._empty())
            return fut
        return self.pool.submit(token_ids)

    def submit_texts(self, method: str, kwargs: dict[str, Any], items: Sequence[Any]) -> Future[np.ndarray]:
        if not items:
            return self.submit([])
        return self.pool.submit_texts(method, kwargs, items)

    def run(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        return self.submit(token_ids).result()

    def close(self) -> None:
        self.pool.close()
        super().close()  # type: ignore[misc]


def _pool_options(config: EngineConfig, options: EngineOptions | Mapping[str, Any]) -> EngineOptions:
    return EngineOptions.build(config.backend, options)


class PoolEmbeddingEngine(_PoolMixin, EmbeddingEngine):
    """Embedding engines in several processes, used as one (``options``: with the pool's)."""

    def __init__(self, config: EngineConfig, options: EngineOptions | Mapping[str, Any]):
        super().__init__(config, _pool_options(config, options))
        self.pool = EnginePool(config, self.options)
        self.pool.on_close = self._pool_closed
        self.dimension = int(self.pool.dimension)
        self.preferred_batch_size = 8192 * self.pool.size
        self.parallelism = self.pool.size

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.dimension), dtype=np.float32)

    def embed(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        return self.run(token_ids)


class PoolRerankEngine(_PoolMixin, RerankEngine):
    """Reranker engines in several processes, used as one (``options``: with the pool's)."""

    def __init__(self, config: EngineConfig, options: EngineOptions | Mapping[str, Any], yes_id: int | None,
                 no_id: int | None):
        super().__init__(config, _pool_options(config, options))
        self.pool = EnginePool(config, self.options, yes_id=yes_id, no_id=no_id)
        self.pool.on_close = self._pool_closed
        self.preferred_batch_size = 4096 * self.pool.size
        self.parallelism = self.pool.size

    def _empty(self) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)

    def score(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        return self.run(token_ids)


__all__ = [
    "CLOSE_TIMEOUT",
    "PART_TOKENS",
    "SPLIT_MIN_TOKENS",
    "EnginePool",
    "EngineWorkerError",
    "PoolEmbeddingEngine",
    "PoolLayout",
    "PoolRerankEngine",
    "StartupRecord",
    "approx_tokens",
    "builds_together",
    "plan_parts",
    "split_by_tokens",
]
