"""The lexical index of a store: an SQLite FTS5 table over the documents' texts, ranked by BM25.

The FTS5 table ``lexical`` is an external-content index of the ``docs`` table (it stores no
second copy of the texts): triggers on ``docs`` index every insert and unindex every delete in
the same transaction, so every writer (add, replace, delete, bulk import) keeps both in step.
Its configuration (:class:`LexicalConfig`: the tokenizer, and metadata fields indexed next to
the text) is kept in the table ``lexical_settings`` of the same database.

Query texts are never parsed as FTS5 syntax: :func:`match_expression` quotes each
whitespace-separated word of the query as an FTS5 string (a phrase of that word's tokens, so
``ERR-4471`` matches those two tokens next to each other) and ORs them, so a document matching
any word is a candidate and BM25 ranks documents matching more, and rarer, words higher.

FTS5 scores every document that holds a word of the match (it has no top-k pruning), so a
query costs in proportion to how many documents hold its words. :func:`match_words` bounds
that: a word found in more than half of the documents is left out (BM25 gives it no weight:
FTS5 floors its IDF at 10⁻⁶), and when the other words are held by more than
:data:`MAX_POSTINGS` documents in all, only the rarest of them are matched, as many as fit
(at least the rarest one): the words that single out documents, which is what a lexical
retriever adds to a dense one. Below that bound the ranking is exact BM25.

Example:
    >>> import sqlite3
    >>> conn = sqlite3.connect(":memory:")
    >>> _ = conn.execute("CREATE TABLE docs (iid INTEGER PRIMARY KEY, id TEXT, text TEXT, metadata TEXT)")
    >>> create(conn, LexicalConfig())
    >>> _ = conn.executemany("INSERT INTO docs VALUES (?, ?, ?, '{}')",
    ...                      [(0, "a", "Le café de Paris"), (1, "b", "Error ERR-4471 in module X")])
    >>> match_expression('cafe ERR-4471? *', LexicalConfig())
    '"cafe" OR "ERR-4471?"'
    >>> [key for key, _ in search(conn, match_expression("err-4471", LexicalConfig()), 5)]
    [1]
    >>> [key for key, _ in search(conn, match_expression("CAFÉ", LexicalConfig()), 5)]
    [0]
"""

from __future__ import annotations

import json
import re
import sqlite3
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

TOKENIZERS = ("unicode61", "trigram")
"""Lexical tokenizers: ``unicode61`` (words, case folded, diacritics removed: suits most
languages written with spaces) and ``trigram`` (every 3-character substring, case folded: for
languages without spaces between words, and substring matches)."""
DEFAULT_TOKENIZER = "unicode61"
TABLE = "lexical"
"""The FTS5 table (its rowid is the document's key)."""
_CONFIG_TABLE = "lexical_settings"
_SOURCE_VIEW = "lexical_source"
_TRIGGERS = ("lexical_ai", "lexical_ad", "lexical_au")
_FTS5_TOKENIZE = {"unicode61": "unicode61 remove_diacritics 2", "trigram": "trigram"}
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_WORD = re.compile(r"\w", re.UNICODE)
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
MAX_FIELDS = 16
MAX_POSTINGS = 50_000
"""Most (word, document) pairs a lexical query scores before it keeps only its rarest words."""


@dataclass(frozen=True)
class LexicalConfig:
    """How the lexical index tokenizes, and what it indexes.

    Args:
        tokenizer: one of :data:`TOKENIZERS`.
        fields: metadata keys (dotted for nested ones) whose values are indexed next to the
            text (BM25 weighs a match in any of them as in the text).
    """

    tokenizer: str = DEFAULT_TOKENIZER
    fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"lexical tokenizer must be one of {TOKENIZERS}, got {self.tokenizer!r}")
        if isinstance(self.fields, str) or not all(isinstance(f, str) for f in self.fields):
            raise TypeError(f"lexical fields must be a list of metadata keys, got {self.fields!r}")
        object.__setattr__(self, "fields", tuple(self.fields))
        bad = [f for f in self.fields if not _FIELD.fullmatch(f)]
        if bad:
            raise ValueError(f"lexical field {bad[0]!r} is not a metadata key of letters, digits and "
                             "underscores (dots between nested keys)")
        if len(set(self.fields)) != len(self.fields) or len(self.fields) > MAX_FIELDS:
            raise ValueError(f"lexical fields must be distinct, at most {MAX_FIELDS}: {list(self.fields)}")

    @classmethod
    def of(cls, value: str | Mapping[str, Any] | LexicalConfig) -> LexicalConfig:
        """A config from a tokenizer name, a dict of the fields (as :meth:`to_dict` writes) or a config."""
        if isinstance(value, LexicalConfig):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping):
            unknown = set(value) - {"tokenizer", "fields"}
            if unknown:
                raise ValueError(f"unknown lexical option(s) {sorted(unknown)}; known: tokenizer, fields")
            return cls(value.get("tokenizer", DEFAULT_TOKENIZER), tuple(value.get("fields") or ()))
        raise TypeError("lexical must be a tokenizer name, a dict or a LexicalConfig, "
                        f"got {type(value).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (what the store's manifest records)."""
        return {"tokenizer": self.tokenizer, "fields": list(self.fields)}


def _columns(config: LexicalConfig) -> list[str]:
    return ["text", *(f"f{i}" for i in range(len(config.fields)))]


def _values(config: LexicalConfig, row: str) -> list[str]:
    """The SQL of each indexed column's value from the ``docs`` row ``row`` (``new``/``old``)."""
    return [f"{row}.text", *(f"json_extract({row}.metadata, '$.{f}')" for f in config.fields)]


def config_of(conn: sqlite3.Connection) -> LexicalConfig | None:
    """The lexical index's config in the database of ``conn`` (``None``: it has none)."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                          (_CONFIG_TABLE,)).fetchone()
    if exists is None:
        return None
    row = conn.execute(f"SELECT config FROM {_CONFIG_TABLE}").fetchone()
    return None if row is None else LexicalConfig.of(json.loads(row[0]))


def drop(conn: sqlite3.Connection) -> None:
    """Remove the lexical index (its table, triggers, view and config), if any; no commit."""
    for trigger in _TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    conn.execute(f"DROP VIEW IF EXISTS {_SOURCE_VIEW}")
    conn.execute(f"DROP TABLE IF EXISTS {_CONFIG_TABLE}")


def create(conn: sqlite3.Connection, config: LexicalConfig) -> None:
    """(Re)build the lexical index of ``docs`` with ``config``, in one transaction: the FTS5
    table, the triggers keeping it in step, and every stored document indexed."""
    cols = _columns(config)
    source = ", ".join(f"{v} AS {c}" for v, c in zip(_values(config, "docs"), cols, strict=True))
    new, old = ", ".join(_values(config, "new")), ", ".join(_values(config, "old"))
    names = ", ".join(cols)
    unindex = f"INSERT INTO {TABLE} ({TABLE}, rowid, {names}) VALUES ('delete', old.iid, {old});"
    index = f"INSERT INTO {TABLE} (rowid, {names}) VALUES (new.iid, {new});"
    with conn:
        drop(conn)
        conn.execute(f"CREATE TABLE {_CONFIG_TABLE} (config TEXT NOT NULL)")
        conn.execute(f"INSERT INTO {_CONFIG_TABLE} VALUES (?)", (json.dumps(config.to_dict()),))
        conn.execute(f"CREATE VIEW {_SOURCE_VIEW} AS SELECT iid, {source} FROM docs")
        conn.execute(f"CREATE VIRTUAL TABLE {TABLE} USING fts5({names}, content='{_SOURCE_VIEW}', "
                     f"content_rowid='iid', tokenize='{_FTS5_TOKENIZE[config.tokenizer]}')")
        conn.execute(f"CREATE TRIGGER lexical_ai AFTER INSERT ON docs BEGIN {index} END")
        conn.execute(f"CREATE TRIGGER lexical_ad AFTER DELETE ON docs BEGIN {unindex} END")
        conn.execute(f"CREATE TRIGGER lexical_au AFTER UPDATE ON docs BEGIN {unindex} {index} END")
        conn.execute(f"INSERT INTO {TABLE} ({TABLE}) VALUES ('rebuild')")


def query_words(query: str, config: LexicalConfig) -> list[str]:
    """The distinct words of a query text that can match: with a letter or digit (with
    ``trigram``: of 3 characters or more)."""
    if not isinstance(query, str):
        raise TypeError(f"a lexical query must be a str, got {type(query).__name__}")
    words: list[str] = []
    for word in query.split():
        usable = len(word) >= 3 if config.tokenizer == "trigram" else _WORD.search(word) is not None
        if usable and word not in words:
            words.append(word)
    return words


def match_expression(query: str | Sequence[str], config: LexicalConfig) -> str | None:
    """The FTS5 MATCH expression of a query text (or of its :func:`query_words`): its words,
    each quoted, ORed (``None`` when no word can match)."""
    words = query_words(query, config) if isinstance(query, str) else list(query)
    if not words:
        return None
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)


def _token(word: str) -> str | None:
    """The one ``unicode61`` token of ``word`` (case folded, diacritics removed), or ``None``
    when it has several (a phrase) or none."""
    folded = unicodedata.normalize("NFKD", word.lower())
    tokens = _TOKEN.findall("".join(c for c in folded if not unicodedata.combining(c)))
    return tokens[0] if len(tokens) == 1 else None


def document_counts(conn: sqlite3.Connection, words: Sequence[str], config: LexicalConfig,
                    cache: dict[str, int] | None = None) -> dict[str, int | None]:
    """How many documents hold each of ``words``, from the index's term statistics (``None``
    for a word that is not one ``unicode61`` token: a phrase, or any word with ``trigram``;
    ``cache``: token → documents, kept by the caller while the index is unchanged)."""
    cache = {} if cache is None else cache
    counts: dict[str, int | None] = {}
    if config.tokenizer == "unicode61" and words:
        conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.lexical_rows USING fts5vocab(main, {TABLE}, "
                     "'row')")
    for word in words:
        token = _token(word) if config.tokenizer == "unicode61" else None
        if token is not None and token not in cache:
            row = conn.execute("SELECT doc FROM temp.lexical_rows WHERE term = ?", (token,)).fetchone()
            cache[token] = 0 if row is None else int(row[0])
        counts[word] = None if token is None else cache[token]
    return counts


def match_words(words: Sequence[str], counts: dict[str, int | None], total: int,
                budget: int | None = None) -> list[str]:
    """The words of a query the match keeps (see the module's docstring): not those that more
    than half of the ``total`` documents hold, and, when the rest are held by more than
    ``budget`` (default :data:`MAX_POSTINGS`) documents in all, the rarest ones that fit (at
    least one). Words of unknown count (``None``) are kept and not counted.

    Example:
        >>> match_words(["the", "rare", "common", "ERR-1"],
        ...             {"the": 900, "rare": 3, "common": 400, "ERR-1": None}, 1000, budget=100)
        ['rare', 'ERR-1']
    """
    budget = MAX_POSTINGS if budget is None else budget
    usable = [w for w in words if (counts.get(w) or 0) * 2 <= total]
    if sum(counts.get(w) or 0 for w in usable) <= budget:
        return usable
    kept, used = set(), 0
    for word in sorted(usable, key=lambda w: counts.get(w) or 0):
        n = counts.get(word) or 0
        if kept and used + n > budget:
            break
        kept.add(word)
        used += n
    return [w for w in usable if w in kept]


def search(conn: sqlite3.Connection, match: str, k: int, where: str = "1",
           params: Sequence[Any] = ()) -> list[tuple[int, float]]:
    """The ``k`` best ``(key, BM25 score)`` for a MATCH expression (higher is better), among the
    documents of ``docs`` satisfying the SQL condition ``where`` (a compiled filter)."""
    join = f"JOIN docs ON docs.iid = {TABLE}.rowid " if where != "1" else ""  # only a filter reads docs
    rows = conn.execute(
        f"SELECT {TABLE}.rowid, -bm25({TABLE}) AS s FROM {TABLE} {join}"
        f"WHERE {TABLE} MATCH ? AND {where} ORDER BY s DESC, {TABLE}.rowid LIMIT ?",
        [match, *params, k],
    ).fetchall()
    return [(int(key), float(score)) for key, score in rows]


def indexed_keys(conn: sqlite3.Connection) -> np.ndarray:
    """The keys of the documents the FTS5 index holds any token of, ascending (read from the
    index itself, not from ``docs``; a document without a token is not among them)."""
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.lexical_terms USING fts5vocab(main, {TABLE}, "
                 "'instance')")
    rows = conn.execute("SELECT DISTINCT doc FROM temp.lexical_terms ORDER BY doc")
    return np.fromiter((r[0] for r in rows), dtype=np.int64)


def check(conn: sqlite3.Connection) -> None:
    """Raise ``sqlite3.DatabaseError`` unless the FTS5 index matches the documents exactly
    (FTS5's integrity check against the content)."""
    conn.execute(f"INSERT INTO {TABLE} ({TABLE}, rank) VALUES ('integrity-check', 1)")


__all__ = [
    "DEFAULT_TOKENIZER",
    "MAX_FIELDS",
    "MAX_POSTINGS",
    "TABLE",
    "TOKENIZERS",
    "LexicalConfig",
    "check",
    "config_of",
    "create",
    "document_counts",
    "drop",
    "indexed_keys",
    "match_expression",
    "match_words",
    "query_words",
    "search",
]
