"""vLLM backend: ``vllm.LLM(runner="pooling")`` fed with token-id prompts.

Embedding uses LAST pooling with normalisation; the original Qwen3-Reranker checkpoint is
converted on load into a yes/no sequence classifier (``classifier_from_token``), so
classification returns P(yes) computed from the full logits of the two tokens. Both go through
``LLM.encode`` and read the pooled tensors directly (no Python lists of floats).

Options: :class:`~qwen3_rag.engine.options.VLLMOptions`; they pass through to ``vllm.LLM``
(``gpu_memory_utilization``, ``max_num_seqs``, ``max_num_batched_tokens``,
``enable_prefix_caching``, ``dtype``, ``tensor_parallel_size``, and any other of its engine
arguments). Defaults leave room for an embedder and a reranker on one GPU in one process
(``gpu_memory_utilization=0.35`` each).

Start method: vLLM forks its engine-core process by default, and a fork taken after CPU
torch work can deadlock; two engines in one process (in-process mode) clash over vLLM's
global CUDA-graph state. Unless the caller set ``VLLM_ENABLE_V1_MULTIPROCESSING`` or
``VLLM_WORKER_MULTIPROC_METHOD``, the option ``multiprocessing`` decides: ``"spawn"``
(default) starts each engine core in a spawned process, with ``__main__`` hidden so scripts
need no ``if __name__ == "__main__":`` guard; ``"off"`` runs it in this process. In-process
skips a message per prompt each way, so it is faster for one caller (``docs/performance.md``);
pool workers and the service's reranker use it. A second in-process engine while one is alive
would clash, so it is spawned instead (with a warning).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from qwen3_rag.engine.base import EmbeddingEngine, EngineConfig, RerankEngine, l2_normalize
from qwen3_rag.engine.options import EngineOptions, VLLMOptions
from qwen3_rag.engine.spawn import hidden_main
from qwen3_rag.formats import VLLM_RERANKER_OVERRIDES

logger = logging.getLogger("qwen3_rag")
_inprocess_lock = threading.Lock()
_inprocess_live = 0  # engines of this process whose engine core runs in this process


def build_prompts(token_ids: Sequence[Sequence[int]]) -> list[dict[str, list[int]]]:
    """vLLM ``TokensPrompt``s (a TypedDict: plain dicts) for token-id sequences.

    Lists of Python ints (what the formatters and the pool give) are used as they are; other
    sequences (numpy arrays) are converted.
    """
    prompts = []
    for i, ids in enumerate(token_ids):
        if len(ids) == 0:
            raise ValueError(f"token sequence {i} is empty")
        if not (type(ids) is list and type(ids[0]) is int):
            ids = [int(t) for t in ids]
        prompts.append({"prompt_token_ids": ids})
    return prompts


def _pooled(outputs: Sequence[Any]) -> np.ndarray:
    """Stack the pooled tensors of ``LLM.encode`` outputs into one float32 array.

    Reading ``outputs.data`` (a tensor) avoids the Python lists of floats that
    ``LLM.embed``/``LLM.classify`` build, which cost more than the GPU work for small models.
    """
    if not outputs:
        raise ValueError("vLLM returned no outputs")
    rows = [o.outputs.data for o in outputs]
    if hasattr(rows[0], "float"):  # torch tensors
        import torch

        return torch.stack(rows).float().numpy()
    return np.asarray(rows, dtype=np.float32)


def parse_embeddings(outputs: Sequence[Any]) -> np.ndarray:
    """(n, d) float32 L2-normalised array from ``LLM.encode(pooling_task="embed")`` outputs."""
    arr = _pooled(outputs)
    if arr.ndim != 2:
        raise ValueError(f"expected one vector per prompt, got an array of shape {arr.shape}")
    return l2_normalize(arr)


def parse_probabilities(outputs: Sequence[Any]) -> np.ndarray:
    """(n,) P(yes) from ``LLM.encode(pooling_task="classify")`` outputs of the reranker.

    The converted reranker has one label whose probability is P(yes); a two-label
    classifier is read as [P(no), P(yes)].
    """
    arr = _pooled(outputs)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.shape[1] == 1:
        return arr[:, 0].copy()
    if arr.shape[1] == 2:
        return arr[:, 1].copy()
    raise ValueError(f"unexpected reranker output with {arr.shape[1]} classes")


@contextlib.contextmanager
def start_method(mode: str) -> Iterator[None]:
    """Set how vLLM starts its engine core, for the duration of engine construction.

    ``"spawn"`` (default): a fresh process per engine (no fork after CPU torch work, no global
    state shared between an embedder and a reranker in one process); ``"off"``: the engine
    core runs in this process; ``"fork"``: vLLM's own default. Variables the user set win.
    """
    if mode not in ("off", "spawn", "fork"):
        raise ValueError(f"multiprocessing must be 'spawn', 'off' or 'fork', got {mode!r}")
    if "VLLM_ENABLE_V1_MULTIPROCESSING" in os.environ or "VLLM_WORKER_MULTIPROC_METHOD" in os.environ:
        yield
        return
    env = (
        {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
        if mode == "off"
        else {"VLLM_ENABLE_V1_MULTIPROCESSING": "1", "VLLM_WORKER_MULTIPROC_METHOD": mode}
    )
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        if mode == "spawn":
            with hidden_main():
                yield
        else:
            yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def engine_kwargs(config: EngineConfig, options: VLLMOptions | Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments given to ``vllm.LLM`` (unit-tested without vLLM)."""
    kwargs: dict[str, Any] = {
        "model": config.model,
        "runner": "pooling",
        "max_model_len": config.max_length,
        **VLLMOptions.coerce(options).llm_kwargs(),
    }
    if config.kind == "reranker":
        overrides = dict(VLLM_RERANKER_OVERRIDES)
        overrides.update(kwargs.get("hf_overrides") or {})
        kwargs["hf_overrides"] = overrides
    return kwargs


def resolve_start_method(mode: str, inprocess_live: int) -> str:
    """The start method used: ``"off"`` becomes ``"spawn"`` while another engine of this
    process runs in-process (two would clash over vLLM's global CUDA-graph state).

    Example:
        >>> resolve_start_method("off", 0), resolve_start_method("off", 1), resolve_start_method("spawn", 1)
        ('off', 'spawn', 'spawn')
    """
    if mode == "off" and inprocess_live > 0:
        logger.warning("qwen3_rag: another vLLM engine already runs in this process; "
                       "starting this one's engine core in a spawned process instead")
        return "spawn"
    return mode


def inprocess_engines() -> int:
    """How many engines of this process run their engine core in this process."""
    with _inprocess_lock:
        return _inprocess_live


def vllm_classes() -> tuple[Any, Any]:
    """``vllm.LLM`` and ``vllm.config.PoolerConfig``, imported (a clear error without vLLM).

    ``import vllm`` alone loads torch and little else (vLLM's names load lazily); this import
    of the engine's modules is most of the rest (seconds per process), which is why pool
    workers call it before they queue for their GPU's build lock.
    """
    try:
        from vllm import LLM
        from vllm.config import PoolerConfig
    except ImportError as e:
        raise ImportError("the 'vllm' backend needs vLLM: pip install 'qwen3-rag[vllm]'") from e
    return LLM, PoolerConfig


def _make_llm(config: EngineConfig, options: VLLMOptions) -> tuple[Any, bool]:
    """The ``vllm.LLM`` and whether its engine core runs in this process."""
    global _inprocess_live
    LLM, PoolerConfig = vllm_classes()
    kwargs = engine_kwargs(config, options)
    if config.kind == "embedding" and "pooler_config" not in kwargs:
        kwargs["pooler_config"] = PoolerConfig(seq_pooling_type="LAST", use_activation=True)
    with _inprocess_lock:
        mode = resolve_start_method(options.start_method, _inprocess_live)
        with start_method(mode):
            inprocess = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0"
            llm = LLM(**kwargs)
        _inprocess_live += inprocess
    return llm, inprocess


class _VLLMMixin:
    llm: Any
    inprocess: bool = False
    options: VLLMOptions

    def own_tokenizer(self) -> Any | None:
        """vLLM's tokenizer (``LLM.get_tokenizer()``) when it tokenizes as
        :func:`qwen3_rag.tokenizer.load_tokenizer`'s does: a fast tokenizer that cuts on the
        right (vLLM's choice for pooling models); else None."""
        try:
            tok = self.llm.get_tokenizer()
        except ValueError:  # skip_tokenizer_init=True
            return None
        fits = getattr(tok, "is_fast", False) and getattr(tok, "truncation_side", None) == "right"
        return tok if fits else None

    def close(self) -> None:
        global _inprocess_live
        llm, self.llm = self.llm, None
        if llm is not None:
            if self.inprocess:
                with _inprocess_lock:
                    _inprocess_live -= 1
            engine = getattr(llm, "llm_engine", None)
            core = getattr(engine, "engine_core", None)
            with contextlib.suppress(Exception):
                if core is not None and hasattr(core, "shutdown"):
                    core.shutdown()
            del llm
            with contextlib.suppress(Exception):
                import gc

                import torch

                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        self.closed = True


class VLLMEmbeddingEngine(_VLLMMixin, EmbeddingEngine):
    """Qwen3-Embedding on vLLM (LAST pooling, normalised)."""

    preferred_batch_size = 8192

    def __init__(self, config: EngineConfig, options: VLLMOptions | EngineOptions | Mapping[str, Any]):
        super().__init__(config, VLLMOptions.coerce(options))
        self.llm, self.inprocess = _make_llm(config, self.options)
        self.dimension = int(self.llm.llm_engine.model_config.get_hidden_size())

    def embed(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        prompts = build_prompts(token_ids)
        with self.lock:
            outputs = self.llm.encode(prompts, pooling_task="embed", use_tqdm=False)
        return parse_embeddings(outputs)


class VLLMRerankEngine(_VLLMMixin, RerankEngine):
    """Qwen3-Reranker on vLLM, converted to a yes/no classifier on load."""

    preferred_batch_size = 4096

    def __init__(self, config: EngineConfig, options: VLLMOptions | EngineOptions | Mapping[str, Any]):
        super().__init__(config, VLLMOptions.coerce(options))
        self.llm, self.inprocess = _make_llm(config, self.options)

    def score(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        prompts = build_prompts(token_ids)
        with self.lock:
            outputs = self.llm.encode(prompts, pooling_task="classify", use_tqdm=False)
        return parse_probabilities(outputs)
