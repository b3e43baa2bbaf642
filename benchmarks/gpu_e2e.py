"""End-to-end GPU benchmark: ``qwen3-rag index`` of N seed-style documents, then query latency
through ``qwen3-rag serve`` over that index (embed query, search, rerank top 20).

Run on the GPU machine (random-weight checkpoints of the real 0.6B shapes; weights don't
change speed)::

    python benchmarks/gpu_e2e.py --n 1000000 --out OUT [--index-env KEY=VALUE ...]

Prints a table and writes ``e2e.json``. Everything it measures is a subprocess of this script:
the CLI exactly as a user runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from engine_close import dump_stacks  # a script in this folder (on sys.path when run)

from qwen3_rag.bench import TOPICS, descendants, resolve_model, seed_docs
from qwen3_rag.indexing import STAGED_VECTORS


def rss_sampler(pid: int, samples: list[tuple[float, ...]], stop: threading.Event,
                staged: str | None = None, dim: int = 1024) -> None:
    """Sample the summed RSS (GiB) of ``pid`` and its descendants every 2 s, and with ``staged``
    (the indexer's raw vectors file) how many vectors it holds: the embedding's progress."""
    t0 = time.time()
    while not stop.is_set():
        try:
            vectors = os.path.getsize(staged) // (4 * dim) if staged else -1
        except OSError:
            vectors = -1
        total = 0
        for p in [*descendants(pid), pid]:
            try:
                with open(f"/proc/{p}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            except OSError:
                pass
        samples.append((round(time.time() - t0, 1), round(total / 2**20, 2), vectors))
        stop.wait(2.0)


def post(url: str, body: dict, timeout: float = 60) -> tuple[float, dict]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout) as r:
        data = json.loads(r.read())
    return (time.perf_counter() - t0) * 1000, data


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--out", default="e2e-out")
    ap.add_argument("--workdir", default="/tmp/qwen3-rag-bench")
    ap.add_argument("--index-env", action="append", default=[], help="KEY=VALUE for the index run")
    ap.add_argument("--tuned-from", help="a bench results.json: index with its recommended embed settings")
    ap.add_argument("--index-timeout", type=float, default=None, help="seconds before indexing is stopped")
    ap.add_argument("--step", choices=["both", "index", "serve"], default="both",
                    help="run only the index step, or only the serve step on the store already built")
    ap.add_argument("--synthetic-store", action="store_true",
                    help="serve step: build the store from random unit vectors (search cost depends on "
                         "the index size, not on what the vectors mean)")
    ap.add_argument("--reuse-store", action="store_true",
                    help="serve step: keep a synthetic store built by an earlier run in --workdir")
    ap.add_argument("--serve-env", action="append", default=[], help="KEY=VALUE for the serve process")
    ap.add_argument("--serve-log-level", default="warning", help="the server's --log-level")
    ap.add_argument("--tag", default="", help="suffix of the result file (e2e-STEP-TAG.json)")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--size", default="0.6B", help="random checkpoint size (tiny for a CPU dry run)")
    args = ap.parse_args()
    # a timeout's SIGTERM unwinds through serve_step's finally, which stops the server
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.workdir, exist_ok=True)
    emb = resolve_model(f"random:{args.size}", "embedding", args.workdir)
    rr = resolve_model(f"random:{args.size}", "reranker", args.workdir)
    corpus = os.path.join(args.workdir, f"seed-{args.n}.jsonl")
    if not os.path.exists(corpus):
        with open(corpus + ".tmp", "w") as f:
            for i, t in enumerate(seed_docs(args.n)):
                f.write(json.dumps({"id": f"d{i}", "text": t, "topic": TOPICS[i % len(TOPICS)]}) + "\n")
        os.replace(corpus + ".tmp", corpus)
    store = os.path.join(args.workdir, f"store-{args.n}")
    result: dict = {"n": args.n, "index_env": args.index_env, "serve_env": args.serve_env}

    if args.step != "serve":
        rc = index_step(args, result, corpus, store, emb)
        if rc != 0 or args.step == "index":
            save(args, result)
            return rc
    if args.synthetic_store:
        store = synthetic_store(args, result, emb)
    rc = serve_step(args, result, store, emb, rr)
    save(args, result)
    return rc


def save(args: argparse.Namespace, result: dict) -> None:
    print(json.dumps({k: v for k, v in result.items() if k != "rss_gib_samples"}, indent=1), flush=True)
    path = os.path.join(args.out, f"e2e-{args.step}{'-' + args.tag if args.tag else ''}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)


def synthetic_store(args: argparse.Namespace, result: dict, emb: str) -> str:
    """A store of ``args.n`` seed-style texts with random unit vectors, under ``emb``'s fingerprint."""
    import numpy as np

    from qwen3_rag import FaissStore

    path = os.path.join(args.workdir, f"synthetic-{args.n}")
    if args.reuse_store and os.path.exists(path + ".built"):
        print("synthetic store: reusing", path, flush=True)
        return path
    with contextlib.suppress(FileNotFoundError):
        os.remove(path + ".built")
    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    dim = 1024 if args.size != "tiny" else 64
    rng = np.random.default_rng(0)
    store = FaissStore(dim, path, embedder={"model": emb, "dimension": dim}, expected_size=args.n)
    sample = rng.standard_normal((min(args.n, 100_000), dim), dtype=np.float32)
    store.train(sample / np.linalg.norm(sample, axis=1, keepdims=True), expected_size=args.n)
    docs = seed_docs(args.n)
    for start in range(0, args.n, 50_000):
        v = rng.standard_normal((min(50_000, args.n - start), dim), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        part = docs[start : start + len(v)]
        store.add(part, v, ids=[f"d{start + i}" for i in range(len(v))])
    store.save(path)
    open(path + ".built", "w").close()
    result["synthetic_store"] = {"n": len(store), "index": store.index_kind,
                                 "build_s": round(time.perf_counter() - t0, 1)}
    print("synthetic store:", result["synthetic_store"], flush=True)
    return path


def index_step(args: argparse.Namespace, result: dict, corpus: str, store: str, emb: str) -> int:
    """``qwen3-rag index`` of the corpus, timed as a subprocess, with its RSS sampled."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.update(dict(kv.split("=", 1) for kv in args.index_env))
    if args.tuned_from and os.path.exists(args.tuned_from):
        from qwen3_rag.config import write_recommendation

        rec = json.load(open(args.tuned_from))["recommendation"]
        cfg = write_recommendation(os.path.join(args.workdir, "tuned.toml"), rec)
        env["QWEN3_RAG_CONFIG"] = str(cfg)
        result["tuned"] = rec.get("embed")
        print("tuned config:", open(cfg).read(), flush=True)
    cmd = [
        sys.executable,
        "-m",
        "qwen3_rag",
        "--verbose",  # the pool's start-up breakdown goes to index.log
        "index",
        corpus,
        "--store",
        store,
        "--model",
        emb,
        "--backend",
        args.backend,
        "--no-progress",
    ]
    shutil.rmtree(store, ignore_errors=True)
    print("$", " ".join(cmd), flush=True)
    samples: list[tuple[float, ...]] = []
    stop = threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=open(os.path.join(args.out, "index.log"), "w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    staged = os.path.join(store, STAGED_VECTORS)
    th = threading.Thread(target=rss_sampler, args=(proc.pid, samples, stop, staged), daemon=True)
    th.start()
    try:
        rc = proc.wait(timeout=args.index_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the command and its pool workers
        rc = proc.wait()
        print(f"index run stopped after {args.index_timeout} s", flush=True)
    except BaseException:  # our own SIGTERM (a `timeout` around this script) or Ctrl-C
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    stop.set()
    result["index_seconds"] = round(time.perf_counter() - t0, 1)
    result["index_rc"] = rc
    result["index_docs_per_s"] = round(args.n / result["index_seconds"], 1)
    result["rss_gib_samples"] = samples
    result["rss_gib_peak"] = max((s[1] for s in samples), default=None)
    # (seconds since the start, vectors staged): the embedding's pace, every ~10 s
    result["staged_vectors"] = [(s[0], s[2]) for s in samples[::5] if s[2] >= 0]
    log = open(os.path.join(args.out, "index.log")).read()
    result["index_log_tail"] = [line for line in log.splitlines() if not line.startswith("[")][-14:]
    print(json.dumps({k: v for k, v in result.items() if k != "rss_gib_samples"}), flush=True)
    if rc != 0:
        print(open(os.path.join(args.out, "index.log")).read()[-3000:])
        return 1
    return 0


def serve_step(args: argparse.Namespace, result: dict, store: str, emb: str, rr: str) -> int:
    """``qwen3-rag serve`` over the store; latency at concurrency 1 and throughput at N."""
    cmd = [
        sys.executable,
        "-m",
        "qwen3_rag",
        "serve",
        "--store",
        store,
        "--model",
        emb,
        "--reranker-model",
        rr,
        "--backend",
        args.backend,
        "--port",
        str(args.port),
        "--log-level",
        args.serve_log_level,
    ]
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    srv = subprocess.Popen(
        cmd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **dict(kv.split("=", 1) for kv in args.serve_env)},
        stdout=open(os.path.join(args.out, f"serve{args.tag}.log"), "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the engine cores it spawns go with it
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        while True:
            if srv.poll() is not None:
                print(open(os.path.join(args.out, f"serve{args.tag}.log")).read()[-3000:])
                return 1
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    result["health"] = json.loads(r.read())
                break
            except OSError:
                time.sleep(1)
        result["serve_startup_s"] = round(time.perf_counter() - t0, 1)
        queries = [f"latest research on {TOPICS[i % len(TOPICS)]} number {i}" for i in range(args.queries)]
        body = lambda q: {"query": q, "top_k": 10, "rerank": 20, "preview_chars": 200}  # noqa: E731
        for q in queries[:20]:  # warm-up
            post(base + "/search", body(q))
        lat, stages = [], []
        for q in queries:
            ms, data = post(base + "/search", body(q))
            lat.append(ms)
            stages.append(data.get("timings_ms", {}))
        result["c1"] = {
            "p50_ms": round(pct(lat, 50), 2),
            "p90_ms": round(pct(lat, 90), 2),
            "p99_ms": round(pct(lat, 99), 2),
            "mean_ms": round(statistics.mean(lat), 2),
            "stage_means_ms": {
                k: round(statistics.mean(s.get(k, 0) for s in stages), 2)
                for k in (stages[0] if stages else {})
            },
        }
        n_conc = args.queries * 2
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as ex:
            lat32 = [
                ms
                for ms, _ in ex.map(
                    lambda q: post(base + "/search", body(q)),
                    (queries[i % len(queries)] for i in range(n_conc)),
                )
            ]
        wall = time.perf_counter() - t0
        result[f"c{args.concurrency}"] = {
            "requests": n_conc,
            "qps": round(n_conc / wall, 1),
            "p50_ms": round(pct(lat32, 50), 2),
            "p99_ms": round(pct(lat32, 99), 2),
        }
    finally:
        stop_group(srv, result, args.out)
    return 0


def stop_group(proc: subprocess.Popen, result: dict, out: str) -> None:
    """SIGTERM the server, wait for a clean exit, then SIGKILL whatever is left of its process group.

    Still running after 15 s: ``py-spy dump`` of it and its children goes to ``out/stacks-serve-stop.txt``.

    A vLLM engine core spawned by the server outlives it when the server does not shut its
    engines down (seen in session 5: a 28 GiB ``VLLM::EngineCore`` after the run).
    """
    t0 = time.perf_counter()
    proc.terminate()
    try:
        result["serve_exit"] = proc.wait(15)
    except subprocess.TimeoutExpired:  # slow to stop (session 8): where its threads wait
        dump_stacks(proc.pid, out, "serve-stop")
        try:
            result["serve_exit"] = proc.wait(max(1.0, 60 - (time.perf_counter() - t0)))
        except subprocess.TimeoutExpired:
            result["serve_exit"] = "killed after 60 s"
    result["serve_stop_s"] = round(time.perf_counter() - t0, 1)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
        result["serve_group_killed"] = True  # something of the group was left (perhaps only zombies)
    except ProcessLookupError:
        result["serve_group_killed"] = False
    proc.wait()


if __name__ == "__main__":
    sys.exit(main())
