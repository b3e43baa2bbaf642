"""The staging files of an indexing job, in the store directory: what makes it resumable exactly.

The rows (id, text, metadata JSON, and the source record's id and content hash) go into a
SQLite database (``STORE/.indexing.sqlite``,
WAL journal), their vectors are appended to a raw float32 file beside it
(``STORE/.indexing.vectors``; staged row ``seq`` is vector ``seq - 1``). On every commit the
vectors file is fsynced first, then one transaction records the new rows, how many vectors
are committed and how many source positions they cover (table ``meta``); so a process killed
at any moment (SIGKILL included) loses only the uncommitted tail, which a resumed run cuts off.
Source records found unchanged in the store are not staged: their ids go into table
``unchanged``, in the same transactions.

Example:
    >>> import numpy as np, tempfile
    >>> from pathlib import Path
    >>> st = Staging(Path(tempfile.mkdtemp()) / STAGING, dim=2)
    >>> st.open_vectors()
    >>> st.append([("a", "A", "{}", "a", "h1")], np.ones((1, 2), np.float32))
    >>> st.commit()
    >>> st.committed, st.vectors(1).tolist()
    (1, [[1.0, 1.0]])
    >>> st.remove()
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from qwen3_rag.store.documents import table_columns

STAGING = ".indexing.sqlite"
"""The staging database of an interrupted (or running) job, in the store directory."""
STAGED_VECTORS = ".indexing.vectors"
"""The staged vectors (raw float32, one row per staged row), beside :data:`STAGING`."""
Row = tuple[str, str, str, str, str]
"""(id, text, metadata JSON, source record id, content hash) of a staged row."""


class Staging:
    """The staging files: committed rows (SQLite) and their vectors (raw float32, appended).

    The vectors file is fsynced before the transaction that records how many vectors are
    committed, so it always holds at least that many; bytes past them are an uncommitted tail,
    cut off by :meth:`open_vectors` before anything else touches the file.
    """

    def __init__(self, path: Path, dim: int):
        self.path = path
        self.vectors_path = path.with_name(STAGED_VECTORS)
        self.dim = dim
        self.row_bytes = 4 * dim
        self.committed = 0
        self.pending = 0
        self.file: Any = None
        self.conn = sqlite3.connect(path)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS rows (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, "
            "text TEXT NOT NULL, metadata TEXT NOT NULL, source TEXT, hash TEXT)"
        )
        if "source" not in table_columns(self.conn, "rows"):
            self.conn.execute("ALTER TABLE rows ADD COLUMN source TEXT")  # staged before sources were kept
            self.conn.execute("ALTER TABLE rows ADD COLUMN hash TEXT")
        self.conn.execute("CREATE INDEX IF NOT EXISTS rows_source ON rows (source)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS unchanged (source TEXT PRIMARY KEY) WITHOUT ROWID")
        self.conn.commit()

    def get(self, key: str, default: Any = None) -> Any:
        """A value of the job's ``meta`` table (JSON), as committed or set in this transaction."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set(self, key: str, value: Any) -> None:
        """Set a ``meta`` value; durable at the next :meth:`commit`."""
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def open_vectors(self) -> None:
        """Open the vectors file for appending, cut back to the committed vectors."""
        self._upgrade()
        self.committed = int(self.get("vectors", 0))
        rows = int(self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM rows").fetchone()[0])
        fd = os.open(self.vectors_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            want = self.committed * self.row_bytes
            if rows != self.committed or size < want:
                raise ValueError(
                    f"{self.path}: the interrupted run's staging files are damaged ({rows} rows, "
                    f"{self.committed} vectors committed, {size // self.row_bytes} in "
                    f"{self.vectors_path.name}); re-run with resume=False (--no-resume) to start over"
                )
            if size > want:  # written, never committed: the run died between the two
                os.ftruncate(fd, want)
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self.file = open(fd, "ab")

    def _upgrade(self) -> None:
        """Move staged vectors kept as SQLite BLOBs (column ``rows.vector``) to the vectors file."""
        if "vector" not in table_columns(self.conn, "rows"):
            return
        with open(self.vectors_path, "wb") as f:
            for (blob,) in self.conn.execute("SELECT vector FROM rows ORDER BY seq"):
                if len(blob) != self.row_bytes:
                    raise ValueError(f"{self.path}: a staged vector has {len(blob) // 4} dimensions, "
                                     f"not {self.dim}; re-run with resume=False (--no-resume) to start over")
                f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        n = int(self.conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0])
        self.conn.execute("ALTER TABLE rows DROP COLUMN vector")
        self.set("vectors", n)
        self.conn.commit()

    def fill_sources(self, chunked: bool) -> None:
        """Give rows staged without a source record (by an earlier qwen3-rag) theirs: the
        ``doc_id`` of a chunk's metadata when ``chunked``, else the row's id."""
        source = "json_extract(metadata, '$.doc_id')" if chunked else "id"
        self.conn.execute(f"UPDATE rows SET source = {source} WHERE source IS NULL")
        self.conn.commit()

    def staged_sources(self, sources: list[str]) -> set[str]:
        """Those of ``sources`` that rows staged so far (committed or not) came from."""
        return {r[0] for r in self.conn.execute(
            "SELECT DISTINCT source FROM rows WHERE source IN (SELECT value FROM json_each(?))",
            (json.dumps(sources),))}

    def unchanged_sources(self, sources: list[str]) -> set[str]:
        """Those of ``sources`` marked unchanged so far (committed or not)."""
        return {r[0] for r in self.conn.execute(
            "SELECT source FROM unchanged WHERE source IN (SELECT value FROM json_each(?))",
            (json.dumps(sources),))}

    def mark_unchanged(self, sources: list[str]) -> None:
        """Record source records found unchanged (not staged); durable at :meth:`commit`."""
        self.conn.executemany("INSERT OR IGNORE INTO unchanged (source) VALUES (?)", [(s,) for s in sources])

    def append(self, rows: list[Row], vectors: np.ndarray) -> None:
        """Stage rows and their vectors (float32, C-contiguous); durable at :meth:`commit`."""
        self.conn.executemany(
            "INSERT INTO rows (id, text, metadata, source, hash) VALUES (?, ?, ?, ?, ?)", rows)
        self.file.write(memoryview(vectors).cast("B"))
        self.pending += len(rows)

    def commit(self) -> None:
        """Make everything staged durable: fsync the vectors, then commit the transaction
        (which records how many vectors are committed)."""
        self.file.flush()
        os.fsync(self.file.fileno())
        total = self.committed + self.pending
        self.set("vectors", total)
        self.conn.commit()
        self.committed, self.pending = total, 0

    def rollback(self) -> None:
        """Forget what was staged since the last commit."""
        self.conn.rollback()
        self.pending = 0  # the file's uncommitted tail is cut off when the run is resumed

    def uncache(self, first: int, last: int) -> None:
        """Let the OS drop the cached pages of committed vectors ``first`` to ``last - 1`` (in
        the store now): gigabytes of page cache a big save would otherwise write around."""
        if hasattr(os, "posix_fadvise") and last > first:
            fd = os.open(self.vectors_path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, first * self.row_bytes, (last - first) * self.row_bytes,
                                 os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)

    def vectors(self, n: int) -> np.ndarray:
        """The first ``n`` committed vectors, memory-mapped read-only."""
        if n == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.memmap(self.vectors_path, dtype=np.float32, mode="r", shape=(n, self.dim))

    def close(self) -> None:
        """Close both files (they stay on disk, for a resumed run)."""
        if self.file is not None:
            self.file.close()
            self.file = None
        self.conn.close()

    def remove(self) -> None:
        """Close and delete both files (the job is done, or discarded)."""
        self.close()
        remove_staging(self.path)


def interrupted_run(store: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What an interrupted (or running) ``index_corpus`` into ``store`` left: its ``settings``
    (source name, fields, chunking, the embedder's fingerprint), the source records it has
    ``consumed`` (committed: a resumed run starts after them) and the ``expected`` count (None
    where the source could not count); None without one.

    Example:
        >>> interrupted_run("/nonexistent/store") is None
        True
    """
    path = Path(store) / STAGING
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(path)
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        finally:
            conn.close()
    except sqlite3.Error:  # no meta table yet (killed while creating it), or not SQLite
        return None
    if "settings" not in meta:
        return None
    return {k: json.loads(meta[k]) if k in meta else None for k in ("settings", "consumed", "expected")}


def remove_staging(path: Path) -> None:
    """Delete the staging files beside the staging database ``path`` (those that exist)."""
    for p in (Path(str(path) + "-wal"), Path(str(path) + "-shm"), path.with_name(STAGED_VECTORS), path):
        p.unlink(missing_ok=True)


__all__ = ["STAGED_VECTORS", "STAGING", "Row", "Staging", "interrupted_run", "remove_staging"]
