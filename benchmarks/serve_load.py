"""The search service under concurrent load: ``qwen3-rag serve`` against the plain-vLLM anchor.

Starts ``qwen3-rag serve`` over a store of N vectors and drives it, one workload and
concurrency level at a time, for a bounded time each:

* ``search``: ``POST /search {"query", "top_k": 10, "rerank": 20}`` (embed, search, rerank);
* ``embed``: ``POST /v1/embeddings`` with one short query per request;
* ``rerank100``: ``POST /rerank`` of 100 documents (~140 tokens each).

Every answer under load is checked against the answer the same request got alone (ids exactly,
scores within ``--score-tol``, vectors at cosine >= 0.999); a mismatch counts as ``wrong``.
With ``--anchor`` the same rows run against what a user would assemble instead: ``vllm serve``
for the embedding model and for the reranker (their ``/v1/embeddings`` and ``/rerank``), with
Faiss searched by the client itself. One table is printed (and written as JSON to ``--out``)::

    python benchmarks/serve_load.py --n 1000000 --anchor          # a GPU machine, vLLM
    python benchmarks/serve_load.py --backend hf --size tiny --n 2000 --seconds 3   # CPU dry run

Clients are forked processes of threads with keep-alive connections, so the client side is not
what limits a row. Random-weight checkpoints of the real shapes (weights don't change speed).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from gpu_e2e import pct, stop_group, synthetic_store

from qwen3_rag.bench import TOPICS, resolve_model, token_docs
from qwen3_rag.formats import DEFAULT_INSTRUCTION, format_query

RERANKER_OVERRIDES = {"architectures": ["Qwen3ForSequenceClassification"],
                      "classifier_from_token": ["no", "yes"], "is_original_qwen3_reranker": True}
LEVELS = {"search": (1, 8, 32, 128), "embed": (1, 64), "rerank100": (1, 16)}
DISTINCT = 64  # distinct requests per workload, each answered alone first


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="documents in the store")
    ap.add_argument("--size", default="0.6B", help="random checkpoint size (tiny for a CPU dry run)")
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--workdir", default="/tmp/qwen3-rag-bench")
    ap.add_argument("--reuse-store", action="store_true", help="keep a store an earlier run built")
    ap.add_argument("--seconds", type=float, default=15.0, help="load time per row")
    ap.add_argument("--workloads", default="search,embed,rerank100")
    ap.add_argument("--anchor", action="store_true", help="also run the vllm-serve anchor")
    ap.add_argument("--ours", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--score-tol", type=float, default=1e-2, help="bf16 noise allowed on scores")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--serve-env", action="append", default=[], help="KEY=VALUE for qwen3-rag serve")
    ap.add_argument("--out", default="serve-load-out")
    ap.add_argument("--ready-timeout", type=float, default=600.0)
    return ap


# ------------------------------------------------------------------ HTTP
class Conns:
    """One keep-alive connection per base URL, for one client thread."""

    def __init__(self) -> None:
        self.conns: dict[str, http.client.HTTPConnection] = {}

    def post(self, url: str, body: dict[str, Any]) -> Any:
        parts = urlsplit(url)
        base = f"{parts.hostname}:{parts.port}"
        for attempt in range(2):  # a keep-alive connection the server closed is opened again once
            conn = self.conns.get(base) or http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
            self.conns[base] = conn
            try:
                conn.request("POST", parts.path, json.dumps(body), {"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                del self.conns[base]
                if attempt:
                    raise
                continue
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}: {data[:200]!r}")
            return json.loads(data)
        raise AssertionError("unreachable")


def get_json(url: str, timeout: float = 2.0) -> Any:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path)
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


# ------------------------------------------------------------------ workloads
@dataclass
class Target:
    """A system under test: how it answers each workload's i-th request, and its processes."""

    name: str
    ops: dict[str, Callable[[Conns, int], Any]]
    procs: list[subprocess.Popen] = field(default_factory=list)
    ready_s: float | None = None


def requests_of(model: str) -> dict[str, list[Any]]:
    """The distinct requests of each workload (queries; 100-document sets of ~140 tokens)."""
    from qwen3_rag.tokenizer import load_tokenizer

    queries = [f"latest research on {TOPICS[i % len(TOPICS)]} number {i}" for i in range(DISTINCT)]
    docs = token_docs(100 * 4, 140, load_tokenizer(model))
    sets = [docs[(i % 4) * 100:(i % 4 + 1) * 100] for i in range(DISTINCT)]
    return {"queries": queries, "doc_sets": sets}


def ours(base: str, req: dict[str, list[Any]]) -> dict[str, Callable[[Conns, int], Any]]:
    q, sets = req["queries"], req["doc_sets"]

    def search(c: Conns, i: int) -> Any:
        r = c.post(base + "/search", {"query": q[i], "top_k": 10, "rerank": 20, "preview_chars": 0})
        return [(h["id"], h["relevance_score"]) for h in r["results"]]

    def embed(c: Conns, i: int) -> Any:
        return c.post(base + "/v1/embeddings", {"input": q[i]})["data"][0]["embedding"]

    def rerank100(c: Conns, i: int) -> Any:
        r = c.post(base + "/rerank", {"query": q[i], "documents": sets[i]})
        return [s for _, s in sorted((x["index"], x["relevance_score"]) for x in r["results"])]

    return {"search": search, "embed": embed, "rerank100": rerank100}


def anchor(emb_base: str, rr_base: str, store: Any, req: dict[str, list[Any]]) -> dict[str, Callable]:
    """The rows as a user assembles them from two ``vllm serve`` and Faiss in the client."""
    q, sets = req["queries"], req["doc_sets"]

    def vector(c: Conns, text: str) -> np.ndarray:
        v = np.asarray(c.post(emb_base + "/v1/embeddings", {"model": "emb", "input": text})["data"][0]
                       ["embedding"], dtype=np.float32)
        return v / np.linalg.norm(v)

    def search(c: Conns, i: int) -> Any:
        hits = store.search(vector(c, format_query(q[i], DEFAULT_INSTRUCTION)), k=20)[0]
        r = c.post(rr_base + "/rerank", {"model": "rr", "query": q[i], "documents": [h.text for h in hits]})
        best = sorted(r["results"], key=lambda x: -x["relevance_score"])[:10]
        return [(hits[x["index"]].id, x["relevance_score"]) for x in best]

    def embed(c: Conns, i: int) -> Any:
        return vector(c, format_query(q[i], DEFAULT_INSTRUCTION)).tolist()

    def rerank100(c: Conns, i: int) -> Any:
        r = c.post(rr_base + "/rerank", {"model": "rr", "query": q[i], "documents": sets[i]})
        return [s for _, s in sorted((x["index"], x["relevance_score"]) for x in r["results"])]

    return {"search": search, "embed": embed, "rerank100": rerank100}


def same(kind: str, got: Any, want: Any, tol: float) -> bool:
    """Whether an answer under load equals the one alone (ids exactly, scores within ``tol``;
    two results whose scores are within ``tol`` may swap places)."""
    if kind == "embed":
        a, b = np.asarray(got), np.asarray(want)
        return a.shape == b.shape and float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) >= 0.999
    if kind == "rerank100":
        return len(got) == len(want) and all(abs(x - y) <= tol for x, y in zip(got, want, strict=True))
    ref = dict(want)
    if len(got) != len(want) or {i for i, _ in got} != set(ref):
        return False
    for (gid, gs), (wid, _) in zip(got, want, strict=True):
        if abs(gs - ref[gid]) > tol or (gid != wid and abs(ref[gid] - ref[wid]) > 2 * tol):
            return False
    return True


# ------------------------------------------------------------------ load
RUN: dict[str, Any] = {}  # what forked clients read: the target's ops and the reference answers


def client_thread(op: Callable, kind: str, refs: list[Any] | None, start: int, step: int,
                  until: float, count: int | None, tol: float, out: list[Any]) -> None:
    conns, i = Conns(), start
    while (count is None and time.perf_counter() < until) or (count is not None and i < count):
        t0 = time.perf_counter()
        try:
            ans = op(conns, i % DISTINCT)
        except Exception as e:  # counted, not fatal: the row reports errors
            out.append((t0, None, "error", repr(e)[:200]))
        else:
            ms = (time.perf_counter() - t0) * 1000
            ok = refs is None or same(kind, ans, refs[i % DISTINCT], tol)
            out.append((t0, ms, "ok" if ok else "wrong", ans if refs is None else None))
        i += step


def client_process(kind: str, first: int, threads: int, step: int, until: float, count: int | None,
                   tol: float, pipe: Any) -> None:
    op, refs = RUN["ops"][kind], RUN["refs"].get(kind)
    outs: list[list[Any]] = [[] for _ in range(threads)]
    ts = [threading.Thread(target=client_thread, args=(op, kind, refs, first + t, step, until, count, tol,
                                                       outs[t])) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    pipe.send([x for o in outs for x in o])
    pipe.close()


def drive(kind: str, concurrency: int, seconds: float | None, tol: float,
          count: int | None = None) -> list[Any]:
    """Run ``concurrency`` clients (forked processes of threads) for ``seconds``, or ``count``
    requests in all; returns (start, ms, status, answer) per request."""
    procs_n = min(concurrency, 8)
    per = [concurrency // procs_n + (1 if p < concurrency % procs_n else 0) for p in range(procs_n)]
    until = time.perf_counter() + (seconds or 0)
    ctx = mp.get_context("fork")
    running, first = [], 0
    for p in range(procs_n):
        a, b = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=client_process,
                           args=(kind, first, per[p], concurrency, until, count, tol, b))
        proc.start()
        running.append((proc, a))
        first += per[p]
    rows = [x for proc, a in running for x in a.recv()]
    for proc, _ in running:
        proc.join()
    return rows


def row(target: str, kind: str, concurrency: int, rows: list[Any], warm_s: float) -> dict[str, Any]:
    t_first = min(r[0] for r in rows)
    kept = [r for r in rows if r[0] >= t_first + warm_s] or rows
    lat = [r[1] for r in kept if r[1] is not None]
    span = max(r[0] + (r[1] or 0) / 1000 for r in kept) - min(r[0] for r in kept)
    errors = [r[3] for r in kept if r[2] == "error"]
    return {"target": target, "workload": kind, "concurrency": concurrency, "requests": len(kept),
            "per_s": round(len(lat) / span, 1) if span > 0 else None,
            "p50_ms": round(pct(lat, 50), 1) if lat else None,
            "p99_ms": round(pct(lat, 99), 1) if lat else None,
            "wrong": sum(r[2] == "wrong" for r in kept), "errors": len(errors),
            "first_error": errors[0] if errors else None}


def measure(target: Target, kinds: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each workload alone (the references), then under each concurrency level."""
    RUN["ops"], RUN["refs"] = target.ops, {}
    table = []
    for kind in kinds:
        drive(kind, 1, None, args.score_tol, count=8)  # warm-up
        alone = sorted(drive(kind, 1, None, args.score_tol, count=DISTINCT), key=lambda r: r[0])
        bad = [r for r in alone if r[2] != "ok"]
        if bad:
            raise RuntimeError(f"{target.name} {kind} alone: {bad[0][3]}")
        RUN["refs"][kind] = [r[3] for r in alone]  # one client, in order: request i's answer
        for c in LEVELS[kind]:
            r = row(target.name, kind, c, drive(kind, c, args.seconds, args.score_tol), warm_s=2.0)
            print(json.dumps(r), flush=True)
            table.append(r)
    return table


# ------------------------------------------------------------------ servers
def wait_ready(procs: list[subprocess.Popen], check: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until ``check()`` holds (None when a process exits first or time runs out)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if any(p.poll() is not None for p in procs):
            return None
        try:
            if check():
                return round(time.perf_counter() - t0, 1)
        except (OSError, RuntimeError, http.client.HTTPException, KeyError, ValueError):
            pass
        time.sleep(0.5)
    return None


def start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    print("$", " ".join(cmd), flush=True)
    with open(log, "w", encoding="utf-8") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def start_ours(args: argparse.Namespace, store: str, emb: str, rr: str, req: dict) -> Target:
    base = f"http://127.0.0.1:{args.port}"
    cmd = [sys.executable, "-m", "qwen3_rag", "serve", "--store", store, "--model", emb, "--reranker-model",
           rr, "--backend", args.backend, "--port", str(args.port), "--log-level", "warning"]
    proc = start(cmd, Path(args.out) / "serve.log", dict(kv.split("=", 1) for kv in args.serve_env))
    target = Target("qwen3-rag serve", ours(base, req), [proc])

    def answers() -> bool:  # health 200 and a correct-looking search answer
        return get_json(base + "/health")[0] == 200 and len(target.ops["search"](Conns(), 0)) == 10

    target.ready_s = wait_ready([proc], answers, args.ready_timeout)
    return target


def start_anchor(args: argparse.Namespace, store_path: str, emb: str, rr: str, req: dict) -> Target:
    from qwen3_rag import FaissStore

    pe, pr = args.port + 1, args.port + 2
    common = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--runner", "pooling",
              "--gpu-memory-utilization", "0.35"]
    t0 = time.perf_counter()
    procs = [start([*common, "--model", emb, "--served-model-name", "emb", "--port", str(pe)],
                   Path(args.out) / "anchor-emb.log")]
    # one at a time: vLLM sizes its cache from the GPU memory free when it starts
    up = wait_ready(procs, lambda: get_json(f"http://127.0.0.1:{pe}/health")[0] == 200, args.ready_timeout)
    if up is not None:
        procs.append(start([*common, "--model", rr, "--served-model-name", "rr", "--port", str(pr),
                            "--hf-overrides", json.dumps(RERANKER_OVERRIDES)],
                           Path(args.out) / "anchor-rr.log"))
        up = wait_ready(procs, lambda: get_json(f"http://127.0.0.1:{pr}/health")[0] == 200,
                        args.ready_timeout)
    store = FaissStore.load(store_path, verify="size", check_model=False)
    target = Target("anchor: 2 x vllm serve + Faiss in the client",
                    anchor(f"http://127.0.0.1:{pe}", f"http://127.0.0.1:{pr}", store, req), procs)
    target.ready_s = None if up is None else round(time.perf_counter() - t0, 1)
    return target


def run_target(make: Callable[[], Target], kinds: list[str], args: argparse.Namespace,
               result: dict[str, Any]) -> None:
    target = make()
    try:
        result["ready_s"][target.name] = target.ready_s
        if target.ready_s is None:
            print(f"{target.name}: not ready (see the logs in {args.out})", flush=True)
            return
        result["rows"] += measure(target, kinds, args)
    finally:
        for p in target.procs:
            stop_group(p, {})


def print_table(result: dict[str, Any]) -> None:
    print("\n| system | workload | concurrency | req/s | p50 ms | p99 ms | wrong | errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in result["rows"]:
        print(f"| {r['target']} | {r['workload']} | {r['concurrency']} | {r['per_s']} | {r['p50_ms']} | "
              f"{r['p99_ms']} | {r['wrong']} | {r['errors']} |")
    for name, s in result["ready_s"].items():
        print(f"ready: {name}: {s if s is not None else 'never'} s")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.workdir, exist_ok=True)
    emb = resolve_model(f"random:{args.size}", "embedding", args.workdir)
    rr = resolve_model(f"random:{args.size}", "reranker", args.workdir)
    store = synthetic_store(args, {}, emb)
    req = requests_of(emb)
    kinds = [k for k in args.workloads.split(",") if k]
    result: dict[str, Any] = {"n": args.n, "seconds": args.seconds, "ready_s": {}, "rows": []}
    try:
        if args.ours:
            run_target(lambda: start_ours(args, store, emb, rr, req), kinds, args, result)
        if args.anchor:
            run_target(lambda: start_anchor(args, store, emb, rr, req), kinds, args, result)
    finally:
        Path(args.out, "serve-load.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
        print_table(result)
    bad = sum(r["wrong"] + r["errors"] for r in result["rows"])
    return 1 if bad or any(v is None for v in result["ready_s"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
