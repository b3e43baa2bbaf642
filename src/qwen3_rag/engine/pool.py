"""Data parallelism: several engine processes, on one GPU or across GPUs.

A 0.6B model leaves a GPU's matrix units idle while one Python process prepares requests
and reads outputs, and a 0.6B model needs no tensor parallelism. ``PoolEngine`` starts
``data_parallel_size x engines_per_gpu`` worker processes (spawned, ``__main__`` hidden),
each with its own engine pinned to one GPU through ``CUDA_VISIBLE_DEVICES``, splits every
batch of token ids across them by token count, and gathers the results in order.

Engine options (read by :func:`qwen3_rag.engine.get_engine`):

* ``data_parallel_size``: number of GPUs to use (default 1),
* ``engines_per_gpu``: engine processes per GPU (default 1); ``gpu_memory_utilization`` is
  divided between them.

Token ids travel as int32 arrays and results as float32 arrays (numpy buffers, not Python
lists). Workers are internal processes of this package; nothing they exchange is ever
loaded from disk.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing as mp
import multiprocessing.util as mp_util
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from qwen3_rag.engine.base import EmbeddingEngine, EngineConfig, RerankEngine

POOL_OPTIONS = ("data_parallel_size", "engines_per_gpu")


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


def _worker(
    kind: str,
    model: str,
    backend: str,
    max_length: int,
    options: dict[str, Any],
    extra: dict[str, Any],
    gpu: str | None,
    index: int,
    inbox: Any,
    outbox: Any,
) -> None:
    """Worker process: load one engine, then serve (job, flat, offsets) until None."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    try:
        from qwen3_rag.engine import get_engine

        engine = get_engine(kind, model, backend, max_length=max_length, options=options, **extra)
        outbox.put(("ready", index, getattr(engine, "dimension", None)))
    except BaseException as e:  # report start-up failures to the parent
        outbox.put(("error", index, f"{type(e).__name__}: {e}"))
        return
    run = engine.embed if kind == "embedding" else engine.score  # type: ignore[attr-defined]
    while True:
        msg = inbox.get()
        if msg is None:
            break
        job, flat, offsets = msg
        try:
            outbox.put((job, run(unpack(flat, offsets))))
        except Exception as e:
            outbox.put((job, RuntimeError(f"{type(e).__name__}: {e}")))
    with contextlib.suppress(Exception):
        engine.close()
    # Leave without interpreter finalization: vLLM's background threads can abort it (a fatal
    # "PyEval_SaveThread" at exit, seen on an H200) after all the work is done and delivered.
    outbox.close()
    outbox.join_thread()
    os._exit(0)


class _Pool:
    """Worker processes and the plumbing to scatter a batch and gather the results."""

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
        self.inboxes, self.procs = [], []
        self.lock = threading.Lock()
        self.jobs = itertools.count()
        # Engines sharing a GPU start one after another: vLLM sizes its KV cache from the free
        # memory it profiles, and engines profiling side by side on one GPU misread each other
        # ("No available memory for the cache blocks", seen on an H200). GPUs start in parallel.
        queued: dict[int, list[tuple[int, Any]]] = {}
        self.inboxes = [ctx.Queue() for _ in range(dp * per_gpu)]
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
                    self.inboxes[w],
                    self.outbox,
                ),
                daemon=False,
                name=f"qwen3-rag-{config.kind}-{w}",
            )
            for w in range(dp * per_gpu)
        ]
        for w, p in enumerate(self.procs):
            queued.setdefault(w // per_gpu, []).append((w, p))
        self.dimension = None
        # At interpreter exit multiprocessing joins non-daemon children; close the workers first
        # (finalizers with an exit priority run before that join), or exit would wait forever.
        mp_util.Finalize(self, _Pool.close, args=(self,), exitpriority=100)
        with _hidden_main():
            for group in queued.values():
                group.pop(0)[1].start()
            for _ in self.procs:
                status, w, value = self.outbox.get()
                if status == "error":
                    self.close()
                    raise RuntimeError(f"an engine worker failed to start: {value}")
                self.dimension = value
                group = queued[w // per_gpu]
                if group:
                    group.pop(0)[1].start()

    def run(self, token_ids: Sequence[Sequence[int]]) -> list[Any]:
        ranges = split_by_tokens([len(t) for t in token_ids], len(self.procs))
        with self.lock:
            jobs = {}
            for w, (a, b) in enumerate(ranges):
                job = next(self.jobs)
                jobs[job] = w
                self.inboxes[w].put((job, *pack(token_ids[a:b])))
            results: dict[int, Any] = {}
            while len(results) < len(jobs):
                job, value = self.outbox.get()
                if isinstance(value, Exception):
                    raise value
                results[jobs[job]] = value
        return [results[w] for w in range(len(ranges))]

    def close(self) -> None:
        for inbox in self.inboxes:
            with contextlib.suppress(Exception):
                inbox.put(None)
        for p in self.procs:
            if p.pid is None:  # never started
                continue
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
        self.procs, self.inboxes = [], []


class PoolEmbeddingEngine(EmbeddingEngine):
    """Embedding engines in several processes, used as one."""

    def __init__(self, config: EngineConfig, options: dict[str, Any]):
        super().__init__(config, options)
        self.pool = _Pool(config, options, {})
        self.dimension = int(self.pool.dimension)
        self.preferred_batch_size = 8192 * len(self.pool.procs)

    def embed(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        if not token_ids:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.concatenate(self.pool.run(token_ids))

    def close(self) -> None:
        self.pool.close()
        super().close()


class PoolRerankEngine(RerankEngine):
    """Reranker engines in several processes, used as one."""

    def __init__(self, config: EngineConfig, options: dict[str, Any], yes_id: int | None, no_id: int | None):
        super().__init__(config, options)
        self.pool = _Pool(config, options, {"yes_id": yes_id, "no_id": no_id})
        self.preferred_batch_size = 4096 * len(self.pool.procs)

    def score(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        if not token_ids:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(self.pool.run(token_ids))

    def close(self) -> None:
        self.pool.close()
        super().close()
