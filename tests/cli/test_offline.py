"""A hub model that cannot come (hub unreachable, not in the cache) fails at once, in one line."""

from __future__ import annotations

import json
import socket
import time

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
