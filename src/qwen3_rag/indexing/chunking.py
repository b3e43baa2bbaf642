"""Chunking: long documents as overlapping windows of tokens, each chunk linked to its document.

Example:
    >>> class Words:  # a tokenizer with one token per word
    ...     def __call__(self, text, add_special_tokens=False, return_offsets_mapping=True):
    ...         import re
    ...         return {"offset_mapping": [m.span() for m in re.finditer(r"\\S+", text)]}
    >>> [t for _, t, _ in chunk_document("d", "a b c d e", {}, Words(), 3, 1)]
    ['a b c', 'c d e']
    >>> chunk_document("d", "a b c d e", {"lang": "en"}, Words(), 3, 1)[1][::2]
    ('d#1', {'lang': 'en', 'doc_id': 'd', 'chunk': 1, 'n_chunks': 2, 'char_start': 4, 'char_end': 9})
"""

from __future__ import annotations

from typing import Any


def check_chunking(chunk_tokens: int | None, chunk_overlap: int) -> None:
    """Raise ``ValueError`` unless ``0 <= chunk_overlap < chunk_tokens`` (when chunking)."""
    if chunk_tokens is not None and not (0 <= chunk_overlap < chunk_tokens):
        raise ValueError(f"chunk_overlap (--chunk-overlap) must be >= 0 and smaller than chunk_tokens "
                         f"(--chunk-tokens), got {chunk_overlap} and {chunk_tokens}")


def chunk_spans(tokenizer: Any, text: str, chunk_tokens: int, overlap: int) -> list[tuple[int, int]]:
    """Character spans of windows of ``chunk_tokens`` tokens, consecutive ones sharing ``overlap``."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) <= chunk_tokens:
        return [(0, len(text))]
    spans = []
    step = chunk_tokens - overlap
    for start in range(0, len(offsets), step):
        end = min(start + chunk_tokens, len(offsets))
        spans.append((int(offsets[start][0]), int(offsets[end - 1][1])))
        if end == len(offsets):
            break
    return spans


def chunk_document(
    doc_id: str, text: str, meta: dict[str, Any], tokenizer: Any, chunk_tokens: int, overlap: int
) -> list[tuple[str, str, dict[str, Any]]]:
    """A document as (id, text, metadata) chunks: ids ``"{doc_id}#{i}"``, metadata plus ``doc_id``,
    ``chunk``, ``n_chunks``, ``char_start``, ``char_end``."""
    spans = chunk_spans(tokenizer, text, chunk_tokens, overlap)
    return [
        (f"{doc_id}#{i}", text[a:b],
         {**meta, "doc_id": doc_id, "chunk": i, "n_chunks": len(spans), "char_start": a, "char_end": b})
        for i, (a, b) in enumerate(spans)
    ]


__all__ = ["check_chunking", "chunk_document", "chunk_spans"]
