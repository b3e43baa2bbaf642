"""Data shipped with the package: a small sample corpus for the quickstart and for trying things.

``sample_corpus.jsonl`` holds 40 short passages (science, space, geography, history, food,
health, search, computing), one ``{"id", "text", "topic"}`` record per line: the format
:func:`qwen3_rag.index_corpus` and ``qwen3-rag index`` read, with ``topic`` kept as metadata.

Example:
    >>> import json
    >>> from qwen3_rag import sample_corpus
    >>> with open(sample_corpus(), encoding="utf-8") as f:
    ...     records = [json.loads(line) for line in f]
    >>> len(records), sorted(records[0])
    (40, ['id', 'text', 'topic'])
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_CORPUS = "sample_corpus.jsonl"


def sample_corpus() -> str:
    """Path of the sample corpus shipped with the package (a JSONL file of 40 short passages)."""
    return str(Path(__file__).with_name(SAMPLE_CORPUS))


__all__ = ["sample_corpus"]
