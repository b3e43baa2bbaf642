"""Engine layer: backend choice and a process-wide cache of loaded engines.

One process never loads the same model twice: engines are cached by their
:class:`~qwen3_rag.engine.base.EngineConfig` (kind, model, backend, max_length and the typed
:class:`~qwen3_rag.engine.options.EngineOptions`), so ``Qwen3Embedder`` objects built by the
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
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from qwen3_rag.engine.base import EmbeddingEngine, Engine, EngineConfig, RerankEngine, check_model
from qwen3_rag.engine.bytecode import warn_if_uncompiled
from qwen3_rag.engine.options import BACKEND_NAMES, EngineOptions, HFOptions

logger = logging.getLogger("qwen3_rag")

BACKENDS = ("auto", *BACKEND_NAMES)

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
    options: EngineOptions | Mapping[str, Any] | None = None,
    yes_id: int | None = None,
    no_id: int | None = None,
) -> Engine:
    """Return the cached engine for these settings, loading it on first use.

    ``options``: :class:`~qwen3_rag.engine.options.EngineOptions`, or a mapping of option names
    built into them (:meth:`EngineOptions.build <qwen3_rag.engine.options.EngineOptions.build>`:
    an unknown name, or one of another backend, is an error).
    """
    if kind not in ("embedding", "reranker"):
        raise ValueError(f"kind must be 'embedding' or 'reranker', got {kind!r}")
    backend = resolve_backend(backend)
    typed = EngineOptions.build(backend, options)
    model_ref = model if backend == "remote" else check_model(model)
    config = EngineConfig(kind, model_ref, backend, max_length, typed)
    with _lock:
        engine = _engines.get(config)
        if engine is not None and not engine.closed:
            return engine
        engine = _load(config, yes_id, no_id)
        _engines[config] = engine
        return engine


def _options(config: EngineConfig) -> EngineOptions:
    if config.options is None:
        raise ValueError("an engine loaded through the cache needs its EngineConfig.options")
    return config.options


def _load(config: EngineConfig, yes_id: int | None, no_id: int | None) -> Engine:
    """The engine for ``config``: with the fast path, a pool of processes, or one engine here."""
    logger.info("qwen3_rag: loading %s engine %s on %s", config.kind, config.model, config.backend)
    warn_if_uncompiled(config.backend)
    options = _options(config)
    if options.fast_path.enabled:
        return _load_routed(config, yes_id, no_id)
    if options.pool.enabled:
        from qwen3_rag.engine.pool import PoolEmbeddingEngine, PoolRerankEngine

        if config.kind == "embedding":
            return PoolEmbeddingEngine(config, options)
        return PoolRerankEngine(config, options, yes_id=yes_id, no_id=no_id)
    return _load_one(config, yes_id, no_id)


def _load_one(config: EngineConfig, yes_id: int | None, no_id: int | None) -> Engine:
    """One engine of ``config.backend`` in this process."""
    engine_options = _options(config).engine
    if config.backend == "hf":
        from qwen3_rag.engine.hf import HFEmbeddingEngine, HFRerankEngine

        if config.kind == "embedding":
            return HFEmbeddingEngine(config, engine_options)
        assert yes_id is not None and no_id is not None
        return HFRerankEngine(config, engine_options, yes_id=yes_id, no_id=no_id)
    if config.backend == "vllm":
        from qwen3_rag.engine.vllm import VLLMEmbeddingEngine, VLLMRerankEngine

        if config.kind == "embedding":
            return VLLMEmbeddingEngine(config, engine_options)
        return VLLMRerankEngine(config, engine_options)
    if config.backend == "remote":
        from qwen3_rag.engine.remote import RemoteEmbeddingEngine, RemoteRerankEngine

        if config.kind == "embedding":
            return RemoteEmbeddingEngine(config, engine_options)
        return RemoteRerankEngine(config, engine_options)
    raise ValueError(f"unknown backend {config.backend!r}")


def _load_routed(config: EngineConfig, yes_id: int | None, no_id: int | None) -> Engine:
    """vLLM for large calls plus a CUDA-graph transformers copy for small ones (:mod:`.routed`)."""
    from qwen3_rag.engine.hf import HFEmbeddingEngine, HFRerankEngine
    from qwen3_rag.engine.routed import RoutedEmbeddingEngine, RoutedRerankEngine

    options = _options(config)
    fast_hf = HFOptions.from_mapping(options.fast_path.hf_options(options.engine.changed()))
    bulk = _load(replace(config, options=options.without_fast_path()), yes_id, no_id)
    fast_config = EngineConfig(config.kind, config.model, "hf", config.max_length, EngineOptions(fast_hf))
    try:
        if config.kind == "embedding":
            return RoutedEmbeddingEngine(config, options, bulk, HFEmbeddingEngine(fast_config, fast_hf))
        assert yes_id is not None and no_id is not None
        fast = HFRerankEngine(fast_config, fast_hf, yes_id=yes_id, no_id=no_id)
        return RoutedRerankEngine(config, options, bulk, fast)
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
    "EngineOptions",
    "RerankEngine",
    "get_engine",
    "loaded_engines",
    "resolve_backend",
    "shutdown_engines",
    "vllm_available",
]
