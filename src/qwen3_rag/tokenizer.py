"""Tokenizer loading, cached per process (the formats need it on every backend)."""

from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=16)
def _load(name: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)


def load_tokenizer(model: str, tokenizer: str | None = None) -> Any:
    """Load the fast tokenizer of ``model``, or of ``tokenizer`` when given (the engine option
    of that name: :attr:`EngineOptions.tokenizer <qwen3_rag.engine.options.EngineOptions.tokenizer>`).
    """
    name = tokenizer or model
    try:
        tok = _load(name)
    except OSError as e:  # not on the hub, not in its cache offline, or no tokenizer files
        raise OSError(f"cannot load the tokenizer of {name!r}: {e}") from e
    if not getattr(tok, "is_fast", False):
        raise TypeError(f"a fast (Rust) tokenizer is required, {name!r} gave {type(tok).__name__}")
    return tok
