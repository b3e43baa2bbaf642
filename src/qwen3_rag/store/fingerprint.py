"""The embedder a store's vectors were built with: its fingerprint, and the check that refuses another.

A fingerprint is ``{"model", "dimension"}``, plus ``"checkpoint"`` (:func:`checkpoint_digest`:
a digest of the model's configuration, tokenizer and weight files) and ``"revision"`` (a hub
snapshot's commit) where the model's files are on this machine; stores record it in their
manifest and vector shards in theirs. Two fingerprints with a checkpoint digest each name the
same model when the digests agree, wherever the files lie (a copied directory, a hub id and a
local download of it); without one, when :func:`model_identity` says so: a snapshot in the
Hugging Face cache names the hub id it came from.

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

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qwen3_rag.engine.base import looks_like_path

logger = logging.getLogger("qwen3_rag")

_CONFIG_FILES = ("config.json", "config_sentence_transformers.json", "modules.json")
"""Configuration files that make the model what it is (``_name_or_path`` and
``transformers_version`` left out: they say where and by what it was saved, not what it is)."""
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                    "special_tokens_map.json", "added_tokens.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
_SAMPLES = 16
"""Blocks of :data:`_BLOCK` bytes read from each weight file, evenly spaced, first and last included."""
_BLOCK = 64 * 1024


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
    out: dict[str, Any] = {"model": model, "dimension": int(fp["dimension"])}
    for key in ("checkpoint", "revision"):
        if isinstance(fp.get(key), str) and fp[key]:
            out[key] = fp[key]
    return out


def _canonical_json(path: Path) -> bytes:
    """A configuration file's content, keys sorted, without where and by what it was saved."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        return path.read_bytes()
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in ("_name_or_path", "transformers_version")}
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _weights_sample(path: Path, h: Any) -> None:
    """A weight file into ``h`` cheaply: its size, its safetensors header, and :data:`_SAMPLES`
    evenly spaced blocks of its bytes (the whole file when it is smaller than those)."""
    size = path.stat().st_size
    h.update(f"{path.name}:{size}\n".encode())
    with open(path, "rb") as f:
        if size <= _SAMPLES * _BLOCK:
            h.update(f.read())
            return
        if path.suffix == ".safetensors":
            n = int.from_bytes(f.read(8), "little")
            if 0 < n <= min(size - 8, 100 * 2**20):
                h.update(f.read(n))
        step = (size - _BLOCK) // (_SAMPLES - 1)
        for i in range(_SAMPLES):
            f.seek(i * step)
            h.update(f.read(_BLOCK))


def checkpoint_digest(directory: str | os.PathLike[str]) -> str | None:
    """A digest of what a model directory holds: its configuration, its tokenizer and its
    weights (sizes, safetensors headers and index, and sampled bytes: a few MB read, whatever
    the size), the same for a copy of the directory; ``None`` when it holds no ``config.json``.

    Example:
        >>> checkpoint_digest("/nonexistent") is None
        True
    """
    root = Path(directory).expanduser()
    if not (root / "config.json").is_file():
        return None
    h = hashlib.sha256(b"qwen3-rag checkpoint 1\n")
    for name in _CONFIG_FILES + _TOKENIZER_FILES:
        if (root / name).is_file():
            data = _canonical_json(root / name) if name.endswith(".json") else (root / name).read_bytes()
            h.update(f"{name}:{len(data)}\n".encode())
            h.update(data)
    for path in sorted(root.iterdir()):
        if path.name.endswith(".index.json"):
            h.update(path.name.encode() + b"\n" + _canonical_json(path))
        elif path.suffix in _WEIGHT_SUFFIXES and path.is_file():
            _weights_sample(path, h)
    return "sha256:" + h.hexdigest()


def model_files(model: str, revision: str | None = None) -> tuple[Path, str | None] | None:
    """The directory of a model's files on this machine and the hub revision they are: a local
    directory as it is (a Hugging Face cache snapshot names its commit), a hub id from its
    snapshot in the Hugging Face cache (never the network); ``None`` when neither holds it."""
    path = Path(model).expanduser()
    if path.is_dir():
        m = _HUB_SNAPSHOT.search(str(path.resolve()).replace(os.sep, "/"))
        return path, (path.resolve().name if m else None)
    if looks_like_path(model):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "config.json", revision=revision)
    except (ImportError, ValueError):  # no hub library, or not a repo id (HFValidationError): nothing cached
        return None
    if not isinstance(found, str):
        return None
    snapshot = Path(found).parent
    return snapshot, snapshot.name


def model_checkpoint(model: str, revision: str | None = None) -> dict[str, str]:
    """``{"checkpoint", "revision"}`` of a model whose files are on this machine (either key
    left out where unknown): what :attr:`Qwen3Embedder.fingerprint` adds to the model's name."""
    found = model_files(model, revision)
    if found is None:
        return {"revision": revision} if revision else {}
    directory, rev = found
    out: dict[str, str] = {}
    digest = checkpoint_digest(directory)
    if digest:
        out["checkpoint"] = digest
    if rev or revision:
        out["revision"] = str(rev or revision)
    return out


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


def check_fingerprint(
    recorded: Mapping[str, Any] | None, dim: int, embedder: Any, where: str, *, check_model: bool = True
) -> None:
    """Raise :class:`EmbedderMismatchError` when ``embedder`` can't have built these vectors.

    ``recorded`` is the fingerprint saved with ``dim``-dimensional vectors (``None``: no model
    recorded, only the dimension is checked); ``where`` names them in the message. Where both
    fingerprints have a checkpoint digest, the digests decide; else the model names do
    (:func:`model_identity`). ``check_model=False`` checks the dimension only, with a warning.
    """
    given = fingerprint_of(embedder)
    if given is None:
        return
    if given["dimension"] != dim:
        raise EmbedderMismatchError(
            f"{where} holds {dim}-dimensional vectors but the embedder {given['model']!r} gives "
            f"{given['dimension']}-dimensional ones; use the embedder the store was built with"
        )
    if not recorded:
        return
    if not check_model:
        logger.warning("qwen3_rag: %s: the model check is off (check_model=False / --no-model-check): "
                       "vectors built with %r are searched with %r", where, recorded.get("model"),
                       given["model"])
        return
    if recorded.get("checkpoint") and given.get("checkpoint"):
        if recorded["checkpoint"] != given["checkpoint"]:
            raise EmbedderMismatchError(
                f"{where} was built with embeddings from {recorded['model']!r} and the embedder "
                f"{given['model']!r} is another checkpoint (its configuration, tokenizer or weights "
                "differ); vectors of another model give meaningless scores: use the same model or "
                "re-index (check_model=False / --no-model-check skips this check)"
            )
        return
    if (recorded.get("model") and given["model"]
            and model_identity(recorded["model"]) != model_identity(given["model"])):
        raise EmbedderMismatchError(
            f"{where} was built with embeddings from {recorded['model']!r}, not {given['model']!r}; "
            "vectors of another model give meaningless scores: use the same model (its hub id, or "
            "its snapshot in the Hugging Face cache) or re-index"
        )


__all__ = [
    "EmbedderMismatchError", "check_fingerprint", "checkpoint_digest", "fingerprint_of",
    "model_checkpoint", "model_files", "model_identity",
]
