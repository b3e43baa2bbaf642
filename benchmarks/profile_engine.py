"""Keep one embedder busy for a while so a sampling profiler can attach (py-spy).

Run on the GPU machine::

    python benchmarks/profile_engine.py --seconds 40 --marker /tmp/warm &
    while [ ! -f /tmp/warm ]; do sleep 1; done
    py-spy record --pid $! --subprocesses --duration 25 --format raw -o prof.txt

then ``python benchmarks/summarize_profile.py prof.txt`` prints where each process spends its
time. Options are engine options as ``KEY=VALUE`` (e.g. ``engines_per_gpu=2``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from qwen3_rag.bench import _kv, resolve_model, seed_docs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="random:0.6B")
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--marker", default=None, help="file created once the engine is warm")
    ap.add_argument("--n", type=int, default=20000, help="documents per call")
    ap.add_argument("option", nargs="*", help="engine option KEY=VALUE")
    args = ap.parse_args()
    from qwen3_rag import Qwen3Embedder

    model = resolve_model(args.model, "embedding", "/tmp/qwen3-rag-bench")
    emb = Qwen3Embedder(model, backend=args.backend, **dict(_kv(o) for o in args.option))
    docs = seed_docs(args.n)
    emb.embed_documents(docs[:2048])
    if args.marker:
        open(args.marker, "w").close()
    t0, done = time.perf_counter(), 0
    while time.perf_counter() - t0 < args.seconds:
        emb.embed_documents(docs)
        done += len(docs)
    sec = time.perf_counter() - t0
    print(f"profile_engine: {done} docs in {sec:.1f} s = {done / sec:.0f} docs/s ({args.option})", flush=True)
    emb.engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
