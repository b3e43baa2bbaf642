"""The engine pool's worker process: one engine, fed tasks from the pool's shared queue.

:func:`worker_main` is what each worker runs (:class:`~qwen3_rag.engine.pool.EnginePool` starts
them): it loads its engine as :class:`WorkerSpec` says, reports ``("ready", index, (dimension,
laps))`` or ``("error", index, message)``, then answers tasks until ``None``. Token ids travel as
int32 arrays (:func:`pack`) and results as float32 arrays; nothing a worker exchanges is ever
loaded from disk.

Example:
    >>> from qwen3_rag.engine.worker import pack, unpack
    >>> flat, offsets = pack([[1, 2], [3]])
    >>> unpack(flat, offsets)
    [[1, 2], [3]]
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing.util as mp_util
import os
import signal
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qwen3_rag.engine.options import EngineOptions


class EngineWorkerError(RuntimeError):
    """An engine in a worker failed on valid input; the pool closes (a new one starts next time)."""


def pack(token_ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token-id sequences as one flat int32 array plus offsets."""
    lengths = np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=len(token_ids))
    offsets = np.zeros(len(token_ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter(itertools.chain.from_iterable(token_ids), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


def unpack(flat: np.ndarray, offsets: np.ndarray) -> list[list[int]]:
    """The sequences :func:`pack` packed."""
    return [flat[offsets[i] : offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]


def name_process(name: str) -> None:
    """Name this process as ``top`` and ``/proc/PID/comm`` show it (Linux; 15 characters)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def worker_formatter(kind: str, engine: Any, model: str, tokenizer: str | None, max_length: int) -> Any:
    """The formatter a pool worker tokenizes with: over the engine's own tokenizer where it has
    one (vLLM loaded it while building the engine, so each worker saves a second load of
    seconds), else over :func:`~qwen3_rag.tokenizer.load_tokenizer`'s (``tokenizer``: the
    option, default the model's).
    """
    from qwen3_rag.formats import make_formatter
    from qwen3_rag.tokenizer import load_tokenizer

    own = engine.own_tokenizer()
    return make_formatter(kind, own if own is not None else load_tokenizer(model, tokenizer), max_length)


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker process needs to start its engine.

    Attributes:
        kind, model, backend, max_length: the engine's (as :class:`~qwen3_rag.engine.base.EngineConfig`).
        options: the worker's own engine options (no pool; see :meth:`PoolLayout.worker_options`).
        index: the worker's number in the pool.
        gpu: the ``CUDA_VISIBLE_DEVICES`` it runs with (``None``: the parent's).
        yes_id, no_id: the reranker's answer tokens.
    """

    kind: str
    model: str
    backend: str
    max_length: int
    options: EngineOptions
    index: int
    gpu: str | None = None
    yes_id: int | None = None
    no_id: int | None = None


class StartupClock:
    """Seconds between the steps of a worker's start-up (``imports``, ``wait``, ``engine``, ...)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        """Record the seconds since the previous step as step ``name``."""
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 2)
        self._last = now


def _start_engine(spec: WorkerSpec, start_lock: Any, clock: StartupClock) -> tuple[Any, Any]:
    """Load the worker's engine (under its GPU's build lock, if any) and its formatter."""
    from qwen3_rag.engine import bytecode, get_engine

    bytecode.quiet()  # the parent said whatever there is to say about bytecode
    # Slow imports before the GPU's build lock (so workers that build in turn import at once);
    # only the engine build inside.
    if spec.backend == "vllm":
        from qwen3_rag.engine.vllm import vllm_classes

        vllm_classes()
    clock.lap("imports")
    with start_lock if start_lock is not None else contextlib.nullcontext():
        clock.lap("wait")
        engine = get_engine(spec.kind, spec.model, spec.backend, max_length=spec.max_length,
                            options=spec.options, yes_id=spec.yes_id, no_id=spec.no_id)
    clock.lap("engine")
    formatter = worker_formatter(spec.kind, engine, spec.model, spec.options.tokenizer, spec.max_length)
    clock.lap("tokenizer")
    return engine, formatter


def _token_ids(formatter: Any, what: str, payload: Sequence[Any]) -> Any:
    """A task's token ids: unpacked (``"ids"``), or formatted and tokenized here (``"texts"``)."""
    if what == "ids":
        return unpack(*payload)
    method, kwargs, items = payload
    return getattr(formatter, method)(items, **kwargs)


def _serve(index: int, engine: Any, formatter: Any, tasks: Any, outbox: Any) -> None:
    """Run tasks until ``None`` (the pool closes) or the engine fails."""
    while True:
        msg = tasks.get()
        if msg is None:
            return
        job, part, what, *payload = msg
        try:
            token_ids = _token_ids(formatter, what, payload)
        except (ValueError, TypeError) as e:  # bad input: the caller gets the same error
            outbox.put((job, part, index, type(e)(str(e))))
            continue
        try:
            result = engine.run(token_ids)
        except Exception as e:
            # The engine failed on valid input (e.g. vLLM's output channel can garble a message
            # under load, vllm-project/vllm#24655): it may be unusable, so this worker leaves and
            # the pool fails the batches in flight instead of waiting on it forever.
            traceback.print_exc()  # the whole story goes to the worker's stderr (the log)
            err = EngineWorkerError(f"engine worker {index} failed: {type(e).__name__}: {e}")
            outbox.put((job, part, index, err))
            return
        outbox.put((job, part, index, result))


def _leave(engine: Any, outbox: Any) -> None:
    """Close the engine and end the process without interpreter finalization: vLLM's background
    threads can abort it (a fatal "PyEval_SaveThread" at exit) after all the work is delivered."""
    with contextlib.suppress(Exception):
        engine.close()
    outbox.close()
    outbox.join_thread()
    # os._exit skips multiprocessing's exit hooks, which release the semaphores this process
    # made (e.g. tqdm's lock); without them the parent's resource tracker reports them "leaked".
    # multiprocessing has no public call for this: _run_finalizers is what its own exit runs.
    mp_util._run_finalizers(0)
    os._exit(0)


def worker_main(spec: WorkerSpec, tasks: Any, outbox: Any, start_lock: Any = None) -> None:
    """A worker process: load one engine, then serve tasks until None.

    A task is ``(job, part, "ids", flat, offsets)`` (token ids) or
    ``(job, part, "texts", method, kwargs, items)``: items formatted and tokenized here by the
    model's formatter (``formatter.<method>(items, **kwargs)``), so tokenization runs in
    parallel in the workers instead of in the parent.
    """
    name_process(f"qwen3rag-{spec.kind[:3]}{spec.index}")
    # The pool stops a worker still starting with SIGTERM: leave through Python's exit then, so
    # multiprocessing's finalizers release the semaphores this process made (else the parent's
    # resource tracker reports them "leaked").
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    clock = StartupClock()
    if spec.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = spec.gpu
    try:
        engine, formatter = _start_engine(spec, start_lock, clock)
        outbox.put(("ready", spec.index, (getattr(engine, "dimension", None), clock.laps)))
    except BaseException as e:  # report start-up failures to the parent
        outbox.put(("error", spec.index, f"{type(e).__name__}: {e}"))
        return
    _serve(spec.index, engine, formatter, tasks, outbox)
    _leave(engine, outbox)
