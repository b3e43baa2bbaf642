"""``qwen3-rag distributed-index SOURCE... --store DIR``: embed on Ray, build one store from the shards."""

from __future__ import annotations

import argparse
import os
from typing import Any

from qwen3_rag.cli.common import (
    REMOTE_API_KEY_ENV,
    add_json_option,
    add_model_options,
    key_values,
    print_json,
)
from qwen3_rag.store import INDEX_KINDS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``distributed-index`` subcommand's options."""
    parser.add_argument("source", nargs="*",
                        help=".jsonl/.parquet files, folders of them, or URIs every Ray node can read")
    parser.add_argument("--store", required=True, help="store directory to write")
    parser.add_argument("--shards", help="where the vector shards go (on a cluster: shared storage or "
                        "s3://...; default STORE.shards, removed after the build)")
    parser.add_argument("--keep-shards", action="store_true", help="keep the shards after the build")
    parser.add_argument("--from-shards", metavar="DIR",
                        help="skip embedding: build the store from a finished shard folder")
    parser.add_argument("--index", default="auto", choices=("auto", *INDEX_KINDS),
                        help="the store's Faiss index")
    parser.add_argument("--overwrite", action="store_true", help="replace existing shards and store")
    g = parser.add_argument_group("Ray")
    g.add_argument("--address", help="Ray cluster to join (auto, ray://head:10001; default $RAY_ADDRESS, "
                   "else a local Ray)")
    g.add_argument("--num-actors", type=int, help="engine actors (default: one per GPU, else 1)")
    g.add_argument("--num-gpus", type=float, help="GPUs per actor (default 1 when the cluster has GPUs)")
    g.add_argument("--batch-size", type=int, default=256, help="rows per actor call (default 256)")
    g.add_argument("--max-retries", type=int, default=3,
                   help="restarts of a dead actor / retries of its batch")
    g.add_argument("--ray-num-cpus", type=int, help="a local Ray's CPU count (default: all)")
    g.add_argument("--ray-object-store-mb", type=int, help="a local Ray's object store size in MiB")
    g = parser.add_argument_group("input")
    g.add_argument("--input-format", default="auto", choices=("auto", "jsonl", "parquet"))
    g.add_argument("--text-field", default="text", help="record field holding the text")
    g.add_argument("--id-field", default="id", help="record field holding the id (required in every record)")
    g.add_argument("--chunk-tokens", type=int, help="split documents into chunks of this many tokens")
    g.add_argument("--chunk-overlap", type=int, default=32,
                   help="tokens shared by consecutive chunks (default 32; less than --chunk-tokens)")
    add_json_option(parser)
    add_model_options(parser)


def _engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """Engine options as given (the actors resolve the backend on their own machines)."""
    opts: dict[str, Any] = {}
    if args.dtype:
        opts["dtype"] = args.dtype
    if args.device:
        opts["device"] = args.device
    if args.gpu_memory_utilization is not None:
        opts["gpu_memory_utilization"] = args.gpu_memory_utilization
    if args.base_url:
        opts["base_url"] = args.base_url
        if os.environ.get(REMOTE_API_KEY_ENV):
            opts["api_key"] = os.environ[REMOTE_API_KEY_ENV]
    return opts


def run(args: argparse.Namespace) -> int:
    """Embed on Ray and build the store (or build it from finished shards); print the report."""
    from qwen3_rag.cli import CLIError
    from qwen3_rag.distributed import build_store

    if bool(args.source) == bool(args.from_shards):
        raise CLIError("give either SOURCE files to embed or --from-shards DIR")
    if args.backend == "remote" and not args.base_url:
        raise CLIError("--backend remote needs --base-url URL")
    if args.from_shards:
        build = build_store(args.from_shards, args.store, index=args.index, overwrite=args.overwrite,
                            show_progress=False if args.json else None)
        report: dict[str, Any] = {"build": build.to_dict()}
    else:
        try:
            from qwen3_rag.distributed import connect, index_corpus_ray, pipeline
        except ImportError as e:  # Ray is an extra; --from-shards works without it
            raise CLIError(str(e)) from e

        pipeline.input_files(args.source, args.input_format)  # a missing file fails before Ray starts
        init: dict[str, Any] = {"include_dashboard": False}
        if args.ray_num_cpus:
            init["num_cpus"] = args.ray_num_cpus
        if args.ray_object_store_mb:
            init["object_store_memory"] = args.ray_object_store_mb * 2**20
        if not (args.address or os.environ.get("RAY_ADDRESS")):
            connect(None, **init)
        report = index_corpus_ray(
            args.source, args.store, shards_dir=args.shards, keep_shards=args.keep_shards or None,
            index=args.index, overwrite=args.overwrite, model=args.model, backend=args.backend,
            dimensions=args.dimensions, max_length=args.max_length, batch_size=args.batch_size,
            num_actors=args.num_actors, num_gpus=args.num_gpus, text_field=args.text_field,
            id_field=args.id_field, chunk_tokens=args.chunk_tokens, chunk_overlap=args.chunk_overlap,
            input_format=args.input_format, engine_options=_engine_options(args),
            max_retries=args.max_retries, address=args.address,
        ).to_dict()
    if args.json:
        print_json(report)
        return 0
    rows: list[tuple[str, Any]] = []
    if "embed" in report:
        e = report["embed"]
        rows += [("embedded", f"{e['rows']} vectors ({e['dimension']}-dim, {e['model']})"),
                 ("actors", f"{e['actors']} × {e['gpus_per_actor']:g} GPU"),
                 ("shards", f"{e['shards']} in {e['shards_dir']}"),
                 ("embedding time", f"{e['elapsed_s']:.1f} s")]
    b = report["build"]
    rows += [("store", b["store_path"]), ("documents", b["documents"]),
             ("duplicates dropped", b["duplicates_dropped"]), ("index", b["index_kind"]),
             ("build time", f"{b['elapsed_s']:.1f} s")]
    print(key_values(rows))
    return 0
