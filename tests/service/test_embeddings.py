"""``POST /v1/embeddings`` against local embeddings: documents, queries, dimensions, token ids."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from qwen3_rag import Qwen3Embedder
from qwen3_rag.service import create_app

DOCS = ["Paris is the capital of France.", "Bananas are rich in potassium.", "The Eiffel Tower is in Paris.",
        "短い日本語の文書。", "x"]
QUERY = "What is the capital of France?"


@pytest.mark.slow
def test_embeddings_match_local(client, embedder, tiny_embedding, cos, vectors):
    docs = vectors(client.post("/v1/embeddings", json={"input": DOCS}))
    assert docs.shape == (len(DOCS), 64)
    assert cos(docs, embedder.embed_documents(DOCS)).min() >= 0.9999

    r = client.post("/v1/embeddings", json={"input": QUERY, "instruction": "Find fruit facts"}).json()
    assert r["usage"]["prompt_tokens"] > 0 and len(r["data"]) == 1
    local_q = embedder.embed_queries([QUERY], instruction="Find fruit facts")[0]
    assert cos(np.asarray(r["data"][0]["embedding"]), local_q) >= 0.9999
    assert cos(np.asarray(r["data"][0]["embedding"]), embedder.embed_documents([QUERY])[0]) < 0.9999

    q = client.post("/v1/embeddings", json={"input": [QUERY], "input_type": "query"}).json()["data"][0]
    assert cos(np.asarray(q["embedding"]), embedder.embed_query(QUERY)) >= 0.9999

    small = Qwen3Embedder(tiny_embedding, backend="hf", dimensions=32).embed_documents(DOCS[:2])
    r = client.post("/v1/embeddings", json={"input": DOCS[:2], "dimensions": 32, "encoding_format": "base64"})
    vecs = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in r.json()["data"]])
    assert vecs.shape == (2, 32) and cos(vecs, small).min() >= 0.9999
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_embeddings_token_ids_are_used_as_given(client, embedder, cos, vectors):
    ids = embedder.formatter.queries([QUERY, "fruit"], "Find fruit facts")
    got = vectors(client.post("/v1/embeddings", json={"input": ids}))
    assert cos(got, embedder.embed_queries([QUERY, "fruit"], instruction="Find fruit facts")).min() >= 0.9999
    one = client.post("/v1/embeddings", json={"input": ids[0]}).json()["data"]
    assert len(one) == 1 and cos(np.asarray(one[0]["embedding"]), got[0]) >= 0.9999


def test_an_instruction_without_room_for_the_query_is_a_422(tiny_embedding):
    """The embedder refuses it (every query would get the same vector); the client is told why."""
    from fastapi.testclient import TestClient

    app = create_app(Qwen3Embedder(tiny_embedding, backend="hf", max_length=16))
    with TestClient(app) as c:
        r = c.post("/v1/embeddings", json={"input": ["a", "b"], "instruction": "word " * 12})
        assert r.status_code == 422, r.text
        assert "instruction takes" in r.text and "max_length=16" in r.text
        ok = c.post("/v1/embeddings", json={"input": ["a"], "instruction": "Find"})
        assert ok.status_code == 200
