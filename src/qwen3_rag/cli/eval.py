"""``qwen3-rag eval DATASET_DIR``: retrieval quality on BEIR-format data, alone and reranked.

The corpus is embedded once (full size); each combination of ``--instruction``,
``--dimensions``, ``--index`` and ``--mode`` is one row of the comparison table: queries
embedded with that instruction, vectors cut to that size (Matryoshka), a store with that Faiss
index, the ``--top-k`` best documents per query by that search mode (dense, lexical BM25, or
hybrid: both fused), and with ``--rerank N`` the N best reranked by Qwen3-Reranker (same
instruction) ahead of the rest. Reranker scores are cached across rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from qwen3_rag.cli.common import (
    add_json_option,
    add_model_options,
    common_kwargs,
    make_reranker,
    print_json,
    progress_wanted,
    table,
)
from qwen3_rag.config import file_mode
from qwen3_rag.store import INDEX_KINDS
from qwen3_rag.store.modes import SEARCH_MODES

TOP_IDS = 10
"""Document ids kept per query in the JSON output (of each ranking)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``eval`` subcommand's options."""
    parser.add_argument("dataset", help="BEIR-format folder: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv")
    parser.add_argument("--split", default="test", help="qrels split (default test)")
    parser.add_argument("--instruction", action="append",
                        help="query instruction; repeat to compare (default: the model card's)")
    parser.add_argument("--index", action="append", choices=INDEX_KINDS,
                        help="Faiss index kind; repeat to compare (default flat)")
    parser.add_argument("--mode", action="append", choices=SEARCH_MODES,
                        help="search mode: dense, lexical (BM25) or hybrid; repeat to compare "
                             "(default dense)")
    parser.add_argument("--alpha", type=float,
                        help="hybrid rows: fuse alpha * dense + (1 - alpha) * lexical normalised scores "
                             "(default: reciprocal rank fusion)")
    parser.add_argument("-k", "--top-k", type=int, default=100,
                        help="documents retrieved per query (default 100, what Recall@100 needs)")
    parser.add_argument("--rerank", type=int, metavar="N",
                        help="also rerank the N best vector hits with Qwen3-Reranker")
    parser.add_argument("--max-queries", type=int, help="evaluate only the first N judged queries (by id)")
    parser.add_argument("--keep-identical-ids", action="store_true",
                        help="keep a document whose id is the query's id (BEIR drops it)")
    parser.add_argument("--batch-size", type=int, help="texts per embedding batch")
    parser.add_argument("-o", "--output", help="write the full results (per query) to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_option(parser)
    add_model_options(parser, reranker=True, repeat_dimensions=True)


def _label(instruction: str) -> str:
    from qwen3_rag.formats import DEFAULT_INSTRUCTION

    return "default" if instruction == DEFAULT_INSTRUCTION else instruction


def _store(kind: str, vectors: Any, ids: list[str], texts: list[str]) -> Any:
    from qwen3_rag.cli import CLIError
    from qwen3_rag.store import FaissStore, IndexSpec

    n, dim = vectors.shape
    store = FaissStore(dim, index=IndexSpec.for_size(kind, n, dim))
    try:
        store.train(vectors, expected_size=n)
        store.add(texts, vectors, ids=ids)
    except (RuntimeError, ValueError) as e:  # e.g. too few documents to train an IVF index
        raise CLIError(f"--index {kind} on {n} documents: {' '.join(str(e).split())[:300]}") from e
    return store


def _rerank(reranker: Any, instruction: str, queries: dict[str, str], run: dict[str, list[str]], depth: int,
            doc_text: Any, cache: dict[tuple[str, str, str], float]) -> dict[str, list[str]]:
    """Each ranking with its ``depth`` best reordered by P(yes) (stable), the rest after."""
    todo = sorted({(q, d) for q, ranking in run.items() for d in ranking[:depth]
                   if (instruction, q, d) not in cache})
    if todo:
        scores = reranker.score_pairs([(queries[q], doc_text(d)) for q, d in todo], instruction)
        cache.update({(instruction, q, d): float(s) for (q, d), s in zip(todo, scores, strict=True)})
    out = {}
    for q, ranking in run.items():
        head = sorted(ranking[:depth], key=lambda d: -cache[(instruction, q, d)])
        out[q] = head + ranking[depth:]
    return out


def _row(store: Any, queries: Any, qids: list[str], qrels: dict[str, dict[str, int]], ds: Any,
         args: argparse.Namespace, reranker: Any, instruction: str,
         cache: dict[tuple[str, str, str], float], mode: str = "dense") -> dict[str, Any]:
    """Metrics of one table row (mean and per query), retrieval alone and reranked."""
    from qwen3_rag.evaluation import REPORTED, drop_identical_ids, evaluate_run

    t0 = time.perf_counter()
    texts = {"query": [ds.queries[q] for q in qids]} if mode != "dense" else {}
    alpha = args.alpha if mode == "hybrid" else None
    hits = store.search(queries, k=min(args.top_k, len(store)), mode=mode, alpha=alpha, **texts)
    timings = {"search": round(time.perf_counter() - t0, 4)}
    run = {q: [h.id for h in hs] for q, hs in zip(qids, hits, strict=True)}
    if not args.keep_identical_ids:
        run = drop_identical_ids(run)
    mean, per_query = evaluate_run(run, qrels)
    out: dict[str, Any] = {"retrieval": {m: mean[m] for m in REPORTED}, "rerank": None, "timings_s": timings}
    details: dict[str, dict[str, Any]] = {
        q: {"retrieval": {m: per_query[q][m] for m in REPORTED}, "top_ids": run[q][:TOP_IDS]} for q in qids
    }
    if reranker is not None:
        t0 = time.perf_counter()
        reranked = _rerank(reranker, instruction, ds.queries, run, args.rerank, ds.document_text, cache)
        timings["rerank"] = round(time.perf_counter() - t0, 4)
        rr_mean, rr_per_query = evaluate_run(reranked, qrels)
        out["rerank"] = {m: rr_mean[m] for m in REPORTED}
        for q in qids:
            details[q]["rerank"] = {m: rr_per_query[q][m] for m in REPORTED}
            details[q]["reranked_top_ids"] = reranked[q][:TOP_IDS]
    out["per_query"] = details
    return out


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the evaluation the options describe; returns the JSON-ready results."""
    from qwen3_rag import Qwen3Embedder
    from qwen3_rag.cli import CLIError
    from qwen3_rag.embedder import MIN_DIMENSIONS, matryoshka
    from qwen3_rag.evaluation import REPORTED, has_relevant, load_beir
    from qwen3_rag.formats import DEFAULT_INSTRUCTION

    if args.top_k < 1 or (args.rerank is not None and args.rerank < 1):
        raise CLIError("-k and --rerank must be positive")
    modes = list(dict.fromkeys(args.mode or ["dense"]))
    if args.alpha is not None and ("hybrid" not in modes or not 0.0 <= args.alpha <= 1.0):
        raise CLIError(f"--alpha needs --mode hybrid and a value between 0 and 1, got {args.alpha}")
    started = time.perf_counter()
    ds = load_beir(args.dataset, args.split)
    judged = sorted(q for q, rel in ds.qrels.items() if has_relevant(rel))
    missing = [q for q in judged if q not in ds.queries]
    if missing:
        print(f"qwen3-rag: warning: {len(missing)} judged queries are not in queries.jsonl "
              f"(e.g. {missing[0]!r}); left out", file=sys.stderr)
    qids = [q for q in judged if q in ds.queries][: args.max_queries]
    if not qids:
        raise CLIError(f"{args.dataset}: no query of queries.jsonl has a relevant document in "
                       f"qrels/{args.split}.tsv")
    qrels = {q: ds.qrels[q] for q in qids}
    doc_ids = list(ds.corpus)
    texts = [ds.document_text(d) for d in doc_ids]
    kw = common_kwargs(args)
    if args.batch_size:
        kw["batch_size"] = args.batch_size
    bar = progress_wanted(args) is not False and sys.stderr.isatty()  # not with --json/--no-progress
    embedder = Qwen3Embedder(args.model, show_progress=bar, **kw)
    full = embedder.dimension
    dims = args.dimensions or [full]
    for d in dims:
        if not MIN_DIMENSIONS <= d <= full:
            raise CLIError(f"--dimensions must be between {MIN_DIMENSIONS} and the model's {full}, got {d}")
    instructions = args.instruction or [DEFAULT_INSTRUCTION]
    kinds = args.index or ["flat"]
    reranker = make_reranker(args) if args.rerank else None
    t0 = time.perf_counter()
    doc_vecs = embedder.embed_documents(texts)
    embed_docs_s = time.perf_counter() - t0
    cache: dict[tuple[str, str, str], float] = {}
    rows = []
    for instruction in instructions:
        q_full = embedder.embed_queries([ds.queries[q] for q in qids], instruction)
        for dim in dims:
            docs_d, q_d = matryoshka(doc_vecs, dim), matryoshka(q_full, dim)
            for kind in kinds:
                store = _store(kind, docs_d, doc_ids, texts)
                try:
                    for mode in modes:
                        row = _row(store, q_d, qids, qrels, ds, args, reranker, instruction, cache, mode)
                        rows.append({"instruction": instruction, "dimensions": dim, "index": kind,
                                     "mode": mode, **row})
                finally:
                    store.close()
    return {
        "dataset": str(args.dataset), "split": args.split, "documents": len(doc_ids), "queries": len(qids),
        "model": embedder.model, "reranker": getattr(reranker, "model", None), "top_k": args.top_k,
        "rerank_depth": args.rerank, "alpha": args.alpha, "metrics": list(REPORTED),
        "timings_s": {"embed_documents": round(embed_docs_s, 3),
                      "total": round(time.perf_counter() - started, 3)},
        "rows": rows,
    }


def _write_json(path: str, data: Any) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=2)
            f.write("\n")
        os.chmod(tmp, file_mode(target))  # as open() would make it, not mkstemp's 0o600
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    """Run the evaluation, print its table (or JSON) and write ``--output``."""
    results = evaluate(args)
    if args.output:
        _write_json(args.output, results)
    if args.json:
        print_json(results)
        return 0
    names = ["nDCG@10", "R@10", "R@100", "MRR@10"]
    headers = ["instruction", "dim", "index", "mode", *names]
    reranked = results["rerank_depth"] is not None
    if reranked:
        headers += [f"rr {n}" for n in names]
    body = []
    for r in results["rows"]:
        cells = [_label(r["instruction"]), r["dimensions"], r["index"], r["mode"]]
        cells += [f"{r['retrieval'][m]:.4f}" for m in results["metrics"]]
        if reranked:
            cells += [f"{r['rerank'][m]:.4f}" for m in results["metrics"]]
        body.append(cells)
    print(table(headers, body, stretch=0))
    rr = f", reranking the {results['rerank_depth']} best with {results['reranker']}" if reranked else ""
    print(f"{results['queries']} queries, {results['documents']} documents, top {results['top_k']}{rr}; "
          f"{results['timings_s']['total']:.1f} s" + (f"; per query in {args.output}" if args.output else ""))
    return 0
