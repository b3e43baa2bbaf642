"""Options and output helpers shared by the ``qwen3-rag`` subcommands.

This module owns the model and device flags (``--model``, ``--backend``, ``--device``, ...), how
they become engine options (through :mod:`qwen3_rag.engine.options`, like every other way in)
and the embedder, reranker and store they open, plus the plain-text and JSON output helpers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from qwen3_rag.cli.hub import check_model_available
from qwen3_rag.config import get_settings
from qwen3_rag.engine import BACKENDS

REMOTE_API_KEY_ENV = "QWEN3_RAG_REMOTE_API_KEY"


def add_model_options(parser: argparse.ArgumentParser, embedder: bool = True, reranker: bool = False,
                      repeat_dimensions: bool = False) -> None:
    """``--model``/``--reranker-model``, ``--backend`` and device options.

    With ``repeat_dimensions``, ``--dimensions`` may be given several times (a list, or None).
    """
    g = parser.add_argument_group("model and device")
    if embedder:
        g.add_argument("--model", help="embedding model (hub id or local directory); for a store, "
                       "default: the model it was built with (or its interrupted first run), else "
                       "Qwen/Qwen3-Embedding-0.6B")
        if repeat_dimensions:
            g.add_argument("--dimensions", type=int, action="append",
                           help="Matryoshka embedding size; repeat to compare sizes (default: full)")
        else:
            g.add_argument("--dimensions", type=int, help="Matryoshka embedding size (default: full)")
    if reranker:
        g.add_argument("--reranker-model", help="reranker model (default: Qwen/Qwen3-Reranker-0.6B)")
    g.add_argument("--backend", choices=BACKENDS, default=None,
                   help="vllm (GPU), hf (transformers, CPU/GPU), remote; auto: vllm when CUDA is usable "
                   "(default: the config file / $QWEN3_RAG_BACKEND, else auto)")
    g.add_argument("--device", help="hf backend device: cpu, cuda, cuda:1 ...")
    g.add_argument("--dtype", help="model dtype: float32, bfloat16, float16")
    g.add_argument("--gpu-memory-utilization", type=float,
                   help="vllm backend: fraction of GPU memory per model (default 0.35)")
    g.add_argument("--max-length", type=int, help="longest sequence in tokens (default 8192)")
    g.add_argument("--base-url", help="remote backend: URL of the server (vllm serve or qwen3-rag serve); "
                   f"its API key from ${REMOTE_API_KEY_ENV}")
    if reranker:
        g.add_argument("--reranker-base-url",
                       help="remote backend: the reranker's server (default: --base-url)")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for programs instead of a table")


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """Engine options from the device flags, those the backend takes
    (:func:`qwen3_rag.engine.options.select`: ``--device`` reaches hf only, ``--base-url`` remote...)."""
    from qwen3_rag.config import get_settings
    from qwen3_rag.engine import resolve_backend
    from qwen3_rag.engine.options import select

    backend = resolve_backend(args.backend or get_settings().backend)
    flags = {"dtype": args.dtype or None, "device": args.device or None,
             "gpu_memory_utilization": args.gpu_memory_utilization, "base_url": args.base_url or None}
    if backend == "remote":
        from qwen3_rag.cli import CLIError

        if not args.base_url:
            raise CLIError("--backend remote needs --base-url URL")
        flags["api_key"] = os.environ.get(REMOTE_API_KEY_ENV) or None
    return select(backend, {k: v for k, v in flags.items() if v is not None})


def common_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kw: dict[str, Any] = {"backend": args.backend, **engine_options(args)}
    if args.max_length:
        kw["max_length"] = args.max_length
    return kw


def make_embedder(args: argparse.Namespace, model: str | None = None, dimension: int | None = None,
                  **options: Any) -> Any:
    """A ``Qwen3Embedder`` from the options; ``dimension`` (a store's) is matched when smaller.

    ``options``: engine defaults the flags override."""
    from qwen3_rag import Qwen3Embedder

    name = args.model or model  # None: the configured model (qwen3_rag.config)
    check_model_available(name or get_settings().embedding_model, "--model")
    kw = {**options, **common_kwargs(args)}
    emb = Qwen3Embedder(name, dimensions=args.dimensions, **kw)
    if args.dimensions is None and dimension is not None and dimension < emb.dimension:
        emb = Qwen3Embedder(name, dimensions=dimension, **kw)
    return emb


def open_store(args: argparse.Namespace, **options: Any) -> tuple[Any, Any]:
    """``(store, embedder)`` for ``args.store``, embedding with the model the store records
    (``--model`` overrides it) at the store's dimension; ``options`` as for :func:`make_embedder`."""
    from qwen3_rag.cli import CLIError
    from qwen3_rag.store import FaissStore, read_manifest

    _, manifest = read_manifest(args.store)
    recorded = manifest.get("embedder") or {}
    if not (args.model or recorded.get("model")):
        raise CLIError(f"{args.store} does not record its embedding model; pass --model")
    embedder = make_embedder(args, model=recorded.get("model"), dimension=manifest["dimension"], **options)
    check_model = not getattr(args, "no_model_check", False)
    return FaissStore.load(args.store, embedder, check_model=check_model), embedder


def make_reranker(args: argparse.Namespace, model: str | None = None, **options: Any) -> Any:
    """A ``Qwen3Reranker`` from the options: ``--reranker-model``, else ``model`` (a store's,
    :func:`store_reranker`), else the configured one (``options``: engine defaults the flags
    override)."""
    from qwen3_rag import Qwen3Reranker

    name = args.reranker_model or model
    check_model_available(name or get_settings().reranker_model, "--reranker-model")
    kw = {**options, **common_kwargs(args)}
    if kw.get("base_url") and getattr(args, "reranker_base_url", None):
        kw["base_url"] = args.reranker_base_url
    return Qwen3Reranker(name, **kw)


def store_reranker(store: str | None) -> str | None:
    """The reranker the store at ``store`` records for searching it (``qwen3-rag index
    --reranker-model``), or None (no store, none recorded)."""
    from qwen3_rag.indexing import recorded_reranker
    from qwen3_rag.store import read_manifest

    if not store:
        return None
    return recorded_reranker(read_manifest(store)[1].get("extra") or {})


def progress_wanted(args: argparse.Namespace) -> bool | None:
    return False if getattr(args, "no_progress", False) or getattr(args, "json", False) else None


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def preview(text: str, limit: int | None) -> str:
    """``text`` on one line, cut to ``limit`` characters (with an ellipsis)."""
    flat = " ".join(text.split())
    if limit is None or len(flat) <= limit:
        return flat
    return flat[: max(0, limit - 1)] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], stretch: int | None = None) -> str:
    """A plain-text table; column ``stretch`` is cut to fit the terminal width."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    if stretch is not None:
        room = shutil.get_terminal_size((120, 20)).columns - sum(widths) + widths[stretch] - 2 * len(widths)
        widths[stretch] = max(len(headers[stretch]), min(widths[stretch], room))
        for r in cells:
            r[stretch] = preview(r[stretch], widths[stretch])

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs)
