"""A hub model that cannot come (hub unreachable, not in the cache) fails at once, in one line."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from cli.test_cli import assert_user_error, cli

pytestmark = pytest.mark.slow  # the CLI in subprocesses


def closed_port() -> int:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dead_hub(tmp_path):
    """Environment: the hub at a closed loopback port, an empty Hugging Face cache, online mode."""
    return {"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}", "HF_HOME": str(tmp_path / "hf-home"),
            "HF_HUB_OFFLINE": "0", "QWEN3_RAG_RERANKER_MODEL": "", "QWEN3_RAG_EMBEDDING_MODEL": ""}


def test_search_rerank_with_the_default_reranker_fails_at_once(tmp_path, tiny_embedding, dead_hub):
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"id": f"n{i}", "text": f"note {i}"}) + "\n"
                                              for i in range(4)))
    res = cli("index", "c.jsonl", "--store", "s", "--model", tiny_embedding, "--backend", "hf", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    env = {k: v for k, v in dead_hub.items() if v}
    t0 = time.monotonic()
    res = cli("search", "x", "--store", "s", "--rerank", "3", "--backend", "hf", cwd=tmp_path, **env)
    elapsed = time.monotonic() - t0
    assert_user_error(res, "Qwen/Qwen3-Reranker-0.6B", "--reranker-model", "HF_HUB_OFFLINE",
                      "cannot be reached")
    assert elapsed < 10, elapsed


def test_index_with_a_hub_id_fails_at_once(tmp_path, dead_hub):
    (tmp_path / "c.jsonl").write_text(json.dumps({"id": "a", "text": "t"}) + "\n")
    env = {k: v for k, v in dead_hub.items() if v}
    t0 = time.monotonic()
    res = cli("index", "c.jsonl", "--store", "s", "--model", "Qwen/Qwen3-Embedding-0.6B", "--backend", "hf",
              cwd=tmp_path, **env)
    assert_user_error(res, "Qwen/Qwen3-Embedding-0.6B", "--model")
    assert time.monotonic() - t0 < 10


def test_search_and_serve_default_to_the_reranker_the_store_records(tmp_path, tiny_embedding, tiny_reranker,
                                                                     dead_hub):
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"id": f"n{i}", "text": f"note {i}"}) + "\n"
                                              for i in range(4)))
    res = cli("index", "c.jsonl", "--store", "s", "--model", tiny_embedding, "--backend", "hf",
              "--reranker-model", tiny_reranker, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    info = json.loads(cli("info", "--store", "s", "--json", cwd=tmp_path).stdout)
    assert info["extra"]["reranker"] == {"model": tiny_reranker}
    env = {k: v for k, v in dead_hub.items() if v}  # the default hub reranker cannot come
    res = cli("search", "note 2", "--store", "s", "--rerank", "3", "-k", "2", "--backend", "hf", "--json",
              cwd=tmp_path, **env)
    assert res.returncode == 0, res.stderr
    results = json.loads(res.stdout)["results"]
    assert len(results) == 2 and all(r["relevance_score"] is not None for r in results)
    assert serve_health(tmp_path / "s", env)["reranker"]["model"] == tiny_reranker
    # the same corpus again: nothing changed, but a new reranker is recorded (a new version)
    res = cli("index", "c.jsonl", "--store", "s", "--model", tiny_embedding, "--backend", "hf",
              "--reranker-model", "Qwen/Qwen3-Reranker-4B", "--json", cwd=tmp_path)
    assert res.returncode == 0 and json.loads(res.stdout)["unchanged"] == 4, res.stderr
    res = cli("search", "x", "--store", "s", "--rerank", "3", "--backend", "hf", cwd=tmp_path, **env)
    assert_user_error(res, "Qwen/Qwen3-Reranker-4B", "--reranker-model")


def serve_health(store, env: dict[str, str]) -> dict:
    """``qwen3-rag serve --store STORE`` (no --reranker-model) on a loopback port: its /health."""
    import os
    import subprocess
    import sys

    import httpx

    port = closed_port()
    full = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), **env}
    proc = subprocess.Popen([sys.executable, "-m", "qwen3_rag", "serve", "--store", str(store), "--backend",
                             "hf", "--port", str(port)], env=full, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the service did not start"
                time.sleep(0.25)
    finally:
        proc.kill()
        proc.wait()
