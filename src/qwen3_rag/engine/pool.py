"""Data parallelism: several engine processes, on one GPU or across GPUs.

A 0.6B model leaves a GPU's matrix units idle while one Python process prepares requests
and reads outputs, and a 0.6B model needs no tensor parallelism. The pool engines start
``data_parallel_size x engines_per_gpu`` worker processes (spawned, ``__main__`` hidden),
each with its own engine pinned to one GPU through ``CUDA_VISIBLE_DEVICES``, and gathers their
results in order.

Batches go through one shared queue in parts (:func:`plan_parts`) that idle workers take,
and :meth:`submit` returns a future at once, so callers keep the queue filled
(:func:`qwen3_rag.batching.pipelined`).

Engine options (read by :func:`qwen3_rag.engine.get_engine`):

* ``data_parallel_size``: number of GPUs to use (default 1),
* ``engines_per_gpu``: engine processes per GPU (default 1); ``gpu_memory_utilization`` is
  divided between them. Their processes start together; their vLLM engines are built one
  after another (vLLM profiles free memory to size its KV cache) unless
  ``kv_cache_memory_bytes`` sets each engine's KV cache.

The pool takes work as soon as its first worker is ready; the others take parts from the
shared queue as they come up (``_Pool.wait_ready`` waits for all; a worker that fails to start
later closes the pool with its error). Where a GPU's engines are built in turn, work waits for
all of them: a working engine would skew the free memory the next one sizes its cache from.

Texts travel as they are and the workers format and tokenize them (the parent process would
otherwise be the bottleneck: tokenizing ~8,000 documents a second takes a core); token ids
travel as int32 arrays and results as float32 arrays (numpy buffers, not Python lists).
Workers are internal processes of this package; nothing they exchange is ever loaded from
disk.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing as mp
import multiprocessing.util as mp_util
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Any

import numpy as np

from qwen3_rag.engine.base import EmbeddingEngine, EngineConfig, RerankEngine

POOL_OPTIONS = ("data_parallel_size", "engines_per_gpu")
logger = logging.getLogger("qwen3_rag")


def pack(token_ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token-id sequences as one flat int32 array plus offsets."""
    lengths = np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=len(token_ids))
    offsets = np.zeros(len(token_ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter(itertools.chain.from_iterable(token_ids), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


def unpack(flat: np.ndarray, offsets: np.ndarray) -> list[list[int]]:
    return [flat[offsets[i] : offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]


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


def builds_together(backend: str, options: dict[str, Any]) -> bool:
    """Whether engines sharing a GPU may be built at the same time (else one after another).

    vLLM profiles the GPU's free memory to size its KV cache, so its engines on one GPU are
    built in turn, unless ``kv_cache_memory_bytes`` fixes the size.
    """
    return backend != "vllm" or bool(options.get("kv_cache_memory_bytes"))


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


class EngineWorkerError(RuntimeError):
    """An engine in a worker failed on valid input; the pool closes (a new one starts next time)."""


def _name_process(name: str) -> None:
    """Name this process as ``top`` and ``/proc/PID/comm`` show it (Linux; 15 characters)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def worker_formatter(kind: str, engine: Any, model: str, options: dict[str, Any], max_length: int) -> Any:
    """The formatter a pool worker tokenizes with: over the engine's own tokenizer where it has
    one (vLLM loaded it while building the engine, so no second ~4 s load per worker on an H200:
    docs/benchmarks.md, runs 24 and 27), else over :func:`~qwen3_rag.tokenizer.load_tokenizer`'s.
    """
    from qwen3_rag.formats import make_formatter
    from qwen3_rag.tokenizer import load_tokenizer

    tokenizer = engine.own_tokenizer()
    if tokenizer is None:
        tokenizer = load_tokenizer(model, options)
    return make_formatter(kind, tokenizer, max_length)


def _worker(
    kind: str,
    model: str,
    backend: str,
    max_length: int,
    options: dict[str, Any],
    extra: dict[str, Any],
    gpu: str | None,
    index: int,
    tasks: Any,
    outbox: Any,
    start_lock: Any = None,
) -> None:
    """Worker process: load one engine, then serve tasks until None.

    A task is ``(job, part, "ids", flat, offsets)`` (token ids) or
    ``(job, part, "texts", method, kwargs, items)``: items formatted and tokenized here by the
    model's formatter (``formatter.<method>(items, **kwargs)``), so tokenization runs in
    parallel in the workers instead of in the parent.
    """
    _name_process(f"qwen3rag-{kind[:3]}{index}")
    # The pool stops a worker still starting with SIGTERM: leave through Python's exit then, so
    # multiprocessing's finalizers release the semaphores this process made (else the parent's
    # resource tracker reports them "leaked").
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    clock = time.perf_counter()
    times: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        times[name] = round(now - clock, 2)
        clock = now

    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    try:
        from qwen3_rag.engine import bytecode, get_engine

        bytecode.quiet()  # the parent said whatever there is to say about bytecode

        # Slow imports before the GPU's build lock (so workers that build in turn import at
        # once); only the engine build inside.
        if backend == "vllm":
            from qwen3_rag.engine.vllm import vllm_classes

            vllm_classes()
            # The engine core runs in the worker itself: one process per engine rather than
            # two, and no message per prompt between them (same throughput with 4 workers on an
            # H200, less CPU: docs/benchmarks.md, run 10).
            options = {"multiprocessing": "off", **options}
        lap("imports")
        with start_lock if start_lock is not None else contextlib.nullcontext():
            lap("wait")
            engine = get_engine(kind, model, backend, max_length=max_length, options=options, **extra)
        lap("engine")
        formatter = worker_formatter(kind, engine, model, options, max_length)
        lap("tokenizer")
        outbox.put(("ready", index, (getattr(engine, "dimension", None), times)))
    except BaseException as e:  # report start-up failures to the parent
        outbox.put(("error", index, f"{type(e).__name__}: {e}"))
        return
    while True:
        msg = tasks.get()
        if msg is None:
            break
        job, part, what, *payload = msg
        try:
            if what == "ids":
                token_ids = unpack(*payload)
            else:  # ("texts", method, kwargs, items): format and tokenize here, not in the parent
                method, kwargs, items = payload
                token_ids = getattr(formatter, method)(items, **kwargs)
        except (ValueError, TypeError) as e:  # bad input: the caller gets the same error
            outbox.put((job, part, index, type(e)(str(e))))
            continue
        try:
            result = engine.run(token_ids)
        except Exception as e:
            # The engine failed on valid input (e.g. vLLM 0.26's output channel can garble a
            # message under load, vllm-project/vllm#24655): it may be unusable, so this worker
            # leaves and the pool fails the batches in flight instead of waiting on it forever.
            traceback.print_exc()  # the whole story goes to the worker's stderr (the log)
            err = EngineWorkerError(f"engine worker {index} failed: {type(e).__name__}: {e}")
            outbox.put((job, part, index, err))
            break
        outbox.put((job, part, index, result))
    with contextlib.suppress(Exception):
        engine.close()
    # Leave without interpreter finalization: vLLM's background threads can abort it (a fatal
    # "PyEval_SaveThread" at exit, seen on an H200) after all the work is done and delivered.
    outbox.close()
    outbox.join_thread()
    # multiprocessing's own exit hooks still run: semaphores this process made (e.g. tqdm's
    # lock) are released, or the resource tracker reports them "leaked" when the parent exits.
    mp_util._run_finalizers(0)
    os._exit(0)


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


class _Pool:
    """Worker processes fed from one shared queue, and a thread that gathers their results.

    A batch is cut into parts (:func:`plan_parts`); idle workers take the next part from the
    queue, so a fast worker is never held up by a slow one and, with batches submitted ahead,
    no worker waits for the caller. A worker that dies fails the batches in flight with an
    error naming it, instead of leaving the caller waiting.
    """

    def __init__(self, config: EngineConfig, options: dict[str, Any], extra: dict[str, Any]):
        from qwen3_rag.engine.vllm import _hidden_main

        dp = int(options.get("data_parallel_size", 1))
        per_gpu = int(options.get("engines_per_gpu", 1))
        if dp < 1 or per_gpu < 1:
            raise ValueError("data_parallel_size and engines_per_gpu must be >= 1")
        inner = {k: v for k, v in options.items() if k not in POOL_OPTIONS}
        if config.backend == "vllm" and per_gpu > 1:
            from qwen3_rag.engine.vllm import DEFAULT_VLLM_OPTIONS

            util = inner.get("gpu_memory_utilization", DEFAULT_VLLM_OPTIONS["gpu_memory_utilization"])
            inner["gpu_memory_utilization"] = round(util / per_gpu, 4)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = visible.split(",") if visible else [str(i) for i in range(dp)]
        if config.backend in ("vllm", "hf") and dp > len(gpus):
            raise ValueError(f"data_parallel_size={dp} but only GPUs {gpus} are visible")
        ctx = mp.get_context("spawn")
        self.outbox = ctx.Queue()
        self.tasks = ctx.Queue()
        self.lock = threading.Lock()
        self.jobs = itertools.count()
        self.pending: dict[int, _Job] = {}
        self.broken: str | None = None
        self.on_close: Any = None
        self.size = dp * per_gpu
        """Number of workers (fixed: the pool never shrinks, it breaks)."""
        self._close_lock = threading.Lock()
        self._ready: dict[int, dict[str, float]] = {}
        self.parts_done = [0] * self.size
        """Batch parts each worker has delivered (the shared queue balances them)."""
        self.collector: threading.Thread | None = None
        # Engines sharing a GPU build their engines one after another (a lock per GPU): vLLM
        # sizes its KV cache from the free memory it profiles, and engines profiling side by
        # side on one GPU misread each other ("No available memory for the cache blocks", seen
        # on an H200). GPUs proceed in parallel, and so do all engines when
        # ``kv_cache_memory_bytes`` fixes each one's KV cache, or off vLLM.
        together = builds_together(config.backend, inner)
        if not together and per_gpu > 1:
            logger.warning("qwen3_rag: the %d vLLM engines on each GPU are built one after another; set "
                           "kv_cache_memory_bytes (e.g. 8000000000) to build them at once", per_gpu)
        gpu_locks = [None if together else ctx.Lock() for _ in range(dp)]
        self.procs = [
            ctx.Process(
                target=_worker,
                args=(
                    config.kind,
                    config.model,
                    config.backend,
                    config.max_length,
                    inner,
                    extra,
                    gpus[w // per_gpu] if dp > 1 and config.backend != "remote" else None,
                    w,
                    self.tasks,
                    self.outbox,
                    gpu_locks[w // per_gpu],
                ),
                daemon=False,
                name=f"qwen3-rag-{config.kind}-{w}",
            )
            for w in range(dp * per_gpu)
        ]
        self.dimension = None
        # At interpreter exit multiprocessing joins non-daemon children; close the workers first
        # (finalizers with an exit priority run before that join), or exit would wait forever.
        mp_util.Finalize(self, _Pool.close, args=(self,), exitpriority=100)
        self.all_ready = threading.Event()
        self._started = time.perf_counter()
        self._together = together
        self.startup: dict[str, Any] = {"first": None, "seconds": None, "workers": []}
        """Start-up of the workers: ``first`` and ``seconds``: until one and until all were
        ready; ``workers``: each ready worker's own ``imports``/``wait`` (for its GPU's build
        lock)/``engine``/``tokenizer`` seconds, in worker order."""
        self._kind = config.kind
        with _hidden_main():
            for p in self.procs:  # all start at once: their imports run in parallel
                p.start()
        # Work starts as soon as one worker is ready (the shared queue feeds whoever is); the
        # collector takes the others' ready messages as they come (:meth:`wait_ready` waits).
        # Not where engines on a GPU are built in turn: those still to build size their KV cache
        # from the free memory they measure, which a working engine would skew.
        for _ in range(1 if together else self.size):
            status, w, value = self._startup_message()
            if status == "error":
                self.close()
                raise RuntimeError(f"an engine worker failed to start: {value}")
            self._worker_ready(w, value)
        self.collector = threading.Thread(target=self._collect, name="qwen3-rag-pool", daemon=True)
        self.collector.start()

    def _worker_ready(self, w: int, value: tuple[Any, dict[str, float]]) -> None:
        """Note worker ``w``'s ready message (its dimension and start-up laps); log the start-up."""
        self.dimension, self._ready[w] = value
        seconds = round(time.perf_counter() - self._started, 2)
        self.startup["workers"] = [self._ready[i] for i in sorted(self._ready)]
        if len(self._ready) == 1:
            self.startup["first"] = seconds
            if self.size > 1 and self._together:
                logger.info("qwen3_rag: the first of %d %s engine workers is ready after %.1f s; work starts",
                            self.size, self._kind, seconds)
        if len(self._ready) < self.size:
            return
        self.startup["seconds"] = seconds
        ready = [sum(t.values()) for t in self.startup["workers"]]  # each worker's own clock
        slowest = self.startup["workers"][ready.index(max(ready))]
        logger.info("qwen3_rag: %d %s engine workers ready in %.1f s (each after %s s; slowest: %s)",
                    self.size, self._kind, seconds, "/".join(f"{r:.1f}" for r in sorted(ready)),
                    ", ".join(f"{k} {v:.1f} s" for k, v in slowest.items()))
        self.all_ready.set()

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
                raise TimeoutError(f"{len(self._ready)} of {self.size} engine workers ready "
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
            if w in self._ready:  # a working engine: let it finish its part and stop
                p.join(timeout=max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.terminate()
                p.join(timeout=10)
            if p.is_alive():
                p.kill()


class _PoolMixin:
    """What both pool engines share: submit to the pool, close it."""

    pool: _Pool
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


class PoolEmbeddingEngine(_PoolMixin, EmbeddingEngine):
    """Embedding engines in several processes, used as one."""

    def __init__(self, config: EngineConfig, options: dict[str, Any]):
        super().__init__(config, options)
        self.pool = _Pool(config, options, {})
        self.pool.on_close = self._pool_closed
        self.dimension = int(self.pool.dimension)
        self.preferred_batch_size = 8192 * self.pool.size

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.dimension), dtype=np.float32)

    def embed(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        return self.run(token_ids)


class PoolRerankEngine(_PoolMixin, RerankEngine):
    """Reranker engines in several processes, used as one."""

    def __init__(self, config: EngineConfig, options: dict[str, Any], yes_id: int | None, no_id: int | None):
        super().__init__(config, options)
        self.pool = _Pool(config, options, {"yes_id": yes_id, "no_id": no_id})
        self.pool.on_close = self._pool_closed
        self.preferred_batch_size = 4096 * self.pool.size

    def _empty(self) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)

    def score(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        return self.run(token_ids)
