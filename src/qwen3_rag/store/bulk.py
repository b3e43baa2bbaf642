"""Bulk loading: many documents into a store without a Python object per document.

:meth:`FaissStore.bulk_load() <qwen3_rag.store.FaissStore.bulk_load>` returns a
:class:`BulkLoad`. Documents come from a staged SQLite table (``rows``: ``seq``, ``id``,
``text``, ``metadata`` JSON), copied in SQL; their vectors, given as arrays, go into Faiss
under the keys ``base + seq - 1``. The two may go in any order and in batches of any size (a
background thread can add while rows are still being staged); :meth:`BulkLoad.finish` then
settles the store: a document whose id was already stored, or staged again later, replaces
the earlier one, whose vector is dropped.

Example:
    >>> import numpy as np, sqlite3, tempfile, os
    >>> from qwen3_rag import FaissStore
    >>> db = os.path.join(tempfile.mkdtemp(), "staged.sqlite")
    >>> conn = sqlite3.connect(db)
    >>> _ = conn.execute("CREATE TABLE rows (seq INTEGER PRIMARY KEY, id TEXT, text TEXT, metadata TEXT)")
    >>> _ = conn.executemany("INSERT INTO rows (id, text, metadata) VALUES (?, ?, ?)",
    ...                      [("a", "A", "{}"), ("b", "B", "{}"), ("a", "A again", "{}")])
    >>> conn.commit()
    >>> store = FaissStore(3)
    >>> bulk = store.bulk_load()
    >>> bulk.add_keyed(np.eye(3, dtype="float32"), bulk.keys(0, 3))
    >>> bulk.import_rows(db, 0, 3)
    0
    >>> bulk.finish(3)
    >>> len(store), store.get(["a"])[0].text, store.index.ntotal
    (2, 'A again', 2)
"""

from __future__ import annotations

import os
import threading

import numpy as np

from qwen3_rag.store.documents import Documents
from qwen3_rag.store.vectors import VectorIndex


class BulkLoad:
    """One bulk load into a store (from :meth:`FaissStore.bulk_load`); methods are thread-safe.

    Staged row ``seq`` (1, 2, ...) becomes the document of key ``base + seq - 1``, where
    :attr:`base` is the store's next free key when the load began.
    """

    def __init__(self, documents: Documents, vectors: VectorIndex, lock: threading.RLock):
        self._documents = documents
        self._vectors = vectors
        self._lock = lock
        self.base = documents.next_key
        """The key of staged row 1; keys below it are documents from before the load."""
        self._replaced: list[np.ndarray] = []

    def keys(self, first: int, last: int) -> np.ndarray:
        """The keys of staged rows ``first < seq <= last``."""
        return np.arange(self.base + first, self.base + last, dtype=np.int64)

    def add_keyed(self, vectors: np.ndarray, keys: np.ndarray) -> None:
        """Put vectors under new ``keys`` into the (trained) index; their documents come with
        :meth:`import_rows`. The vectors are trusted: float32, C-contiguous, ``(n, dim)``, finite."""
        with self._lock:
            self._vectors.add(vectors, keys)

    def import_rows(self, db: str | os.PathLike[str], first: int, last: int) -> int:
        """Copy staged rows ``first < seq <= last`` of table ``rows`` in the SQLite database ``db``
        into the documents (metadata JSON objects, trusted); returns how many of them replaced
        a document from before the load (whose vectors :meth:`finish` drops)."""
        with self._lock:
            replaced = self._documents.import_staged(db, first, last, self.base)
        self._replaced.append(replaced)
        return len(replaced)

    def delete_unseen(self, db: str | os.PathLike[str]) -> tuple[int, int]:
        """Once every staged row is imported: delete the documents from before the load whose
        source record is not in the staged database ``db`` (neither a staged row's ``source``
        nor in its table ``unchanged``; a document without a recorded source is its own); their
        vectors go at :meth:`finish`. Returns (documents, source records) deleted."""
        with self._lock:
            keys, records = self._documents.delete_unseen(db, self.base)
        self._replaced.append(keys)
        return len(keys), records

    def finish(self, end: int) -> None:
        """Settle the store once keys :attr:`base` to ``end - 1`` are in: drop the vectors of
        replaced documents, recount, and continue keys from ``end``."""
        with self._lock:
            dropped = self._documents.settle_import(self.base, end)
            self._vectors.remove(np.concatenate([np.empty(0, np.int64), *self._replaced, dropped]))
        self._replaced = []


__all__ = ["BulkLoad"]
