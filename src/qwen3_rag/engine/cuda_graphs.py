"""Padded forwards of fixed shapes, captured once as CUDA graphs and replayed per call.

A query embedding or the reranking of 20 candidates is a few thousand tokens: the GPU
computes it in 1-3 ms, while launching the ~1,500 kernels of a 28-layer forward one by one
from Python (eager transformers) or vLLM's front end and piecewise graphs cost 8-30 ms
(``docs/performance.md``). :class:`GraphRunner` pads a batch to the smallest of a fixed set of
(rows, length) buckets and replays a CUDA graph captured for that bucket, so a small call
costs about what its kernels cost.

The forward it captures takes left-padded ``input_ids`` and a 0/1 ``attention_mask`` (both
``(rows, length)`` int64) and builds everything else on the GPU inside the graph: positions
from the mask, and the 4-D boolean attention mask (causal and padding; a row that may attend
nowhere attends everywhere instead, as transformers does for SDPA, so padded rows never
produce NaN). :func:`attention_inputs` is that part, shared with the eager path of the tests.

Example (CPU: no capture, the same padded computation):
    >>> import torch
    >>> from qwen3_rag.engine.cuda_graphs import GraphRunner
    >>> runner = GraphRunner(lambda ids, mask: ids.sum(-1, keepdim=True), torch.device("cpu"),
    ...                      pad_id=0, max_tokens=64, capture=False)
    >>> runner.bucket(3, 5)
    (4, 16)
    >>> runner.run([[1, 2], [3]]).tolist()
    [[3], [3]]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger("qwen3_rag")

#: row counts of the buckets (a batch is padded up to the next one)
BUCKET_ROWS = (1, 2, 4, 6, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96, 128)
#: lengths of the buckets, in tokens: steps of 16 up to 192 (a query, a reranker prompt), then coarser
BUCKET_LENGTHS = (*range(16, 193, 16), 224, 256, 320, 384, 448, 512, 640, 768, 1024, 1536, 2048)


def attention_inputs(mask: Any, float_dtype: Any = None) -> tuple[Any, Any]:
    """``(mask_4d, position_ids)`` for a left-padded 0/1 ``mask`` of shape (rows, length).

    ``mask_4d`` is (rows, 1, length, length): boolean (True = may attend) for SDPA, or additive
    in ``float_dtype`` (0 / dtype min) for eager attention. Only tensor operations, so it can be
    captured in a CUDA graph.
    """
    import torch

    n = mask.shape[-1]
    causal = torch.ones((n, n), dtype=torch.bool, device=mask.device).tril()
    allowed = causal[None, None] & mask.bool()[:, None, None, :]
    allowed = allowed | ~allowed.any(-1, keepdim=True)  # rows with no key attend everywhere
    if float_dtype is None:
        return allowed, positions(mask)
    additive = torch.zeros(allowed.shape, dtype=float_dtype, device=mask.device)
    return additive.masked_fill(~allowed, torch.finfo(float_dtype).min), positions(mask)


def positions(mask: Any) -> Any:
    """Position ids of a left-padded 0/1 ``mask``: 0, 1, ... from each sequence's first token."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def left_pad(token_ids: Sequence[Sequence[int]], rows: int, length: int, *, pad_id: int) -> tuple[Any, Any]:
    """``(input_ids, attention_mask)``: (rows, length) int64 CPU tensors, sequences left-padded
    (rows past ``len(token_ids)`` are all padding)."""
    import torch

    ids = torch.full((rows, length), pad_id, dtype=torch.long)
    mask = torch.zeros((rows, length), dtype=torch.long)
    for row, seq in enumerate(token_ids):
        if len(seq) == 0:
            raise ValueError(f"token sequence {row} is empty")
        ids[row, length - len(seq):] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, length - len(seq):] = 1
    return ids, mask


class GraphRunner:
    """Run ``forward(input_ids, attention_mask)`` on padded buckets, replaying CUDA graphs.

    Args:
        forward: maps (rows, length) int64 ids and 0/1 mask to a tensor with one row per input
            row; it must not synchronise with the host (no ``.item()``, no host copies).
        device: where the forward runs.
        pad_id: token id for padding.
        max_tokens: buckets hold at most this many padded tokens (rows × length).
        max_rows: most rows in a bucket.
        capture: capture every bucket at construction (CUDA only); ``False`` runs the same padded
            computation eagerly (what the CPU tests check).
    """

    def __init__(
        self,
        forward: Callable[[Any, Any], Any],
        device: Any,
        *,
        pad_id: int,
        max_tokens: int = 8192,
        max_rows: int = 64,
        capture: bool = True,
    ):
        if max_tokens < BUCKET_LENGTHS[0]:
            raise ValueError(f"max_tokens must be at least {BUCKET_LENGTHS[0]}, got {max_tokens}")
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        self.forward = forward
        self.capture_s = 0.0
        self.device = device
        self.pad_id = pad_id
        self.max_tokens = max_tokens
        self.rows = [r for r in BUCKET_ROWS if r <= max_rows]
        self.lengths = [n for n in BUCKET_LENGTHS if n <= max_tokens]
        self.graphs: dict[tuple[int, int], tuple[Any, Any, Any, Any]] = {}
        if capture:
            self.capture_all()

    @property
    def max_length(self) -> int:
        """The longest sequence a bucket holds."""
        return self.lengths[-1]

    def bucket(self, rows: int, length: int) -> tuple[int, int] | None:
        """The smallest bucket holding ``rows`` sequences of up to ``length`` tokens, or None."""
        r = next((b for b in self.rows if b >= rows), None)
        n = next((b for b in self.lengths if b >= length), None)
        if r is None or n is None or r * n > self.max_tokens:
            return None
        return r, n

    def fits(self, token_ids: Sequence[Sequence[int]]) -> bool:
        """True when one bucket holds all of ``token_ids``."""
        return bool(token_ids) and self.bucket(len(token_ids), max(map(len, token_ids))) is not None

    def capture_all(self) -> None:
        """Capture a graph for every bucket (one memory pool shared by all of them)."""
        import torch

        t0 = time.perf_counter()
        pool = torch.cuda.graph_pool_handle()
        # largest first: later, smaller captures reuse the pool's blocks
        shapes = sorted(((r, n) for r in self.rows for n in self.lengths if r * n <= self.max_tokens),
                        key=lambda s: -s[0] * s[1])
        with torch.inference_mode():
            for rows, length in shapes:
                ids = torch.full((rows, length), self.pad_id, dtype=torch.long, device=self.device)
                mask = torch.ones((rows, length), dtype=torch.long, device=self.device)
                side = torch.cuda.Stream(self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side):  # warm-up: lazy initialisation, cuBLAS workspaces
                    self.forward(ids, mask)
                torch.cuda.current_stream(self.device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool):
                    out = self.forward(ids, mask)
                self.graphs[(rows, length)] = (graph, ids, mask, out)
        torch.cuda.synchronize(self.device)
        self.capture_s = time.perf_counter() - t0
        logger.info("qwen3_rag: captured %d CUDA graphs (up to %d tokens) in %.1f s",
                    len(self.graphs), self.max_tokens, self.capture_s)

    def run(self, token_ids: Sequence[Sequence[int]]) -> Any:
        """The forward's rows for ``token_ids`` (one bucket must hold them: see :meth:`fits`),
        as a CPU tensor."""
        import torch

        shape = self.bucket(len(token_ids), max(map(len, token_ids))) if token_ids else None
        if shape is None:
            raise ValueError(f"{len(token_ids)} sequences do not fit a bucket of at most "
                             f"{self.max_tokens} tokens")
        ids, mask = left_pad(token_ids, *shape, pad_id=self.pad_id)
        with torch.inference_mode():
            if shape not in self.graphs:
                return self.forward(ids.to(self.device), mask.to(self.device))[: len(token_ids)].cpu()
            graph, static_ids, static_mask, out = self.graphs[shape]
            static_ids.copy_(ids)
            static_mask.copy_(mask)
            graph.replay()
            return out[: len(token_ids)].cpu()
