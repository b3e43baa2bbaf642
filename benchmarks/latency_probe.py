"""Single-call latency of the engines, the way ``qwen3-rag serve`` calls them.

Times, over many calls: formatting + tokenization, ``engine.embed`` of one query and of 32,
``engine.score`` of 20 (query, document) pairs and of 32 × 20. Prints a table (ms). Every call
sends requests of its own (distinct queries), so vLLM's prefix cache cannot serve them as it
would a repeated request (``--same``: one request repeated). Random-weight checkpoints of the
real shapes (weights don't change speed)::

    python benchmarks/latency_probe.py --kind both [--option multiprocessing=off] [--torch-profile]
    python benchmarks/latency_probe.py --kind both --small-only --backend hf --option torch_compile=true
    python benchmarks/latency_probe.py --kind both --loop-seconds 30 --marker /tmp/warm &   # for py-spy

``--torch-profile`` (in-process engines only: ``multiprocessing=off``, or the hf backend) prints
the GPU kernels' time per call, the floor under the front end's overhead. ``benchmarks/run.py
latency-vllm`` and ``latency-fast-path`` run this with the settings of docs/performance.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from qwen3_rag.bench import TOPICS, article_docs, resolve_model

WORKDIR = "/tmp/qwen3-rag-bench"


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON where it parses (numbers, booleans), else a string."""
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value.strip()


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

    def q(p: float) -> float:
        return ts[min(n - 1, round(p / 100 * (n - 1)))]

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


class Cycle:
    """Calls ``call`` on the next of ``inputs`` each time (only the first one, with ``same``)."""

    def __init__(self, inputs: list[Any], call: Callable[[Any], Any], same: bool) -> None:
        self.inputs: Iterator[Any] = itertools.cycle(inputs[:1] if same else inputs)
        self.call = call

    def __call__(self) -> Any:
        return self.call(next(self.inputs))


class Probe:
    """Loads the models named by the arguments, times each shape, keeps the rows."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.options = dict(parse_option(o) for o in args.option)
        self.calls = args.n + 5  # timed calls + warm-up: each sees a request of its own
        n_queries = 32 * (args.n // 4 + 5) + args.n + 5
        self.queries = [f"what are the latest research findings about {TOPICS[i % len(TOPICS)]} ({i})?"
                        for i in range(n_queries)]
        self.docs = article_docs(4096)
        self.rows: list[dict[str, Any]] = []
        self.singles: list[Callable[[], Any]] = []
        self.models: list[Any] = []

    def cycle(self, inputs: list[Any], call: Callable[[Any], Any]) -> Cycle:
        return Cycle(inputs, call, self.args.same)

    def row(self, name: str, tokens: float, fn: Callable[[], Any], n: int) -> None:
        r = {"shape": name, "tokens": round(tokens, 1), **{k: round(v, 2) for k, v in timed(fn, n).items()}}
        if self.args.torch_profile:
            gpu_ms, table = gpu_time_per_call(fn)
            r["gpu_ms"] = round(gpu_ms, 2)
            print(f"--- {name}: top kernels\n{table}", flush=True)
        self.rows.append(r)
        print(json.dumps(r), flush=True)

    def load(self, cls: Any, kind: str) -> Any:
        t0 = time.perf_counter()
        path = resolve_model(f"random:{self.args.model_size}", kind, WORKDIR)
        model = cls(path, backend=self.args.backend, **self.options)
        self.models.append(model)
        graphs = getattr(getattr(model.engine, "fast", model.engine), "graphs", None)
        note = f" ({len(graphs.graphs)} CUDA graphs captured in {graphs.capture_s:.1f} s)" if graphs else ""
        print(f"{kind} up in {time.perf_counter() - t0:.1f} s{note}", flush=True)
        return model

    def embedding(self) -> None:
        from qwen3_rag import Qwen3Embedder

        emb = self.load(Qwen3Embedder, "embedding")
        fmt, instr, q = emb.formatter, emb.query_instruction, self.queries
        ones = [fmt.queries([x], instr) for x in q[: self.calls]]
        manys = [fmt.queries(q[i : i + 32], instr) for i in range(0, 32 * self.calls, 32)]
        self.row("format+tokenize 1 query", len(ones[0][0]), self.cycle(q, lambda x: fmt.queries([x], instr)),
                 self.args.n)
        self.row("embed 1 query", len(ones[0][0]), self.cycle(ones, emb.engine.embed), self.args.n)
        if not self.args.small_only:
            self.row("embed 32 queries", sum(map(len, manys[0])), self.cycle(manys, emb.engine.embed),
                     self.args.n // 4)
        self.singles.append(self.cycle(ones, emb.engine.embed))

    def reranker(self) -> None:
        from qwen3_rag import Qwen3Reranker

        rr = self.load(Qwen3Reranker, "reranker")

        q, d = self.queries, self.docs

        def pairs(first: int, n_queries: int) -> list[list[int]]:  # 20 documents per query
            chosen = [(q[first + i // 20], d[(first * 20 + i) % len(d)]) for i in range(20 * n_queries)]
            return rr.formatter.pairs(chosen, rr.instruction)

        p20s = [pairs(i, 1) for i in range(self.calls)]
        p640s = [pairs(i * 32, 32) for i in range(self.args.n // 4 + 5)]
        tokens20 = sum(map(len, p20s[0]))
        tokenize = self.cycle(list(range(self.calls)), lambda i: pairs(i, 1))
        self.row("format+tokenize 20 pairs", tokens20, tokenize, self.args.n)
        self.row("score 20 pairs", tokens20, self.cycle(p20s, rr.engine.score), self.args.n)
        if not self.args.small_only:
            self.row("score 32 x 20 pairs", sum(map(len, p640s[0])), self.cycle(p640s, rr.engine.score),
                     self.args.n // 4)
        self.singles.append(self.cycle(p20s, rr.engine.score))

    def table(self) -> str:
        gpu = self.args.torch_profile
        lines = [f"{'shape':<28} {'tokens':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'mean ms':>8}"
                 + (f" {'GPU ms':>7}" if gpu else "")]
        lines += [f"{r['shape']:<28} {r['tokens']:>7} {r['p50']:>8.2f} {r['p90']:>8.2f} {r['p99']:>8.2f} "
                  f"{r['mean']:>8.2f}" + (f" {r['gpu_ms']:>7.2f}" if gpu else "") for r in self.rows]
        return "\n".join(lines)

    def loop(self, seconds: float, marker: str | None) -> None:
        """Single requests for ``seconds`` (for a profiler to attach to); ``marker`` is created first."""
        if marker:
            open(marker, "w").close()
        t0, calls = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            for fn in self.singles:
                fn()
                calls += 1
        print(f"loop: {calls} single requests in {seconds:.0f} s", flush=True)

    def close(self) -> None:
        for m in self.models:
            m.engine.close()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", choices=["embedding", "reranker", "both"], default="both")
    ap.add_argument("--model-size", default="0.6B")
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--n", type=int, default=200, help="timed calls per shape")
    ap.add_argument("--option", action="append", default=[], help="engine option KEY=VALUE")
    ap.add_argument("--torch-profile", action="store_true")
    ap.add_argument("--same", action="store_true",
                    help="repeat one request (the prefix cache then serves most of it)")
    ap.add_argument("--loop-seconds", type=float, default=0, help="then loop single requests this long")
    ap.add_argument("--marker", help="file created when the loop starts (for py-spy)")
    ap.add_argument("--out", help="write the rows as JSON here")
    ap.add_argument("--small-only", action="store_true", help="skip the 32-request shapes")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    probe = Probe(args)
    try:
        if args.kind in ("embedding", "both"):
            probe.embedding()
        if args.kind in ("reranker", "both"):
            probe.reranker()
        print("\n" + probe.table(), flush=True)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as f:
                json.dump({"options": probe.options, "rows": probe.rows}, f, indent=1)
        if args.loop_seconds:
            probe.loop(args.loop_seconds, args.marker)
    finally:
        probe.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
