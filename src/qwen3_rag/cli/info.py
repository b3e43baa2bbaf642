"""``qwen3-rag info --store DIR``: what a store holds and how it was built."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from qwen3_rag.cli.common import add_json_option, key_values, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``info`` subcommand's options."""
    parser.add_argument("--store", required=True, help="store directory")
    add_json_option(parser)


def _progress(run: dict) -> str:
    done, expected = run.get("consumed") or 0, run.get("expected")
    return f"{done:,} of {expected:,} source records" if expected else f"{done:,} source records"


def run(args: argparse.Namespace) -> int:
    """Print what a store holds (or what its interrupted first run has done)."""
    from qwen3_rag.indexing import STAGING, interrupted_run, recorded_reranker
    from qwen3_rag.store import StoreError, read_manifest
    from qwen3_rag.store.layout import verify_files

    try:
        vdir, manifest = read_manifest(args.store)
    except (FileNotFoundError, StoreError):  # not a store, or no version saved yet
        first = interrupted_run(args.store)
        if first is None:
            raise
        return _first_run(args, first)  # a first run that has saved nothing yet
    verify_files(vdir, manifest, "size")  # a missing or truncated file is named (checksums: `load`)
    size = sum(p.stat().st_size for p in vdir.iterdir() if p.is_file())
    staging = Path(args.store) / STAGING
    info = {
        "store": str(args.store),
        "version": vdir.name,
        **manifest,
        "disk_bytes": size,
        "interrupted_indexing_run": staging.exists(),
    }
    if args.json:
        print_json(info)
        return 0
    emb = manifest.get("embedder") or {}
    index = manifest.get("index") or {}
    params = ", ".join(f"{k}={v}" for k, v in index.items() if k != "kind")
    saved = dt.datetime.fromtimestamp(manifest.get("saved_at", 0)).isoformat(timespec="seconds")
    print(key_values([
        ("store", info["store"]),
        ("documents", manifest.get("count")),
        ("dimension", manifest["dimension"]),
        ("embedding model", emb.get("model") or "(not recorded)"),
        ("reranker", recorded_reranker(manifest.get("extra") or {}) or "(not recorded: the configured one)"),
        ("index", f"{index.get('kind')}{' (auto)' if manifest.get('auto') else ''}"
                  + (f": {params}" if params else "")),
        ("lexical index", (manifest.get("lexical") or {}).get("tokenizer")
         or "not built yet (built at the first lexical search, or by `index --rebuild-lexical`)"),
        ("format version", manifest["format_version"]),
        ("saved", f"{saved} ({vdir.name})"),
        ("size on disk", f"{size / 2**20:.1f} MiB"),
        ("interrupted run", "yes: re-run `qwen3-rag index` to resume" if staging.exists() else "no"),
    ]))
    return 0


def _first_run(args: argparse.Namespace, first: dict) -> int:
    """``info`` of a store whose first indexing run was interrupted before its first save."""
    settings = first.get("settings") or {}
    emb = settings.get("embedder") or {}
    if args.json:
        print_json({"store": str(args.store), "version": None, "count": 0,
                    "interrupted_indexing_run": True, "interrupted_run": first})
        return 0
    print(key_values([
        ("store", str(args.store)),
        ("documents", "0 (no version saved yet)"),
        ("embedding model", emb.get("model") or "(not recorded)"),
        ("interrupted run", f"yes: {_progress(first)} of {settings.get('source')!r} embedded; re-run "
                            "`qwen3-rag index` with it to resume"),
    ]))
    return 0
