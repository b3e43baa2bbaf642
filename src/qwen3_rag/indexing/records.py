"""From a source record to a document: its id, its text and its metadata (JSON), or why not.

The rules every indexer shares (:func:`~qwen3_rag.index_corpus` and the Ray pipeline): the
text is the ``text_field`` (a non-empty string), the id the ``id_field`` (a string or an
integer; without one, the record's position where there is one), every other key metadata,
which must be JSON (dates and the like become text; NaN and infinity are refused).

Example:
    >>> document_of({"id": 7, "text": "Hi.", "lang": "en"}, "text", "id", None)
    ('7', 'Hi.', {'lang': 'en'})
    >>> document_of({"text": "Hi."}, "text", "id", None)
    "no 'id' (every record needs an id here)"
"""

from __future__ import annotations

import json
from typing import Any

from qwen3_rag.indexing.sources import Item

Document = tuple[str, str, dict[str, Any]]
"""(id, text, metadata) of a document."""


def document_of(
    record: dict[str, Any], text_field: str, id_field: str, position: int | None
) -> Document | str:
    """(id, text, metadata) of a record, or the reason it can't be indexed.

    A record without an id gets ``str(position)``; with ``position=None`` the id is required.
    """
    return item_document(Item("", record), text_field, id_field, position)


def item_document(item: Item, text_field: str, id_field: str, position: int | None) -> Document | str:
    """(id, text, metadata) of a source item's record, or the reason it can't be indexed."""
    rec = item.record or {}
    if text_field not in rec:
        fields = ", ".join(sorted(map(str, rec))) or "none"
        return f"no {text_field!r} field (fields: {fields})"
    text = rec[text_field]
    if not isinstance(text, str) or not text.strip():
        return f"{text_field!r} must be a non-empty string, got {text!r:.40}"
    raw_id = rec.get(id_field)
    if (raw_id is None or raw_id == "") and position is None:
        return f"no {id_field!r} (every record needs an id here)"
    if raw_id is None or raw_id == "":
        doc_id = str(position)
    elif isinstance(raw_id, str | int) and not isinstance(raw_id, bool):
        doc_id = str(raw_id)
    else:
        return f"{id_field!r} must be a string or an integer, got {raw_id!r:.40}"
    meta = {k: v for k, v in rec.items() if k not in (text_field, id_field)}
    try:  # dates etc. as text; NaN and infinity are not JSON (the store's SQL filters reject them)
        meta = json.loads(json.dumps(meta, ensure_ascii=False, default=str, allow_nan=False))
    except ValueError as e:
        return f"metadata is not valid JSON ({e})"
    return doc_id, text, meta


__all__ = ["Document", "document_of", "item_document"]
