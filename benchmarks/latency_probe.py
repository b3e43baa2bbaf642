"""Single-request latency of the engines, the way ``qwen3-rag serve`` calls them.

Times, over many calls: formatting + tokenization, ``engine.embed`` of one query and of 32,
``engine.score`` of 20 (query, document) pairs and of 32 × 20. Prints a table (ms). Every call
sends requests of its own (distinct queries), so vLLM's prefix cache cannot serve them as it
would a repeated request (``--same``: one request repeated, as device runs 8-10 did).
Run on the GPU machine (random-weight checkpoints of the real 0.6B shapes)::

    python benchmarks/latency_probe.py --kind both [--option multiprocessing=off] [--torch-profile]
    python benchmarks/latency_probe.py --kind both --loop-seconds 30 --marker /tmp/warm &
    py-spy record --pid $! --subprocesses --duration 20 --format raw -o prof.txt

``--torch-profile`` (in-process engine only: ``multiprocessing=off``) prints the GPU kernels'
time per call, the floor under the front end's overhead.
"""

from __future__ import annotations

import argparse
import itertools
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
    ap.add_argument("--same", action="store_true",
                    help="repeat one request (the prefix cache then serves most of it; runs 8-10 did this)")
    ap.add_argument("--loop-seconds", type=float, default=0, help="then loop single requests this long")
    ap.add_argument("--marker", help="file created when the loop starts (for py-spy)")
    ap.add_argument("--out", help="write the rows as JSON here")
    ap.add_argument("--small-only", action="store_true", help="skip the 32-request shapes")
    args = ap.parse_args()
    options = dict(_kv(o) for o in args.option)
    from qwen3_rag import Qwen3Embedder, Qwen3Reranker

    work = "/tmp/qwen3-rag-bench"
    n_queries = 32 * (args.n // 4 + 5) + args.n + 5
    queries = [f"what are the latest research findings about {TOPICS[i % len(TOPICS)]} ({i})?"
               for i in range(n_queries)]
    docs = seed_docs(4096)
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

    def load(cls: Any, kind: str) -> Any:
        t0 = time.perf_counter()
        model = cls(resolve_model(f"random:{args.model_size}", kind, work), backend=args.backend, **options)
        models.append(model)
        graphs = getattr(getattr(model.engine, "fast", model.engine), "graphs", None)
        note = f" ({len(graphs.graphs)} CUDA graphs captured in {graphs.capture_s:.1f} s)" if graphs else ""
        print(f"{kind} up in {time.perf_counter() - t0:.1f} s{note}", flush=True)
        return model

    def cycling(inputs: list[Any], call: Callable[[Any], Any]) -> Callable[[], Any]:
        """A call over the next input each time (all of them once, unless --same)."""
        it = itertools.cycle(inputs[:1] if args.same else inputs)
        return lambda: call(next(it))

    calls = args.n + 5  # timed calls + warm-up: each sees a request of its own
    if args.kind in ("embedding", "both"):
        emb = load(Qwen3Embedder, "embedding")
        fmt, instr = emb.formatter, emb.query_instruction
        ones = [fmt.queries([q], instr) for q in queries[:calls]]
        manys = [fmt.queries(queries[i : i + 32], instr) for i in range(0, 32 * calls, 32)]
        tokenize = cycling(queries, lambda q: fmt.queries([q], instr))
        row("format+tokenize 1 query", len(ones[0][0]), tokenize, args.n)
        row("embed 1 query", len(ones[0][0]), cycling(ones, emb.engine.embed), args.n)
        if not args.small_only:
            row("embed 32 queries", sum(map(len, manys[0])), cycling(manys, emb.engine.embed), args.n // 4)
        singles.append(cycling(ones, emb.engine.embed))
    if args.kind in ("reranker", "both"):
        rr = load(Qwen3Reranker, "reranker")
        fmt = rr.formatter

        def pairs(first: int, n_queries: int) -> list[list[int]]:  # 20 documents per query
            return fmt.pairs([(queries[first + i // 20], docs[(first * 20 + i) % len(docs)])
                              for i in range(20 * n_queries)], rr.instruction)

        p20s = [pairs(i, 1) for i in range(calls)]
        p640s = [pairs(i * 32, 32) for i in range(args.n // 4 + 5)]
        tokenize = cycling(list(range(calls)), lambda i: pairs(i, 1))
        row("format+tokenize 20 pairs", sum(map(len, p20s[0])), tokenize, args.n)
        row("score 20 pairs", sum(map(len, p20s[0])), cycling(p20s, rr.engine.score), args.n)
        if not args.small_only:
            row("score 32 x 20 pairs", sum(map(len, p640s[0])), cycling(p640s, rr.engine.score), args.n // 4)
        singles.append(cycling(p20s, rr.engine.score))
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
