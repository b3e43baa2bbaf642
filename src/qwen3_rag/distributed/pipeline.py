"""The Ray Data pipeline: read JSONL/Parquet, embed with one engine actor per GPU, write shards.

::

    read_text / read_parquet ──► parse_records (tasks, CPU) ──► EmbedBatch actors (one per GPU)
        ──► write_parquet (part-<run>-<task>-<write>.parquet) ──► manifest.json

Each :class:`EmbedBatch` actor builds one core :class:`~qwen3_rag.Qwen3Embedder` (vLLM on a
GPU, transformers on CPU, or ``backend="remote"``), so vectors are exactly those of
``index_corpus``: same formats, same chunking, same metadata. Records are validated as
``index_corpus`` does (``text_field``/``id_field``, other keys → metadata), except that every
record needs an id (there is no global position to number it by).

Failures: an actor whose process dies (a crashed GPU worker, an OOM kill, a lost node) is
restarted (``max_restarts``) and its batch retried (``max_task_retries``); a write task that
fails is retried by Ray and rewrites the same file name (names depend only on the run and
the write task), so no document is written twice. Shards of failed or earlier runs are
never read: ``manifest.json`` lists this run's files once the whole run succeeded.
Bad input (malformed JSON, a record without text or id) fails the run with
:class:`~qwen3_rag.indexing.BadInputError` naming the file — it is not retried.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

try:
    import ray
    import ray.data
    from ray.data.datasource import FilenameProvider
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("qwen3_rag.distributed needs Ray Data: pip install 'qwen3-rag[ray]'") from e

from qwen3_rag.distributed.shards import (
    SHARD_MANIFEST,
    SHARD_PREFIX,
    filesystem,
    shard_table,
    write_shard_manifest,
)
from qwen3_rag.indexing import BadInputError, check_chunking, chunk_document, document_of

logger = logging.getLogger("qwen3_rag")

JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
INPUT_FORMATS = ("auto", "jsonl", "parquet")


def connect(address: str | None = None, **init_kwargs: Any) -> Any:
    """``ray.init(address, **init_kwargs)`` unless this process is already connected; returns ``ray``.

    ``address=None`` joins the cluster of ``$RAY_ADDRESS`` or starts a local Ray; ``"auto"``
    joins the cluster this machine belongs to; ``"ray://head:10001"`` connects a Ray client.
    """
    if not ray.is_initialized():
        ray.init(address=address, **init_kwargs)
    return ray


def _format_of(path: str) -> str | None:
    low = path.lower()
    if low.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if low.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def input_files(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                input_format: str = "auto") -> tuple[str, list[str]]:
    """The input format and the paths to read: files, local folders (searched recursively) or URIs.

    Raises ``FileNotFoundError`` for a missing local path or a folder with no input files.
    """
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
    items = [source] if isinstance(source, str | os.PathLike) else list(source)
    if not items:
        raise ValueError("no input: give a .jsonl or .parquet file, a folder of them, or a list")
    paths: list[str] = []
    for item in items:
        text = os.fspath(item)
        if "://" in text:  # s3://, gs://, ...: Ray lists it
            paths.append(text)
            continue
        p = Path(text)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and _format_of(f.name)
                           and (input_format == "auto" or _format_of(f.name) == input_format))
            if not found:
                raise FileNotFoundError(f"no .jsonl or .parquet files in {p}")
            paths += found
        elif p.is_file():
            paths.append(str(p))
        else:
            raise FileNotFoundError(f"source not found: {p}")
    formats = {_format_of(p) for p in paths}
    if input_format != "auto":
        return input_format, paths
    if None in formats:
        odd = next(p for p in paths if _format_of(p) is None)
        raise ValueError(f"unknown input type for {odd}: use .jsonl, .ndjson, .parquet (or input_format=)")
    if len(formats) > 1:
        raise ValueError("mixed inputs: give either JSONL or Parquet files in one run")
    return formats.pop() or "jsonl", paths


def parse_records(batch: Any, *, input_format: str, text_field: str, id_field: str) -> Any:
    """Input rows → a table of ``id``, ``text``, ``metadata`` (JSON), validated as ``index_corpus`` does."""
    import pyarrow as pa

    records: list[tuple[str, Any]] = []
    if input_format == "jsonl":
        lines, paths = batch.column("text").to_pylist(), batch.column("path").to_pylist()
        for line, path in zip(lines, paths, strict=True):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadInputError(f"{path}: malformed JSON ({e.msg} at column {e.colno}) in line "
                                    f"{line[:80]!r}") from None
            records.append((path, rec))
    else:
        records = [("a Parquet row", rec) for rec in batch.to_pylist()]
    ids, texts, metas = [], [], []
    for where, rec in records:
        if not isinstance(rec, dict):
            raise BadInputError(f"{where}: expected a JSON object, got {type(rec).__name__}: {rec!r:.80}")
        doc = document_of(rec, text_field, id_field, None)
        if isinstance(doc, str):
            raise BadInputError(f"{where}: {doc} in record {json.dumps(rec, default=str)[:80]}")
        ids.append(doc[0])
        texts.append(doc[1])
        metas.append(json.dumps(doc[2], ensure_ascii=False))
    return pa.table({"id": pa.array(ids, pa.string()), "text": pa.array(texts, pa.string()),
                     "metadata": pa.array(metas, pa.string())})


class EmbedBatch:
    """The engine actor: one core ``Qwen3Embedder`` per actor, built once, embedding batch after batch.

    Used as ``ds.map_batches(EmbedBatch, fn_constructor_kwargs={...}, compute=ActorPoolStrategy(
    size=N), num_gpus=1, batch_format="pyarrow")``. Takes ``id``/``text``/``metadata`` rows
    and returns them (split into chunks with ``chunk_tokens``) with a ``vector`` column.
    Subclass it to change what happens around the embedding (pass ``actor_class=``).
    """

    def __init__(self, model: str, *, backend: str | None = None, dimensions: int | None = None,
                 max_length: int | None = None, batch_size: int | None = None,
                 chunk_tokens: int | None = None, chunk_overlap: int = 32,
                 engine_options: Mapping[str, Any] | None = None):
        from qwen3_rag.embedder import Qwen3Embedder

        self.embedder = Qwen3Embedder(model, backend=backend, dimensions=dimensions, max_length=max_length,
                                      batch_size=batch_size, **dict(engine_options or {}))
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap

    def __call__(self, batch: Any) -> Any:
        ids = batch.column("id").to_pylist()
        texts = batch.column("text").to_pylist()
        metas = batch.column("metadata").to_pylist()
        if self.chunk_tokens is not None:
            tok = self.embedder.tokenizer
            rows = [
                (cid, ctext, json.dumps(cmeta, ensure_ascii=False))
                for doc_id, text, meta in zip(ids, texts, metas, strict=True)
                for cid, ctext, cmeta in chunk_document(doc_id, text, json.loads(meta), tok,
                                                        self.chunk_tokens, self.chunk_overlap)
            ]
            ids, texts, metas = [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
        return shard_table(ids, texts, metas, self.embedder.embed_documents(texts))


class RunFilenames(FilenameProvider):
    """``part-<run_id>-<task>-<write_uuid>.parquet``: a retried write task rewrites its own file."""

    def __init__(self, run_id: str):
        super().__init__(file_format="parquet")
        self.run_id = run_id

    def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
        """The shard file name of one write task (the same when Ray retries it)."""
        return f"{SHARD_PREFIX}{self.run_id}-{task_index:06d}-{write_uuid}.parquet"


@dataclass
class EmbedReport:
    """What :func:`embed_to_shards` did."""

    shards_dir: str
    run_id: str
    shards: int
    rows: int
    """Vectors written (documents, or chunks with ``chunk_tokens``)."""
    dimension: int
    model: str
    actors: int
    gpus_per_actor: float
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return asdict(self)


def _unwrap(error: BaseException) -> BaseException | None:
    """The BadInputError inside a Ray task failure, if that is what it was."""
    seen = error
    for _ in range(10):
        if isinstance(seen, BadInputError) and not isinstance(seen, ray.exceptions.RayError):
            return seen
        cause = getattr(seen, "cause", None) or seen.__cause__
        if cause is None:
            break
        seen = cause
    text = str(error)
    marker = "BadInputError: "
    if marker in text:
        return BadInputError(text.split(marker, 1)[1].strip().splitlines()[0])
    return None


@dataclass(frozen=True)
class EmbedOptions:
    """The options of :func:`embed_to_shards` (see there), checked."""

    model: str | None = None
    backend: str | None = None
    dimensions: int | None = None
    max_length: int | None = None
    batch_size: int = 256
    num_actors: int | None = None
    num_gpus: float | None = None
    text_field: str = "text"
    id_field: str = "id"
    chunk_tokens: int | None = None
    chunk_overlap: int = 32
    input_format: str = "auto"
    engine_options: Mapping[str, Any] = field(default_factory=dict)
    max_retries: int = 3
    actor_class: type = EmbedBatch
    actor_kwargs: Mapping[str, Any] = field(default_factory=dict)
    overwrite: bool = False
    address: str | None = None
    show_progress: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_retries < 0:
            raise ValueError(f"batch_size must be positive and max_retries >= 0, got {self.batch_size}, "
                             f"{self.max_retries}")
        check_chunking(self.chunk_tokens, self.chunk_overlap)

    def settings(self) -> dict[str, Any]:
        """How the records were read and chunked (recorded in the shard manifest)."""
        return {
            "text_field": self.text_field, "id_field": self.id_field, "chunk_tokens": self.chunk_tokens,
            "chunk_overlap": self.chunk_overlap if self.chunk_tokens else None, "batch_size": self.batch_size,
        }


def embed_to_shards(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    shards_dir: str | os.PathLike[str],
    *,
    model: str | None = None,
    backend: str | None = None,
    dimensions: int | None = None,
    max_length: int | None = None,
    batch_size: int = 256,
    num_actors: int | None = None,
    num_gpus: float | None = None,
    text_field: str = "text",
    id_field: str = "id",
    chunk_tokens: int | None = None,
    chunk_overlap: int = 32,
    input_format: str = "auto",
    engine_options: Mapping[str, Any] | None = None,
    max_retries: int = 3,
    actor_class: type = EmbedBatch,
    actor_kwargs: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    address: str | None = None,
    show_progress: bool = False,
) -> EmbedReport:
    """Embed a corpus with a Ray Data pipeline into Parquet vector shards at ``shards_dir``.

    Args:
        source: a ``.jsonl``/``.parquet`` file, a folder of them, a list, or URIs
            (``s3://bucket/corpus/``) that every Ray node can read.
        shards_dir: output folder (on a cluster: shared storage or a URI such as ``s3://...``).
        model, backend, dimensions, max_length, engine_options: the ``Qwen3Embedder`` each
            actor builds (``None``: the configured defaults, see :mod:`qwen3_rag.config`).
        batch_size: rows per actor call (each call's texts go to the engine in its own batches).
        num_actors: engine actors (default: the cluster's GPU count, else 1).
        num_gpus: GPUs per actor (default: 1 when the cluster has GPUs and the backend isn't
            ``remote``, else 0).
        text_field, id_field: record keys of the text and the id (required); other keys
            become metadata.
        chunk_tokens, chunk_overlap: split long documents as ``index_corpus`` does.
        input_format: ``"auto"`` (from file names), ``"jsonl"`` or ``"parquet"``.
        max_retries: restarts of a dead actor and retries of its batch (Ray retries failed
            read and write tasks on its own).
        actor_class, actor_kwargs: the actor (an :class:`EmbedBatch` subclass) and extra
            constructor arguments.
        overwrite: replace a finished shard folder (else ``FileExistsError``).
        address: Ray cluster to join when this process isn't connected yet (see :func:`connect`).
        show_progress: Ray Data progress bars.

    Raises:
        BadInputError: a malformed record (message names the file).
        EmptyCorpusError: no documents at all.
    """
    options = EmbedOptions(
        model=model, backend=backend, dimensions=dimensions, max_length=max_length, batch_size=batch_size,
        num_actors=num_actors, num_gpus=num_gpus, text_field=text_field, id_field=id_field,
        chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap, input_format=input_format,
        engine_options=dict(engine_options or {}), max_retries=max_retries, actor_class=actor_class,
        actor_kwargs=dict(actor_kwargs or {}), overwrite=overwrite, address=address,
        show_progress=show_progress,
    )
    return run_embedding(source, shards_dir, options)


def run_embedding(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                  shards_dir: str | os.PathLike[str], options: EmbedOptions) -> EmbedReport:
    """:func:`embed_to_shards` with its options gathered in an :class:`EmbedOptions`."""
    from qwen3_rag.config import get_settings

    fmt, paths = input_files(source, options.input_format)
    fs, root = filesystem(shards_dir)
    if fs.get_file_info(f"{root}/{SHARD_MANIFEST}").is_file and not options.overwrite:
        raise FileExistsError(f"{shards_dir} already holds finished shards; pass overwrite=True "
                              "(--overwrite) to replace them")
    started = time.perf_counter()
    settings = get_settings()
    model = options.model or settings.embedding_model
    backend = options.backend or settings.backend
    connect(options.address)
    ray.data.DataContext.get_current().enable_progress_bars = options.show_progress
    num_gpus, num_actors = _actor_resources(options, backend)
    run_id = uuid.uuid4().hex[:12]
    ds = _embedded(_records(paths, fmt, options), options, model, backend, num_gpus, num_actors)
    logger.info("qwen3_rag: embedding %d input file(s) with %d actor(s), %s GPU each, into %s",
                len(paths), num_actors, num_gpus, shards_dir)
    _write(ds, shards_dir, root, run_id)
    manifest = write_shard_manifest(shards_dir, run_id, model, extra={
        "source": [os.fspath(p) for p in paths], "settings": options.settings(),
    })
    return EmbedReport(shards_dir=os.fspath(shards_dir), run_id=run_id, shards=len(manifest["shards"]),
                       rows=manifest["rows"], dimension=manifest["dimension"], model=model, actors=num_actors,
                       gpus_per_actor=float(num_gpus), elapsed_s=time.perf_counter() - started)


def _actor_resources(options: EmbedOptions, backend: str) -> tuple[float, int]:
    """GPUs per actor and actors: as given, else one actor per GPU of the cluster (1 without)."""
    cluster_gpus = int(ray.cluster_resources().get("GPU", 0))
    num_gpus = options.num_gpus
    if num_gpus is None:
        num_gpus = 1.0 if cluster_gpus and backend != "remote" else 0.0
    num_actors = options.num_actors
    if num_actors is None:
        num_actors = max(1, int(cluster_gpus // num_gpus) if num_gpus else 1)
    if num_actors < 1:
        raise ValueError(f"num_actors must be positive, got {num_actors}")
    return num_gpus, num_actors


def _records(paths: list[str], fmt: str, options: EmbedOptions) -> Any:
    """The input files as a Ray Dataset of validated ``id``, ``text``, ``metadata`` rows."""
    if fmt == "jsonl":
        ds = ray.data.read_text(paths, include_paths=True)
    else:
        ds = ray.data.read_parquet(paths)
    return ds.map_batches(parse_records, batch_format="pyarrow", fn_kwargs={
        "input_format": fmt, "text_field": options.text_field, "id_field": options.id_field})


def _embedded(ds: Any, options: EmbedOptions, model: str, backend: str, num_gpus: float,
              num_actors: int) -> Any:
    """``ds`` through a pool of ``num_actors`` engine actors (chunked, with a ``vector`` column)."""
    constructor = {
        "backend": backend, "dimensions": options.dimensions, "max_length": options.max_length,
        "chunk_tokens": options.chunk_tokens, "chunk_overlap": options.chunk_overlap,
        "engine_options": dict(options.engine_options), **dict(options.actor_kwargs),
    }
    with warnings.catch_warnings():
        # Ray 2.60 deprecates extra remote args, but they are still how an actor pool's
        # restarts and retries are bounded (its default is to retry forever).
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        return ds.map_batches(
            options.actor_class, fn_constructor_args=(model,), fn_constructor_kwargs=constructor,
            compute=ray.data.ActorPoolStrategy(size=num_actors), batch_size=options.batch_size,
            batch_format="pyarrow", num_gpus=num_gpus, num_cpus=1 if not num_gpus else None,
            max_restarts=options.max_retries, max_task_retries=options.max_retries,
        )


def _write(ds: Any, shards_dir: str | os.PathLike[str], root: str, run_id: str) -> None:
    """Run the pipeline, writing its shards; a bad record fails it with its BadInputError."""
    try:
        ds.write_parquet(os.fspath(shards_dir) if "://" in os.fspath(shards_dir) else root,
                         filename_provider=RunFilenames(run_id))
    except Exception as e:
        bad = _unwrap(e)
        if bad is not None:
            raise bad from None
        raise


__all__ = [
    "EmbedBatch",
    "EmbedOptions",
    "EmbedReport",
    "RunFilenames",
    "connect",
    "embed_to_shards",
    "input_files",
    "parse_records",
    "run_embedding",
]
