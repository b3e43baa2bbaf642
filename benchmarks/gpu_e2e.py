"""End to end on a GPU machine: ``qwen3-rag index`` of N short articles, then ``/search`` latency
through ``qwen3-rag serve`` over that store (embed the query, search, rerank 20 candidates).

Random-weight checkpoints of the real shapes (weights don't change speed); everything measured
is a subprocess of this script, the CLI exactly as a user runs it::

    python benchmarks/gpu_e2e.py --n 1000000 --step index --index-env QWEN3_RAG_CONFIG=index.toml
    python benchmarks/gpu_e2e.py --n 1000000 --step serve            # over the store just built
    python benchmarks/gpu_e2e.py --n 1000000 --step serve --synthetic-store

Writes ``OUT/e2e-STEP[-TAG].json`` (and the commands' logs) and prints it. ``benchmarks/run.py
index`` and ``benchmarks/run.py serve`` run this with the settings of docs/performance.md.
A CPU dry run of every step: ``--backend hf --size tiny --n 3000``.
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
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from qwen3_rag.bench import TOPICS, article_docs, descendants, resolve_model

SERVE_STOP_WAIT_S = 60


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="documents (default 1000000)")
    ap.add_argument("--out", default="e2e-out")
    ap.add_argument("--workdir", default="/tmp/qwen3-rag-bench", help="checkpoints, corpus and stores")
    ap.add_argument("--index-env", action="append", default=[], help="KEY=VALUE for the index command")
    ap.add_argument("--tuned-from", help="a bench results.json: index with its recommended embed settings")
    ap.add_argument("--index-timeout", type=float, default=None, help="seconds before indexing is stopped")
    ap.add_argument("--step", choices=["both", "index", "serve"], default="both",
                    help="only the index step, or only the serve step over the store already built")
    ap.add_argument("--synthetic-store", action="store_true",
                    help="serve step: a store of random unit vectors (search cost depends on the index "
                         "size, not on what the vectors mean)")
    ap.add_argument("--reuse-store", action="store_true",
                    help="serve step: keep a synthetic store an earlier run built in --workdir")
    ap.add_argument("--serve-env", action="append", default=[], help="KEY=VALUE for the serve command")
    ap.add_argument("--serve-log-level", default="warning", help="the server's --log-level")
    ap.add_argument("--tag", default="", help="suffix of the result file (e2e-STEP-TAG.json)")
    ap.add_argument("--queries", type=int, default=300, help="queries at concurrency 1")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--size", default="0.6B", help="random checkpoint size (tiny for a CPU dry run)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # a timeout's SIGTERM unwinds through the steps' finally blocks, which stop their subprocesses
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.workdir, exist_ok=True)
    emb = resolve_model(f"random:{args.size}", "embedding", args.workdir)
    rr = resolve_model(f"random:{args.size}", "reranker", args.workdir)
    store = os.path.join(args.workdir, f"store-{args.n}")
    result: dict[str, Any] = {"n": args.n, "index_env": args.index_env, "serve_env": args.serve_env}
    try:
        if args.step != "serve":
            rc = index_step(args, result, write_corpus(args.workdir, args.n), store, emb)
            if rc != 0 or args.step == "index":
                return rc
        if args.synthetic_store:
            store = synthetic_store(args, result, emb)
        return serve_step(args, result, store, emb, rr)
    finally:
        save(args, result)


def write_corpus(workdir: str, n: int) -> str:
    """A JSONL corpus of ``n`` short articles (``qwen3_rag.bench.article_docs``), written once."""
    corpus = os.path.join(workdir, f"articles-{n}.jsonl")
    if not os.path.exists(corpus):
        with open(corpus + ".tmp", "w", encoding="utf-8") as f:
            for i, t in enumerate(article_docs(n)):
                f.write(json.dumps({"id": f"d{i}", "text": t, "topic": TOPICS[i % len(TOPICS)]}) + "\n")
        os.replace(corpus + ".tmp", corpus)
    return corpus


def save(args: argparse.Namespace, result: dict[str, Any]) -> None:
    print(json.dumps({k: v for k, v in result.items() if k != "rss_gib_samples"}, indent=1), flush=True)
    path = os.path.join(args.out, f"e2e-{args.step}{'-' + args.tag if args.tag else ''}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)


def synthetic_store(args: argparse.Namespace, result: dict[str, Any], emb: str) -> str:
    """A store of ``args.n`` short articles with random unit vectors, under ``emb``'s fingerprint."""
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
    docs = article_docs(args.n)
    for start in range(0, args.n, 50_000):
        v = rng.standard_normal((min(50_000, args.n - start), dim), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        store.add(docs[start : start + len(v)], v, ids=[f"d{start + i}" for i in range(len(v))])
    store.save(path)
    Path(path + ".built").touch()
    result["synthetic_store"] = {"n": len(store), "index": store.index_kind,
                                 "build_s": round(time.perf_counter() - t0, 1)}
    print("synthetic store:", result["synthetic_store"], flush=True)
    return path


class RSSSampler(threading.Thread):
    """The summed RSS (GiB) of a process and its descendants, every 2 s, until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        t0 = time.time()
        while not self.done.is_set():
            self.samples.append((round(time.time() - t0, 1), round(self.rss_kib() / 2**20, 2)))
            self.done.wait(2.0)

    def rss_kib(self) -> int:
        total = 0
        for p in [*descendants(self.pid), self.pid]:
            with contextlib.suppress(OSError), open(f"/proc/{p}/status") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return total


def index_env(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, str]:
    """The index command's environment: ``--index-env``, and ``--tuned-from``'s config file."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **dict(kv.split("=", 1) for kv in args.index_env)}
    if args.tuned_from and os.path.exists(args.tuned_from):
        from qwen3_rag.config import write_recommendation

        with open(args.tuned_from, encoding="utf-8") as f:
            rec = json.load(f)["recommendation"]
        cfg = write_recommendation(os.path.join(args.workdir, "tuned.toml"), rec)
        env["QWEN3_RAG_CONFIG"] = str(cfg)
        result["tuned"] = rec.get("embed")
    return env


def index_step(args: argparse.Namespace, result: dict[str, Any], corpus: str, store: str, emb: str) -> int:
    """``qwen3-rag index`` of the corpus, timed as a subprocess, with its RSS sampled."""
    cmd = [sys.executable, "-m", "qwen3_rag", "--verbose", "index", corpus, "--store", store,
           "--model", emb, "--backend", args.backend, "--no-progress"]  # -v: the pool's start-up
    shutil.rmtree(store, ignore_errors=True)
    print("$", " ".join(cmd), flush=True)
    log_path = os.path.join(args.out, f"index{'-' + args.tag if args.tag else ''}.log")
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, env=index_env(args, result), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own process group: the pool's workers too
    sampler = RSSSampler(proc.pid)
    sampler.start()
    try:
        rc = proc.wait(timeout=args.index_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        rc = proc.wait()
        print(f"index run stopped after {args.index_timeout} s", flush=True)
    except BaseException:  # our own SIGTERM (a `timeout` around this script) or Ctrl-C
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    finally:
        sampler.done.set()
    result["index_seconds"] = round(time.perf_counter() - t0, 1)
    result["index_rc"] = rc
    result["index_docs_per_s"] = round(args.n / result["index_seconds"], 1)
    result["rss_gib_samples"] = sampler.samples
    result["rss_gib_peak"] = max((s[1] for s in sampler.samples), default=None)
    log = Path(log_path).read_text(encoding="utf-8")
    result["index_log_tail"] = [line for line in log.splitlines() if not line.startswith("[")][-14:]
    if rc != 0:
        print(log[-3000:])
    return 0 if rc == 0 else 1


def post(url: str, body: dict[str, Any], timeout: float = 60) -> tuple[float, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout) as r:
        data = json.loads(r.read())
    return (time.perf_counter() - t0) * 1000, data


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def search_body(query: str) -> dict[str, Any]:
    return {"query": query, "top_k": 10, "rerank": 20, "preview_chars": 200}


def serve_step(args: argparse.Namespace, result: dict[str, Any], store: str, emb: str, rr: str) -> int:
    """``qwen3-rag serve`` over the store: latency at concurrency 1, then throughput at N."""
    cmd = [sys.executable, "-m", "qwen3_rag", "serve", "--store", store, "--model", emb,
           "--reranker-model", rr, "--backend", args.backend, "--port", str(args.port),
           "--log-level", args.serve_log_level]
    print("$", " ".join(cmd), flush=True)
    log_path = os.path.join(args.out, f"serve{'-' + args.tag if args.tag else ''}.log")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **dict(kv.split("=", 1) for kv in args.serve_env)}
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        srv = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)  # its own process group: its engine cores too
    base = f"http://127.0.0.1:{args.port}"
    try:
        if not wait_healthy(srv, base, result):
            print(Path(log_path).read_text(encoding="utf-8")[-3000:])
            return 1
        result["serve_startup_s"] = round(time.perf_counter() - t0, 1)
        queries = [f"latest research on {TOPICS[i % len(TOPICS)]} number {i}" for i in range(args.queries)]
        result["c1"] = one_at_a_time(base, queries)
        result[f"c{args.concurrency}"] = concurrent(base, queries, args.concurrency)
    finally:
        stop_group(srv, result)
    return 0


def wait_healthy(srv: subprocess.Popen, base: str, result: dict[str, Any]) -> bool:
    """Wait for ``GET /health``; False when the server exits first."""
    while srv.poll() is None:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                result["health"] = json.loads(r.read())
            return True
        except OSError:
            time.sleep(1)
    return False


def one_at_a_time(base: str, queries: list[str]) -> dict[str, Any]:
    """Latency percentiles and mean stage times of the queries sent one by one (after 20 warm-up)."""
    for q in queries[:20]:
        post(base + "/search", search_body(q))
    lat, stages = [], []
    for q in queries:
        ms, data = post(base + "/search", search_body(q))
        lat.append(ms)
        stages.append(data.get("timings_ms", {}))
    return {
        "p50_ms": round(pct(lat, 50), 2), "p90_ms": round(pct(lat, 90), 2), "p99_ms": round(pct(lat, 99), 2),
        "mean_ms": round(statistics.mean(lat), 2),
        "stage_means_ms": {k: round(statistics.mean(s.get(k, 0) for s in stages), 2)
                           for k in (stages[0] if stages else {})},
    }


def concurrent(base: str, queries: list[str], concurrency: int) -> dict[str, Any]:
    """Throughput of twice as many queries sent by ``concurrency`` clients at once."""
    n = len(queries) * 2
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as ex:
        lat = [ms for ms, _ in ex.map(lambda q: post(base + "/search", search_body(q)),
                                      (queries[i % len(queries)] for i in range(n)))]
    wall = time.perf_counter() - t0
    return {"requests": n, "qps": round(n / wall, 1), "p50_ms": round(pct(lat, 50), 2),
            "p99_ms": round(pct(lat, 99), 2)}


def stop_group(proc: subprocess.Popen, result: dict[str, Any]) -> None:
    """SIGTERM the server, wait for a clean exit, then SIGKILL whatever is left of its process group
    (a vLLM engine core the server did not shut down would outlive it)."""
    t0 = time.perf_counter()
    proc.terminate()
    try:
        result["serve_exit"] = proc.wait(SERVE_STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        result["serve_exit"] = f"killed after {SERVE_STOP_WAIT_S} s"
    result["serve_stop_s"] = round(time.perf_counter() - t0, 1)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
        result["serve_group_killed"] = True  # something of the group was left (perhaps only zombies)
    except ProcessLookupError:
        result["serve_group_killed"] = False
    proc.wait()


if __name__ == "__main__":
    sys.exit(main())
