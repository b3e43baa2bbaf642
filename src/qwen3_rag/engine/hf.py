"""transformers + torch backend: the reference, and the fallback where vLLM is absent.

Sequences are sorted by length and cut into bounded batches (at most ``max_batch_size``
sequences and ``max_batch_tokens`` padded tokens), left-padded, and run in float32 on CPU or
bfloat16 on GPU (override with ``dtype``).

Options: ``device`` ("cpu", "cuda", "cuda:1"; default cuda when available), ``dtype``
("float32", "bfloat16", "float16"), ``max_batch_size`` (default 32), ``max_batch_tokens``
(default 16384), ``attn_implementation``, ``trust_remote_code``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from qwen3_rag.engine.base import EmbeddingEngine, EngineConfig, RerankEngine, l2_normalize

_KNOWN = {
    "device",
    "dtype",
    "max_batch_size",
    "max_batch_tokens",
    "attn_implementation",
    "trust_remote_code",
    "tokenizer",
}


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


class _HFEngineMixin:
    config: EngineConfig
    options: dict[str, Any]

    def _setup(self, auto_class: str) -> None:
        torch = _torch()
        import transformers

        unknown = set(self.options) - _KNOWN
        if unknown:
            raise TypeError(f"unknown option(s) for the hf backend: {sorted(unknown)}")
        device = self.options.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from e
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but this torch build sees no CUDA GPU (use device='cpu')")
        dtype = self.options.get("dtype")
        if dtype is None:
            dtype = torch.float32 if str(device).startswith("cpu") else torch.bfloat16
        elif isinstance(dtype, str):
            if not isinstance(getattr(torch, dtype, None), torch.dtype):
                raise ValueError(f"dtype must be a torch dtype name (float32, bfloat16, float16), "
                                 f"got {dtype!r}")
            dtype = getattr(torch, dtype)
        kwargs: dict[str, Any] = {"dtype": dtype}
        if self.options.get("attn_implementation"):
            kwargs["attn_implementation"] = self.options["attn_implementation"]
        if self.options.get("trust_remote_code"):
            kwargs["trust_remote_code"] = True
        cls = getattr(transformers, auto_class)
        self.model = cls.from_pretrained(self.config.model, **kwargs).to(device).eval()
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_batch_size = int(self.options.get("max_batch_size", 32))
        self.max_batch_tokens = int(self.options.get("max_batch_tokens", 16384))
        pad = getattr(self.model.config, "pad_token_id", None)
        self.pad_id = 0 if pad is None else int(pad)

    def _batches(self, token_ids: Sequence[Sequence[int]]) -> Iterator[tuple[list[int], Any, Any, Any]]:
        """Yield (indices, input_ids, attention_mask, position_ids) left-padded tensors."""
        torch = _torch()
        for idx in length_batches([len(t) for t in token_ids], self.max_batch_size, self.max_batch_tokens):
            longest = max(len(token_ids[i]) for i in idx)
            ids = torch.full((len(idx), longest), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), longest), dtype=torch.long)
            for row, i in enumerate(idx):
                seq = token_ids[i]
                if len(seq) == 0:
                    raise ValueError("empty token sequence")
                ids[row, longest - len(seq) :] = torch.as_tensor(seq, dtype=torch.long)
                mask[row, longest - len(seq) :] = 1
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            yield idx, ids.to(self.device), mask.to(self.device), pos.to(self.device)


class HFEmbeddingEngine(_HFEngineMixin, EmbeddingEngine):
    """Last-token pooling over ``AutoModel`` hidden states (Qwen3-Embedding model card)."""

    preferred_batch_size = 256

    def __init__(self, config: EngineConfig, options: dict[str, Any]):
        super().__init__(config, options)
        self._setup("AutoModel")
        self.dimension = int(self.model.config.hidden_size)

    def embed(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        torch = _torch()
        out = np.zeros((len(token_ids), self.dimension), dtype=np.float32)
        with self.lock, torch.inference_mode():
            for idx, ids, mask, pos in self._batches(token_ids):
                hidden = self.model(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state
                out[idx] = hidden[:, -1].float().cpu().numpy()
        return l2_normalize(out)

    def close(self) -> None:
        self.model = None
        super().close()


class HFRerankEngine(_HFEngineMixin, RerankEngine):
    """P(yes) = softmax over the full last-position logits of ``yes`` and ``no``."""

    preferred_batch_size = 64

    def __init__(self, config: EngineConfig, options: dict[str, Any], yes_id: int, no_id: int):
        super().__init__(config, options)
        self._setup("AutoModelForCausalLM")
        self.yes_id, self.no_id = yes_id, no_id

    def score(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        torch = _torch()
        out = np.zeros(len(token_ids), dtype=np.float32)
        with self.lock, torch.inference_mode():
            for idx, ids, mask, pos in self._batches(token_ids):
                logits = (
                    self.model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1)
                    .logits[:, -1, :]
                    .float()
                )
                pair = torch.stack([logits[:, self.no_id], logits[:, self.yes_id]], dim=1)
                out[idx] = torch.softmax(pair, dim=1)[:, 1].cpu().numpy()
        return out

    def close(self) -> None:
        self.model = None
        super().close()
