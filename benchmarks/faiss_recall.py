"""Recall@k of every FaissStore index kind, at its defaults, against exact search.

Synthetic but embedding-like data: L2-normalised vectors drawn around random cluster centres
(same-cluster cosine ≈ 1 / (1 + noise²)), queries drawn from the same mixture (not in the
collection). Each kind is built through ``FaissStore`` (train, add with ids and texts, search)
with the parameters ``IndexSpec.for_size`` gives for the collection size, i.e. what
``index="auto"`` or ``index=KIND`` would use.

    python benchmarks/faiss_recall.py                      # 100k x 1024, 500 queries, 2 threads
    python benchmarks/faiss_recall.py --n 20000 --dim 256  # quick

Prints a Markdown table (kind, parameters, bytes/vector, build time, ms/query, recall@k).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def clustered(rng: np.random.Generator, n: int, centres: np.ndarray, noise: float) -> np.ndarray:
    dim = centres.shape[1]
    x = centres[rng.integers(0, len(centres), n)]
    x = x + rng.normal(scale=noise / np.sqrt(dim), size=(n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from qwen3_rag.store import faiss_module

    index = faiss_module().IndexFlatIP(base.shape[1])
    index.add(base)
    return index.search(queries, k)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="collection size")
    ap.add_argument("--dim", type=int, default=1024, help="dimension (Qwen3-Embedding-0.6B: 1024)")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--noise", type=float, default=2.0, help="noise norm relative to the centre norm")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kinds", default="flat,ivf,ivf-sq8,ivf-pq,hnsw")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--two-level-min-nlist", type=int, default=None, metavar="N",
                    help="IVF lists from which training uses two-level k-means (default: the library's; "
                         "a large N: one k-means over all lists)")
    return ap


def set_two_level_min_nlist(n: int) -> None:
    """Train IVF indexes of ``n`` lists or more with two-level k-means (the store reads it at training)."""
    from qwen3_rag.store import training

    training.TWO_LEVEL_MIN_NLIST = n


def measure(kind: str, base: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int) -> tuple[str, ...]:
    """Build ``kind`` through ``FaissStore`` at its defaults for this size, search, score recall@k."""
    from qwen3_rag import FaissStore
    from qwen3_rag.store import IndexSpec, faiss_module

    n, dim = base.shape
    spec = IndexSpec.for_size(kind, n, dim)
    store = FaissStore(dim, index=spec, gpu=False)
    ids, texts = [str(i) for i in range(n)], [""] * n
    t = time.perf_counter()
    store.train(base)
    for s in range(0, n, 50_000):
        store.add(texts[s : s + 50_000], base[s : s + 50_000], ids=ids[s : s + 50_000])
    build = time.perf_counter() - t
    t = time.perf_counter()
    hits = store.search(queries, k=k)
    per_query = (time.perf_counter() - t) * 1000 / len(queries)
    found = np.array([[int(h.id) for h in row] + [-1] * (k - len(row)) for row in hits])
    recall = np.mean([len(set(f) & set(g)) / k for f, g in zip(found, truth, strict=True)])
    size = len(faiss_module().serialize_index(store.index)) / n
    params = ", ".join(f"{key}={v}" for key, v in spec.to_dict().items() if key != "kind") or "-"
    print(f"  {kind}: recall@{k}={recall:.4f} ({build:.1f} s build)", flush=True)
    return (kind, params, f"{size:.0f}", f"{build:.1f}", f"{per_query:.2f}", f"{recall:.4f}")


def main() -> None:
    args = build_parser().parse_args()
    from qwen3_rag.store import choose_kind, faiss_module

    faiss = faiss_module()  # with the CPU's OpenBLAS kernels
    if args.two_level_min_nlist is not None:
        set_two_level_min_nlist(args.two_level_min_nlist)
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    centres = rng.normal(size=(args.clusters, args.dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    t = time.perf_counter()
    base = clustered(rng, args.n, centres, args.noise)
    queries = clustered(rng, args.queries, centres, args.noise)
    true_scores, truth = exact_topk(base, queries, args.k)
    print(f"data + exact ground truth: {time.perf_counter() - t:.1f} s; "
          f"faiss {faiss.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}")
    print(f"n={args.n} dim={args.dim} queries={args.queries} clusters={args.clusters} noise={args.noise}; "
          f"index='auto' picks {choose_kind(args.n)!r} at this size")
    print(f"mean cosine of the 1st / {args.k}th true neighbour: {true_scores[:, 0].mean():.3f} / "
          f"{true_scores[:, -1].mean():.3f}; random pair: {float((base[:1000] @ queries.T).mean()):.3f}\n")
    rows = [measure(kind, base, queries, truth, args.k) for kind in args.kinds.split(",")]
    head = ("kind", "parameters", "bytes/vector", "build s", "ms/query", f"recall@{args.k}")
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
