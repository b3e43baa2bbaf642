"""``FaissStore``: vectors in Faiss, ids / texts / metadata in SQLite, atomic versioned saves.

On disk a store is a directory::

    STORE/CURRENT              "v-000007": the version to load (replaced atomically)
    STORE/v-000007/manifest.json   format version, dimension, index spec, embedder fingerprint
    STORE/v-000007/index.faiss     the Faiss index (int64 keys)
    STORE/v-000007/docs.sqlite     iid -> id, text, metadata (JSON)

``save`` writes a complete new version directory, fsyncs it, then replaces ``CURRENT``; a
crash at any point leaves the previous version loadable. Nothing is pickled.

In memory, Faiss holds the vectors and a SQLite database (a temporary file, not RAM) holds
the texts, so large collections don't keep their texts in Python objects. A loaded store
reads the saved database in place until its first change (copy on write).

Example:
    >>> import numpy as np
    >>> from qwen3_rag import FaissStore
    >>> store = FaissStore(4)
    >>> vecs = np.eye(4, dtype="float32")
    >>> store.add(["a", "b", "c", "d"], vecs, ids=["1", "2", "3", "4"],
    ...           metadatas=[{"lang": "en"}, {"lang": "fr"}, {"lang": "en"}, {"lang": "de"}])
    ['1', '2', '3', '4']
    >>> [h.id for h in store.search(vecs[2], k=2, filter={"lang": "en"})[0]]
    ['3', '1']
    >>> _ = store.save("/tmp/qwen3-rag-doctest-store")
    >>> len(FaissStore.load("/tmp/qwen3-rag-doctest-store"))
    4
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qwen3_rag import faiss_index as fx
from qwen3_rag.engine.base import looks_like_path
from qwen3_rag.faiss_index import IndexSpec
from qwen3_rag.formats import check_texts

logger = logging.getLogger("qwen3_rag")

FORMAT_VERSION = 1
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"
DOCS_FILE = "docs.sqlite"
EXACT_FILTER_MAX = 50_000
"""A filter matching at most this many documents is answered by exact scoring of those."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS docs (iid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
    "text TEXT NOT NULL, metadata TEXT NOT NULL)"
)


class StoreError(ValueError):
    """A store on disk is missing, damaged, or of another format version."""


class EmbedderMismatchError(ValueError):
    """The embedder does not match the one the store's vectors were built with."""


@dataclass(frozen=True)
class Record:
    """A stored document."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One search result: ``score`` is the inner product (cosine for normalised vectors)."""

    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def fingerprint_of(embedder: Any) -> dict[str, Any] | None:
    """``{"model", "dimension"}`` of an embedder, or the dict itself; ``None`` stays ``None``."""
    if embedder is None:
        return None
    fp = embedder if isinstance(embedder, Mapping) else getattr(embedder, "fingerprint", None)
    if not isinstance(fp, Mapping) or "dimension" not in fp:
        raise TypeError(
            "embedder must have a .fingerprint ({'model', 'dimension'}) or be such a dict, "
            f"got {type(embedder).__name__}"
        )
    model = fp.get("model")
    if isinstance(model, str) and looks_like_path(model) and os.path.isdir(os.path.expanduser(model)):
        model = os.path.abspath(os.path.expanduser(model))  # a local checkpoint: where it is
    return {"model": model, "dimension": int(fp["dimension"])}


_HUB_SNAPSHOT = re.compile(r"(?:^|/)models--([^/]+?)--([^/]+)/snapshots/[^/]+/?$")


def model_identity(model: str) -> str:
    """What a model reference names: a hub id, or a local directory, where a snapshot in the
    Hugging Face cache (``.../models--ORG--NAME/snapshots/REV``) names the hub id it came from.

    Example:
        >>> model_identity("/root/.cache/huggingface/hub/models--Qwen--Qwen3-Embedding-0.6B/snapshots/c54f2e")
        'Qwen/Qwen3-Embedding-0.6B'
        >>> model_identity("Qwen/Qwen3-Embedding-0.6B"), model_identity("/models/mine")
        ('Qwen/Qwen3-Embedding-0.6B', '/models/mine')
    """
    m = _HUB_SNAPSHOT.search(model.replace(os.sep, "/"))
    return f"{m.group(1)}/{m.group(2)}" if m else model


def check_fingerprint(recorded: Mapping[str, Any] | None, dim: int, embedder: Any, where: str) -> None:
    """Raise :class:`EmbedderMismatchError` when ``embedder`` can't have built these vectors."""
    given = fingerprint_of(embedder)
    if given is None:
        return
    if given["dimension"] != dim:
        raise EmbedderMismatchError(
            f"{where} holds {dim}-dimensional vectors but the embedder {given['model']!r} gives "
            f"{given['dimension']}-dimensional ones; use the embedder the store was built with"
        )
    if (recorded and recorded.get("model") and given["model"]
            and model_identity(recorded["model"]) != model_identity(given["model"])):
        raise EmbedderMismatchError(
            f"{where} was built with embeddings from {recorded['model']!r}, not {given['model']!r}; "
            "vectors of another model give meaningless scores: use the same model (its hub id, or "
            "its snapshot in the Hugging Face cache) or re-index"
        )


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def read_manifest(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """The current version directory of a store and its manifest (checked)."""
    root = Path(path)
    pointer = root / CURRENT
    if not root.is_dir():
        raise FileNotFoundError(f"store not found: {root}")
    if not pointer.is_file():
        raise StoreError(f"{root} is not a qwen3-rag store (no {CURRENT} file)")
    version = pointer.read_text(encoding="utf-8").strip()
    vdir = root / version
    try:
        manifest = json.loads((vdir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise StoreError(f"store {root}: cannot read {version}/{MANIFEST}: {e}") from e
    fmt = manifest.get("format_version")
    if fmt != FORMAT_VERSION:
        raise StoreError(
            f"store {root} has format version {fmt!r}; this qwen3-rag reads version {FORMAT_VERSION}"
        )
    dim = manifest.get("dimension")
    if not isinstance(dim, int) or dim < 1:
        raise StoreError(f"store {root}: invalid dimension {dim!r} in its manifest")
    return vdir, manifest


def _compile_filter(flt: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """SQL condition over ``docs.metadata`` for a filter dict (equality, $in, $nin, $ne, ranges)."""
    if not isinstance(flt, Mapping) or not flt:
        raise TypeError(f"filter must be a non-empty dict of metadata conditions, got {flt!r}")
    ops = {"$eq": "=", "$ne": "IS NOT", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
    conds: list[str] = []
    params: list[Any] = []

    def scalar(v: Any, key: str) -> Any:
        if v is None or isinstance(v, str | int | float | bool):
            return v
        raise TypeError(f"filter value for {key!r} must be a str, number, bool or None, got {v!r}")

    for key, cond in flt.items():
        if not isinstance(key, str):
            raise TypeError(f"filter keys must be str, got {key!r}")
        expr = "json_extract(metadata, ?)"
        jpath = '$."' + key.replace('"', '\\"') + '"'
        items = cond.items() if isinstance(cond, Mapping) else [("$eq", cond)]
        for op, val in items:
            if op in ("$in", "$nin"):
                if isinstance(val, str) or not isinstance(val, Iterable):
                    raise TypeError(f"filter {op} for {key!r} needs a list, got {val!r}")
                vals = [scalar(v, key) for v in val]
                neg = "NOT " if op == "$nin" else ""
                conds.append(f"{expr} {neg}IN (SELECT value FROM json_each(?))")
                params += [jpath, json.dumps(vals)]
            elif op in ops:
                v = scalar(val, key)
                sql_op = ops[op]
                if v is None and op == "$eq":
                    sql_op = "IS"
                elif op == "$eq":
                    sql_op = "IS"  # NULL-safe equality
                conds.append(f"{expr} {sql_op} ?")
                params += [jpath, v]
            else:
                raise ValueError(
                    f"unknown filter operator {op!r} for {key!r}; use a value, $eq, $ne, $in, $nin, "
                    "$gt, $gte, $lt or $lte"
                )
    return " AND ".join(conds), params


class FaissStore:
    """A vector store: Faiss for the vectors, SQLite for ids, texts and metadata.

    Args:
        dim: vector dimension.
        path: default directory for :meth:`save`.
        index: ``"auto"`` (exact search for small collections, IVF for large ones, 8-bit IVF
            from ~5M; re-chosen by size on :meth:`optimize`, which :meth:`save` calls), a kind
            of :data:`qwen3_rag.faiss_index.INDEX_KINDS`, a dict of
            :class:`~qwen3_rag.faiss_index.IndexSpec` fields or an ``IndexSpec``.
        embedder: a ``Qwen3Embedder`` (or its ``fingerprint`` dict) whose model is recorded,
            so that :meth:`load` can refuse another embedder.
        gpu: search on all GPUs (``faiss.index_cpu_to_all_gpus``) when Faiss sees some
            (``"auto"``), never (``False``).
        expected_size: with ``index="auto"``, pick the index for this many vectors now
            (an IVF choice then needs :meth:`train` before the first :meth:`add`).

    Vectors are expected L2-normalised (what ``Qwen3Embedder`` returns): scores are inner
    products, i.e. cosine similarities. Re-adding an id replaces its text, vector and metadata.
    A store is safe to use from several threads; only one process should write a directory.
    """

    def __init__(
        self,
        dim: int,
        path: str | os.PathLike[str] | None = None,
        index: str | Mapping[str, Any] | IndexSpec = "auto",
        *,
        embedder: Any = None,
        gpu: bool | str = "auto",
        expected_size: int | None = None,
    ):
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        self.dim = dim
        self.path = Path(path) if path is not None else None
        self.auto = index == "auto"
        if self.auto:
            n = expected_size or 0
            self.spec = IndexSpec.for_size(fx.choose_kind(n), n, dim)
        elif isinstance(index, IndexSpec):
            self.spec = index
        elif isinstance(index, Mapping):
            self.spec = IndexSpec(**index)  # unset IVF parameters are chosen at training time
        elif isinstance(index, str):
            self.spec = IndexSpec(index)  # IVF parameters are set at training time
        else:
            raise TypeError(f"index must be 'auto', a kind name, a dict or an IndexSpec, got {index!r}")
        self._fingerprint = fingerprint_of(embedder)
        if self._fingerprint is not None:
            check_fingerprint(None, dim, embedder, "this store")
        self.gpu = gpu
        self._lock = threading.RLock()
        self._index: Any = fx.build_index(self.spec, dim) if not self.spec.is_ivf or self.spec.nlist else None
        self._gpu_index: Any = None
        self._next_iid = 0
        self._count = 0
        self._conn = self._new_db()
        self._readonly = False
        self.created_at = time.time()
        self.extra: dict[str, Any] = {}
        """JSON-serialisable notes saved in the manifest (e.g. the last indexing run)."""

    # ------------------------------------------------------------------ basics
    @staticmethod
    def _new_db() -> sqlite3.Connection:
        conn = sqlite3.connect("", check_same_thread=False)  # private on-disk temp database
        conn.execute(_SCHEMA)
        conn.commit()
        return conn

    @property
    def fingerprint(self) -> dict[str, Any] | None:
        """The embedder recorded at build time (``{"model", "dimension"}``), if any."""
        return dict(self._fingerprint) if self._fingerprint else None

    @property
    def index_kind(self) -> str:
        """The Faiss index kind in use now (``"flat"``, ``"ivf"``, ...)."""
        return self.spec.kind

    @property
    def index(self) -> Any:
        """The underlying Faiss index (CPU); ``None`` before an IVF index is trained."""
        return self._index

    def __len__(self) -> int:
        return self._count

    def __contains__(self, doc_id: object) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM docs WHERE id = ?", (doc_id,)).fetchone() is not None

    def __repr__(self) -> str:
        model = (self._fingerprint or {}).get("model")
        return f"FaissStore(dim={self.dim}, n={len(self)}, index={self.spec.kind!r}, model={model!r})"

    def check_embedder(self, embedder: Any) -> None:
        """Raise :class:`EmbedderMismatchError` when ``embedder`` didn't build these vectors."""
        check_fingerprint(self._fingerprint, self.dim, embedder, f"store {self.path or '(in memory)'}")

    def _writable(self) -> None:
        """Copy a loaded (read-only) database into a private temporary one on first change."""
        if self._readonly:
            work = sqlite3.connect("", check_same_thread=False)
            self._conn.backup(work)
            self._conn.close()
            self._conn = work
            self._readonly = False
        self._gpu_index = None

    def _as_matrix(self, vectors: Any, what: str) -> np.ndarray:
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ValueError(f"{what} must have shape (n, {self.dim}), got {np.shape(vectors)}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{what} contain NaN or infinite values")
        return np.ascontiguousarray(arr)

    def _iids_of(self, ids: Sequence[str]) -> np.ndarray:
        rows = self._conn.execute(
            "SELECT iid FROM docs WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(ids)),)
        ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    # ------------------------------------------------------------------ writes
    def train(self, vectors: Any, expected_size: int | None = None) -> None:
        """Train an IVF index on sample vectors (``auto`` and ``flat`` need no training).

        ``expected_size`` (default: the sample size) sets ``nlist`` when it wasn't given.
        """
        sample = self._as_matrix(vectors, "training vectors")
        with self._lock:
            if not self.spec.is_ivf:
                return
            if self._index is not None and self._index.ntotal:
                raise ValueError("the IVF index already holds vectors; train before the first add")
            self.spec = IndexSpec.for_size(self.spec.kind, expected_size or len(sample), self.dim,
                                           **{k: v for k, v in self.spec.to_dict().items() if k != "kind"})
            need = self.spec.train_size()
            if len(sample) < (self.spec.nlist or 0):
                raise ValueError(
                    f"an IVF index with nlist={self.spec.nlist} needs at least {self.spec.nlist} "
                    f"training vectors (about {need} recommended), got {len(sample)}"
                )
            index = fx.build_index(self.spec, self.dim)
            fx.train_index(index, fx.training_sample(sample, need))
            self._index = index

    def add(
        self,
        texts: Iterable[str],
        vectors: Any,
        ids: Iterable[str] | None = None,
        metadatas: Iterable[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Add (or replace, by id) documents with their vectors; returns their ids.

        Without ``ids``, random ids (uuid4 hex) are given. ``metadatas`` are JSON-serialisable
        dicts (filterable by key in :meth:`search`).
        """
        items = check_texts(texts)
        n = len(items)
        vecs = self._as_matrix(vectors, "vectors") if n else np.empty((0, self.dim), np.float32)
        if len(vecs) != n:
            raise ValueError(f"got {n} texts but {len(vecs)} vectors")
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
        if n == 0:
            return []
        with self._lock:
            if self._index is None or not self._index.is_trained:
                if n < (self.spec.nlist or 16):
                    raise ValueError(
                        f"index {self.spec.kind!r} must be trained first: call store.train(vectors) "
                        "with a representative sample, or use index='auto'"
                    )
                self.train(vecs)
            self._writable()
            old = self._iids_of(id_list)
            iids = np.arange(self._next_iid, self._next_iid + n, dtype=np.int64)
            self._index.add_with_ids(vecs, iids)
            self._next_iid += n
            try:
                with self._conn:
                    if len(old):
                        self._conn.execute(
                            "DELETE FROM docs WHERE iid IN (SELECT value FROM json_each(?))",
                            (json.dumps(old.tolist()),),
                        )
                    self._conn.executemany(
                        "INSERT INTO docs (iid, id, text, metadata) VALUES (?, ?, ?, ?)",
                        zip(iids.tolist(), id_list, items, meta_json, strict=True),
                    )
            except Exception:
                fx.remove_ids(self._index, iids)
                raise
            self._count += n - len(old)
            if len(old) and fx.supports_remove(self.spec):
                fx.remove_ids(self._index, old)
        return id_list

    # ------------------------------------------------------------------ bulk loading (index_corpus)
    def _add_keyed(self, vectors: np.ndarray, iids: np.ndarray) -> None:
        """Put vectors under the given keys into the (trained) index, not yet their documents.

        A private fast path for :func:`~qwen3_rag.index_corpus`: the vectors are trusted
        (float32, C-contiguous, ``(n, dim)``, finite) and the keys new; the documents follow
        through :meth:`_import_rows`, then :meth:`_end_import` settles the store.
        """
        with self._lock:
            self._writable()
            self._index.add_with_ids(vectors, np.ascontiguousarray(iids, dtype=np.int64))

    def _import_rows(self, db: str | os.PathLike[str], first: int, last: int, base: int,
                     before: int) -> np.ndarray:
        """Copy staged rows into the documents, in SQL (metadata stays JSON text, no round trip).

        Rows ``first < seq <= last`` of table ``rows`` (``seq, id, text, metadata``; metadata
        JSON objects, trusted) of the SQLite database ``db`` become documents with key
        ``base + seq - 1``; a row replaces the document of the same id (a later row that of an
        earlier one). Returns the keys below ``before`` (documents from before the import) whose
        document was replaced: their vectors are to be dropped by :meth:`_end_import`.
        """
        with self._lock:
            self._writable()
            conn = self._conn
            conn.execute("ATTACH DATABASE ? AS staged", (os.fspath(db),))
            try:
                with conn:
                    replaced = [r[0] for r in conn.execute(
                        "SELECT d.iid FROM staged.rows AS r JOIN docs AS d ON d.id = r.id "
                        "WHERE r.seq > ? AND r.seq <= ? AND d.iid < ?", (first, last, before))]
                    conn.execute(
                        "INSERT OR REPLACE INTO docs (iid, id, text, metadata) SELECT ? + seq - 1, id, "
                        "text, metadata FROM staged.rows WHERE seq > ? AND seq <= ? ORDER BY seq",
                        (base, first, last),
                    )
            finally:
                conn.execute("DETACH DATABASE staged")
            return np.array(replaced, dtype=np.int64)

    def _end_import(self, replaced: np.ndarray, base: int, next_iid: int) -> None:
        """After :meth:`_add_keyed` / :meth:`_import_rows` gave keys ``base`` to ``next_iid - 1``:
        drop the vectors of replaced documents (``replaced``, and imported keys whose row a
        later one of the same id replaced), recount, and continue keys from ``next_iid``."""
        with self._lock:
            conn = self._conn
            dropped = [replaced]
            live = int(conn.execute("SELECT COUNT(*) FROM docs WHERE iid >= ?", (base,)).fetchone()[0])
            if live != next_iid - base:  # repeated ids among the imported rows
                kept = np.fromiter((r[0] for r in conn.execute(
                    "SELECT iid FROM docs WHERE iid >= ? ORDER BY iid", (base,))), dtype=np.int64)
                imported = np.arange(base, next_iid, dtype=np.int64)
                dropped.append(np.setdiff1d(imported, kept, assume_unique=True))
            if fx.supports_remove(self.spec):
                fx.remove_ids(self._index, np.concatenate(dropped))
            self._count = int(conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0])
            self._next_iid = max(self._next_iid, next_iid)
            self._gpu_index = None

    def delete(self, ids: Iterable[str]) -> int:
        """Delete documents by id (unknown ids are ignored); returns how many were deleted."""
        id_list = [ids] if isinstance(ids, str) else list(ids)
        with self._lock:
            old = self._iids_of(id_list)
            if not len(old):
                return 0
            self._writable()
            with self._conn:
                self._conn.execute(
                    "DELETE FROM docs WHERE iid IN (SELECT value FROM json_each(?))",
                    (json.dumps(old.tolist()),),
                )
            self._count -= len(old)
            if fx.supports_remove(self.spec):
                fx.remove_ids(self._index, old)
            return len(old)

    def optimize(self, force: bool = False) -> bool:
        """With ``index="auto"``, rebuild into the kind suited to the current size.

        Returns True when the index was rebuilt. Also drops HNSW orphans (deleted vectors)
        when ``force`` is set.
        """
        with self._lock:
            n = len(self)
            if self.auto:
                want = IndexSpec.for_size(fx.choose_kind(n), n, self.dim)
                same = want.kind == self.spec.kind and (
                    not want.is_ivf or 0.25 <= (self.spec.nlist or 1) / (want.nlist or 1) <= 4
                )
                if same and not force:
                    return False
            elif not force or self._index is None:
                return False
            else:
                want = self.spec
            self._rebuild(want)
            return True

    def _rebuild(self, spec: IndexSpec) -> None:
        iids = np.array([r[0] for r in self._conn.execute("SELECT iid FROM docs ORDER BY iid")],
                        dtype=np.int64)
        vecs = fx.reconstruct(self._index, iids) if len(iids) else np.empty((0, self.dim), np.float32)
        index = fx.build_index(spec, self.dim)
        if spec.is_ivf:
            fx.train_index(index, fx.training_sample(vecs, spec.train_size()))
        for s in range(0, len(iids), 65536):
            index.add_with_ids(vecs[s : s + 65536], iids[s : s + 65536])
        logger.info("qwen3_rag: store index rebuilt as %s for %d vectors", spec.kind, len(iids))
        self._index, self.spec, self._gpu_index = index, spec, None

    # ------------------------------------------------------------------ reads
    def get(self, ids: Iterable[str]) -> list[Record | None]:
        """Documents by id, in the order asked (``None`` for unknown ids)."""
        id_list = [ids] if isinstance(ids, str) else list(ids)
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, text, metadata FROM docs WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(id_list),),
            ).fetchall()
        found = {r[0]: Record(r[0], r[1], json.loads(r[2])) for r in rows}
        return [found.get(d) for d in id_list]

    def vectors(self, ids: Iterable[str]) -> np.ndarray:
        """Stored vectors of documents by id, float32 (n, d) (decoded for compressed indexes)."""
        id_list = [ids] if isinstance(ids, str) else list(ids)
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, iid FROM docs WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(id_list),),
            ).fetchall()
            found = dict(rows)
            missing = [d for d in id_list if d not in found]
            if missing:
                raise KeyError(f"unknown id {missing[0]!r}")
            iids = np.array([found[d] for d in id_list], dtype=np.int64)
            return fx.reconstruct(self._index, iids) if len(iids) else np.empty((0, self.dim), np.float32)

    def iter_records(self, batch_size: int = 1000) -> Iterable[Record]:
        """All documents, in insertion order (streamed)."""
        last = -1
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT iid, id, text, metadata FROM docs WHERE iid > ? ORDER BY iid LIMIT ?",
                    (last, batch_size),
                ).fetchall()
            if not rows:
                return
            for r in rows:
                yield Record(r[1], r[2], json.loads(r[3]))
            last = rows[-1][0]

    def _rows(self, iids: Iterable[int]) -> dict[int, tuple[str, str, str]]:
        rows = self._conn.execute(
            "SELECT iid, id, text, metadata FROM docs WHERE iid IN (SELECT value FROM json_each(?))",
            (json.dumps([int(i) for i in iids]),),
        ).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def _filter_iids(self, flt: Mapping[str, Any]) -> np.ndarray:
        where, params = _compile_filter(flt)
        cur = self._conn.execute(f"SELECT iid FROM docs WHERE {where} ORDER BY iid", params)
        return np.array([r[0] for r in cur], dtype=np.int64)

    def _search_index(self) -> Any:
        if self.gpu is False or self.spec.kind == "hnsw":
            return self._index
        if self._gpu_index is None:
            try:
                self._gpu_index = fx.to_gpu(self._index)
                if self._gpu_index is not None and self.spec.is_ivf:
                    fx.faiss_module().GpuParameterSpace().set_index_parameter(
                        self._gpu_index, "nprobe", self.spec.nprobe or 16
                    )
            except Exception as e:  # pragma: no cover - needs GPU Faiss
                logger.warning("qwen3_rag: GPU Faiss unavailable for this index (%s); using CPU", e)
                self.gpu = False
                self._gpu_index = None
        return self._gpu_index if self._gpu_index is not None else self._index

    def _ann(self, q: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Raw (scores, iids) of the k best live vectors, widening until k are found."""
        faiss = fx.faiss_module()
        index = self._index
        live = len(self) if allowed is None else len(allowed)
        want = min(k, live)
        if allowed is not None and (len(allowed) <= EXACT_FILTER_MAX and self.spec.kind != "flat"):
            return self._exact(q, k, allowed)
        selector = faiss.IDSelectorBatch(allowed) if allowed is not None else None
        stale = int(index.ntotal) - len(self)  # HNSW orphans (deleted, still in the graph)
        kk = min(int(index.ntotal), k + (stale if selector is None else 0))
        widen = 1
        fx.set_parallel_mode(index, len(q))
        while True:
            if selector is None and widen == 1:
                try:
                    scores, iids = self._search_index().search(q, kk)
                except Exception:  # pragma: no cover - GPU failure: stay on CPU
                    scores, iids = index.search(q, kk, params=fx.search_params(self.spec, index))
            else:
                scores, iids = index.search(q, kk, params=fx.search_params(self.spec, index, selector, widen))
            found = (iids >= 0).sum(axis=1)
            if found.min() >= min(want + (stale if selector is None else 0), kk) or fx.is_exhaustive(
                self.spec, index, widen
            ):
                return scores, iids
            if widen >= 64:
                break
            widen *= 4
        if allowed is None:
            allowed = np.array([r[0] for r in self._conn.execute("SELECT iid FROM docs")], dtype=np.int64)
        return self._exact(q, k, allowed)

    def _exact(self, q: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the vectors of ``allowed`` (streamed in blocks)."""
        best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
        best_i = np.empty((len(q), 0), dtype=np.int64)
        for s in range(0, len(allowed), 65536):
            part = allowed[s : s + 65536]
            sc = q @ fx.reconstruct(self._index, part).T
            cat_s = np.concatenate([best_s, sc], axis=1)
            cat_i = np.concatenate([best_i, np.broadcast_to(part, sc.shape)], axis=1)
            top = np.argsort(-cat_s, axis=1, kind="stable")[:, :k]
            best_s = np.take_along_axis(cat_s, top, axis=1)
            best_i = np.take_along_axis(cat_i, top, axis=1)
        return best_s, best_i

    def search(
        self,
        vectors: Any,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        score_threshold: float | None = None,
    ) -> list[list[Hit]]:
        """The ``k`` best documents for each query vector, best first.

        Args:
            vectors: (n, d) query vectors, or one (d,) vector (still one list of hits back).
            k: hits per query; fewer only when fewer documents (matching ``filter``) exist.
            filter: metadata conditions, all of which must hold: ``{"lang": "en"}``,
                ``{"lang": {"$in": ["en", "fr"]}}``, ``$ne``, ``$nin``, ``$gt``, ``$gte``,
                ``$lt``, ``$lte``. A filtered search still returns ``k`` hits when ``k``
                documents match (the store widens the search, then scores them exactly).
            score_threshold: drop hits scoring below this (cosine similarity).
        """
        q = self._as_matrix(vectors, "query vectors")
        if not isinstance(k, int) or k < 0:
            raise ValueError(f"k must be a non-negative int, got {k!r}")
        with self._lock:
            empty: list[list[Hit]] = [[] for _ in range(len(q))]
            if k == 0 or self._index is None or len(self) == 0:
                return empty
            allowed = self._filter_iids(filter) if filter is not None else None
            if allowed is not None and len(allowed) == 0:
                return empty
            scores, iids = self._ann(q, k, allowed)
            rows = self._rows(np.unique(iids[iids >= 0]))
        out: list[list[Hit]] = []
        for srow, irow in zip(scores, iids, strict=True):
            hits: list[Hit] = []
            for s, i in zip(srow.tolist(), irow.tolist(), strict=True):
                row = rows.get(i)
                if row is None or (score_threshold is not None and s < score_threshold):
                    continue
                hits.append(Hit(row[0], float(s), row[1], json.loads(row[2])))
                if len(hits) == k:
                    break
            out.append(hits)
        return out

    # ------------------------------------------------------------------ persistence
    def manifest(self) -> dict[str, Any]:
        """What :meth:`save` records next to the index."""
        from qwen3_rag import __version__

        with self._lock:
            return {
                "format_version": FORMAT_VERSION,
                "dimension": self.dim,
                "count": len(self),
                "next_iid": self._next_iid,
                "index": self.spec.to_dict(),
                "auto": self.auto,
                "embedder": self.fingerprint,
                "metric": "inner_product",
                "created_at": self.created_at,
                "saved_at": time.time(),
                "qwen3_rag_version": __version__,
                "extra": self.extra,
            }

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the store to ``path`` (default: the store's path) atomically; returns the path.

        A new version directory is written and fsynced, then ``CURRENT`` is replaced with
        ``os.replace``; older versions are removed afterwards. A crash at any point leaves the
        previous version loadable.
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no path: pass save(path) or create the store with path=...")
        with self._lock:
            if self.auto:
                self.optimize()
            if self._index is None:
                self._index = fx.build_index(IndexSpec("flat"), self.dim)
                self.spec = IndexSpec("flat")
            target.mkdir(parents=True, exist_ok=True)
            version = self._next_version(target)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=target))
            try:
                self._write_version(tmp)
                os.rename(tmp, target / version)
                _fsync_dir(target)
                self._point_to(target, version)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self._prune(target, keep=version)
            if self.path is None:
                self.path = target
        return target

    def _write_version(self, vdir: Path) -> None:
        faiss = fx.faiss_module()
        faiss.write_index(self._index, str(vdir / INDEX_FILE))
        dst = sqlite3.connect(vdir / DOCS_FILE)
        try:
            self._conn.backup(dst)
        finally:
            dst.close()
        (vdir / MANIFEST).write_text(json.dumps(self.manifest(), indent=2), encoding="utf-8")
        for name in (INDEX_FILE, DOCS_FILE, MANIFEST):
            _fsync_file(vdir / name)
        _fsync_dir(vdir)

    @staticmethod
    def _next_version(root: Path) -> str:
        nums = [int(p.name[2:]) for p in root.glob("v-*") if p.name[2:].isdigit()]
        return f"v-{max(nums, default=0) + 1:06d}"

    @staticmethod
    def _point_to(root: Path, version: str) -> None:
        tmp = root / f".{CURRENT}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(version + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, root / CURRENT)
        _fsync_dir(root)

    @staticmethod
    def _prune(root: Path, keep: str) -> None:
        for p in root.iterdir():
            if (p.name.startswith("v-") and p.name != keep) or p.name.startswith(".tmp-v-"):
                shutil.rmtree(p, ignore_errors=True)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], embedder: Any = None, *, gpu: bool | str = "auto"
    ) -> FaissStore:
        """Open a saved store.

        Checks the format version and dimension; with ``embedder`` (a ``Qwen3Embedder`` or its
        fingerprint dict), raises :class:`EmbedderMismatchError` when it isn't the embedder
        the store was built with.
        """
        faiss = fx.faiss_module()
        vdir, manifest = read_manifest(path)
        dim = manifest["dimension"]
        try:
            index = faiss.read_index(str(vdir / INDEX_FILE))
        except RuntimeError as e:
            raise StoreError(f"store {path}: cannot read {vdir.name}/{INDEX_FILE}: {e}") from e
        if index.d != dim:
            raise StoreError(f"store {path}: index dimension {index.d} != manifest dimension {dim}")
        store = cls.__new__(cls)
        store.dim = dim
        store.path = Path(path)
        store.auto = bool(manifest.get("auto", False))
        store.spec = IndexSpec.from_dict(manifest.get("index") or {"kind": "flat"})
        store._fingerprint = manifest.get("embedder")
        store.gpu = gpu
        store._lock = threading.RLock()
        store._index = index
        store._gpu_index = None
        store._next_iid = int(manifest.get("next_iid", index.ntotal))
        uri = (vdir / DOCS_FILE).resolve().as_uri() + "?mode=ro&immutable=1"
        store._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        store._readonly = True
        store._count = int(store._conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0])
        if store.spec.is_ivf:
            fx.faiss_module().extract_index_ivf(index).nprobe = store.spec.nprobe or 16
        elif store.spec.kind == "hnsw":
            fx.faiss_module().downcast_index(index.index).hnsw.efSearch = store.spec.ef_search
        store.created_at = float(manifest.get("created_at", time.time()))
        store.extra = dict(manifest.get("extra") or {})
        store.check_embedder(embedder)
        count = len(store)
        if count != manifest.get("count", count):
            raise StoreError(f"store {path}: {count} documents but the manifest says {manifest['count']}")
        return store

    @classmethod
    def from_index(
        cls,
        index: Any,
        documents: Iterable[tuple[int, str, str, str | Mapping[str, Any]]],
        *,
        spec: IndexSpec,
        embedder: Any = None,
        auto: bool = False,
        path: str | os.PathLike[str] | None = None,
        batch_size: int = 8192,
    ) -> FaissStore:
        """A store around a Faiss index built elsewhere (e.g. per-shard indexes merged into one).

        Args:
            index: an inner-product Faiss index holding one vector per document under int64
                keys, of the kind ``spec`` describes (as :func:`~qwen3_rag.faiss_index.build_index`
                makes it).
            documents: ``(key, id, text, metadata)`` per document, streamed; ``key`` is the
                index key of its vector, ``metadata`` a dict or its JSON text (an object).
            spec: the index's :class:`~qwen3_rag.faiss_index.IndexSpec` (saved in the manifest).
            embedder: the embedder (or its fingerprint dict) that made the vectors.
            auto: behave as ``index="auto"`` from now on (re-chosen by size on save).

        Raises ``ValueError`` when ids repeat, keys are not those of the index, or a metadata
        text is not a JSON object.
        """
        faiss = fx.faiss_module()
        if getattr(index, "metric_type", None) != faiss.METRIC_INNER_PRODUCT:
            raise ValueError("the index must use inner product (faiss.METRIC_INNER_PRODUCT)")
        store = cls(int(index.d), path, index=spec, embedder=embedder)
        store.auto = auto
        store._index = index
        max_key = -1
        count = 0

        def rows(batch: list[tuple[int, str, str, str | Mapping[str, Any]]]) -> Iterable[tuple[Any, ...]]:
            for key, doc_id, text, meta in batch:
                if not isinstance(doc_id, str) or not doc_id or not isinstance(text, str):
                    raise ValueError(f"document {key}: the id must be a non-empty str and the text a str, "
                                     f"got {doc_id!r}, {type(text).__name__}")
                meta_json = meta if isinstance(meta, str) else json.dumps(dict(meta), ensure_ascii=False)
                yield int(key), doc_id, text, meta_json

        it = iter(documents)
        try:
            while True:
                batch = [row for _, row in zip(range(batch_size), it, strict=False)]
                if not batch:
                    break
                with store._conn:
                    store._conn.executemany("INSERT INTO docs (iid, id, text, metadata) VALUES (?, ?, ?, ?)",
                                            rows(batch))
                count += len(batch)
                max_key = max(max_key, max(int(b[0]) for b in batch))
        except sqlite3.IntegrityError as e:
            store.close()
            raise ValueError(f"documents repeat an id or a key: {e}") from e
        bad = store._conn.execute(
            "SELECT id FROM docs WHERE CASE WHEN json_valid(metadata) THEN json_type(metadata) != 'object' "
            "ELSE 1 END LIMIT 1"
        ).fetchone()
        if bad is not None:
            store.close()
            raise ValueError(f"document {bad[0]!r}: metadata must be a JSON object")
        if count != int(index.ntotal):
            store.close()
            raise ValueError(f"the index holds {index.ntotal} vectors but {count} documents were given")
        if count:
            lo, hi = store._conn.execute("SELECT MIN(iid), MAX(iid) FROM docs").fetchone()
            probe = np.array([lo, hi], dtype=np.int64)
            try:
                fx.reconstruct(index, probe)  # the keys must be the index's
            except RuntimeError as e:
                store.close()
                raise ValueError(f"document keys {lo}..{hi} are not all keys of the index: {e}") from e
        store._count = count
        store._next_iid = max_key + 1
        return store

    def close(self) -> None:
        """Release the SQLite connection (the store is unusable afterwards)."""
        with self._lock:
            self._conn.close()
            self._gpu_index = None


__all__ = ["EmbedderMismatchError", "FaissStore", "Hit", "Record", "StoreError", "read_manifest"]
