"""What ``index_corpus`` costs besides embedding: a fake embedder, a phase table.

Writes a JSONL corpus of seed-style documents (``qwen3_rag.bench.seed_docs``, ~50 tokens each,
reused between runs), then indexes it with a fake embedder that returns random unit vectors
(instantly, or at a fixed rate with ``--docs-per-s`` to stand in for a GPU). Everything that
is not the fake embedding — reading, staging, committing, training and filling the Faiss
index, saving — is the overhead this script measures.

    python benchmarks/index_overhead.py --n 100000                    # flat index
    python benchmarks/index_overhead.py --n 1000000                   # auto -> IVF
    python benchmarks/index_overhead.py --n 1000000 --docs-per-s 8000 # embedder at GPU speed
    python benchmarks/index_overhead.py --n 100000 --profile 30       # + cProfile top 30

Phases (wall-clock seconds, as the caller waits for them):

* ``stream``: reading, embedding and staging until the source is exhausted and committed
  (work that overlaps it in background threads is hidden inside it);
* ``build``: the rest besides ``save``: from then until the store is ready to save, plus
  set-up and clean-up (opening the staging files, removing them);
* ``save``: the atomic versioned save;
* ``total``: the whole ``index_corpus`` call.

``embed (fake)`` is the time the fake embedder itself spent (part of ``stream``); ``train`` and
``add`` (from ``IndexReport.timings``, where ``index_corpus`` records them) are the seconds
spent training the index and filling the store, mostly in the background during ``stream``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import resource
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


class FakeEmbedder:
    """Random unit vectors; with ``docs_per_s``, each call lasts as long as a real one would."""

    tokenizer = None

    def __init__(self, dim: int, batch_size: int, docs_per_s: float = 0.0, seed: int = 0):
        self.dim = dim
        self.batch_size = batch_size
        self.fingerprint = {"model": "fake", "dimension": dim}
        self.docs_per_s = docs_per_s
        self.rng = np.random.default_rng(seed)
        self.busy = 0.0
        self.calls = 0

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        t0 = time.perf_counter()
        v = self.rng.standard_normal((len(texts), self.dim), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        if self.docs_per_s > 0:
            time.sleep(max(0.0, len(texts) / self.docs_per_s - (time.perf_counter() - t0)))
        self.busy += time.perf_counter() - t0
        self.calls += 1
        return v


def write_corpus(path: Path, n: int) -> None:
    from qwen3_rag.bench import seed_docs

    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for i, text in enumerate(seed_docs(n)):
            f.write(json.dumps({"id": f"d{i}", "text": text, "topic": "x"}) + "\n")
    os.replace(tmp, path)


class PhaseTimer:
    """Times ``qwen3_rag.indexing._stream`` and ``FaissStore.save`` by wrapping them."""

    def __init__(self) -> None:
        self.spans: dict[str, float] = {}

    def wrap(self, owner: Any, name: str, phase: str) -> None:
        inner = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.spans[phase] = self.spans.get(phase, 0.0) + time.perf_counter() - t0

        setattr(owner, name, timed)


def faiss_threads() -> int:
    """OpenMP threads Faiss uses in a fresh thread (where ``index_corpus`` runs Faiss)."""
    from qwen3_rag.faiss_index import faiss_module

    faiss = faiss_module()

    out: list[int] = []
    t = threading.Thread(target=lambda: out.append(faiss.omp_get_max_threads()))
    t.start()
    t.join()
    return out[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="documents (default 100000)")
    ap.add_argument("--index", default="auto", help="index choice for the new store (default auto)")
    ap.add_argument("--dim", type=int, default=1024, help="vector dimension (default 1024)")
    ap.add_argument("--batch-size", type=int, default=32768, help="fake embedder batch size (default 32768)")
    ap.add_argument("--commit-every", type=int, default=1024, help="index_corpus commit_every (default 1024)")
    ap.add_argument("--docs-per-s", type=float, default=0.0,
                    help="make the fake embedder this fast (0: instant; 8000 ~ a GPU)")
    ap.add_argument("--workdir", default="/tmp/qwen3-rag-index-overhead",
                    help="corpus and store go here (the corpus is reused)")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="print the cProfile top N")
    ap.add_argument("--json", action="store_true", help="print one JSON line of results as well")
    ap.add_argument("--two-level-min-nlist", type=int, default=None, metavar="N",
                    help="IVF lists from which training uses two-level k-means (default: the library's; "
                         "a large N: one k-means, as before)")
    args = ap.parse_args()

    import qwen3_rag.indexing as indexing
    from qwen3_rag import FaissStore, __version__
    from qwen3_rag import faiss_index as fx

    if args.two_level_min_nlist is not None:
        fx.TWO_LEVEL_MIN_NLIST = args.two_level_min_nlist

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / f"docs{args.n}.jsonl"
    if not corpus.exists():
        t0 = time.perf_counter()
        write_corpus(corpus, args.n)
        print(f"wrote {corpus} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    store = work / "store"
    shutil.rmtree(store, ignore_errors=True)

    timer = PhaseTimer()
    timer.wrap(indexing, "_stream", "stream")
    timer.wrap(FaissStore, "save", "save")
    emb = FakeEmbedder(args.dim, args.batch_size, args.docs_per_s)
    prof = cProfile.Profile() if args.profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    report = indexing.index_corpus(str(corpus), store, emb, commit_every=args.commit_every,
                                   show_progress=False, index=args.index)
    if prof:
        prof.disable()
    total = time.perf_counter() - t0

    stream, save = timer.spans.get("stream", 0.0), timer.spans.get("save", 0.0)
    build = max(0.0, total - stream - save)
    rows = [("stream", stream), ("build", build), ("save", save), ("total", total)]
    print(f"qwen3-rag {__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"Faiss threads {faiss_threads()}, n={args.n}, index {report.index_kind}, "
          f"embedder batch {args.batch_size}, commit_every {args.commit_every}, "
          f"fake rate {args.docs_per_s or 'instant'}")
    print()
    print("| phase | seconds | docs/s |")
    print("| --- | ---: | ---: |")
    for name, sec in rows:
        print(f"| {name} | {sec:.2f} | {args.n / sec:,.0f} |" if sec > 0 else f"| {name} | {sec:.2f} | - |")
    print(f"| embed (fake, within stream) | {emb.busy:.2f} | |")
    print(f"| overhead (total - embed) | {total - emb.busy:.2f} | |")
    extra = getattr(report, "timings", None) or {}
    for name in ("train", "add"):  # wherever they ran: mostly in the background, within stream
        if name in extra:
            print(f"| {name} (IndexReport.timings) | {extra[name]:.2f} | |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (Linux)
    print(f"\npeak RSS {peak:.2f} GiB; store size {report.store_size}; vectors {report.chunks}")
    if args.json:
        print(json.dumps({"n": args.n, "index": report.index_kind, "docs_per_s_fake": args.docs_per_s,
                          "phases": dict(rows), "embed_s": emb.busy, "report_timings": extra,
                          "peak_rss_gib": peak}))
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(args.profile)
    shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
