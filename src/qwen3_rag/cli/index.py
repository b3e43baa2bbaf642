"""``qwen3-rag index SOURCE --store DIR``: embed a corpus into a store, resumably; with
``--rebuild-lexical`` (no SOURCE), (re)build and save the store's lexical index."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from qwen3_rag.cli import CLIError
from qwen3_rag.cli.common import (
    add_json_option,
    add_model_options,
    key_values,
    make_embedder,
    print_json,
    progress_wanted,
)
from qwen3_rag.store import INDEX_KINDS
from qwen3_rag.store.lexical import TOKENIZERS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``index`` subcommand's options."""
    parser.add_argument("source", nargs="?",
                        help="a .jsonl, .csv or .parquet file, or a folder of .txt/.md files")
    parser.add_argument("--store", required=True, help="store directory (created, or added to)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="documents embedded per batch (default: what the backend prefers)")
    parser.add_argument("--commit-every", type=int, default=1024,
                        help="documents per durable commit (a killed run resumes from the last one)")
    parser.add_argument("--no-resume", action="store_true", help="discard an interrupted run and start over")
    parser.add_argument("--chunk-tokens", type=int, help="split documents into chunks of this many tokens")
    parser.add_argument("--chunk-overlap", type=int, default=None,
                        help="tokens shared by consecutive chunks (default 32; less than --chunk-tokens)")
    parser.add_argument("--text-field", default="text", help="record field (or column) holding the text")
    parser.add_argument("--id-field", default="id", help="record field (or column) holding the id")
    parser.add_argument("--skip-bad-lines", action="store_true", help="skip and count malformed lines")
    parser.add_argument("--index", default="auto", choices=("auto", *INDEX_KINDS),
                        help="Faiss index for a new store (auto: exact when small, IVF when large)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--reranker-model", default=None,
                        help="record this reranker in the store: search --rerank and serve use it by "
                        "default (not loaded here)")
    parser.add_argument("--delete-missing", action="store_true",
                        help="delete the store's documents whose id is no longer in the source")
    parser.add_argument("--no-model-check", action="store_true",
                        help="add to a store built with another model of the same dimension (warns)")
    parser.add_argument("--rebuild-lexical", action="store_true",
                        help="no SOURCE: (re)build the store's lexical (BM25) index and save it")
    parser.add_argument("--lexical-tokenizer", choices=TOKENIZERS,
                        help="with --rebuild-lexical: unicode61 (words, diacritics removed) or trigram "
                             "(substrings; for text without spaces); default: the store's, else unicode61")
    add_json_option(parser)
    add_model_options(parser)


def check_first_record(source: Any, text_field: str, id_field: str) -> None:
    """``BadInputError`` naming the file, line and problem if the source's first record is one the
    job would refuse (checked before the embedder loads)."""
    from qwen3_rag.indexing import BadInputError, document_of

    with contextlib.closing(source.items(0)) as items:
        item = next(items, None)
    if item is None:
        return  # an empty source: the job says so
    problem = item.reason if item.record is None else document_of(item.record, text_field, id_field, 0)
    if isinstance(problem, str):
        raise BadInputError(f"{item.where}: {problem} (--skip-bad-lines skips and counts such records)")


def run(args: argparse.Namespace) -> int:
    """Index a corpus (:func:`qwen3_rag.index_corpus`), resuming an interrupted run; print the report."""
    import threading
    import time

    from qwen3_rag.indexing import index_corpus, interrupted_run, open_source
    from qwen3_rag.store import read_manifest

    if args.rebuild_lexical or args.source is None:
        return rebuild_lexical(args)
    if args.lexical_tokenizer is not None:
        raise CLIError("--lexical-tokenizer needs --rebuild-lexical (a store is indexed with unicode61, then "
                       "rebuilt with another tokenizer)")
    if args.chunk_overlap is not None and args.chunk_tokens is None:
        raise CLIError("--chunk-overlap needs --chunk-tokens (documents are embedded whole without it)")
    overlap = 32 if args.chunk_overlap is None else args.chunk_overlap
    source = open_source(args.source)  # a missing or unknown file fails before any model loads
    if not args.skip_bad_lines:
        check_first_record(source, args.text_field, args.id_field)  # so does a bad first record
    try:
        recorded = read_manifest(args.store)[1].get("embedder")
    except (FileNotFoundError, ValueError):  # no saved version yet: maybe a first run, interrupted
        recorded = ((interrupted_run(args.store) or {}).get("settings") or {}).get("embedder")
    t0 = time.perf_counter()
    embedder = make_embedder(args, model=(recorded or {}).get("model"),
                             dimension=(recorded or {}).get("dimension"))
    load_s = time.perf_counter() - t0
    # Once everything is embedded, an engine pool's worker processes stop while the store is
    # built and saved (other engines close at exit, in the main thread, as always).
    closing = threading.Thread(target=embedder.engine.close, name="qwen3-rag-close-engines")
    pooled = hasattr(embedder.engine, "pool")
    try:
        report = index_corpus(
            source, args.store, embedder, batch_size=args.batch_size, commit_every=args.commit_every,
            resume=not args.no_resume, chunk_tokens=args.chunk_tokens, chunk_overlap=overlap,
            text_field=args.text_field, id_field=args.id_field, skip_bad_lines=args.skip_bad_lines,
            show_progress=progress_wanted(args), index=args.index,
            on_embedded=closing.start if pooled else None, check_model=not args.no_model_check,
            delete_missing=args.delete_missing, reranker_model=args.reranker_model,
        )
    finally:
        if closing.ident is not None:
            closing.join()
    wall_s = time.perf_counter() - t0  # what the user waited for, the model's start included
    report.timings = {"load": load_s, **report.timings}  # the model's engines, before index_corpus
    if args.json:
        print_json({**report.to_dict(), "wall_s": wall_s})
    else:
        print(key_values([
            ("store", report.store_path),
            ("documents", report.documents),
            ("added", report.added),
            ("updated", report.updated),
            ("unchanged", report.unchanged),
            ("deleted", report.deleted),
            ("vectors added", report.chunks),
            ("bad lines skipped", report.skipped),
            ("resumed from", f"record {report.resumed_from}" if report.resumed_from else "-"),
            ("store size", report.store_size),
            *([("repeated ids", f"{report.repeated} (a later record of the same id won)")]
              if report.repeated else []),
            ("index", report.index_kind),
            ("time", f"{wall_s:.1f} s"),
            ("phases", ", ".join(f"{k} {v:.1f} s" for k, v in report.timings.items()) or "-"),
        ]))
    return 0


def rebuild_lexical(args: argparse.Namespace) -> int:
    """``--rebuild-lexical``: (re)build the lexical index of the saved store and save it."""
    import time

    from qwen3_rag.store import FaissStore

    if not args.rebuild_lexical:
        raise CLIError("index needs a SOURCE to index (or --rebuild-lexical to rebuild the lexical index)")
    if args.source is not None:
        raise CLIError("--rebuild-lexical takes no SOURCE: it rebuilds the lexical index of --store")
    t0 = time.perf_counter()
    store = FaissStore.load(args.store)
    try:
        tokenizer = args.lexical_tokenizer or (store.lexical.tokenizer if store.lexical else None)
        fields = store.lexical.fields if store.lexical else ()
        store.rebuild_lexical({"tokenizer": tokenizer or "unicode61", "fields": list(fields)})
        store.save()
        lexical = store.lexical.to_dict() if store.lexical is not None else None
        out = {"store": str(args.store), "documents": len(store), "lexical": lexical,
               "wall_s": time.perf_counter() - t0}
    finally:
        store.close()
    if args.json:
        print_json(out)
    else:
        print(key_values([("store", out["store"]), ("documents", out["documents"]),
                          ("lexical index", f"rebuilt ({(lexical or {}).get('tokenizer')})"),
                          ("time", f"{out['wall_s']:.1f} s")]))
    return 0
