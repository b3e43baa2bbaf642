"""``qwen3-rag search QUERY --store DIR``: dense, lexical (BM25) or hybrid search, optionally reranked."""

from __future__ import annotations

import argparse
import json
import time

from qwen3_rag.cli import CLIError
from qwen3_rag.cli.common import (
    add_json_option,
    add_model_options,
    make_reranker,
    open_store,
    print_json,
    store_reranker,
    table,
)
from qwen3_rag.cli.hub import check_model_available
from qwen3_rag.config import get_settings
from qwen3_rag.store.modes import SEARCH_MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``search`` subcommand's options."""
    parser.add_argument("query", help="the search query")
    parser.add_argument("--store", required=True, help="store directory")
    parser.add_argument("-k", type=int, default=5, help="results to return (default 5)")
    parser.add_argument("--mode", choices=SEARCH_MODES, default="dense",
                        help="dense: vectors (default); lexical: BM25 over the texts; hybrid: both, fused")
    parser.add_argument("--alpha", type=float,
                        help="with --mode hybrid: fuse alpha * dense + (1 - alpha) * lexical normalised "
                             "scores (default: reciprocal rank fusion)")
    parser.add_argument("--rerank", type=int, metavar="N",
                        help="rerank the max(N, k) best hits (fused ones in hybrid mode) with "
                             "Qwen3-Reranker, return the k best")
    parser.add_argument("--score-threshold", type=float,
                        help="drop hits scoring below this (cosine; BM25 in lexical mode, fused in hybrid)")
    parser.add_argument("--min-confidence", type=float,
                        help="with --rerank: drop results whose confidence |2p-1| is below this")
    parser.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"lang": {"$in": ["en", "fr"]}}\'')
    parser.add_argument("--instruction", help="task instruction for the query (and the reranker)")
    parser.add_argument("--preview-chars", type=int, default=200, help="text preview length (default 200)")
    parser.add_argument("--full-text", action="store_true", help="print whole texts, not previews")
    parser.add_argument("--no-model-check", action="store_true",
                        help="search a store built with another model of the same dimension (warns)")
    add_json_option(parser)
    add_model_options(parser, reranker=True)


def run(args: argparse.Namespace) -> int:
    """Search the store (reranking with ``--rerank``) and print the results."""
    from qwen3_rag.retrieval import search_documents

    if args.k < 1:
        raise CLIError(f"-k must be positive, got {args.k}")
    if args.rerank is not None and args.rerank < 1:
        raise CLIError(f"--rerank must be positive, got {args.rerank}")
    if args.min_confidence is not None and args.rerank is None:
        raise CLIError("--min-confidence needs --rerank N (confidence comes from the reranker)")
    if args.alpha is not None and (args.mode != "hybrid" or not 0.0 <= args.alpha <= 1.0):
        raise CLIError(f"--alpha needs --mode hybrid and a value between 0 and 1, got {args.alpha}")
    flt = None
    if args.filter:
        try:
            flt = json.loads(args.filter)
        except json.JSONDecodeError as e:
            raise CLIError(f"--filter is not valid JSON: {e.msg} at column {e.colno}") from e
    started = time.perf_counter()
    recorded = store_reranker(args.store) if args.rerank else None  # qwen3-rag index --reranker-model
    if args.rerank:  # before the embedder loads: a reranker that cannot come fails at once
        check_model_available(args.reranker_model or recorded or get_settings().reranker_model,
                              "--reranker-model")
    store, embedder = open_store(args)
    reranker = make_reranker(args, recorded) if args.rerank else None
    load_ms = (time.perf_counter() - started) * 1000.0
    resp = search_documents(
        store, embedder, args.query, args.k, filter=flt, score_threshold=args.score_threshold,
        reranker=reranker, rerank_candidates=args.rerank, min_confidence=args.min_confidence,
        instruction=args.instruction, mode=args.mode, alpha=args.alpha,
    )
    limit = None if args.full_text else args.preview_chars
    if args.json:
        out = resp.to_dict(limit)  # the document of the service's POST /search
        out["timings_ms"] = {"load": round(load_ms, 3), **out["timings_ms"]}  # the models and the store
        print_json(out)
        return 0
    headers = ["rank", "score"] + (["relevance", "confidence"] if reranker else []) + ["id", "length", "text"]
    rows = []
    for r in resp.results:
        rel = [f"{r.relevance_score:.4f}", f"{r.confidence:.4f}"] if reranker else []
        text = r.text if limit is None else r.text[:limit]
        rows.append([r.rank, f"{r.score:.4f}", *rel, r.id, r.text_length, " ".join(text.split())])
    if rows:
        print(table(headers, rows, stretch=None if args.full_text else len(headers) - 1))
    print(f"{len(resp.results)} shown, {resp.total_found} found in {resp.processing_time_ms:.1f} ms"
          f" (models and store loaded in {load_ms:.0f} ms)")
    return 0
