"""Fixtures of the service tests: models on the tiny checkpoints, a saved and reloaded store,
apps served by a real uvicorn on 127.0.0.1 (free port), and helpers to read their answers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest

from qwen3_rag import Qwen3Embedder, Qwen3Reranker
from qwen3_rag.service import ServiceLimits, create_app
from qwen3_rag.testing.server import serve_in_thread

SMALL = ServiceLimits(max_top_k=20, max_documents=4, max_inputs=4, max_chars=64, max_body_bytes=4096)
CORPUS = [
    ("fr-1", "Paris is the capital and most populous city of France. " * 4, {"lang": "en", "year": 2001}),
    ("fr-2", "La tour Eiffel se trouve à Paris.", {"lang": "fr", "year": 1889}),
    ("fruit-1", "Bananas are an excellent source of potassium.", {"lang": "en", "year": 2010}),
    ("fruit-2", "Apples and pears grow in temperate climates.", {"lang": "en", "year": 2015}),
    ("jp-1", "東京は日本の首都です。", {"lang": "ja", "year": 2020}),
    ("misc-1", "The mitochondria is the powerhouse of the cell.", {"lang": "en", "year": 1990}),
]


@pytest.fixture(scope="session")
def embedder(tiny_embedding: str) -> Qwen3Embedder:
    return Qwen3Embedder(tiny_embedding, backend="hf")


@pytest.fixture(scope="session")
def reranker(tiny_reranker: str) -> Qwen3Reranker:
    return Qwen3Reranker(tiny_reranker, backend="hf")


@pytest.fixture(scope="session")
def small_limits() -> ServiceLimits:
    """Limits small enough to exceed in a test."""
    return SMALL


@pytest.fixture(scope="session")
def corpus() -> list[tuple[str, str, dict]]:
    """(id, text, metadata) of the store's documents."""
    return CORPUS


@pytest.fixture(scope="session")
def store(embedder, tmp_path_factory):
    """A FaissStore of :data:`CORPUS`, saved and loaded back."""
    from qwen3_rag.store import FaissStore

    s = FaissStore(embedder.dimension, embedder=embedder)
    texts = [t for _, t, _ in CORPUS]
    s.add(texts, embedder.embed_documents(texts), ids=[i for i, _, _ in CORPUS],
          metadatas=[m for *_, m in CORPUS])
    path = s.save(tmp_path_factory.mktemp("store") / "idx")
    return FaissStore.load(path, embedder)


@pytest.fixture(scope="session")
def url(embedder, reranker) -> Iterator[str]:
    """A service with both models and default limits."""
    with serve_in_thread(create_app(embedder, reranker)) as base:
        yield base


@pytest.fixture(scope="session")
def small_url(embedder, reranker) -> Iterator[str]:
    """A service with both models and :data:`SMALL` limits."""
    with serve_in_thread(create_app(embedder, reranker, limits=SMALL)) as base:
        yield base


@pytest.fixture(scope="session")
def search_url(embedder, reranker, store) -> Iterator[str]:
    """A service with both models and the store."""
    with serve_in_thread(create_app(embedder, reranker, store)) as base:
        yield base


@pytest.fixture()
def client(url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def sample_sum(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample over series matching ``labels``."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            total += float(m.group(2))
    return total


def embedding_vectors(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray([d["embedding"] for d in response.json()["data"]], dtype=np.float32)


@pytest.fixture(scope="session")
def cos() -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Row-wise cosine similarity."""
    return cosine


@pytest.fixture(scope="session")
def metric() -> Callable[..., float]:
    """``metric(text, name, **labels)``: sum of a Prometheus sample over matching series."""
    return sample_sum


@pytest.fixture(scope="session")
def vectors() -> Callable[[httpx.Response], np.ndarray]:
    """The vectors of a 200 ``/v1/embeddings`` answer."""
    return embedding_vectors
