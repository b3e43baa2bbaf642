"""The corpus and pair-file readers, importable from here as well as from
:mod:`qwen3_rag.indexing.sources`, where they live.

Example:
    >>> from qwen3_rag.sources import open_source
    >>> [item.record for item in open_source(["hello"]).items()]
    [{'text': 'hello'}]
"""

from qwen3_rag.indexing.sources import (
    TEXT_SUFFIXES,
    BadInputError,
    CsvSource,
    EmptyCorpusError,
    FolderSource,
    Item,
    IterableSource,
    JsonlSource,
    ParquetSource,
    Source,
    bad_item,
    open_source,
)

__all__ = [
    "TEXT_SUFFIXES",
    "BadInputError",
    "CsvSource",
    "EmptyCorpusError",
    "FolderSource",
    "Item",
    "IterableSource",
    "JsonlSource",
    "ParquetSource",
    "Source",
    "bad_item",
    "open_source",
]
