"""Streaming readers for corpora and pair files: JSONL, CSV, Parquet, folders, iterables.

Every reader yields one :class:`Item` per source position (a record, or the reason a line
can't be used), so a resumed job can skip exactly the positions already done.

Example:
    >>> import json, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "c.jsonl")
    >>> _ = open(p, "w").write(json.dumps({"id": "a", "text": "hi"}) + "\\n{oops\\n")
    >>> [(x.where.split(":")[-1], x.record, x.reason[:14]) for x in open_source(p).items()]
    [('1', {'id': 'a', 'text': 'hi'}, ''), ('2', None, 'malformed JSON')]
"""

from __future__ import annotations

import csv
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEXT_SUFFIXES = (".txt", ".md")


class BadInputError(ValueError):
    """Malformed input; the message names the file and line."""


class EmptyCorpusError(ValueError):
    """A source held no usable document."""


@dataclass(frozen=True)
class Item:
    """One source position: a record, or the reason it can't be used (``record`` is None)."""

    where: str
    record: dict[str, Any] | None
    reason: str = ""

    def error(self) -> BadInputError:
        """The :class:`BadInputError` naming where and why this position can't be used."""
        return BadInputError(f"{self.where}: {self.reason}")


def bad_item(where: str, reason: str) -> Item:
    """An :class:`Item` for a position that can't be used."""
    return Item(where, None, reason)


class Source:
    """A corpus to stream: ``items(start)`` yields :class:`Item` objects from ``start``."""

    name: str = "<records>"

    def count(self) -> int | None:
        """How many items the source holds (an estimate where exact counting is costly)."""
        return None

    def items(self, start: int = 0) -> Iterator[Item]:
        """One :class:`Item` per position, from position ``start`` (0-based) on."""
        raise NotImplementedError


def _count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n += block.count(b"\n")
    return n


class JsonlSource(Source):
    """One JSON object per line; blank lines are ignored (but keep their line numbers)."""

    def __init__(self, path: Path):
        self.path = path
        self.name = str(path)

    def count(self) -> int:
        n = 0
        with open(self.path, "rb") as f:
            for line in f:
                n += bool(line.strip())
        return n

    def items(self, start: int = 0) -> Iterator[Item]:
        seen = 0
        with open(self.path, encoding="utf-8", errors="strict") as f:
            lineno = 0
            while True:
                try:
                    line = f.readline()
                except UnicodeDecodeError as e:
                    yield bad_item(f"{self.name}:{lineno + 1}", f"not UTF-8 text ({e.reason})")
                    return
                if not line:
                    return
                lineno += 1
                if not line.strip():
                    continue
                seen += 1
                if seen <= start:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    yield bad_item(f"{self.name}:{lineno}", f"malformed JSON ({e.msg} at column {e.colno})")
                    continue
                if not isinstance(rec, dict):
                    kind = type(rec).__name__
                    yield bad_item(f"{self.name}:{lineno}", f"expected a JSON object, got {kind}")
                    continue
                yield Item(f"{self.name}:{lineno}", rec)


class CsvSource(Source):
    """A CSV file with a header row."""

    def __init__(self, path: Path):
        self.path = path
        self.name = str(path)

    def count(self) -> int:
        return max(0, _count_lines(self.path) - 1)

    def items(self, start: int = 0) -> Iterator[Item]:
        with open(self.path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            for i, row in enumerate(reader):
                if i < start:
                    continue
                if None in row:
                    yield bad_item(f"{self.name}:{reader.line_num}", "more fields than the header")
                    continue
                yield Item(f"{self.name}:{reader.line_num}", dict(row))


class ParquetSource(Source):
    """A Parquet file, read in record batches (needs pyarrow)."""

    def __init__(self, path: Path):
        try:
            import pyarrow.parquet as pq
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("reading Parquet needs pyarrow: pip install 'qwen3-rag[parquet]'") from e
        self.path = path
        self.name = str(path)
        self.file = pq.ParquetFile(path)

    def count(self) -> int:
        return int(self.file.metadata.num_rows)

    def items(self, start: int = 0) -> Iterator[Item]:
        pos = 0
        for batch in self.file.iter_batches(batch_size=1024):
            if pos + batch.num_rows <= start:
                pos += batch.num_rows
                continue
            for row in batch.to_pylist():
                pos += 1
                if pos > start:
                    yield Item(f"{self.name}: row {pos}", row)


class FolderSource(Source):
    """Every .txt / .md file under a folder (sorted); id = path relative to the folder."""

    def __init__(self, path: Path, suffixes: tuple[str, ...] = TEXT_SUFFIXES):
        self.path = path
        self.name = str(path)
        self.files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
        )

    def count(self) -> int:
        return len(self.files)

    def items(self, start: int = 0) -> Iterator[Item]:
        for p in self.files[start:]:
            rel = p.relative_to(self.path).as_posix()
            try:
                text = p.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                yield bad_item(str(p), "not UTF-8 text")
                continue
            yield Item(str(p), {"id": rel, "text": text, "source": rel})


class IterableSource(Source):
    """Records (dicts) or plain strings from any iterable; it must give the same sequence
    again when a run is resumed."""

    def __init__(self, records: Iterable[Any]):
        self.records = records

    def count(self) -> int | None:
        return len(self.records) if isinstance(self.records, Sized) else None

    def items(self, start: int = 0) -> Iterator[Item]:
        for i, rec in enumerate(itertools.islice(self.records, start, None), start=start):
            where = f"record {i}"
            if isinstance(rec, str):
                yield Item(where, {"text": rec})
            elif isinstance(rec, Mapping):
                yield Item(where, dict(rec))
            else:
                yield bad_item(where, f"expected a dict or a str, got {type(rec).__name__}")


def open_source(source: Any) -> Source:
    """A :class:`Source` for a path (file or folder) or an iterable of records."""
    if isinstance(source, Source):
        return source
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"source not found: {path}")
        if path.is_dir():
            return FolderSource(path)
        suffixes = [s.lower() for s in path.suffixes]
        if suffixes[-1:] in ([".jsonl"], [".ndjson"]):
            return JsonlSource(path)
        if suffixes[-1:] == [".csv"]:
            return CsvSource(path)
        if suffixes[-1:] in ([".parquet"], [".pq"]):
            return ParquetSource(path)
        raise ValueError(f"unknown source type {path.suffix!r} for {path}: use .jsonl, .csv, .parquet "
                         "or a folder of .txt/.md files")
    if isinstance(source, Iterable) and not isinstance(source, bytes | Mapping):
        return IterableSource(source)
    raise TypeError(f"source must be a path or an iterable of records, got {type(source).__name__}")


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
