"""``qwen3-rag search --json`` prints the document the service's ``POST /search`` answers: the
same keys, results, counts and flags (a real uvicorn server on loopback, the CLI in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from qwen3_rag import FaissStore, Qwen3Embedder, Qwen3Reranker
from qwen3_rag.service import create_app
from qwen3_rag.testing.server import serve_in_thread

pytestmark = pytest.mark.slow  # a server and a subprocess

SRC = str(Path(__file__).resolve().parents[2] / "src")
DOCS = {"paris": "Paris is the capital of France.", "banana": "Bananas are rich in potassium.",
        "tokyo": "Tokyo is the capital of Japan.", "rome": "Rome is the capital of Italy."}


@pytest.mark.parametrize("rerank", [None, 3])
def test_search_json_is_the_services_search_document(tmp_path, tiny_embedding, tiny_reranker, rerank):
    emb = Qwen3Embedder(tiny_embedding, backend="hf")
    rr = Qwen3Reranker(tiny_reranker, backend="hf")
    store = FaissStore(emb.dimension, embedder=emb)
    store.add(list(DOCS.values()), emb.embed_documents(list(DOCS.values())), ids=list(DOCS),
              metadatas=[{"n": i} for i in range(len(DOCS))])
    path = store.save(tmp_path / "s")
    body = {"query": "capital city?", "top_k": 2, "filter": {"n": {"$gte": 0}},
            **({"rerank": rerank} if rerank else {})}
    with serve_in_thread(create_app(emb, rr, FaissStore.load(path, emb))) as url:
        served = httpx.post(url + "/search", json=body, timeout=60).json()
    args = ["search", "capital city?", "--store", str(path), "-k", "2", "--filter", '{"n": {"$gte": 0}}',
            "--backend", "hf", "--reranker-model", tiny_reranker, "--json", "--full-text",
            *(["--rerank", str(rerank)] if rerank else [])]
    res = subprocess.run([sys.executable, "-m", "qwen3_rag", *args], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": SRC})
    assert res.returncode == 0, res.stderr[-2000:]
    printed = json.loads(res.stdout)
    assert list(printed) == list(served)  # the same keys, in the same order
    assert printed["reranked"] is served["reranked"] is bool(rerank)
    assert (printed["query"], printed["total_found"]) == (served["query"], served["total_found"])
    assert set(printed["timings_ms"]) == {"load", *served["timings_ms"]}
    assert len(printed["results"]) == len(served["results"]) == 2
    for a, b in zip(printed["results"], served["results"], strict=True):
        assert list(a) == list(b)
        assert {k: v for k, v in a.items() if not isinstance(v, float)} == \
               {k: v for k, v in b.items() if not isinstance(v, float)}
        for k, v in a.items():
            if isinstance(v, float):
                assert v == pytest.approx(b[k], abs=1e-4), k
