"""Shared fixtures of the distributed tests: records, a tiny embedder, one local Ray for the module.

The Ray tests share one local Ray (2 CPUs, 200 MB object store, no dashboard); tests of the
store build from shards need no Ray.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from qwen3_rag import Qwen3Embedder

SRC = str(Path(__file__).resolve().parents[2] / "src")
TOPICS = ["cats", "rivers", "music", "stars", "bread"]


def _records(n: int, prefix: str = "d") -> list[dict]:
    return [{"id": f"{prefix}{i}", "text": f"Document {i} is about {TOPICS[i % 5]}. " * (1 + i % 4),
             "topic": TOPICS[i % 5], "n": i} for i in range(n)]


def _write_jsonl(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


@pytest.fixture()
def records() -> Callable[..., list[dict]]:
    """``records(n, prefix="d")``: ``n`` records about topics, with ``topic`` and ``n`` metadata."""
    return _records


@pytest.fixture()
def write_jsonl() -> Callable[[Path, list[dict]], Path]:
    """``write_jsonl(path, records)``: one JSON object per line; returns ``path``."""
    return _write_jsonl


@pytest.fixture(scope="module")
def emb(tiny_embedding) -> Qwen3Embedder:
    """The tiny random-weight Qwen3 embedder on transformers."""
    return Qwen3Embedder(tiny_embedding, backend="hf")


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray for the module (started here unless this process is connected already)."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    started = not ray.is_initialized()
    if started:
        # workers import this checkout's qwen3_rag, one thread each (the machine has 2 cores)
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": SRC, "OMP_NUM_THREADS": "1",
                                           "TRANSFORMERS_VERBOSITY": "error"}})
    yield ray
    if started:
        ray.shutdown()
