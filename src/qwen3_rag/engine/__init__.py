"""Engine layer: backend choice and a process-wide cache of loaded engines.

One process never loads the same model twice: engines are cached by
(kind, model, backend, max_length, options), so ``Qwen3Embedder`` objects built by the
LangChain and LlamaIndex adapters with the same settings share one engine.

Example:
    >>> from qwen3_rag.engine import resolve_backend
    >>> resolve_backend("hf")
    'hf'
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import multiprocessing.util  # noqa: F401  (for the order of exit hooks: see atexit.register below)
import threading
from typing import Any

from qwen3_rag.engine.base import (
    EmbeddingEngine,
    Engine,
    EngineConfig,
    RerankEngine,
    check_model,
    freeze_options,
)
from qwen3_rag.engine.bytecode import warn_if_uncompiled

logger = logging.getLogger("qwen3_rag")

BACKENDS = ("auto", "hf", "vllm", "remote")

_lock = threading.Lock()
_engines: dict[EngineConfig, Engine] = {}


def vllm_available() -> bool:
    """True when vLLM is importable and a CUDA GPU is visible."""
    if importlib.util.find_spec("vllm") is None:
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_backend(backend: str) -> str:
    """Map ``"auto"`` to ``"vllm"`` (importable with CUDA) or ``"hf"``; validate the rest."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    chosen = "vllm" if vllm_available() else "hf"
    logger.info("qwen3_rag: backend='auto' chose %r", chosen)
    return chosen


def get_engine(
    kind: str,
    model: str,
    backend: str = "auto",
    *,
    max_length: int,
    options: dict[str, Any] | None = None,
    yes_id: int | None = None,
    no_id: int | None = None,
) -> Engine:
    """Return the cached engine for these settings, loading it on first use."""
    if kind not in ("embedding", "reranker"):
        raise ValueError(f"kind must be 'embedding' or 'reranker', got {kind!r}")
    options = dict(options or {})
    backend = resolve_backend(backend)
    model_ref = model if backend == "remote" else check_model(model)
    config = EngineConfig(kind, model_ref, backend, max_length, freeze_options(options))
    with _lock:
        engine = _engines.get(config)
        if engine is not None and not engine.closed:
            return engine
        engine = _load(config, options, yes_id, no_id)
        _engines[config] = engine
        return engine


def _load(config: EngineConfig, options: dict[str, Any], yes_id: int | None, no_id: int | None) -> Engine:
    logger.info("qwen3_rag: loading %s engine %s on %s", config.kind, config.model, config.backend)
    warn_if_uncompiled(config.backend)
    options = dict(options)
    fast_path_tokens = options.pop("fast_path_tokens", None)
    fast_path_compile = options.pop("fast_path_compile", False)
    if fast_path_tokens:
        return _load_routed(config, options, (fast_path_tokens, fast_path_compile), yes_id, no_id)
    if fast_path_compile:
        raise ValueError("fast_path_compile needs fast_path_tokens (the fast path it compiles)")
    if int(options.get("data_parallel_size", 1)) * int(options.get("engines_per_gpu", 1)) > 1:
        from qwen3_rag.engine.pool import PoolEmbeddingEngine, PoolRerankEngine

        if config.kind == "embedding":
            return PoolEmbeddingEngine(config, options)
        return PoolRerankEngine(config, options, yes_id=yes_id, no_id=no_id)
    options = {k: v for k, v in options.items() if k not in ("data_parallel_size", "engines_per_gpu")}
    if config.backend == "hf":
        from qwen3_rag.engine.hf import HFEmbeddingEngine, HFRerankEngine

        if config.kind == "embedding":
            return HFEmbeddingEngine(config, options)
        assert yes_id is not None and no_id is not None
        return HFRerankEngine(config, options, yes_id=yes_id, no_id=no_id)
    if config.backend == "vllm":
        from qwen3_rag.engine.vllm import VLLMEmbeddingEngine, VLLMRerankEngine

        if config.kind == "embedding":
            return VLLMEmbeddingEngine(config, options)
        return VLLMRerankEngine(config, options)
    if config.backend == "remote":
        from qwen3_rag.engine.remote import RemoteEmbeddingEngine, RemoteRerankEngine

        if config.kind == "embedding":
            return RemoteEmbeddingEngine(config, options)
        return RemoteRerankEngine(config, options)
    raise ValueError(f"unknown backend {config.backend!r}")


def _load_routed(config: EngineConfig, options: dict[str, Any], fast_path: tuple[Any, Any],
                 yes_id: int | None, no_id: int | None) -> Engine:
    """vLLM for large calls plus a CUDA-graph transformers copy for small ones (:mod:`.routed`)."""
    from qwen3_rag.engine.hf import HFEmbeddingEngine, HFRerankEngine
    from qwen3_rag.engine.routed import RoutedEmbeddingEngine, RoutedRerankEngine, fast_options

    if config.backend != "vllm":
        raise ValueError(f"fast_path_tokens is a vllm backend option (got backend {config.backend!r}); "
                         "the hf backend replays CUDA graphs itself (cuda_graphs, graph_max_tokens)")
    fopts = fast_options(options, *fast_path)
    bulk = _load(config, options, yes_id, no_id)
    fast_config = EngineConfig(config.kind, config.model, "hf", config.max_length, freeze_options(fopts))
    try:
        if config.kind == "embedding":
            return RoutedEmbeddingEngine(config, options, bulk, HFEmbeddingEngine(fast_config, fopts))
        assert yes_id is not None and no_id is not None
        return RoutedRerankEngine(config, options, bulk, HFRerankEngine(fast_config, fopts, yes_id=yes_id,
                                                                        no_id=no_id))
    except BaseException:
        bulk.close()
        raise


def loaded_engines() -> list[Engine]:
    """The engines loaded in this process (for inspection and tests)."""
    with _lock:
        return [e for e in _engines.values() if not e.closed]


def shutdown_engines() -> None:
    """Close every cached engine (GPU memory, vLLM processes). Called at exit."""
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
    for e in engines:
        try:
            e.close()
        except Exception:  # pragma: no cover - best effort at shutdown
            logger.exception("qwen3_rag: error while closing %s", e.config)


# atexit runs its hooks last-registered first. multiprocessing registers, on its first import,
# a hook that joins every live non-daemon child process, and vLLM's engine-core process is one
# that waits for our shutdown message. Importing multiprocessing.util above registers that
# hook before ours, so engines are closed before it joins; otherwise a program that imported
# qwen3_rag first and let vLLM pull in multiprocessing later never exited (a `qwen3-rag serve`
# hung after SIGTERM).
atexit.register(shutdown_engines)

__all__ = [
    "BACKENDS",
    "EmbeddingEngine",
    "Engine",
    "EngineConfig",
    "RerankEngine",
    "get_engine",
    "loaded_engines",
    "resolve_backend",
    "shutdown_engines",
    "vllm_available",
]
