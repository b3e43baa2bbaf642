"""Single-request latency of the engines, the way ``qwen3-rag serve`` calls them.

Times, over many calls: formatting + tokenization, ``engine.embed`` of one query and of 32,
``engine.score`` of 20 (query, document) pairs and of 32 × 20. Prints a table (ms).
Run on the GPU machine (random-weight checkpoints of the real 0.6B shapes)::

    python benchmarks/latency_probe.py --kind both [--option multiprocessing=off] [--torch-profile]
    python benchmarks/latency_probe.py --kind both --loop-seconds 30 --marker /tmp/warm &
    py-spy record --pid $! --subprocesses --duration 20 --format raw -o prof.txt

``--torch-profile`` (in-process engine only: ``multiprocessing=off``) prints the GPU kernels'
time per call, the floor under the front end's overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from qwen3_rag.bench import TOPICS, _kv, resolve_model, seed_docs


def timed(fn: Callable[[], Any], n: int) -> dict[str, float]:
    """p50/p90/p99/mean milliseconds of ``n`` calls of ``fn`` (after 5 warm-up calls)."""
    for _ in range(5):
        fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000)
    ts.sort()
    q = lambda p: ts[min(n - 1, round(p / 100 * (n - 1)))]  # noqa: E731
    return {"p50": q(50), "p90": q(90), "p99": q(99), "mean": statistics.fmean(ts)}


def gpu_time_per_call(fn: Callable[[], Any], calls: int = 20) -> tuple[float, str]:
    """Summed CUDA kernel time per call (ms) and the profiler's top-kernel table."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    events = prof.key_averages()
    total_us = sum(getattr(e, "self_device_time_total", 0) or 0 for e in events)
    table = events.table(sort_by="self_device_time_total", row_limit=12)
    return total_us / 1000 / calls, table


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=["embedding", "reranker", "both"], default="both")
    ap.add_argument("--model-size", default="0.6B")
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--n", type=int, default=200, help="timed calls per shape")
    ap.add_argument("--option", action="append", default=[], help="engine option KEY=VALUE")
    ap.add_argument("--torch-profile", action="store_true")
    ap.add_argument("--loop-seconds", type=float, default=0, help="then loop single requests this long")
    ap.add_argument("--marker", help="file created when the loop starts (for py-spy)")
    ap.add_argument("--out", help="write the rows as JSON here")
    args = ap.parse_args()
    options = dict(_kv(o) for o in args.option)
    from qwen3_rag import Qwen3Embedder, Qwen3Reranker

    work = "/tmp/qwen3-rag-bench"
    queries = [f"what are the latest research findings about {TOPICS[i % len(TOPICS)]} ({i})?"
               for i in range(64)]
    docs = seed_docs(20 * 32)
    rows: list[dict[str, Any]] = []
    singles: list[Callable[[], Any]] = []
    models: list[Any] = []

    def row(name: str, ntok: float, fn: Callable[[], Any], n: int) -> None:
        r = {"shape": name, "tokens": round(ntok, 1), **{k: round(v, 2) for k, v in timed(fn, n).items()}}
        if args.torch_profile:
            r["gpu_ms"], table = gpu_time_per_call(fn)
            r["gpu_ms"] = round(r["gpu_ms"], 2)
            print(f"--- {name}: top kernels\n{table}", flush=True)
        rows.append(r)
        print(json.dumps(r), flush=True)

    if args.kind in ("embedding", "both"):
        t0 = time.perf_counter()
        emb = Qwen3Embedder(resolve_model(f"random:{args.model_size}", "embedding", work),
                            backend=args.backend, **options)
        models.append(emb)
        print(f"embedder up in {time.perf_counter() - t0:.1f} s", flush=True)
        fmt, instr = emb.formatter, emb.query_instruction
        one = fmt.queries(queries[:1], instr)
        many = fmt.queries(queries[:32], instr)
        row("format+tokenize 1 query", len(one[0]), lambda: fmt.queries(queries[:1], instr), args.n)
        row("embed 1 query", len(one[0]), lambda: emb.engine.embed(one), args.n)
        row("embed 32 queries", sum(map(len, many)), lambda: emb.engine.embed(many), args.n // 4)
        singles.append(lambda: emb.engine.embed(one))
    if args.kind in ("reranker", "both"):
        t0 = time.perf_counter()
        rr = Qwen3Reranker(resolve_model(f"random:{args.model_size}", "reranker", work),
                           backend=args.backend, **options)
        models.append(rr)
        print(f"reranker up in {time.perf_counter() - t0:.1f} s", flush=True)
        fmt = rr.formatter
        p20 = fmt.pairs([(queries[0], d) for d in docs[:20]], rr.instruction)
        p640 = fmt.pairs([(queries[i // 20], d) for i, d in enumerate(docs)], rr.instruction)
        row("format+tokenize 20 pairs", sum(map(len, p20)),
            lambda: fmt.pairs([(queries[0], d) for d in docs[:20]], rr.instruction), args.n)
        row("score 20 pairs", sum(map(len, p20)), lambda: rr.engine.score(p20), args.n)
        row("score 32 x 20 pairs", sum(map(len, p640)), lambda: rr.engine.score(p640), args.n // 4)
        singles.append(lambda: rr.engine.score(p20))
    print(f"\n{'shape':<28} {'tokens':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'mean ms':>8}"
          + (f" {'GPU ms':>7}" if args.torch_profile else ""))
    for r in rows:
        print(f"{r['shape']:<28} {r['tokens']:>7} {r['p50']:>8.2f} {r['p90']:>8.2f} {r['p99']:>8.2f} "
              f"{r['mean']:>8.2f}" + (f" {r['gpu_ms']:>7.2f}" if args.torch_profile else ""), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"options": options, "rows": rows}, f, indent=1)
    if args.loop_seconds:
        if args.marker:
            open(args.marker, "w").close()
        t0, calls = time.perf_counter(), 0
        while time.perf_counter() - t0 < args.loop_seconds:
            for fn in singles:
                fn()
                calls += 1
        print(f"loop: {calls} single requests in {args.loop_seconds:.0f} s", flush=True)
    for m in models:
        m.engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
