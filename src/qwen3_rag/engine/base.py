"""The small interface every backend implements, and what identifies an engine.

Engines take token ids (built by :mod:`qwen3_rag.formats`) and return numpy arrays, so the
formats live in one place and all backends see exactly the same sequences. Their options are
the typed groups of :mod:`qwen3_rag.engine.options`.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from qwen3_rag.engine.options import EngineOptions


@dataclass(frozen=True)
class EngineConfig:
    """What identifies an engine: one process loads each distinct config once.

    Attributes:
        kind: ``"embedding"`` or ``"reranker"``.
        model: hub id or local directory.
        backend: ``"hf"``, ``"vllm"`` or ``"remote"`` (never ``"auto"``: resolved before).
        max_length: the longest sequence the engine will be given.
        options: the engine's options (hashable: part of the cache key); ``None`` for an engine
            made directly, which takes its options as an argument.
    """

    kind: str
    model: str
    backend: str
    max_length: int
    options: EngineOptions | None = None


def looks_like_path(model: str) -> bool:
    """True when ``model`` names a local directory rather than a hub id (``org/name``)."""
    if os.path.isdir(model):
        return True
    if model.startswith(("/", "./", "../", "~", ".\\")) or "\\" in model:
        return True
    return model.count("/") > 1


def check_model(model: str) -> str:
    """Validate a model reference; a missing local directory is a clear error."""
    if not isinstance(model, str) or not model:
        raise TypeError(f"model must be a hub id or a local directory, got {model!r}")
    if looks_like_path(model):
        path = os.path.expanduser(model)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"model directory not found: {model}")
        return os.path.abspath(path)
    return model


class Engine:
    """Base of all engines: holds the config, the options and a lock that serialises calls.

    ``options`` is the backend's group of :mod:`qwen3_rag.engine.options` (each backend turns a
    mapping given to its constructor into it), or the :class:`EngineOptions` of an engine made of
    others (the pool, the fast path).
    """

    #: how many sequences the caller should hand over per call
    preferred_batch_size: int = 64
    #: how many calls the engine computes at once (an engine pool: one per worker process)
    parallelism: int = 1

    def __init__(self, config: EngineConfig, options: Any):
        self.config = config
        self.options = options
        self.lock = threading.Lock()
        self.closed = False

    def run(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        """The engine's work on one batch (``embed`` or ``score``)."""
        raise NotImplementedError

    def submit(self, token_ids: Sequence[Sequence[int]]) -> Future[np.ndarray]:
        """Start :meth:`run` on a batch and return a future of its result.

        Engines in this process compute the batch before returning (a completed future);
        the engine pool queues it for its worker processes and returns at once, so a caller
        can hand over the next batch while this one runs (see :func:`qwen3_rag.batching.pipelined`).
        """
        fut: Future[np.ndarray] = Future()
        try:
            fut.set_result(self.run(token_ids))
        except Exception as e:
            fut.set_exception(e)
        return fut

    def own_tokenizer(self) -> Any | None:
        """The Hugging Face fast tokenizer this engine loaded for itself, or None.

        vLLM loads the model's tokenizer while it builds its engine; an engine pool's worker
        formats with that one instead of loading a second copy (``None``: it loads its own).
        """
        return None

    def close(self) -> None:
        """Release the model (GPU memory, worker processes). Idempotent."""
        self.closed = True


class EmbeddingEngine(Engine, ABC):
    """Turns token-id sequences into L2-normalised float32 vectors."""

    dimension: int

    @abstractmethod
    def embed(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Return an (n, dimension) float32 array, rows L2-normalised."""

    def run(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        return self.embed(token_ids)


class RerankEngine(Engine, ABC):
    """Turns reranker prompt token ids into P(yes) scores."""

    @abstractmethod
    def score(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Return an (n,) float32 array of P(yes) in [0, 1]."""

    def run(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        return self.score(token_ids)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
