"""The documents of a store: the SQLite table ``docs`` (key → id, text, metadata) and its filters.

Each document has an int64 ``key`` (``iid``): its vector's id in the Faiss index. Metadata is
kept as JSON text, so filters are SQL over ``json_extract`` and nothing is pickled. A new
table lives in a private temporary database (a file, not RAM); a saved one is read in place,
read-only, until its first change copies it (copy on write). The same database holds the
lexical (FTS5) index of the texts, kept in step by triggers (:mod:`~qwen3_rag.store.lexical`).

:class:`Documents` is not thread-safe: :class:`~qwen3_rag.store.FaissStore` calls it under
its lock.

Example:
    >>> docs = Documents.new()
    >>> keys = docs.next_keys(2)
    >>> ids, metas = document_rows(2, ["a", "b"], [{"lang": "en"}, {"lang": "fr"}])
    >>> docs.insert(keys, ids, ["Hello.", "Salut."], metas)
    >>> len(docs), docs.filter_keys({"lang": {"$in": ["fr"]}}).tolist()
    (2, [1])
    >>> docs.get(["b", "zz"])
    [Record(id='b', text='Salut.', metadata={'lang': 'fr'}), None]
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qwen3_rag.store import lexical
from qwen3_rag.store.filters import FIELD_OPERATORS, LOGICAL_OPERATORS, compile_filter, register_functions
from qwen3_rag.store.lexical import LexicalConfig

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS docs (iid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
    "text TEXT NOT NULL, metadata TEXT NOT NULL)"
)
"""The documents table (the same in memory and in a saved ``docs.sqlite``)."""
INDEXED_KEY = "ref_doc_id"
"""The metadata key with an SQLite index (the source document of a node or chunk): an equality
filter on it, e.g. deleting a LlamaIndex document, is an index lookup, not a scan."""
INDEX_SCHEMA = (
    f"CREATE INDEX IF NOT EXISTS docs_{INDEXED_KEY} ON docs (json_extract(metadata, '$.{INDEXED_KEY}')) "
    f"WHERE json_type(metadata, '$.{INDEXED_KEY}') IS 'text'"
)
"""The expression index on :data:`INDEXED_KEY` (partial: only documents that have one); stores
saved without it load as they are and get it at their first change."""
SOURCE_COLUMNS = (("source", "TEXT"), ("hash", "TEXT"))
"""Columns an indexing job fills to find what changed: ``source``, the id of the source record
a document came from (a chunk's record; the document's own id without chunking), and ``hash``,
that record's content hash (see :mod:`qwen3_rag.indexing.changes`). Both are NULL for documents
added otherwise; tables saved without them get them at their first change."""
SOURCE_INDEX = "CREATE INDEX IF NOT EXISTS docs_source ON docs (source)"
"""The index that finds a source record's documents."""
FILTER_OPERATORS = FIELD_OPERATORS + LOGICAL_OPERATORS
"""Every filter operator (see :mod:`qwen3_rag.store.filters`)."""
_INSERT = "INSERT INTO docs (iid, id, text, metadata) VALUES (?, ?, ?, ?)"

@dataclass(frozen=True)
class Record:
    """A stored document."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One search result.

    ``score`` is the inner product (cosine for normalised vectors) in dense search, the BM25
    score in lexical search, the fused score in hybrid search; ``sources`` names each retriever
    that found the document (``"dense"``, ``"lexical"``) with its 1-based rank there.
    """

    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)


def document_rows(
    n: int, ids: Iterable[str] | None, metadatas: Iterable[Mapping[str, Any] | None] | None
) -> tuple[list[str], list[str]]:
    """The ids (random uuid4 hex where ``None``) and metadata JSON of ``n`` new documents, checked."""
    id_list = [uuid.uuid4().hex for _ in range(n)] if ids is None else list(ids)
    if len(id_list) != n:
        raise ValueError(f"got {n} texts but {len(id_list)} ids")
    for i, d in enumerate(id_list):
        if not isinstance(d, str) or not d:
            raise TypeError(f"ids[{i}] must be a non-empty str, got {d!r}")
    if len(set(id_list)) != n:
        dup = next(d for i, d in enumerate(id_list) if d in id_list[:i])
        raise ValueError(f"duplicate id {dup!r} in one add() call")
    metas = [None] * n if metadatas is None else list(metadatas)
    if len(metas) != n:
        raise ValueError(f"got {n} texts but {len(metas)} metadatas")
    meta_json = []
    for i, m in enumerate(metas):
        if m is not None and not isinstance(m, Mapping):
            raise TypeError(f"metadatas[{i}] must be a dict or None, got {type(m).__name__}")
        try:
            meta_json.append(json.dumps(dict(m or {}), ensure_ascii=False, allow_nan=False))
        except (TypeError, ValueError) as e:
            raise TypeError(f"metadatas[{i}] is not JSON-serialisable: {e}") from e
    return id_list, meta_json


def table_columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The column names of ``table`` (``schema.table`` for an attached database) in ``conn``."""
    schema, _, name = table.rpartition(".")
    pragma = f"PRAGMA {schema}.table_info({name})" if schema else f"PRAGMA table_info({name})"
    return {r[1] for r in conn.execute(pragma)}


def add_source_columns(conn: sqlite3.Connection) -> None:
    """Give table ``docs`` the :data:`SOURCE_COLUMNS` it lacks, and their index."""
    have = table_columns(conn, "docs")
    for name, kind in SOURCE_COLUMNS:
        if name not in have:
            conn.execute(f"ALTER TABLE docs ADD COLUMN {name} {kind}")
    conn.execute(SOURCE_INDEX)


def _keys(rows: Iterable[tuple[Any, ...]]) -> np.ndarray:
    return np.array([r[0] for r in rows], dtype=np.int64)


class Documents:
    """The documents table of one store, and the next free key.

    Args:
        conn: the SQLite connection holding table ``docs``.
        next_key: the key the next new document gets (keys are never reused: an HNSW index
            keeps the vectors of deleted documents).
        readonly: ``conn`` is a saved database opened read-only; the first change copies it.
    """

    def __init__(self, conn: sqlite3.Connection, *, next_key: int = 0, readonly: bool = False):
        self._conn = conn
        _prepare(conn)
        self._readonly = readonly
        self.next_key = next_key
        self.count = int(conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0])
        """How many documents the table holds."""
        self.lexical = lexical.config_of(conn)
        """The lexical index's config (``None``: the table has no lexical index yet)."""
        self._term_counts: tuple[Any, dict[str, int]] = (None, {})

    @classmethod
    def new(cls, lexical_config: LexicalConfig | None = None) -> Documents:
        """An empty table in a private temporary database, with a lexical index of
        ``lexical_config`` (``None``: none)."""
        conn = sqlite3.connect("", check_same_thread=False)  # private on-disk temp database
        conn.execute(SCHEMA)
        conn.execute(INDEX_SCHEMA)
        add_source_columns(conn)
        conn.commit()
        if lexical_config is not None:
            lexical.create(conn, lexical_config)
        return cls(conn)

    @classmethod
    def open(cls, path: str | os.PathLike[str], next_key: int) -> Documents:
        """A saved ``docs.sqlite``, read in place (read-only until the first change)."""
        uri = Path(path).resolve().as_uri() + "?mode=ro&immutable=1"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        return cls(conn, next_key=next_key, readonly=True)

    @classmethod
    def from_rows(
        cls, rows: Iterable[tuple[int, str, str, str | Mapping[str, Any]]], batch_size: int = 8192,
        lexical_config: LexicalConfig | None = None,
    ) -> Documents:
        """A new table of ``(key, id, text, metadata)`` rows, streamed (``metadata``: a dict or
        its JSON text, an object); the next key follows the largest one. The lexical index of
        ``lexical_config`` (if any) is built once the rows are in.

        Raises ``ValueError`` when ids or keys repeat, or a metadata text is not a JSON object.
        """
        docs = cls.new()
        try:
            docs._insert_rows(rows, batch_size)
            if lexical_config is not None:
                docs.rebuild_lexical(lexical_config)
        except BaseException:
            docs.close()
            raise
        return docs

    def _insert_rows(self, rows: Iterable[tuple[int, str, str, str | Mapping[str, Any]]],
                     batch_size: int) -> None:
        max_key = -1
        it = iter(rows)
        try:
            while True:
                batch = [row for _, row in zip(range(batch_size), it, strict=False)]
                if not batch:
                    break
                with self._conn:
                    self._conn.executemany(_INSERT, _checked_rows(batch))
                self.count += len(batch)
                max_key = max(max_key, max(int(b[0]) for b in batch))
        except sqlite3.IntegrityError as e:
            raise ValueError(f"documents repeat an id or a key: {e}") from e
        bad = self._conn.execute(
            "SELECT id FROM docs WHERE CASE WHEN json_valid(metadata) THEN json_type(metadata) != 'object' "
            "ELSE 1 END LIMIT 1"
        ).fetchone()
        if bad is not None:
            raise ValueError(f"document {bad[0]!r}: metadata must be a JSON object")
        self.next_key = max_key + 1

    # ------------------------------------------------------------------ reads
    def __len__(self) -> int:
        return self.count

    def __contains__(self, doc_id: object) -> bool:
        return self._conn.execute("SELECT 1 FROM docs WHERE id = ?", (doc_id,)).fetchone() is not None

    def keys_of(self, ids: Sequence[str]) -> np.ndarray:
        """The keys of those of ``ids`` that are stored (in no particular order)."""
        return _keys(self._conn.execute(
            "SELECT iid FROM docs WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(ids)),)
        ))

    def key_map(self, ids: Sequence[str]) -> dict[str, int]:
        """id → key of those of ``ids`` that are stored."""
        return dict(self._conn.execute(
            "SELECT id, iid FROM docs WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(ids)),)
        ).fetchall())

    def keys(self, ordered: bool = False) -> np.ndarray:
        """Every document's key (ascending with ``ordered``, else in SQLite's scan order)."""
        sql = "SELECT iid FROM docs" + (" ORDER BY iid" if ordered else "")
        return _keys(self._conn.execute(sql))

    def key_range(self) -> tuple[int, int]:
        """The smallest and largest key (of a non-empty table)."""
        lo, hi = self._conn.execute("SELECT MIN(iid), MAX(iid) FROM docs").fetchone()
        return int(lo), int(hi)

    def get(self, ids: Sequence[str]) -> list[Record | None]:
        """Documents by id, in the order asked (``None`` for unknown ids)."""
        rows = self._conn.execute(
            "SELECT id, text, metadata FROM docs WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(ids)),),
        ).fetchall()
        found = {r[0]: Record(r[0], r[1], json.loads(r[2])) for r in rows}
        return [found.get(d) for d in ids]

    def page(self, after: int, limit: int, flt: Mapping[str, Any] | None = None) -> list[tuple[int, Record]]:
        """Up to ``limit`` (key, document) pairs with keys above ``after`` (matching ``flt``), by key."""
        where, params = compile_filter(flt) if flt is not None else ("1", [])
        rows = self._conn.execute(
            f"SELECT iid, id, text, metadata FROM docs WHERE iid > ? AND {where} ORDER BY iid LIMIT ?",
            [after, *params, limit],
        ).fetchall()
        return [(r[0], Record(r[1], r[2], json.loads(r[3]))) for r in rows]

    def rows(self, keys: Iterable[int]) -> dict[int, tuple[str, str, str]]:
        """key → (id, text, metadata JSON) of the stored ones of ``keys``."""
        rows = self._conn.execute(
            "SELECT iid, id, text, metadata FROM docs WHERE iid IN (SELECT value FROM json_each(?))",
            (json.dumps([int(i) for i in keys]),),
        ).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def filter_keys(self, flt: Mapping[str, Any]) -> np.ndarray:
        """The keys of the documents whose metadata match ``flt`` (see :mod:`qwen3_rag.store.filters`),
        by key; raises :class:`~qwen3_rag.store.filters.FilterError` for a filter it cannot evaluate."""
        where, params = compile_filter(flt)
        return _keys(self._conn.execute(f"SELECT iid FROM docs WHERE {where} ORDER BY iid", params))

    def source_hashes(self, sources: Sequence[str]) -> list[tuple[str, str | None]]:
        """(source id, content hash) of each document of those of the source records ``sources``
        that are stored: the documents an indexing job recorded with that source, and documents
        of that id recorded with none (added otherwise, or saved before sources were recorded;
        their hash is ``None``)."""
        arg = (json.dumps(list(sources)),)
        if "source" not in table_columns(self._conn, "docs"):
            return self._conn.execute(
                "SELECT id, NULL FROM docs WHERE id IN (SELECT value FROM json_each(?))", arg).fetchall()
        return self._conn.execute(
            "SELECT source, hash FROM docs WHERE source IN (SELECT value FROM json_each(?1)) UNION ALL "
            "SELECT id, NULL FROM docs WHERE source IS NULL AND id IN (SELECT value FROM json_each(?1))",
            arg).fetchall()

    def lexical_search(self, query: str, k: int,
                       flt: Mapping[str, Any] | None = None) -> list[tuple[int, float]]:
        """The ``k`` best ``(key, BM25 score)`` for a query text among the documents matching
        ``flt``, best first (see :mod:`qwen3_rag.store.lexical`); builds the lexical index first
        where the table has none."""
        self.ensure_lexical()
        assert self.lexical is not None
        words = lexical.query_words(query, self.lexical)
        stamp = (id(self._conn), self._conn.total_changes)  # the term statistics hold until a change
        if self._term_counts[0] != stamp:
            self._term_counts = (stamp, {})
        counts = lexical.document_counts(self._conn, words, self.lexical, self._term_counts[1])
        match = lexical.match_expression(lexical.match_words(words, counts, self.count), self.lexical)
        if match is None or k == 0:
            return []
        where, params = compile_filter(flt) if flt is not None else ("1", [])
        return lexical.search(self._conn, match, k, where, params)

    def lexical_keys(self) -> np.ndarray:
        """The keys the lexical index holds terms of, ascending (read from the FTS5 index)."""
        self.ensure_lexical()
        return lexical.indexed_keys(self._conn)

    # ------------------------------------------------------------------ writes
    def ensure_lexical(self, config: LexicalConfig | None = None) -> None:
        """Build the lexical index (``config``, default :class:`LexicalConfig`) where the table
        has none; a saved table is copied first (the saved file is not changed)."""
        if self.lexical is None:
            self.rebuild_lexical(config or LexicalConfig())

    def rebuild_lexical(self, config: LexicalConfig) -> None:
        """(Re)build the lexical index with ``config``, indexing every document."""
        self._writable()
        lexical.create(self._conn, config)
        self.lexical = config

    def check_lexical(self) -> None:
        """Raise ``sqlite3.DatabaseError`` unless the lexical index matches the documents exactly."""
        if self.lexical is not None:
            self._writable()  # FTS5's check is an INSERT command
            lexical.check(self._conn)

    def next_keys(self, n: int) -> np.ndarray:
        """The ``n`` keys new documents get next (taken by advancing :attr:`next_key`)."""
        return np.arange(self.next_key, self.next_key + n, dtype=np.int64)

    def insert(self, keys: np.ndarray, ids: Sequence[str], texts: Sequence[str], metadata: Sequence[str],
               replacing: np.ndarray | None = None) -> None:
        """Insert documents (metadata as JSON text) in one transaction, deleting the documents
        of keys ``replacing`` (those of the same ids) in it."""
        self._writable()
        old = np.empty(0, np.int64) if replacing is None else replacing
        with self._conn:
            if len(old):
                self._conn.execute("DELETE FROM docs WHERE iid IN (SELECT value FROM json_each(?))",
                                   (json.dumps(old.tolist()),))
            self._conn.executemany(_INSERT, zip(keys.tolist(), ids, texts, metadata, strict=True))
        self.count += len(keys) - len(old)

    def delete_keys(self, keys: np.ndarray) -> None:
        """Delete the documents of ``keys`` (all stored)."""
        self._writable()
        with self._conn:
            self._conn.execute("DELETE FROM docs WHERE iid IN (SELECT value FROM json_each(?))",
                               (json.dumps(keys.tolist()),))
        self.count -= len(keys)

    def import_staged(self, db: str | os.PathLike[str], first: int, last: int, base: int) -> np.ndarray:
        """Copy staged rows in, in SQL (metadata stays JSON text, no round trip).

        Rows ``first < seq <= last`` of table ``rows`` (``seq, id, text, metadata``, and
        optionally ``source, hash``; metadata JSON objects, trusted) of the SQLite database
        ``db`` become documents with key ``base + seq - 1``; a row replaces the document of the
        same id (a later row that of an earlier one), and a row with a ``source`` also replaces
        every document from before ``base`` of that source (a record's chunks, however many
        there are now). Returns the keys below ``base`` whose document was replaced.
        """
        self._writable()
        conn = self._conn
        conn.execute("ATTACH DATABASE ? AS staged", (os.fspath(db),))
        try:
            sourced = "source" in table_columns(conn, "staged.rows")
            columns = "id, text, metadata" + (", source, hash" if sourced else "")
            with conn:
                replaced = _keys(conn.execute(
                    "SELECT d.iid FROM staged.rows AS r JOIN docs AS d ON d.id = r.id "
                    "WHERE r.seq > ? AND r.seq <= ? AND d.iid < ?", (first, last, base)))
                if sourced:
                    stale = _keys(conn.execute(
                        "SELECT iid FROM docs WHERE iid < ?3 AND source IN (SELECT source FROM staged.rows "
                        "WHERE seq > ?1 AND seq <= ?2) AND id NOT IN (SELECT id FROM staged.rows "
                        "WHERE seq > ?1 AND seq <= ?2)", (first, last, base)))
                    if len(stale):
                        conn.execute("DELETE FROM docs WHERE iid IN (SELECT value FROM json_each(?))",
                                     (json.dumps(stale.tolist()),))
                        replaced = np.concatenate([replaced, stale])
                conn.execute(
                    f"INSERT OR REPLACE INTO docs (iid, {columns}) SELECT ? + seq - 1, {columns} "
                    "FROM staged.rows WHERE seq > ? AND seq <= ? ORDER BY seq",
                    (base, first, last),
                )
        finally:
            conn.execute("DETACH DATABASE staged")
        return replaced

    def delete_unseen(self, db: str | os.PathLike[str], base: int) -> tuple[np.ndarray, int]:
        """Delete the documents from before ``base`` whose source record (their id where none is
        recorded) is neither the ``source`` of a staged row nor in table ``unchanged``
        (``source``) of the SQLite database ``db``; returns their keys and how many source
        records they were."""
        self._writable()
        conn = self._conn
        conn.execute("ATTACH DATABASE ? AS staged", (os.fspath(db),))
        try:
            with conn:
                conn.execute("DROP TABLE IF EXISTS temp.unseen")  # left by a failed call
                conn.execute("CREATE TEMP TABLE unseen AS SELECT iid, COALESCE(source, id) AS src FROM docs "
                             "AS d WHERE iid < ? AND NOT EXISTS (SELECT 1 FROM staged.rows AS r "
                             "WHERE r.source = COALESCE(d.source, d.id)) AND NOT EXISTS (SELECT 1 FROM "
                             "staged.unchanged AS u WHERE u.source = COALESCE(d.source, d.id))", (base,))
                keys = _keys(conn.execute("SELECT iid FROM temp.unseen ORDER BY iid"))
                records = int(conn.execute("SELECT COUNT(DISTINCT src) FROM temp.unseen").fetchone()[0])
                conn.execute("DELETE FROM docs WHERE iid IN (SELECT iid FROM temp.unseen)")
                conn.execute("DROP TABLE temp.unseen")
        finally:
            conn.execute("DETACH DATABASE staged")
        self.count -= len(keys)
        return keys, records

    def settle_import(self, base: int, end: int) -> np.ndarray:
        """After rows got keys ``base`` to ``end - 1`` (:meth:`import_staged`): recount, continue
        keys from ``end``, and return the imported keys a later row of the same id replaced."""
        conn = self._conn
        dropped = np.empty(0, np.int64)
        live = int(conn.execute("SELECT COUNT(*) FROM docs WHERE iid >= ?", (base,)).fetchone()[0])
        if live != end - base:  # repeated ids among the imported rows
            kept = np.fromiter((r[0] for r in conn.execute(
                "SELECT iid FROM docs WHERE iid >= ? ORDER BY iid", (base,))), dtype=np.int64)
            dropped = np.setdiff1d(np.arange(base, end, dtype=np.int64), kept, assume_unique=True)
        self.count = int(conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0])
        self.next_key = max(self.next_key, end)
        return dropped

    def _writable(self) -> None:
        """Copy a saved (read-only) database into a private temporary one on the first change."""
        if self._readonly:
            work = sqlite3.connect("", check_same_thread=False)
            self._conn.backup(work)
            self._conn.close()
            _prepare(work)
            work.execute(INDEX_SCHEMA)
            add_source_columns(work)
            work.commit()
            self._conn = work
            self._readonly = False

    # ------------------------------------------------------------------ files
    def backup_to(self, path: str | os.PathLike[str]) -> None:
        """Write the table into a new SQLite file (as it is saved: ``docs.sqlite``)."""
        dst = sqlite3.connect(path)
        try:
            self._conn.backup(dst)
        finally:
            dst.close()

    def close(self) -> None:
        """Release the SQLite connection (the table is unusable afterwards)."""
        self._conn.close()


def _prepare(conn: sqlite3.Connection) -> None:
    """Ready a connection: the filters' SQL functions, and recursive triggers (an ``INSERT OR
    REPLACE`` then fires the delete trigger of the row it replaces, which unindexes it from the
    lexical index)."""
    register_functions(conn)
    conn.execute("PRAGMA recursive_triggers = ON")


def _checked_rows(batch: list[tuple[int, str, str, str | Mapping[str, Any]]]) -> Iterable[tuple[Any, ...]]:
    for key, doc_id, text, meta in batch:
        if not isinstance(doc_id, str) or not doc_id or not isinstance(text, str):
            raise ValueError(f"document {key}: the id must be a non-empty str and the text a str, "
                             f"got {doc_id!r}, {type(text).__name__}")
        meta_json = meta if isinstance(meta, str) else json.dumps(dict(meta), ensure_ascii=False)
        yield int(key), doc_id, text, meta_json


__all__ = ["FILTER_OPERATORS", "INDEXED_KEY", "INDEX_SCHEMA", "SCHEMA", "SOURCE_COLUMNS", "SOURCE_INDEX",
           "Documents", "Hit", "LexicalConfig", "Record", "add_source_columns", "compile_filter",
           "document_rows", "table_columns"]
