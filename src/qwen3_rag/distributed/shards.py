"""Vector shards on disk, and building one :class:`~qwen3_rag.FaissStore` from them (no Ray needed).

A shard folder (local, or any URI pyarrow reads: ``s3://``, ``gs://``, ``hdfs://``) holds::

    SHARDS/manifest.json                    run id, shard list, embedder fingerprint, row count
    SHARDS/part-<run>-<task>.parquet        columns id, text, metadata (JSON), vector (float32[d])

``manifest.json`` is written last (atomically), once every shard of the run is complete, and
lists exactly that run's shards: files of an earlier or failed run are never read.

:func:`build_store` builds one Faiss index per shard (in parallel threads: Faiss and Parquet
decoding release the GIL) on a shared trained template, merges them into one index, and saves
a normal :class:`~qwen3_rag.FaissStore` directory, so ``FaissStore.load``, the CLI, the
service and both framework adapters open it as any other store. An id found in several rows
(a repeated id in the input, or shards of a task that ran twice) is kept once: the row in
the last shard, by name, wins.

Example:
    >>> import numpy as np, pyarrow as pa, tempfile
    >>> from qwen3_rag import FaissStore
    >>> from qwen3_rag.distributed.shards import build_store, write_shard_manifest, shard_table
    >>> root = tempfile.mkdtemp()
    >>> vecs = np.eye(4, dtype="float32")
    >>> t = shard_table(["a", "b", "c", "d"], ["A", "B", "C", "D"], ["{}"] * 4, vecs)
    >>> import pyarrow.parquet as pq; pq.write_table(t, f"{root}/part-r1-000000.parquet")
    >>> _ = write_shard_manifest(root, "r1", model="m")
    >>> report = build_store(root, f"{root}/store", show_progress=False)
    >>> report.documents, len(FaissStore.load(f"{root}/store"))
    (4, 4)
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qwen3_rag.indexing.sources import EmptyCorpusError
from qwen3_rag.store import (
    CURRENT,
    FaissStore,
    IndexSpec,
    StoreError,
    build_index,
    check_fingerprint,
    faiss_module,
    fingerprint_of,
    spec_for_size,
    train_index,
)
from qwen3_rag.store.lock import writer_lock

logger = logging.getLogger("qwen3_rag")

SHARD_MANIFEST = "manifest.json"
SHARD_PREFIX = "part-"
SHARD_FORMAT = 1
COLUMNS = ("id", "text", "metadata", "vector")


def _pa() -> Any:
    try:
        import pyarrow
        import pyarrow.fs
        import pyarrow.parquet
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("vector shards need pyarrow: pip install 'qwen3-rag[parquet]'") from e
    return pyarrow


def filesystem(path: str | os.PathLike[str]) -> tuple[Any, str]:
    """The pyarrow filesystem of a local path or URI, and the path inside it."""
    pa = _pa()
    text = os.fspath(path)
    if "://" in text:
        fs, inner = pa.fs.FileSystem.from_uri(text)
        return fs, inner.rstrip("/")
    return pa.fs.LocalFileSystem(), os.path.abspath(text)


def shard_table(
    ids: Sequence[str], texts: Sequence[str], metadata: Sequence[str], vectors: np.ndarray
) -> Any:
    """A shard as a pyarrow Table: ``vector`` is a ``fixed_size_list<float32>[d]`` column."""
    pa = _pa()
    vecs = np.ascontiguousarray(vectors, dtype=np.float32)
    if vecs.ndim != 2 or len(vecs) != len(ids):
        raise ValueError(f"need one vector per id: {len(ids)} ids, vectors of shape {vecs.shape}")
    dim = vecs.shape[1] if vecs.ndim == 2 else 0
    column = pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1), type=pa.float32()), dim)
    return pa.table({"id": pa.array(ids, pa.string()), "text": pa.array(texts, pa.string()),
                     "metadata": pa.array(metadata, pa.string()), "vector": column})


def vectors_of(table: Any, dim: int, where: str) -> np.ndarray:
    """The ``vector`` column of a shard table as float32 (n, dim)."""
    pa = _pa()
    col = table.column("vector").combine_chunks()
    if not pa.types.is_fixed_size_list(col.type) or col.type.list_size != dim:
        raise StoreError(f"{where}: column 'vector' is {col.type}, expected fixed_size_list<float>[{dim}]")
    if col.null_count:
        raise StoreError(f"{where}: {col.null_count} rows have no vector")
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    out = flat.reshape(-1, dim)
    if not np.isfinite(out).all():
        raise StoreError(f"{where}: vectors contain NaN or infinite values")
    return out


def write_shard_manifest(
    shards_dir: str | os.PathLike[str], run_id: str, model: str | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Record the run's shards (``part-<run_id>-*.parquet``) in ``manifest.json``, atomically.

    Every shard must have the four columns and the same vector size, which with ``model``
    makes the embedder fingerprint. Shards of other runs in the folder are deleted afterwards.
    Raises :class:`~qwen3_rag.indexing.EmptyCorpusError` when the run wrote no rows.
    """
    pa = _pa()
    fs, root = filesystem(shards_dir)
    prefix = f"{SHARD_PREFIX}{run_id}-"
    infos = fs.get_file_info(pa.fs.FileSelector(root, allow_not_found=True))
    names = sorted(posixpath.basename(i.path) for i in infos
                   if i.type == pa.fs.FileType.File and posixpath.basename(i.path).startswith(prefix)
                   and i.path.endswith(".parquet"))
    rows, dims = 0, set()
    for name in names:
        meta = pa.parquet.read_metadata(f"{root}/{name}", filesystem=fs)
        schema = meta.schema.to_arrow_schema()
        missing = [c for c in COLUMNS if c not in schema.names]
        vtype = schema.field("vector").type if "vector" in schema.names else None
        if missing or not pa.types.is_fixed_size_list(vtype):
            raise StoreError(f"shard {root}/{name}: expected columns {COLUMNS} (vector a fixed-size "
                             f"list of float32), got {schema}")
        dims.add(vtype.list_size)
        rows += meta.num_rows
    if rows == 0:
        raise EmptyCorpusError(f"empty corpus: the run wrote no documents to {shards_dir}")
    if len(dims) != 1:
        raise StoreError(f"shards in {shards_dir} disagree on the vector size: {sorted(dims)}")
    fp = fingerprint_of({"model": model, "dimension": dims.pop()})
    assert fp is not None
    manifest = {
        "format": SHARD_FORMAT, "run_id": run_id, "shards": names, "rows": rows, "embedder": fp,
        "dimension": fp["dimension"], "created_at": time.time(), **(extra or {}),
    }
    tmp = f"{root}/.{SHARD_MANIFEST}.{uuid.uuid4().hex}.tmp"
    with fs.open_output_stream(tmp) as f:
        f.write(json.dumps(manifest, indent=2).encode("utf-8"))
    fs.move(tmp, f"{root}/{SHARD_MANIFEST}")
    for info in infos:  # leftovers of earlier or failed runs
        base = posixpath.basename(info.path)
        if info.type == pa.fs.FileType.File and base.startswith(SHARD_PREFIX) and not base.startswith(prefix):
            fs.delete_file(info.path)
    return manifest


def read_shard_manifest(shards_dir: str | os.PathLike[str]) -> tuple[Any, str, dict[str, Any]]:
    """The filesystem, root path and manifest of a shard folder (checked)."""
    fs, root = filesystem(shards_dir)
    path = f"{root}/{SHARD_MANIFEST}"
    try:
        with fs.open_input_stream(path) as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError as e:
        raise FileNotFoundError(f"no {SHARD_MANIFEST} in {shards_dir}: not a finished shard folder "
                                "(the embedding run did not complete)") from e
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"cannot read {path}: {e}") from e
    if manifest.get("format") != SHARD_FORMAT or not isinstance(manifest.get("shards"), list):
        raise StoreError(f"{path}: unknown shard manifest format {manifest.get('format')!r}")
    return fs, root, manifest


@dataclass
class BuildReport:
    """What :func:`build_store` did."""

    store_path: str
    shards: int
    rows: int
    """Rows read from the shards."""
    documents: int
    """Documents in the store (rows less repeated ids)."""
    duplicates_dropped: int
    index_kind: str
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return asdict(self)


@dataclass
class _Shard:
    path: str
    rows: np.ndarray
    """Rows of the shard that are kept (sorted)."""
    keys: np.ndarray
    """Their store keys (int64)."""


def _plan(fs: Any, root: str, names: Sequence[str]) -> list[_Shard]:
    """Keep each id once (its last row in shard order) and give kept rows consecutive keys."""
    pa = _pa()
    id_arrays = []
    for name in names:
        col = pa.parquet.read_table(f"{root}/{name}", columns=["id"], filesystem=fs).column("id")
        if col.null_count:
            raise StoreError(f"shard {root}/{name}: {col.null_count} rows have no id")
        id_arrays.append(col.combine_chunks())
    sizes = np.array([len(a) for a in id_arrays], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    if starts[-1] == 0:
        return [_Shard(f"{root}/{n}", np.empty(0, np.int64), np.empty(0, np.int64)) for n in names]
    table = pa.table({"id": pa.chunked_array(id_arrays, pa.string()),
                      "order": pa.array(np.arange(starts[-1], dtype=np.int64))})
    kept = np.sort(table.group_by("id").aggregate([("order", "max")]).column("order_max").to_numpy())
    plan = []
    for i, name in enumerate(names):
        lo, hi = np.searchsorted(kept, [starts[i], starts[i + 1]])
        plan.append(_Shard(f"{root}/{name}", kept[lo:hi] - starts[i], np.arange(lo, hi, dtype=np.int64)))
    return plan


def _training_sample(fs: Any, plan: list[_Shard], spec: IndexSpec, n: int, dim: int) -> np.ndarray:
    """Evenly spaced kept vectors over all shards (deterministic), as ``training_sample`` picks."""
    pa = _pa()
    want = np.unique(np.linspace(0, n - 1, min(spec.train_size(), n)).astype(np.int64))
    parts = []
    for shard in plan:
        if not len(shard.keys):
            continue
        lo, hi = np.searchsorted(want, [shard.keys[0], shard.keys[-1] + 1])
        if lo == hi:
            continue
        table = pa.parquet.read_table(shard.path, columns=["vector"], filesystem=fs)
        parts.append(vectors_of(table, dim, shard.path)[shard.rows[want[lo:hi] - shard.keys[0]]])
    sample = np.concatenate(parts) if parts else np.empty((0, dim), np.float32)
    if len(sample) < (spec.nlist or 0):
        raise ValueError(f"an IVF index with nlist={spec.nlist} needs at least {spec.nlist} documents, "
                         f"got {n}; use index='flat' or 'auto'")
    return sample


class _Merger:
    """Streams the kept documents of every shard while building and merging the per-shard indexes.

    ``documents()`` yields ``(key, id, text, metadata)`` shard after shard (the input of
    :meth:`FaissStore.from_index`); by the time it is exhausted, ``index`` holds every vector.
    """

    def __init__(self, fs: Any, plan: list[_Shard], template: Any, spec: IndexSpec, dim: int,
                 workers: int, bar: Any):
        self.fs, self.plan, self.spec, self.dim, self.workers, self.bar = fs, plan, spec, dim, workers, bar
        faiss = faiss_module()
        self.mergeable = spec.kind != "hnsw"  # HNSW graphs can't be merged: one index, filled in order
        if spec.is_ivf:  # Faiss merges IVF lists only without a direct map; rebuilt at the end
            template.set_direct_map_type(faiss.DirectMap.NoMap)
        self.template = template
        self.index = faiss.clone_index(template) if self.mergeable else template

    def _load(self, shard: _Shard) -> tuple[Any, Any]:
        pa = _pa()
        table = pa.parquet.read_table(shard.path, filesystem=self.fs).take(pa.array(shard.rows))
        vecs = vectors_of(table, self.dim, shard.path)
        if not self.mergeable:
            return table, vecs
        part = faiss_module().clone_index(self.template)
        if len(vecs):
            part.add_with_ids(vecs, shard.keys)
        return table, part

    def documents(self) -> Iterator[tuple[int, str, str, str]]:
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="qwen3-rag-shard") as pool:
            pending: list[Future[tuple[Any, Any]]] = []
            shards = iter(self.plan)
            for shard in shards:
                pending.append(pool.submit(self._load, shard))
                if len(pending) >= self.workers:
                    break
            i = 0
            while pending:
                table, built = pending.pop(0).result()
                nxt = next(shards, None)
                if nxt is not None:
                    pending.append(pool.submit(self._load, nxt))
                shard = self.plan[i]
                i += 1
                if self.mergeable:
                    self.index.merge_from(built, 0)
                elif len(built):
                    self.index.add_with_ids(built, shard.keys)
                ids = table.column("id").to_pylist()
                texts = table.column("text").to_pylist()
                metas = table.column("metadata").to_pylist()
                for key, doc_id, text, meta in zip(shard.keys.tolist(), ids, texts, metas, strict=True):
                    yield key, doc_id, text, meta if meta is not None else "{}"
                self.bar.update(len(ids))
        if self.spec.is_ivf:
            self.index.set_direct_map_type(faiss_module().DirectMap.Hashtable)


def build_store(
    shards_dir: str | os.PathLike[str],
    store_path: str | os.PathLike[str],
    *,
    index: Any = "auto",
    embedder: Any = None,
    workers: int | None = None,
    overwrite: bool = False,
    show_progress: bool | None = None,
) -> BuildReport:
    """Build a :class:`~qwen3_rag.FaissStore` at ``store_path`` from a finished shard folder.

    Args:
        shards_dir: a folder written by :func:`qwen3_rag.distributed.embed_to_shards` (local
            path or URI).
        store_path: the store directory to write (a normal ``FaissStore`` directory).
        index: ``"auto"`` (chosen by size, as ``FaissStore``), a kind of
            :data:`~qwen3_rag.store.INDEX_KINDS` or an ``IndexSpec``. IVF kinds are
            trained once on a sample spread over all shards.
        embedder: when given, must match the embedder recorded in the shards.
        workers: shards read and indexed at once (default: up to 4).
        overwrite: replace an existing store at ``store_path`` (else ``FileExistsError``).
        show_progress: tqdm bar (default: when stderr is a terminal).

    The store's writer lock is held for the whole build (``StoreLockedError`` at once when
    another process writes the store).
    """
    target = Path(store_path)
    created = not target.exists()
    try:
        with writer_lock(target):
            return _build(shards_dir, target, index, embedder, workers, overwrite, show_progress)
    finally:
        if created and target.is_dir() and not any(target.iterdir()):
            target.rmdir()


def _build(shards_dir: str | os.PathLike[str], target: Path, index: Any, embedder: Any, workers: int | None,
           overwrite: bool, show_progress: bool | None) -> BuildReport:
    from tqdm.auto import tqdm

    started = time.perf_counter()
    fs, root, manifest = read_shard_manifest(shards_dir)
    if (target / CURRENT).exists() and not overwrite:
        raise FileExistsError(f"a store already exists at {target}; pass overwrite=True (--overwrite) "
                              "to replace it")
    fp = manifest.get("embedder") or {}
    dim = int(manifest.get("dimension") or fp.get("dimension") or 0)
    if dim < 1:
        raise StoreError(f"{root}/{SHARD_MANIFEST}: no vector dimension recorded")
    check_fingerprint(fp, dim, embedder, f"shards {shards_dir}")
    names = list(manifest["shards"])
    plan = _plan(fs, root, names)
    n = sum(len(s.keys) for s in plan)
    rows = int(manifest.get("rows", n))
    if n == 0:
        raise EmptyCorpusError(f"empty corpus: the shards in {shards_dir} hold no documents")
    spec = spec_for_size(index, n, dim)
    template = build_index(spec, dim)
    if spec.is_ivf:
        train_index(template, _training_sample(fs, plan, spec, n, dim))
    visible = show_progress if show_progress is not None else sys.stderr.isatty()
    bar = tqdm(total=n, unit="doc", desc="building", disable=not visible, dynamic_ncols=True)
    try:
        merger = _Merger(fs, plan, template, spec, dim, max(1, workers or min(4, os.cpu_count() or 1)), bar)
        store = FaissStore.from_index(merger.index, merger.documents(), spec=spec, embedder=fp or None,
                                      auto=index == "auto")
    finally:
        bar.close()
    store.extra["distributed_run"] = manifest.get("run_id")
    store.extra["source"] = manifest.get("source")
    store.save(target)
    logger.info("qwen3_rag: built %s (%s, %d documents) from %d shards", target, spec.kind, n, len(names))
    return BuildReport(store_path=str(target), shards=len(names), rows=rows, documents=n,
                       duplicates_dropped=rows - n, index_kind=store.index_kind,
                       elapsed_s=time.perf_counter() - started)


__all__ = ["BuildReport", "build_store", "read_shard_manifest", "shard_table", "write_shard_manifest"]
