"""Scale out: embed a corpus on a Ray cluster into vector shards, then build one store from them.

``pip install "qwen3-rag[ray]"``. The same code runs on a laptop (a local Ray started on first
use) and on a cluster (``ray.init(address=...)``, or ``address=`` here)::

    from qwen3_rag.distributed import index_corpus_ray

    report = index_corpus_ray("corpus/", "my_store", shards_dir="s3://bucket/shards",
                              model="Qwen/Qwen3-Embedding-0.6B", address="auto")
    # my_store is a normal FaissStore directory: FaissStore.load, the CLI, the service and the
    # LangChain / LlamaIndex adapters open it.

:func:`embed_to_shards` (Ray: one engine actor per GPU) and :func:`build_store` (no Ray: one
Faiss index per shard, merged into one store) can also run separately, e.g. to rebuild the
store with another index kind from the same shards. See ``docs/distributed.md``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any

from qwen3_rag.distributed.shards import BuildReport, build_store, read_shard_manifest

_PIPELINE = ("EmbedBatch", "EmbedOptions", "EmbedReport", "connect", "embed_to_shards")


def __getattr__(name: str) -> Any:  # Ray is imported only when the pipeline is used
    if name in _PIPELINE:
        from qwen3_rag.distributed import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class DistributedIndexReport:
    """What :func:`index_corpus_ray` did: the embedding run and the store build."""

    embed: Any
    build: BuildReport

    def to_dict(self) -> dict[str, Any]:
        """Both reports as one JSON-ready dict."""
        return {"embed": self.embed.to_dict(), "build": self.build.to_dict()}


def index_corpus_ray(
    source: Any,
    store_path: str | os.PathLike[str],
    *,
    shards_dir: str | os.PathLike[str] | None = None,
    keep_shards: bool | None = None,
    index: Any = "auto",
    overwrite: bool = False,
    build_workers: int | None = None,
    **embed_options: Any,
) -> DistributedIndexReport:
    """:func:`embed_to_shards` then :func:`build_store`: a corpus into a ``FaissStore`` via Ray.

    Args:
        source: input files (see :func:`embed_to_shards`).
        store_path: the store to write (a normal ``FaissStore`` directory).
        shards_dir: where the vector shards go (default ``STORE.shards`` beside the store;
            on a cluster, shared storage every node can write).
        keep_shards: keep the shards after the build (default: when ``shards_dir`` was given).
        index: the store's Faiss index (``"auto"``, a kind, or an ``IndexSpec``).
        overwrite: replace existing shards and store.
        **embed_options: passed to :func:`embed_to_shards` (model, backend, num_actors, ...).
    """
    from qwen3_rag.distributed.pipeline import embed_to_shards
    from qwen3_rag.distributed.shards import filesystem
    from qwen3_rag.store import CURRENT

    if os.path.exists(os.path.join(store_path, CURRENT)) and not overwrite:
        raise FileExistsError(f"a store already exists at {store_path}; pass overwrite=True to replace it")
    keep = shards_dir is not None if keep_shards is None else keep_shards
    shards = shards_dir if shards_dir is not None else os.fspath(store_path).rstrip("/\\") + ".shards"

    def remove_shards() -> None:
        fs, root = filesystem(shards)
        if "://" in os.fspath(shards):
            fs.delete_dir(root)
        else:
            shutil.rmtree(root, ignore_errors=True)

    try:
        embedded = embed_to_shards(source, shards, overwrite=overwrite or shards_dir is None, **embed_options)
        built = build_store(shards, store_path, index=index, overwrite=overwrite, workers=build_workers,
                            show_progress=embed_options.get("show_progress", False))
    except BaseException:
        if shards_dir is None:  # our own scratch folder: nothing to resume from it
            remove_shards()
        raise
    if not keep:
        remove_shards()
    return DistributedIndexReport(embedded, built)


__all__ = [
    "BuildReport",
    "DistributedIndexReport",
    "EmbedBatch",
    "EmbedOptions",
    "EmbedReport",
    "build_store",
    "connect",
    "embed_to_shards",
    "index_corpus_ray",
    "read_shard_manifest",
]
