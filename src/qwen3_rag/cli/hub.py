"""A hub model the CLI is about to load: fail at once, in one line, when it cannot come.

transformers retries an unreachable hub for tens of seconds before its own error. Before any
model loads, :func:`check_model_available` looks at what is here: a local directory, or a hub
id in the Hugging Face cache; otherwise it tries the hub's endpoint once (a TCP connection,
a few seconds at most) and, when that fails, raises :class:`ModelUnavailableError` naming the
model and the fixes. A cached model with the hub unreachable is loaded from the cache
(``HF_HUB_OFFLINE=1`` for this process), without retries.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from qwen3_rag.cli import CLIError

CONNECT_TIMEOUT_S = 3.0


class ModelUnavailableError(CLIError):
    """A model that is neither here nor reachable on the hub."""


def _cached(model: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a transformers dependency
        return False
    try:
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


def hub_reachable(endpoint: str, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub ``endpoint`` (a URL) opens within ``timeout``."""
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def check_model_available(model: str, option: str) -> None:
    """Raise :class:`ModelUnavailableError` for a hub ``model`` that cannot be had now.

    ``option``: the flag that picks this model (named in the message)."""
    if Path(model).expanduser().exists() or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        return  # a local directory; offline: transformers reads the cache without retrying
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if hub_reachable(endpoint):
        return
    if _cached(model):
        os.environ["HF_HUB_OFFLINE"] = "1"  # the cache has it: no retries against a dead hub
        return
    raise ModelUnavailableError(
        f"model {model!r} is not a local directory nor in the Hugging Face cache, and the hub "
        f"({endpoint}) cannot be reached: pass a local directory with {option}, or download it "
        "where the hub is reachable and run with HF_HUB_OFFLINE=1"
    )
