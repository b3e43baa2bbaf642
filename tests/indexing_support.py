"""Helpers for the indexing tests (a module, not fixtures: the crash tests' subprocesses import it).

``HashEmbedder`` gives deterministic vectors from a hash of the text (no model): fast and
reproducible; ``Dies`` raises on one call. The rest writes corpora and reads stores back.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from qwen3_rag import FaissStore, index_corpus
from qwen3_rag.indexing import STAGED_VECTORS, STAGING

DIM = 16
SRC = str(Path(__file__).resolve().parents[1] / "src")
TESTS = str(Path(__file__).resolve().parent)


class HashEmbedder:
    """Deterministic vectors from a hash of the text (no model): fast and reproducible."""

    tokenizer = None

    def __init__(self, dim: int = DIM, batch_size: int = 8):
        self.dim = dim
        self.batch_size = batch_size
        self.fingerprint = {"model": "hash-embedder", "dimension": dim}
        self.calls = 0

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.stack([np.random.default_rng(zlib.crc32(t.encode())).standard_normal(self.dim)
                        for t in texts]).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class Dies(HashEmbedder):
    """Raises on call ``at`` (a crash in the middle of a run, in-process)."""

    def __init__(self, at: int, **kw):
        super().__init__(**kw)
        self.at = at

    def embed_documents(self, texts):
        if self.calls + 1 == self.at:
            self.calls += 1
            raise RuntimeError("boom")
        return super().embed_documents(texts)


def records(n: int, repeat_every: int = 0) -> list[dict]:
    out = []
    for i in range(n):
        doc_id = f"d{i % repeat_every}" if repeat_every and i % 3 == 0 else f"d{i}"
        out.append({"id": doc_id, "text": f"text number {i} about {['cats', 'rivers', 'stars'][i % 3]}",
                    "n": i})
    return out


def write_jsonl(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def contents(path: Path) -> tuple[list[str], np.ndarray, list[dict], list[str]]:
    store = FaissStore.load(path)
    recs = list(store.iter_records())
    ids = [r.id for r in recs]
    assert store.index.ntotal == len(store) == len(ids)  # no stale vectors left in Faiss
    return ids, store.vectors(ids), [r.metadata for r in recs], [r.text for r in recs]


def assert_same(a: Path, b: Path) -> None:
    ids_a, vecs_a, metas_a, texts_a = contents(a)
    ids_b, vecs_b, metas_b, texts_b = contents(b)
    assert ids_a == ids_b and metas_a == metas_b and texts_a == texts_b
    np.testing.assert_array_equal(vecs_a, vecs_b)


def committed_vectors(store: Path) -> int:
    conn = sqlite3.connect(store / STAGING)
    try:
        return json.loads(conn.execute("SELECT value FROM meta WHERE key = 'vectors'").fetchone()[0])
    finally:
        conn.close()


def run(source, store: Path, embedder=None, **kw):
    """index_corpus with these tests' defaults: 8 documents per batch and per commit."""
    kw = {"batch_size": 8, "commit_every": 8, "show_progress": False, **kw}
    return index_corpus(source, store, embedder or HashEmbedder(), **kw)


def crash_midway(corpus: Path, store: Path, **kw) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        index_corpus(corpus, store, Dies(at=6), batch_size=8, commit_every=8, show_progress=False, **kw)
    assert (store / STAGING).exists() and (store / STAGED_VECTORS).exists()


TOPICS = ["cats", "rivers", "music", "stars", "bread"]


def topic_records(n: int) -> list[dict]:
    """``n`` records ``d0``, ``d1``, ... of one to four sentences about a topic (their metadata)."""
    return [{"id": f"d{i}", "text": f"Document {i} is about {TOPICS[i % 5]}. " * (1 + i % 4),
             "topic": TOPICS[i % 5]} for i in range(n)]


def ids_vectors_metadata(path: Path) -> tuple[list[str], np.ndarray, list[dict]]:
    """A saved store's ids, vectors and metadata, in insertion order."""
    store = FaissStore.load(path)
    recs = list(store.iter_records())
    ids = [r.id for r in recs]
    return ids, store.vectors(ids), [r.metadata for r in recs]


def committed_count(staging: Path) -> int:
    """Records a running job has committed to its staging database (0 before it exists)."""
    try:
        conn = sqlite3.connect(f"file:{staging}?mode=ro", uri=True, timeout=0.5)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'consumed'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
    return json.loads(row[0]) if row else 0


def index_command(corpus: Path, store: Path, model: str) -> list[str]:
    """``qwen3-rag index`` of ``corpus`` into ``store`` as a subprocess command (small commits)."""
    return [sys.executable, "-m", "qwen3_rag", "index", str(corpus), "--store", str(store), "--model", model,
            "--backend", "hf", "--batch-size", "4", "--commit-every", "8", "--no-progress", "--json"]
