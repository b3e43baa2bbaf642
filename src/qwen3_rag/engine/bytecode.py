"""One start-up warning: the engines' heavy imports (torch, transformers, vLLM) have no bytecode.

A vLLM engine process imports thousands of modules before it builds its engine. Where Python
finds no ``.pyc`` for them and will not write any (``PYTHONDONTWRITEBYTECODE=1``, ``python -B``,
or a site-packages it may not write), it compiles every one of those sources again on every
start, which costs each engine process seconds. Installers differ: ``pip install`` writes
bytecode, ``uv pip install`` does not unless given ``--compile-bytecode``. An engine warns once
per process when this applies (:func:`warn_if_uncompiled`), naming the command that fixes it;
``docs/troubleshooting.md`` has the details. The check reads a few paths and imports nothing.

Example:
    >>> from qwen3_rag.engine.bytecode import uncompiled_packages
    >>> uncompiled_packages(["no_such_package_here"])
    []
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shlex
import sys
from collections.abc import Iterable

logger = logging.getLogger("qwen3_rag")

_warned = False


def _writable(path: str) -> bool:
    """Whether a file could be created at ``path`` (its nearest existing folder is writable)."""
    folder = os.path.dirname(path)
    while folder and not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return os.access(folder or ".", os.W_OK)


def uncompiled_packages(packages: Iterable[str]) -> list[str]:
    """The installed packages among ``packages`` that Python will import from source every time.

    That is: no bytecode where this Python looks for it (``__pycache__``, or
    ``PYTHONPYCACHEPREFIX``) for the package's ``__init__.py``, and none will be written
    (``sys.dont_write_bytecode``, or a cache location it may not write). Packages that are
    not installed, or not plain source, are skipped. Nothing is imported.
    """
    found = []
    for name in packages:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        origin = getattr(spec, "origin", None) if spec is not None else None
        if not origin or not origin.endswith(".py") or not os.path.isfile(origin):
            continue
        cached = importlib.util.cache_from_source(origin)
        if os.path.exists(cached):
            continue
        if sys.dont_write_bytecode or not _writable(cached):
            found.append(name)
    return found


def site_folders(packages: Iterable[str]) -> list[str]:
    """The folders that hold ``packages`` (site-packages), each once, in order."""
    folders: list[str] = []
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            folder = os.path.dirname(spec.origin)  # where a module lies, or a package's own folder
            if spec.submodule_search_locations is not None:
                folder = os.path.dirname(folder)  # the folder that holds the package
            if folder not in folders:
                folders.append(folder)
    return folders


def warn_if_uncompiled(backend: str) -> list[str]:
    """Log a warning (once per process) when ``backend``'s heavy imports have no bytecode and
    none will be written; returns the packages concerned (empty: nothing to say)."""
    global _warned
    if _warned or backend not in ("hf", "vllm"):
        return []
    packages = ["torch", "transformers"] + (["vllm"] if backend == "vllm" else [])
    missing = uncompiled_packages(packages)
    _warned = True
    if missing:
        why = "this Python writes none (PYTHONDONTWRITEBYTECODE or -B)" if sys.dont_write_bytecode \
            else "their cache folders are not writable"
        logger.warning(
            "qwen3_rag: %s %s no bytecode and %s, so every engine process compiles their sources "
            "as it starts (seconds each). Compile them once: "
            "%s -m compileall -q -j 0 %s (a read-only site: set PYTHONPYCACHEPREFIX to a writable "
            "folder for that command and for every run)",
            ", ".join(missing), "has" if len(missing) == 1 else "have", why,
            shlex.quote(sys.executable or "python"),
            " ".join(shlex.quote(f) for f in site_folders(missing)),
        )
    return missing


def quiet() -> None:
    """No warning from this process (the pool's workers: their parent has said it)."""
    global _warned
    _warned = True


def rearm() -> None:
    """Let the next :func:`warn_if_uncompiled` warn again (as in a new process)."""
    global _warned
    _warned = False
