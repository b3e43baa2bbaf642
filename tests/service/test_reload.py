"""A running service serves the newest version of its store: a version saved by a
``qwen3-rag index`` process is noticed, loaded without holding requests up, and swapped in
between requests; /health names the version served; a damaged version is not served."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time

import httpx
import pytest
from indexing_support import SRC, index_command, write_jsonl

from qwen3_rag import FaissStore
from qwen3_rag.service import create_app
from qwen3_rag.service import reload as reload_module
from qwen3_rag.store.layout import INDEX_FILE, point_to
from qwen3_rag.testing.server import serve_in_thread

pytestmark = pytest.mark.slow  # uvicorn servers and an index subprocess

QUERY = "striped animals of the savanna"
FIRST = [("a1", "Paris is the capital of France."), ("a2", "Bananas are rich in potassium.")]
MORE = [{"id": f"z{i}", "text": f"Zebras are striped animals of the savanna, number {i}."} for i in range(5)]


def saved_store(embedder, path):
    s = FaissStore(embedder.dimension, embedder=embedder)
    s.add([t for _, t in FIRST], embedder.embed_documents([t for _, t in FIRST]), ids=[i for i, _ in FIRST])
    return FaissStore.load(s.save(path), embedder)


def served(client) -> tuple[str, set[str]]:
    version = client.get("/health").json()["index"]["version"]
    ids = {h["id"] for h in client.post("/search", json={"query": QUERY, "top_k": 20}).json()["results"]}
    return version, ids


def wait_for(client, version: str, timeout: float = 60.0) -> set[str]:
    deadline = time.monotonic() + timeout
    while True:
        got, ids = served(client)
        if got == version:
            return ids
        assert time.monotonic() < deadline, f"still serving {got}, not {version}"
        time.sleep(0.1)


def test_a_version_saved_by_index_is_served_and_a_damaged_one_is_not(embedder, tiny_embedding, tmp_path):
    root = tmp_path / "store"
    store = saved_store(embedder, root)
    with serve_in_thread(create_app(embedder, None, store, store_poll_s=0.1)) as base, \
            httpx.Client(base_url=base, timeout=60) as c:
        assert served(c) == ("v-000001", {"a1", "a2"})
        corpus = write_jsonl(tmp_path / "more.jsonl", MORE)
        env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(index_command(corpus, root, tiny_embedding), env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert json.loads(proc.stdout)["store_size"] == 7
        assert wait_for(c, "v-000002") == {"a1", "a2", *(r["id"] for r in MORE)}
        assert not (root / "v-000001").exists()  # the old version is gone; the new one is served

        # a version whose index file is damaged: logged, not served; the service keeps v-000002
        shutil.copytree(root / "v-000002", root / "v-000003")
        data = bytearray((root / "v-000003" / INDEX_FILE).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (root / "v-000003" / INDEX_FILE).write_bytes(bytes(data))
        point_to(root, "v-000003")
        time.sleep(1.0)  # ten looks at the pointer
        assert served(c)[0] == "v-000002"
        assert len(served(c)[1]) == 7


def test_loading_a_new_version_does_not_hold_requests_up(embedder, tmp_path, monkeypatch):
    root = tmp_path / "store"
    store = saved_store(embedder, root)
    loading, release = threading.Event(), threading.Event()
    real_load = FaissStore.load

    def slow_load(*args, **kwargs):
        loading.set()
        release.wait(30)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(reload_module.FaissStore, "load", slow_load)
    with serve_in_thread(create_app(embedder, None, store, store_poll_s=0.05)) as base, \
            httpx.Client(base_url=base, timeout=60) as c:
        writer = real_load(root)
        texts = [r["text"] for r in MORE]
        writer.add(texts, embedder.embed_documents(texts), ids=[r["id"] for r in MORE])
        writer.save()
        assert loading.wait(30)
        for _ in range(5):  # answered from the version in service while the new one loads
            start = time.monotonic()
            assert served(c) == ("v-000001", {"a1", "a2"})
            assert time.monotonic() - start < 5
        release.set()
        assert len(wait_for(c, "v-000002")) == 7


def test_a_store_without_a_directory_or_with_polling_off_is_not_watched(embedder, tmp_path):
    s = FaissStore(embedder.dimension, embedder=embedder)
    assert create_app(embedder, None, s).state.store_watcher is None
    store = saved_store(embedder, tmp_path / "store")
    assert create_app(embedder, None, store, store_poll_s=0).state.store_watcher is None
    assert create_app(embedder, None, store).state.store_watcher.interval_s == 2.0
