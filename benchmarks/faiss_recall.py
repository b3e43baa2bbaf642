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
    from qwen3_rag.faiss_index import faiss_module

    faiss = faiss_module()

    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    return index.search(queries, k)


def main() -> None:
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
    args = ap.parse_args()

    from qwen3_rag import FaissStore, faiss_index

    faiss = faiss_index.faiss_module()  # with the CPU's OpenBLAS kernels
    from qwen3_rag.faiss_index import IndexSpec, choose_kind

    if args.two_level_min_nlist is not None:
        faiss_index.TWO_LEVEL_MIN_NLIST = args.two_level_min_nlist

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

    ids = [str(i) for i in range(args.n)]
    texts = [""] * args.n
    rows = []
    for kind in args.kinds.split(","):
        spec = IndexSpec.for_size(kind, args.n, args.dim)
        store = FaissStore(args.dim, index=spec, gpu=False)
        t = time.perf_counter()
        store.train(base)
        for s in range(0, args.n, 50_000):
            store.add(texts[s : s + 50_000], base[s : s + 50_000], ids=ids[s : s + 50_000])
        build = time.perf_counter() - t
        t = time.perf_counter()
        hits = store.search(queries, k=args.k)
        per_query = (time.perf_counter() - t) * 1000 / args.queries
        found = np.array([[int(h.id) for h in row] + [-1] * (args.k - len(row)) for row in hits])
        recall = np.mean([len(set(f) & set(g)) / args.k for f, g in zip(found, truth, strict=True)])
        size = len(faiss.serialize_index(store.index)) / args.n
        params = ", ".join(f"{k}={v}" for k, v in spec.to_dict().items() if k != "kind") or "-"
        rows.append((kind, params, f"{size:.0f}", f"{build:.1f}", f"{per_query:.2f}", f"{recall:.4f}"))
        print(f"  {kind}: recall@{args.k}={recall:.4f} ({build:.1f} s build)", flush=True)
        del store

    head = ("kind", "parameters", "bytes/vector", "build s", "ms/query", f"recall@{args.k}")
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
