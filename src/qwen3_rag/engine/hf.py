"""transformers + torch backend: the reference, and the fallback where vLLM is absent.

Sequences are sorted by length and cut into bounded batches (at most ``max_batch_size``
sequences and ``max_batch_tokens`` padded tokens), left-padded, and run in float32 on CPU or
bfloat16 on GPU (override with ``dtype``).

Options: :class:`~qwen3_rag.engine.options.HFOptions` (``device``, ``dtype``,
``max_batch_size``, ``max_batch_tokens``, ``attn_implementation``, ``trust_remote_code``,
``cuda_graphs``, ``graph_max_tokens``, ``torch_compile``). ``torch_compile`` compiles each
decoder layer with ``torch.compile(dynamic=True)``: the norms, rotary embedding and activation
become a few fused kernels; one compilation serves every layer and shape.

On a CUDA device, batches of at most ``graph_max_tokens`` padded tokens replay CUDA graphs
captured at load time (:mod:`qwen3_rag.engine.cuda_graphs`): a query or 20 reranker prompts
then cost about their kernels' time instead of ~1,500 kernel launches from Python.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from qwen3_rag.engine.base import EmbeddingEngine, EngineConfig, RerankEngine, l2_normalize
from qwen3_rag.engine.cuda_graphs import GraphRunner, attention_inputs, left_pad, positions
from qwen3_rag.engine.options import EngineOptions, HFOptions

#: what the engines' constructors take as options (a mapping is built into HFOptions)
Options = HFOptions | EngineOptions | Mapping[str, Any]

def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the 'hf' backend needs torch and transformers: pip install 'qwen3-rag[hf]'") from e
    return torch


def length_batches(lengths: Sequence[int], max_batch_size: int, max_batch_tokens: int) -> Iterator[list[int]]:
    """Yield lists of indices, sorted by length, bounded in count and padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batch: list[int] = []
    longest = 0
    for i in order:
        n = lengths[i]
        if batch and (len(batch) >= max_batch_size or max(longest, n) * (len(batch) + 1) > max_batch_tokens):
            yield batch
            batch, longest = [], 0
        batch.append(i)
        longest = max(longest, n)
    if batch:
        yield batch


def resolve_device(device: str | None) -> Any:
    """The torch device for the ``device`` option (default: cuda when available)."""
    torch = _torch()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from e
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but this torch build sees no CUDA GPU (use device='cpu')")
    return resolved


def resolve_dtype(dtype: Any, device: Any) -> Any:
    """The torch dtype for the ``dtype`` option (default: float32 on CPU, bfloat16 on GPU)."""
    torch = _torch()
    if dtype is None:
        return torch.float32 if device.type == "cpu" else torch.bfloat16
    if isinstance(dtype, str):
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ValueError(f"dtype must be a torch dtype name (float32, bfloat16, float16), got {dtype!r}")
        return getattr(torch, dtype)
    return dtype


class _HFEngineMixin:
    config: EngineConfig
    options: HFOptions

    def _setup(self, auto_class: str) -> None:
        import transformers

        opts = self.options
        self.device = resolve_device(opts.device)
        self.dtype = resolve_dtype(opts.dtype, self.device)
        kwargs: dict[str, Any] = {"dtype": self.dtype}
        if opts.attn_implementation:
            kwargs["attn_implementation"] = opts.attn_implementation
        if opts.trust_remote_code:
            kwargs["trust_remote_code"] = True
        try:
            model = getattr(transformers, auto_class).from_pretrained(self.config.model, **kwargs)
        except OSError as e:  # not on the hub, not in its cache offline, or no weights in the folder
            raise OSError(f"cannot load model {self.config.model!r}: {e}") from e
        self.model = model.to(self.device).eval()
        self.max_batch_size = opts.max_batch_size
        self.max_batch_tokens = opts.max_batch_tokens
        pad = getattr(self.model.config, "pad_token_id", None)
        self.pad_id = 0 if pad is None else int(pad)
        self.graphs: GraphRunner | None = None
        self._mask_dtype: Any = None  # the graphed forward's mask: boolean (SDPA) or additive
        if opts.torch_compile:
            self._compile_layers()

    def _compile_layers(self) -> None:
        """Regional compilation: ``torch.compile`` each decoder layer. The layers share their code,
        so Dynamo traces and Inductor compiles one layer once (dynamic shapes: every bucket and
        batch reuses it) instead of the whole 28-layer forward per shape."""
        layers = getattr(self.model.base_model, "layers", None)
        if layers is None:
            raise ValueError(f"torch_compile: {type(self.model.base_model).__name__} has no decoder `layers`")
        for layer in layers:
            layer.compile(dynamic=True)

    def _setup_graphs(self) -> None:
        """Capture the CUDA graphs (after the subclass has set what its forward needs)."""
        wanted = self.options.cuda_graphs
        if wanted is None:
            wanted = self.device.type == "cuda"
        if not wanted:
            return
        if self.device.type != "cuda":
            raise ValueError(f"cuda_graphs=True needs a CUDA device, got device={str(self.device)!r}")
        self.graphs = self.graph_runner(self.options.graph_max_tokens)

    def graph_runner(self, max_tokens: int, capture: bool = True) -> GraphRunner:
        """A :class:`~qwen3_rag.engine.cuda_graphs.GraphRunner` over this engine's forward, for
        batches of up to ``max_tokens`` padded tokens (``capture=False``: the same padded
        computation run eagerly, which is what a CPU can check)."""
        # transformers keeps the attention implementation it resolved there (no public accessor)
        attn = getattr(self.model.config, "_attn_implementation", "sdpa")
        if attn not in ("sdpa", "eager"):
            raise ValueError(f"cuda_graphs needs attn_implementation 'sdpa' or 'eager', got {attn!r}")
        self._mask_dtype = None if attn == "sdpa" else self.dtype
        return GraphRunner(self._graph_forward, self.device, pad_id=self.pad_id, max_tokens=max_tokens,
                           max_rows=self.max_batch_size, capture=capture)

    def _graph_forward(self, ids: Any, mask: Any) -> Any:
        """The forward a graph captures: positions and the 4-D mask built on the device."""
        mask_4d, pos = attention_inputs(mask, self._mask_dtype)
        return self._eager_forward(ids, mask_4d, pos)

    def _eager_forward(self, ids: Any, mask: Any, pos: Any) -> Any:
        raise NotImplementedError

    def _run(self, token_ids: Sequence[Sequence[int]], width: int) -> np.ndarray:
        """The forward's rows for every sequence, in input order: each length batch replays a
        CUDA graph when one holds it, else runs eagerly on its exact padded shape."""
        torch = _torch()
        out = np.zeros((len(token_ids), width), dtype=np.float32)
        with self.lock, torch.inference_mode():
            for idx in self.batches(token_ids):
                seqs = [token_ids[i] for i in idx]
                if self.graphs is not None and self.graphs.fits(seqs):
                    out[idx] = self.graphs.run(seqs).numpy()
                else:
                    ids, mask, pos = self.padded(seqs)
                    out[idx] = self._eager_forward(ids, mask, pos).cpu().numpy()
        return out

    def padded(self, seqs: Sequence[Sequence[int]]) -> tuple[Any, Any, Any]:
        """(input_ids, attention_mask, position_ids): left-padded tensors on the device."""
        ids, mask = left_pad(seqs, len(seqs), max(len(s) for s in seqs), pad_id=self.pad_id)
        pos = positions(mask)
        return ids.to(self.device), mask.to(self.device), pos.to(self.device)

    def batches(self, token_ids: Sequence[Sequence[int]]) -> Iterator[list[int]]:
        """The indices of each batch: sorted by length, within ``max_batch_size`` and ``max_batch_tokens``."""
        return length_batches([len(t) for t in token_ids], self.max_batch_size, self.max_batch_tokens)


class HFEmbeddingEngine(_HFEngineMixin, EmbeddingEngine):
    """Last-token pooling over ``AutoModel`` hidden states (Qwen3-Embedding model card)."""

    preferred_batch_size = 256

    def __init__(self, config: EngineConfig, options: Options):
        super().__init__(config, HFOptions.coerce(options))
        self._setup("AutoModel")
        self.dimension = int(self.model.config.hidden_size)
        self._setup_graphs()

    def _eager_forward(self, ids: Any, mask: Any, pos: Any) -> Any:
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
        return out.last_hidden_state[:, -1].float()

    def embed(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        return l2_normalize(self._run(token_ids, self.dimension))

    def close(self) -> None:
        self.model = None
        self.graphs = None
        super().close()


class HFRerankEngine(_HFEngineMixin, RerankEngine):
    """P(yes) = softmax over the full last-position logits of ``yes`` and ``no``."""

    preferred_batch_size = 64

    def __init__(self, config: EngineConfig, options: Options, yes_id: int, no_id: int):
        super().__init__(config, HFOptions.coerce(options))
        self._setup("AutoModelForCausalLM")
        self.yes_id, self.no_id = yes_id, no_id
        self._setup_graphs()

    def _eager_forward(self, ids: Any, mask: Any, pos: Any) -> Any:
        torch = _torch()
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False,
                         logits_to_keep=1)
        logits = out.logits[:, -1]
        pair = torch.stack([logits[:, self.no_id], logits[:, self.yes_id]], dim=1).float()
        return torch.softmax(pair, dim=1)[:, 1:]

    def score(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        return self._run(token_ids, 1)[:, 0].copy()

    def close(self) -> None:
        self.model = None
        self.graphs = None
        super().close()
