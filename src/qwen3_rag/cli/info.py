"""``qwen3-rag info --store DIR``: what a store holds and how it was built."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from qwen3_rag.cli.common import add_json_option, key_values, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="store directory")
    add_json_option(parser)


def run(args: argparse.Namespace) -> int:
    from qwen3_rag.indexing import STAGING
    from qwen3_rag.store import read_manifest

    vdir, manifest = read_manifest(args.store)
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
        ("index", f"{index.get('kind')}{' (auto)' if manifest.get('auto') else ''}"
                  + (f": {params}" if params else "")),
        ("format version", manifest["format_version"]),
        ("saved", f"{saved} ({vdir.name})"),
        ("size on disk", f"{size / 2**20:.1f} MiB"),
        ("interrupted run", "yes: re-run `qwen3-rag index` to resume" if staging.exists() else "no"),
    ]))
    return 0
