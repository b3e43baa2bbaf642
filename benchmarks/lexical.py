"""What the lexical index costs: store build time and size with and without it, and search
latency of the dense, lexical and hybrid modes.

Synthetic documents: ``--words`` words drawn from a Zipf-like vocabulary of 50,000 words, and
one id-like token per document (``ID-0000042``); L2-normalised random vectors. The documents
are staged in SQLite and loaded through the store's bulk-load API, in batches of 65,536, as
``qwen3-rag index`` builds a store; once without the lexical index (``lexical=None``), once
with it (``unicode61``), into a flat index (exact search: the slowest dense search, the
smallest Faiss share of the build). Queries: 5 vocabulary words, and half of them one id token.

    python benchmarks/lexical.py                        # 100k documents, 1024-d, 200 queries
    python benchmarks/lexical.py --n 20000 --dim 256    # quick

Prints a JSON object: build and save seconds and ``docs.sqlite`` bytes per variant, and
per-query milliseconds (median and p95) per mode.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

VOCABULARY = 50_000
BATCH = 65_536


def corpus(n: int, words: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """``n`` texts and the vocabulary's word probabilities (Zipf, exponent 1)."""
    p = 1.0 / np.arange(1, VOCABULARY + 1)
    p /= p.sum()
    vocab = np.array([f"w{i}" for i in range(VOCABULARY)])
    drawn = rng.choice(VOCABULARY, size=(n, words), p=p)
    return [" ".join(vocab[row]) + f" ID-{i:07d}" for i, row in enumerate(drawn)], p


def stage(path: Path, texts: list[str]) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE rows (seq INTEGER PRIMARY KEY, id TEXT, text TEXT, metadata TEXT)")
    conn.executemany("INSERT INTO rows (id, text, metadata) VALUES (?, ?, '{}')",
                     ((f"d{i}", t) for i, t in enumerate(texts)))
    conn.commit()
    conn.close()


def build(dim: int, vectors: np.ndarray, staged: Path, lexical: str | None, out: Path, index: str) -> dict:
    from qwen3_rag import FaissStore

    n = len(vectors)
    store = FaissStore(dim, index=index, lexical=lexical, expected_size=n)
    if store.spec.is_ivf:  # trained first, as the indexing job does while documents stream
        store.train(vectors[:100_000], expected_size=n)
    t0 = time.perf_counter()
    bulk = store.bulk_load()
    for a in range(0, n, BATCH):
        b = min(n, a + BATCH)
        bulk.add_keyed(vectors[a:b], bulk.keys(a, b))
        bulk.import_rows(staged, a, b)
    bulk.finish(n)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    root = store.save(out)
    saved = time.perf_counter() - t0
    size = (root / (root / "CURRENT").read_text().strip() / "docs.sqlite").stat().st_size
    return {"store": store, "build_s": round(built, 3), "save_s": round(saved, 3), "docs_sqlite_bytes": size}


def latency(store, queries: list[str], qv: np.ndarray, k: int) -> dict:
    out = {}
    for mode in ("dense", "lexical", "hybrid"):
        times = []
        for text, vec in zip(queries, qv, strict=True):
            t0 = time.perf_counter()
            if mode == "dense":
                store.search(vec, k=k)
            else:
                store.search(None if mode == "lexical" else vec, k=k, mode=mode, query=text)
            times.append((time.perf_counter() - t0) * 1000)
        out[mode] = {"median_ms": round(float(np.median(times)), 2),
                     "p95_ms": round(float(np.percentile(times, 95)), 2)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--words", type=int, default=60)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--index", default="flat", help="the store's index kind (auto: IVF from 200k documents)")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    texts, p = corpus(args.n, args.words, rng)
    vectors = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    qv = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    queries = []
    for i in range(args.queries):
        words = [f"w{j}" for j in rng.choice(VOCABULARY, size=5, p=p)]
        if i % 2:
            words.append(f"ID-{int(rng.integers(args.n)):07d}")
        queries.append(" ".join(words))
    result: dict = {"n": args.n, "dim": args.dim, "index": args.index, "words": args.words,
                    "queries": args.queries, "k": args.k,
                    "host": f"{platform.node()} ({os.cpu_count()} CPUs)"}
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "staged.sqlite"
        stage(staged, texts)
        for name, lexical in (("without_lexical", None), ("with_lexical", "unicode61")):
            built = build(args.dim, vectors, staged, lexical, Path(tmp) / name, args.index)
            store = built.pop("store")
            if lexical is not None:
                result["index_kind"] = store.index_kind
                result["search"] = latency(store, queries, qv, args.k)
            store.close()
            result[name] = built
    base, lex = result["without_lexical"], result["with_lexical"]
    result["lexical_build_overhead"] = round(lex["build_s"] / base["build_s"] - 1, 3)
    result["hybrid_over_dense"] = round(result["search"]["hybrid"]["median_ms"]
                                        / result["search"]["dense"]["median_ms"], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
