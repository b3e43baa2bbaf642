"""``qwen3-rag rerank PAIRS.jsonl -o OUT.jsonl``: score (query, document) pairs, resumably.

The options and the report printout; the job itself is :mod:`qwen3_rag.rerank_job`.
"""

from __future__ import annotations

import argparse

from qwen3_rag.cli.common import (
    add_json_option,
    add_model_options,
    key_values,
    make_reranker,
    print_json,
    progress_wanted,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``rerank`` subcommand's options."""
    parser.add_argument("pairs", help='JSONL of {"query_id", "doc_id", "query", "document"} lines')
    parser.add_argument("-o", "--output", required=True, help="output JSONL (input fields + scores)")
    parser.add_argument("--top-k", type=int, help="keep each query's k best pairs, best first")
    parser.add_argument("--min-confidence", type=float,
                        help="drop pairs whose confidence |2p-1| is below this (0 to 1)")
    parser.add_argument("--instruction", help="reranker task instruction")
    parser.add_argument("--batch-size", type=int, default=64, help="pairs per scoring batch")
    parser.add_argument("--commit-every", type=int, default=1024, help="input lines per durable commit")
    parser.add_argument("--no-resume", action="store_true", help="discard an interrupted job, start over")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing finished output")
    parser.add_argument("--skip-bad-lines", action="store_true", help="skip and count malformed lines")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_option(parser)
    add_model_options(parser, embedder=False, reranker=True)


def check_before_loading(args: argparse.Namespace) -> None:
    """What can be checked without the model: the options, the output, the first record."""
    import json
    from pathlib import Path

    from qwen3_rag.rerank_job import check_job_options, pair_problem
    from qwen3_rag.sources import BadInputError

    check_job_options(args.batch_size, args.commit_every, args.top_k, args.min_confidence)
    pairs, output = Path(args.pairs), Path(args.output)
    if not pairs.is_file():
        raise FileNotFoundError(f"pairs file not found: {args.pairs}")
    progress = output.with_name(output.name + ".progress.json")
    if output.exists() and not args.overwrite and not progress.is_file():  # as the job decides
        raise FileExistsError(f"output exists: {args.output} (a finished job?); remove it or "
                              "pass --overwrite")
    if args.skip_bad_lines:
        return
    with open(pairs, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise BadInputError(f"{args.pairs}:{n}: malformed JSON "
                                    "(--skip-bad-lines skips such lines)") from None
            problem = pair_problem(rec if isinstance(rec, dict) else None)
            if problem:
                raise BadInputError(f"{args.pairs}:{n}: {problem}")
            return


def run(args: argparse.Namespace) -> int:
    """Run the pair-rerank job (:func:`qwen3_rag.rerank_job.rerank_pairs`) and print its report.

    The options, the output and the first record are checked before the reranker loads."""
    import time

    from qwen3_rag.rerank_job import rerank_pairs

    check_before_loading(args)
    t0 = time.perf_counter()
    reranker = make_reranker(args)
    load_s = time.perf_counter() - t0
    report = rerank_pairs(
        args.pairs, args.output, reranker, batch_size=args.batch_size,
        commit_every=args.commit_every, top_k=args.top_k, min_confidence=args.min_confidence,
        instruction=args.instruction, resume=not args.no_resume, overwrite=args.overwrite,
        skip_bad_lines=args.skip_bad_lines, show_progress=progress_wanted(args),
    )
    wall_s = time.perf_counter() - t0
    if args.json:
        timings = {"load": load_s, "rerank": report.elapsed_s}
        print_json({**report.to_dict(), "wall_s": wall_s, "timings": timings})
    else:
        print(key_values([
            ("output", report.output),
            ("pairs scored", report.pairs_scored),
            ("pairs written", report.pairs_written),
            ("queries", report.queries),
            ("bad lines skipped", report.skipped),
            ("resumed from", f"line {report.resumed_from}" if report.resumed_from else "-"),
            ("time", f"{wall_s:.1f} s"),
            ("phases", f"load {load_s:.1f} s, rerank {report.elapsed_s:.1f} s"),
        ]))
    return 0
