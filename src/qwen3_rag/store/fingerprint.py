"""The embedder a store's vectors were built with: its fingerprint, and the check that refuses another.

A fingerprint is ``{"model", "dimension"}``; stores record it in their manifest and vector
shards in theirs. Two model references name the same model when :func:`model_identity` says
so: a snapshot in the Hugging Face cache names the hub id it came from.

Example:
    >>> fingerprint_of({"model": "Qwen/Qwen3-Embedding-0.6B", "dimension": 1024})
    {'model': 'Qwen/Qwen3-Embedding-0.6B', 'dimension': 1024}
    >>> try:
    ...     check_fingerprint({"model": "org/a"}, 16, {"model": "org/b", "dimension": 16}, "store s")
    ... except EmbedderMismatchError as e:
    ...     print(str(e)[:59])
    store s was built with embeddings from 'org/a', not 'org/b'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from qwen3_rag.engine.base import looks_like_path


class EmbedderMismatchError(ValueError):
    """The embedder does not match the one the store's vectors were built with."""


def fingerprint_of(embedder: Any) -> dict[str, Any] | None:
    """``{"model", "dimension"}`` of an embedder, or the dict itself; ``None`` stays ``None``."""
    if embedder is None:
        return None
    fp = embedder if isinstance(embedder, Mapping) else getattr(embedder, "fingerprint", None)
    if not isinstance(fp, Mapping) or "dimension" not in fp:
        raise TypeError(
            "embedder must have a .fingerprint ({'model', 'dimension'}) or be such a dict, "
            f"got {type(embedder).__name__}"
        )
    model = fp.get("model")
    if isinstance(model, str) and looks_like_path(model) and os.path.isdir(os.path.expanduser(model)):
        model = os.path.abspath(os.path.expanduser(model))  # a local checkpoint: where it is
    return {"model": model, "dimension": int(fp["dimension"])}


_HUB_SNAPSHOT = re.compile(r"(?:^|/)models--([^/]+?)--([^/]+)/snapshots/[^/]+/?$")


def model_identity(model: str) -> str:
    """What a model reference names: a hub id, or a local directory, where a snapshot in the
    Hugging Face cache (``.../models--ORG--NAME/snapshots/REV``) names the hub id it came from.

    Example:
        >>> model_identity("/root/.cache/huggingface/hub/models--Qwen--Qwen3-Embedding-0.6B/snapshots/c54f2e")
        'Qwen/Qwen3-Embedding-0.6B'
        >>> model_identity("Qwen/Qwen3-Embedding-0.6B"), model_identity("/models/mine")
        ('Qwen/Qwen3-Embedding-0.6B', '/models/mine')
    """
    m = _HUB_SNAPSHOT.search(model.replace(os.sep, "/"))
    return f"{m.group(1)}/{m.group(2)}" if m else model


def check_fingerprint(recorded: Mapping[str, Any] | None, dim: int, embedder: Any, where: str) -> None:
    """Raise :class:`EmbedderMismatchError` when ``embedder`` can't have built these vectors.

    ``recorded`` is the fingerprint saved with ``dim``-dimensional vectors (``None``: no model
    recorded, only the dimension is checked); ``where`` names them in the message.
    """
    given = fingerprint_of(embedder)
    if given is None:
        return
    if given["dimension"] != dim:
        raise EmbedderMismatchError(
            f"{where} holds {dim}-dimensional vectors but the embedder {given['model']!r} gives "
            f"{given['dimension']}-dimensional ones; use the embedder the store was built with"
        )
    if (recorded and recorded.get("model") and given["model"]
            and model_identity(recorded["model"]) != model_identity(given["model"])):
        raise EmbedderMismatchError(
            f"{where} was built with embeddings from {recorded['model']!r}, not {given['model']!r}; "
            "vectors of another model give meaningless scores: use the same model (its hub id, or "
            "its snapshot in the Hugging Face cache) or re-index"
        )


__all__ = ["EmbedderMismatchError", "check_fingerprint", "fingerprint_of", "model_identity"]
