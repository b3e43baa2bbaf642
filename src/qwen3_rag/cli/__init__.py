"""The ``qwen3-rag`` command line.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int`` (the exit status). Adding one is one line in :data:`COMMANDS`::

    Command("serve", "qwen3_rag.service.cli", "run the HTTP service"),

Modules must import heavy things (torch, vLLM, fastapi) inside ``run``, so that ``--help``
stays fast. Bad input (a missing file, an empty corpus, a malformed line, a store built with
another model) and what the user can fix (a model the hub does not have or cannot be reached
for, a server that does not answer, a missing optional package) end with exit status 2 and one
line on stderr, without a traceback (:func:`is_user_error` decides); anything else is a bug: exit
status 1, one line naming the error and where it was raised. Set ``QWEN3_RAG_DEBUG=1`` to see
the traceback.

Example:
    >>> from qwen3_rag.cli import main
    >>> main(["info", "--store", "/nonexistent/store"])
    2
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, the module implementing it, and a one-line help."""

    name: str
    module: str
    help: str


COMMANDS: list[Command] = [
    Command("index", "qwen3_rag.cli.index", "embed a corpus into a Faiss store (resumable)"),
    Command("search", "qwen3_rag.cli.search", "search a store, optionally reranking the candidates"),
    Command("rerank", "qwen3_rag.cli.rerank", "score a JSONL file of (query, document) pairs (resumable)"),
    Command("info", "qwen3_rag.cli.info", "describe a store"),
    Command("serve", "qwen3_rag.service.cli", "run the HTTP service (search, rerank, embeddings)"),
    Command("eval", "qwen3_rag.cli.eval", "retrieval quality on a BEIR-format dataset (nDCG, recall, MRR)"),
    Command("distributed-index", "qwen3_rag.cli.distributed", "embed a corpus with Ray into one store"),
    Command("bench", "qwen3_rag.bench", "engine throughput on synthetic workloads, with a recommendation"),
    Command("config", "qwen3_rag.cli.config", "the settings in force and where each comes from"),
]
"""Registered subcommands; others add theirs here (``serve``, ``bench``, ``eval``...)."""

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1


class CLIError(Exception):
    """A user error the CLI reports in one line (exit status 2)."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """The project's own user-facing errors, and the standard ones that only mean bad input."""
    from qwen3_rag.engine.options import OptionError
    from qwen3_rag.engine.remote import RemoteError
    from qwen3_rag.sources import BadInputError, EmptyCorpusError
    from qwen3_rag.store import EmbedderMismatchError, StoreError

    return (
        CLIError, BadInputError, EmptyCorpusError, StoreError, EmbedderMismatchError, OptionError,
        RemoteError,  # a server that fails or cannot be reached
        FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError,
        ImportError,  # an optional package a command needs: its message says what to install
    )


# Packages whose deliberate ``raise ValueError(...)``/``raise OSError(...)`` is a message for the
# user (an argument out of range, a model the hub does not have); the same error raised anywhere
# else (numpy, SQLite, an unpacking in our code) is a bug.
_MESSAGE_PACKAGES = ("qwen3_rag", "transformers", "huggingface_hub")


def _last_frame(error: BaseException) -> traceback.FrameSummary | None:
    frames = traceback.extract_tb(error.__traceback__)
    return frames[-1] if frames else None


def _raised_on_purpose(error: BaseException) -> bool:
    """True when the innermost frame is a ``raise`` statement of one of :data:`_MESSAGE_PACKAGES`."""
    frame = _last_frame(error)
    if frame is None or not (frame.line or "").startswith("raise "):
        return False
    parts = Path(frame.filename).parts
    return any(pkg in parts for pkg in _MESSAGE_PACKAGES)


def is_user_error(error: BaseException) -> bool:
    """Whether the CLI reports ``error`` as the user's (one line, exit 2) rather than as a bug."""
    if isinstance(error, _user_errors()):
        return True
    if isinstance(error, KeyError):
        return False
    return isinstance(error, (ValueError, TypeError, OSError)) and _raised_on_purpose(error)


def internal_error_line(error: BaseException) -> str:
    """A bug in one line: the error, where it was raised, and how to see the whole traceback."""
    frame = _last_frame(error)
    where = f" (at {Path(frame.filename).name}:{frame.lineno} in {frame.name})" if frame else ""
    return (f"qwen3-rag: internal error: {type(error).__name__}: {one_line(error)}{where}; "
            "set QWEN3_RAG_DEBUG=1 to see the traceback")


def _load(cmd: Command) -> ModuleType | None:
    try:
        return importlib.import_module(cmd.module)
    except ImportError as e:  # an optional dependency is missing: the others still work
        logging.getLogger("qwen3_rag").debug("command %s unavailable: %s", cmd.name, e)
        return None


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType | None]]:
    """The parser with every registered subcommand, and the modules by command name."""
    from qwen3_rag import __version__

    parser = argparse.ArgumentParser(
        prog="qwen3-rag",
        description="Qwen3 embeddings, reranking and a Faiss store from the command line.",
        allow_abbrev=False,  # `--mode x` is an error, never taken as `--model x`
    )
    parser.add_argument("--version", action="version", version=f"qwen3-rag {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules: dict[str, ModuleType | None] = {}
    for cmd in COMMANDS:
        module = _load(cmd)
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help, allow_abbrev=False)
        # also after the subcommand (`qwen3-rag index ... -v`); unset there, the top level's stands
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="log progress details")
        if module is not None:
            module.add_arguments(p)
        modules[cmd.name] = module
    return parser, modules


def one_line(error: BaseException) -> str:
    """An exception as one line of text."""
    if isinstance(error, KeyError) and error.args:
        text = str(error.args[0])
    elif isinstance(error, OSError) and error.filename and error.strerror:
        text = f"{error.strerror}: {error.filename}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def _quiet_libraries() -> None:
    """Keep stderr for our messages: no model-loading bars or notices from transformers."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a dependency
        return
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qwen3-rag`` console script; returns the exit status."""
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(message)s",
    )
    if not args.verbose:
        _quiet_libraries()
    module = modules[args.command]
    if module is None:
        cmd = next(c for c in COMMANDS if c.name == args.command)
        try:
            importlib.import_module(cmd.module)
        except ImportError as e:
            print(f"qwen3-rag: error: {args.command} is unavailable: {one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("qwen3-rag: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("QWEN3_RAG_DEBUG"):
            raise
        if not is_user_error(e):
            print(internal_error_line(e), file=sys.stderr)
            return EXIT_INTERNAL
        print(f"qwen3-rag: error: {one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT


__all__ = ["COMMANDS", "CLIError", "Command", "build_parser", "is_user_error", "main"]
