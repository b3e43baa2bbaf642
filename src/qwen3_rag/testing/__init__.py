"""Random-weight Qwen3 checkpoints with the real Qwen3 tokenizer, for tests and benchmarks.

No weights can be downloaded in CI, so tests build checkpoints of the real architecture
(``Qwen3ForCausalLM``) with random weights, plus the real tokenizer vendored in
``fixtures/qwen3-tokenizer`` (see its README for its origin).

Example:
    >>> from qwen3_rag.testing import make_tiny_qwen3
    >>> path = make_tiny_qwen3("/tmp/qwen3-rag-doctest-tiny")
    >>> sorted(p for p in __import__("os").listdir(path) if p.startswith("tokenizer"))
    ['tokenizer.json', 'tokenizer_config.json']
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

TOKENIZER_DIR = Path(__file__).parent / "fixtures" / "qwen3-tokenizer"
VOCAB_SIZE = 151669

TINY_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,
}

SIZES: dict[str, dict[str, Any]] = {
    "0.6B": {
        "hidden_size": 1024,
        "intermediate_size": 3072,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
    },
    "4B": {
        "hidden_size": 2560,
        "intermediate_size": 9728,
        "num_hidden_layers": 36,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
    },
    "8B": {
        "hidden_size": 4096,
        "intermediate_size": 12288,
        "num_hidden_layers": 36,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
    },
}


def write_tokenizer(path: str | os.PathLike[str], append_eos: bool = False) -> Path:
    """Write the vendored Qwen3 tokenizer (``tokenizer.json`` + config) into ``path``.

    With ``append_eos=True`` its post-processor appends ``<|endoftext|>`` to every encoded
    text, as the published Qwen3-Embedding tokenizer does.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    data = tokenizer_json()
    if append_eos:
        eos = {"id": "<|endoftext|>", "ids": [151643], "tokens": ["<|endoftext|>"]}
        data["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
            ],
            "pair": [
                {"Sequence": {"id": "A", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}},
                {"SpecialToken": {"id": "<|endoftext|>", "type_id": 1}},
            ],
            "special_tokens": {"<|endoftext|>": eos},
        }
    with tempfile.NamedTemporaryFile("w", dir=path, delete=False, encoding="utf-8") as tmp:
        json.dump(data, tmp, ensure_ascii=False)
    os.replace(tmp.name, path / "tokenizer.json")
    shutil.copyfile(TOKENIZER_DIR / "tokenizer_config.json", path / "tokenizer_config.json")
    return path


def _write_checkpoint(
    path: Path, shape: dict[str, Any], seed: int, initializer_range: float, dtype: str
) -> str:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=32768,
        rope_theta=1000000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        initializer_range=initializer_range,
        bos_token_id=151643,
        eos_token_id=151645,
        pad_token_id=151643,
        **shape,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config).to(getattr(torch, dtype))
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    write_tokenizer(path)
    return str(path)


def make_tiny_qwen3(path: str | os.PathLike[str], kind: str = "embedding", seed: int = 0) -> str:
    """Write a tiny ``Qwen3ForCausalLM`` checkpoint (random weights) + the real tokenizer.

    ``kind`` is ``"embedding"`` or ``"reranker"`` (the reranker gets a wider weight
    initialisation so that P(yes) spreads over (0, 1) instead of sitting at 0.5). Returns the
    directory, usable as ``model=`` by every backend.
    """
    if kind not in ("embedding", "reranker"):
        raise ValueError(f"kind must be 'embedding' or 'reranker', got {kind!r}")
    init = 0.05 if kind == "reranker" else 0.02
    return _write_checkpoint(Path(path), TINY_CONFIG, seed, init, "float32")


def make_qwen3(
    path: str | os.PathLike[str], size: str = "0.6B", seed: int = 0, dtype: str = "bfloat16"
) -> str:
    """Write a random-weight checkpoint of the real Qwen3 shapes (``0.6B``, ``4B``, ``8B``).

    Weights don't change speed, so benchmarks run on these without the hub.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    return _write_checkpoint(Path(path), SIZES[size], seed, 0.02, dtype)


def tokenizer_json() -> dict[str, Any]:
    """The vendored tokenizer.json, parsed (for tests that build tokenizer variants)."""
    with gzip.open(TOKENIZER_DIR / "tokenizer.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)
