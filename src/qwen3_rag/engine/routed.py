"""Small calls to a latency engine, the rest to a throughput engine (vLLM option ``fast_path_tokens``).

vLLM is built for throughput: a call of one query or 20 reranker prompts costs 8-30 ms of
front end and per-layer Python while its kernels take 1.5-3 ms (``docs/performance.md``), and
vLLM captures no whole-forward CUDA graph for pooling models. With
``fast_path_tokens=N`` the vLLM backend also loads the same checkpoint with transformers on
the GPU, captures CUDA graphs for padded shapes of up to N tokens
(:mod:`qwen3_rag.engine.cuda_graphs`), and sends every call that fits one of them there;
larger calls (indexing, a reranking job) go to vLLM as before. ``qwen3-rag serve`` turns it on
for its embedder and reranker. ``fast_path_compile=True`` compiles the copy's decoder layers
first (the hf option ``torch_compile``): fused kernels, so fewer of them per replay. Both
options are :class:`~qwen3_rag.engine.options.FastPathOptions`.

Both engines compute the same function of the same token ids (last-token pooling; P(yes) from
the yes/no logits), checked against each other on a GPU in ``tests/engine/test_gpu.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from qwen3_rag.engine.base import EmbeddingEngine, Engine, EngineConfig, RerankEngine
from qwen3_rag.engine.options import FastPathOptions


def fast_options(options: Mapping[str, Any], fast_path_tokens: Any, compile: Any = False) -> dict[str, Any]:
    """hf-backend options of the fast path for a vLLM engine's ``options`` (``compile``: the vLLM
    option ``fast_path_compile``, the fast path's ``torch_compile``).

    Example:
        >>> opts = fast_options({"dtype": "auto", "max_num_seqs": 256}, 4096)
        >>> opts["graph_max_tokens"], opts["dtype"], "max_num_seqs" in opts
        (4096, 'bfloat16', False)
    """
    fast = FastPathOptions(fast_path_tokens=fast_path_tokens, fast_path_compile=compile)
    if not fast.enabled:
        raise ValueError("fast_path_tokens must be at least 16 for a fast path (0: off)")
    return fast.hf_options(options)


class _Routed:
    bulk: Engine
    fast: Any  # an hf engine with a GraphRunner

    def _pick(self, token_ids: Sequence[Sequence[int]]) -> Engine:
        return self.fast if self.fast.graphs.fits(token_ids) else self.bulk

    def own_tokenizer(self) -> Any | None:
        return self.bulk.own_tokenizer()

    def close(self) -> None:
        for engine in (self.fast, self.bulk):
            engine.close()
        self.closed = True


def _init(routed: Any, config: EngineConfig, options: Any, bulk: Engine, fast: Engine) -> None:
    Engine.__init__(routed, config, options)
    routed.bulk, routed.fast = bulk, fast
    routed.preferred_batch_size = bulk.preferred_batch_size
    routed.parallelism = bulk.parallelism  # calls that fit the fast path take its lock in turn


class RoutedEmbeddingEngine(_Routed, EmbeddingEngine):
    """An embedding engine that sends calls fitting ``fast``'s CUDA graphs there, the rest to ``bulk``."""

    def __init__(self, config: EngineConfig, options: Any, bulk: EmbeddingEngine, fast: EmbeddingEngine):
        _init(self, config, options, bulk, fast)
        if fast.dimension != bulk.dimension:
            raise ValueError(f"fast path dimension {fast.dimension} != {bulk.dimension}")
        self.dimension = bulk.dimension

    def embed(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        return self._pick(token_ids).embed(token_ids)


class RoutedRerankEngine(_Routed, RerankEngine):
    """A reranking engine that sends calls fitting ``fast``'s CUDA graphs there, the rest to ``bulk``."""

    def __init__(self, config: EngineConfig, options: Any, bulk: RerankEngine, fast: RerankEngine):
        _init(self, config, options, bulk, fast)

    def score(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        return self._pick(token_ids).score(token_ids)
