"""``qwen3-rag config``: the settings in force and where each comes from.

Each setting comes from the command line (the model and device flags the other subcommands
take), an environment variable, the config file, or the built-in default, in that order of
precedence (:mod:`qwen3_rag.config`).
"""

from __future__ import annotations

import argparse

from qwen3_rag.cli.common import add_json_option, add_model_options, print_json, table

FLAGS = {
    "model": "embedding_model", "reranker_model": "reranker_model", "backend": "backend",
    "max_length": "max_length", "device": "*device", "dtype": "*dtype",
    "gpu_memory_utilization": "*gpu_memory_utilization", "base_url": "*base_url",
}
"""Command-line flag (its ``argparse`` name) -> setting (``*``: an engine option of both models)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``config`` subcommand's options: the model flags, to see what they change."""
    add_json_option(parser)
    add_model_options(parser, reranker=True)


def run(args: argparse.Namespace) -> int:
    """Print every setting in force, its value and its source."""
    from qwen3_rag.config import CONFIG_ENV, DEFAULT_CONFIG_FILE, TABLES, load_settings

    settings = load_settings()
    for flag, name in FLAGS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        origin = "argument --" + flag.replace("_", "-")
        for full in ([f"{t}.{name[1:]}" for t in TABLES] if name.startswith("*") else [name]):
            settings.set(full, value, origin)
    rows = settings.effective()
    file = settings.source or f"none (${CONFIG_ENV} unset and no ./{DEFAULT_CONFIG_FILE})"
    if args.json:
        print_json({"config_file": settings.source,
                    "settings": [{"name": n, "value": v, "source": s} for n, v, s in rows]})
    else:
        print(f"config file: {file}\n")
        print(table(["setting", "value", "source"], [(n, "-" if v is None else v, s) for n, v, s in rows]))
    return 0
