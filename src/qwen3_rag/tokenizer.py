"""Tokenizer loading, cached per process (the formats need it on every backend)."""

from __future__ import annotations

import functools
import threading
from typing import Any

#: held while transformers is first imported or a tokenizer loads: its lazy imports are not
#: thread-safe (two threads importing at once failed with ImportError on an H200, session 7),
#: and an engine pool's interim engine loads one in a thread while the caller may load another
IMPORT_LOCK = threading.RLock()


@functools.lru_cache(maxsize=16)
def _load(name: str) -> Any:
    with IMPORT_LOCK:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name)


def load_tokenizer(model: str, options: dict[str, Any] | None = None) -> Any:
    """Load the tokenizer of ``model`` (or of ``options["tokenizer"]`` when given)."""
    name = (options or {}).get("tokenizer") or model
    tok = _load(name)
    if not getattr(tok, "is_fast", False):
        raise TypeError(f"a fast (Rust) tokenizer is required, {name!r} gave {type(tok).__name__}")
    return tok
