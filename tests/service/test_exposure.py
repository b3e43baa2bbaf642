"""What the service shows: ``/health`` without the key, the docs, the key on the command line."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from qwen3_rag.service import create_app
from qwen3_rag.testing.server import serve_in_thread

from .test_serve_cli import env, free_port

pytestmark = pytest.mark.slow  # the tests talk to a uvicorn server or start a subprocess


def test_health_minimal_without_key(embedder, reranker, store, tiny_embedding, tiny_reranker):
    with serve_in_thread(create_app(embedder, reranker, store, api_key="k3y")) as base, \
            httpx.Client(base_url=base, timeout=30) as c:
        anonymous = c.get("/health")
        full = c.get("/health", headers={"Authorization": "Bearer k3y"})
    assert anonymous.status_code == 200 and set(anonymous.json()) == {"status", "service", "version"}
    for path in (tiny_embedding, tiny_reranker, str(store.path)):
        assert path not in anonymous.text
    assert full.json()["embedding"]["model"] == embedder.model and full.json()["index"]["size"] == len(store)


def test_docs_can_be_turned_off(embedder):
    with serve_in_thread(create_app(embedder, docs=False)) as base, httpx.Client(base_url=base) as c:
        assert c.get("/docs").status_code == 404 and c.get("/redoc").status_code == 404
        assert c.get("/openapi.json").status_code == 200  # the schema itself is served locally
    with serve_in_thread(create_app(embedder)) as base, httpx.Client(base_url=base) as c:
        assert c.get("/docs").status_code == 200


def test_api_key_on_command_line_warns_and_non_ascii_is_refused(tiny_embedding):
    """Before any model loads: a warning for a key given as an argument, one line for a bad key."""
    out = subprocess.run(
        [sys.executable, "-m", "qwen3_rag", "serve", "--model", tiny_embedding, "--no-reranker",
         "--backend", "hf", "--port", str(free_port()), "--api-key", "clé"],
        env=env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "QWEN3_RAG_API_KEY" in out.stderr and "ps" in out.stderr
    assert "printable ASCII" in out.stderr and "Traceback" not in out.stderr
