"""The hostile-request campaign of ``reliability_probe.py``: a ``qwen3-rag serve`` subprocess with
tiny models, an API key and a store, and requests that must never get a 5xx or a wrong answer.

Each request comes with the statuses it may get; valid filtered searches also with the ids an
independent Python evaluation of the filter (``filter_reference.matches``) selects.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from filter_reference import matches, random_filter, random_record

KEY = "probe-key"
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
N_DOCS = 300
BUDGET = 20_000
PATHS = ["/search", "/rerank", "/v1/rerank", "/v1/embeddings", "/classify"]


@dataclass
class Probe:
    """One request and what it may get back."""

    kind: str
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, Any] = field(default_factory=lambda: dict(AUTH))
    expect: tuple[int, ...] = (422,)
    ids: set[str] | None = None  # a valid search: the ids it must return


def hostile_filters(rng: random.Random) -> Any:
    return rng.choice([
        {}, {"k": {}}, {"k": 2**64}, {"k": -(2**70)}, {"k": {"$gt": 10**40}}, {"a\x00b": 1}, {"\ud800": 1},
        {"k": "\udfff"}, {f"k{i}": i for i in range(1000)}, {"k": {"$in": list(range(5000))}},
        {"k": {"$regex": ".*"}}, {"$nor": [{"k": 1}]}, {"$and": []}, {"$or": {"k": 1}}, {"k": {"$gt": None}},
        {"k": {"$exists": 1}}, {"k": [[1]]}, {"k": {"$eq": {"a": 1}}}, {"k" * 5000: 1}, {"a..b": 1},
        _deep(rng.randrange(9, 60)), {"k": "x" * 10_000}, [1, 2], "lang", 17, {"k": {"$in": "abc"}},
    ])


def _deep(n: int) -> dict:
    flt: dict = {"k": 1}
    for _ in range(n):
        flt = {"$not": flt}
    return flt


def encode(obj: Any) -> bytes:
    """JSON bytes; lone surrogates as escapes, as a hostile client would send them."""
    return json.dumps(obj, ensure_ascii=True).encode()


def make_probes(rng: random.Random, n: int, metas: list[dict]) -> list[Probe]:
    probes: list[Probe] = []
    makers = [_auth_probe, _json_probe, _method_probe, _filter_probe, _valid_filter_probe, _number_probe,
              _type_probe, _budget_probe]
    while len(probes) < n:
        probes.append(rng.choice(makers)(rng, metas))
    return probes


def _auth_probe(rng: random.Random, metas: list[dict]) -> Probe:
    headers = rng.choice([{}, {"Authorization": "Bearer wrong"}, {"Authorization": b"Bearer \xff\xfe"},
                          {"Authorization": "Basic " + KEY}, {"Authorization": f"Bearer {KEY}x"}])
    return Probe("no key", "POST", rng.choice([*PATHS, "/metrics"]), b"{not json" * rng.randrange(100),
                 headers={"Content-Type": "application/json", **headers}, expect=(401,))


def _json_probe(rng: random.Random, metas: list[dict]) -> Probe:
    noise = bytes(rng.randrange(256) for _ in range(300))
    body = rng.choice([b"{", b"[]", b"null", b'{"query": "q",}', noise, b'{"query": NaN}',
                        b'{"query": "\\ud800"}', b'{"input": [' * 5000])
    return Probe("bad json", "POST", rng.choice(PATHS), body)


def _method_probe(rng: random.Random, metas: list[dict]) -> Probe:
    if rng.random() < 0.5:
        return Probe("method", rng.choice(["GET", "PUT", "DELETE", "PATCH", "FOOBAR", "M" * 30]),
                     rng.choice(PATHS), expect=(405, 400))
    path = rng.choice(["/nope", "/search/x", "/" + "a" * 3000, "/%00", "/v2/embeddings", "/../etc/passwd"])
    return Probe("path", "POST", path, b"{}", expect=(404, 400))


def _filter_probe(rng: random.Random, metas: list[dict]) -> Probe:
    return Probe("filter", "POST", "/search", encode({"query": "q", "filter": hostile_filters(rng)}))


def _valid_filter_probe(rng: random.Random, metas: list[dict]) -> Probe:
    flt = random_filter(rng)
    ids = {str(i) for i, m in enumerate(metas) if matches(m, flt)}
    body = {"query": rng.choice(["cats", "stars and rivers", "été"]), "top_k": N_DOCS, "filter": flt}
    return Probe("valid filter", "POST", "/search", encode(body), expect=(200,), ids=ids)


def _number_probe(rng: random.Random, metas: list[dict]) -> Probe:
    path, body = rng.choice([
        ("/search", b'{"query": "q", "top_k": 1000000000000000000000000000000}'),
        ("/search", b'{"query": "q", "rerank": 99999999999999999999}'),
        ("/search", b'{"query": "q", "preview_chars": -1}'),
        ("/search", b'{"query": "q", "score_threshold": 1e400}'),
        ("/search", b'{"query": "q", "min_confidence": -1e-300, "rerank": true}'),
        ("/rerank", b'{"query": "q", "documents": ["a"], "top_n": 0}'),
        ("/rerank", b'{"query": "q", "documents": ["a"], "top_n": 1e30}'),
        ("/v1/embeddings", b'{"input": "a", "dimensions": 100000000000000000000000}'),
        ("/v1/embeddings", b'{"input": [[99999999999999999999999]]}'),
        ("/classify", b'{"input": [[-1, 2]]}'),
    ])
    return Probe("number", "POST", path, body)


def _type_probe(rng: random.Random, metas: list[dict]) -> Probe:
    path, body = rng.choice([
        ("/search", {"query": 123}), ("/search", {"query": ""}), ("/search", {"top_k": 3}),
        ("/rerank", {"query": "q", "documents": "abc"}), ("/rerank", {"query": "q", "documents": []}),
        ("/v1/embeddings", {"input": {}}), ("/v1/embeddings", {"input": [[]]}),
        ("/classify", {"input": "text"}),
        ("/v1/embeddings", {"input": ["a", [1]]}), ("/search", {"query": "q", "rerank": 0}),
    ])
    return Probe("type", "POST", path, encode(body))


def _budget_probe(rng: random.Random, metas: list[dict]) -> Probe:
    path = rng.choice(["/classify", "/v1/embeddings"])
    body = encode({"input": [[1] * 2000] * rng.randrange(11, 30)})
    return Probe("budget", "POST", path, body, expect=(413,))


def send(client: httpx.Client, p: Probe) -> tuple[int, Any]:
    r = client.request(p.method, p.path, content=p.body, headers=p.headers)
    return r.status_code, (r.json() if p.ids is not None and r.status_code == 200 else None)


def oversized(port: int) -> int:
    """A body announced at 64 MiB: the status, read before the body is sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        head = (f"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {64 * 2**20}\r\n\r\n")
        s.sendall(head.encode() + b"[" * 1000)
        return int(s.recv(200).split()[1])


def start_server(args: Any, work: Path, port: int) -> subprocess.Popen:
    from qwen3_rag import FaissStore, Qwen3Embedder

    emb = Qwen3Embedder(args.model, backend="hf")
    rng = random.Random(args.seed)
    metas = [random_record(rng, i) for i in range(N_DOCS)]
    texts = [f"document {i} about {['cats', 'rivers', 'stars'][i % 3]}" for i in range(N_DOCS)]
    store = FaissStore(emb.dimension, embedder=emb, index="flat")
    store.add(texts, emb.embed_documents(texts), ids=[str(i) for i in range(N_DOCS)], metadatas=metas)
    store.save(work / "h-store")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"),
           "QWEN3_RAG_API_KEY": KEY, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "qwen3_rag", "serve", "--store", str(work / "h-store"), "--backend", "hf",
           "--reranker-model", args.reranker, "--port", str(port), "--log-level", "critical",
           "--max-request-tokens", str(BUDGET), "--no-docs"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            return proc
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"serve did not start: {proc.stderr.read().decode()[-1500:]}") from None
            time.sleep(0.25)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hostile_campaign(args: Any, work: Path, counts: Counter) -> None:
    port = free_port()
    proc = start_server(args, work, port)
    rng = random.Random(args.seed)
    metas = [random_record(rng, i) for i in range(N_DOCS)]  # the store's, as start_server made them
    probes = make_probes(random.Random(args.seed + 1), args.requests, metas)
    kinds: Counter = Counter()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client, \
                ThreadPoolExecutor(8) as pool:
            for p, outcome in zip(probes, pool.map(lambda p: _outcome(client, p), probes), strict=True):
                status, ids = outcome
                kinds[p.kind] += 1
                counts["requests"] += 1
                counts["5xx"] += status >= 500
                wrong = (status not in p.expect and status < 500) or (ids is not None and ids != p.ids)
                counts["wrong_answers"] += wrong
                if wrong or status >= 500:
                    print(f"  {p.kind} {p.method} {p.path} {p.body[:120]!r}: {status}", file=sys.stderr)
        for _ in range(3):
            counts["requests"] += 1
            counts["wrong_answers"] += oversized(port) != 413
        counts["server_died"] += proc.poll() is not None
        counts["server_died"] += httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code != 200
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    spread = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    print(f"hostile: {counts['requests']} requests ({spread}, oversized 3)")


def _outcome(client: httpx.Client, p: Probe) -> tuple[int, set[str] | None]:
    try:
        status, body = send(client, p)
    except httpx.HTTPError as e:
        print(f"  {p.kind} {p.path}: {type(e).__name__}", file=sys.stderr)
        return 599, None
    ids = {h["id"] for h in body["results"]} if body is not None else None
    return status, ids
