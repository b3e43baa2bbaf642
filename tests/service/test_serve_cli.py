"""``qwen3-rag serve`` in a real subprocess: serves a saved store, answers, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")
DOCS = ["Paris is the capital of France.", "Bananas are rich in potassium.", "Tokyo is in Japan."]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra: str) -> dict[str, str]:
    e = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", **extra}
    e.pop("QWEN3_RAG_DEBUG", None)
    return e


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory, tiny_embedding):
    from qwen3_rag import FaissStore, Qwen3Embedder

    emb = Qwen3Embedder(tiny_embedding, backend="hf")
    store = FaissStore(emb.dimension, embedder=emb)
    store.add(DOCS, emb.embed_documents(DOCS), ids=["paris", "banana", "tokyo"])
    return str(store.save(tmp_path_factory.mktemp("serve") / "store"))


@pytest.mark.slow
def test_serve_subprocess(store_dir, tiny_reranker):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "qwen3_rag", "serve", "--store", store_dir, "--backend", "hf",
         "--reranker-model", tiny_reranker, "--port", str(port), "--log-level", "info"],
        env=env(QWEN3_RAG_API_KEY="cli-key"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                # the details of /health are behind the key
                health = httpx.get(base + "/health", headers={"Authorization": "Bearer cli-key"},
                                   timeout=2).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the service did not start"
                time.sleep(0.25)
        assert health["index"] == {"size": 3, "dimension": 64, "version": "v-000001"}
        assert health["reranker"]["model"] == tiny_reranker
        body = {"query": "capital of France?", "top_k": 2, "rerank": True}
        assert httpx.post(base + "/search", json=body, timeout=60).status_code == 401  # key from the env
        r = httpx.post(base + "/search", json=body, headers={"Authorization": "Bearer cli-key"}, timeout=60)
        assert r.status_code == 200 and len(r.json()["results"]) == 2 and r.json()["reranked"]
        with socket.socket() as s:  # bound to loopback only
            s.settimeout(1)
            other = socket.gethostbyname(socket.gethostname())
            if other != "127.0.0.1":
                assert s.connect_ex((other, port)) != 0
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then raises the signal again: the process exits through
        # Python (128 + SIGTERM), so its exit hooks close the engines (vLLM engine core processes)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        out = proc.stdout.read() if proc.stdout else ""
        assert "Application shutdown complete" in out and "Traceback" not in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_serve_bad_store_is_a_one_line_error(tmp_path):
    res = subprocess.run([sys.executable, "-m", "qwen3_rag", "serve", "--store", str(tmp_path / "missing"),
                          "--backend", "hf", "--no-reranker"], env=env(), capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stderr.startswith("qwen3-rag: error: ") and "Traceback" not in res.stderr


@pytest.mark.slow
def test_serve_on_a_port_in_use_fails_before_loading_anything(tmp_path):
    """A taken port is said at once (the models would take minutes to load on a GPU first)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "qwen3_rag", "serve", "--port", str(port), "--model",
                              str(tmp_path / "no-such-model"), "--backend", "hf", "--no-reranker"],
                             env=env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, (res.stdout, res.stderr)
    # the port is named, not the model directory that is missing too: nothing was loaded
    want = f"qwen3-rag: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert res.stderr.strip() == want


@pytest.mark.slow
def test_cli_search_with_the_remote_backend_matches_hf(store_dir, tiny_embedding, tiny_reranker):
    """``qwen3-rag search --backend remote`` against a running service gives the hf results."""
    import json

    from qwen3_rag import Qwen3Embedder, Qwen3Reranker
    from qwen3_rag.service import create_app
    from qwen3_rag.testing.server import serve_in_thread

    def search(*extra: str) -> dict:
        res = subprocess.run([sys.executable, "-m", "qwen3_rag", "search", "capital of France?", "--store",
                              store_dir, "-k", "2", "--rerank", "3", "--reranker-model", tiny_reranker,
                              "--json", *extra], env=env(QWEN3_RAG_REMOTE_API_KEY="rk"),
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    app = create_app(Qwen3Embedder(tiny_embedding, backend="hf"), Qwen3Reranker(tiny_reranker, backend="hf"),
                     api_key="rk")
    with serve_in_thread(app) as url:
        remote = search("--backend", "remote", "--base-url", url)
    local = search("--backend", "hf")
    assert [r["id"] for r in remote["results"]] == [r["id"] for r in local["results"]]
    for a, b in zip(remote["results"], local["results"], strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)
        assert a["relevance_score"] == pytest.approx(b["relevance_score"], abs=1e-4)
    res = subprocess.run([sys.executable, "-m", "qwen3_rag", "search", "q", "--store", store_dir,
                          "--backend", "remote"], env=env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "needs --base-url" in res.stderr


def test_serve_engine_defaults_on_vllm_unless_configured(tmp_path, monkeypatch):
    import argparse

    from qwen3_rag.service.cli import FAST_PATH_TOKENS, engine_defaults

    monkeypatch.delenv("QWEN3_RAG_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./qwen3-rag.toml
    vllm, hf = argparse.Namespace(backend="vllm"), argparse.Namespace(backend="hf")
    fast = {"fast_path_tokens": FAST_PATH_TOKENS, "fast_path_compile": True}
    assert engine_defaults(vllm, "reranker") == {"multiprocessing": "off", **fast}
    assert engine_defaults(vllm, "embedding") == fast
    assert engine_defaults(hf, "reranker") == engine_defaults(hf, "embedding") == {}
    (tmp_path / "qwen3-rag.toml").write_text('[reranker]\nmultiprocessing = "spawn"\n'
                                             '[embedding]\nfast_path_tokens = 0\n')
    assert engine_defaults(vllm, "reranker") == fast
    assert engine_defaults(vllm, "embedding") == {}  # no fast path, so nothing to compile
