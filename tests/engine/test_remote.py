"""backend="remote": against the real service (uvicorn on loopback) and small fake servers."""

from __future__ import annotations

import socket
import time
from typing import Any

import numpy as np
import pytest
from fake_http import embeddings_body, fake_server, fake_vector, vllm_like

from qwen3_rag import Qwen3Embedder, Qwen3Reranker
from qwen3_rag.engine.base import EngineConfig
from qwen3_rag.engine.remote import RemoteEmbeddingEngine, RemoteError, RemoteRerankEngine
from qwen3_rag.service import create_app
from qwen3_rag.testing.server import serve_in_thread

DOCS = ["Paris is the capital of France.", "Bananas are rich in potassium.", "The Eiffel Tower is in Paris.",
        "短い日本語の文書。", "x"]
QUERIES = ["What is the capital of France?", "fruit nutrition"]
EMB_NAME, RR_NAME = "qwen3-tiny-emb", "qwen3-tiny-rr"


@pytest.fixture(scope="module")
def local(tiny_embedding, tiny_reranker):
    return Qwen3Embedder(tiny_embedding, backend="hf"), Qwen3Reranker(tiny_reranker, backend="hf")


@pytest.fixture(scope="module")
def service(local):
    app = create_app(*local, api_key="k3y", embedding_model_name=EMB_NAME, reranker_model_name=RR_NAME)
    with serve_in_thread(app) as url:
        yield url


def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.mark.slow  # starts a server
@pytest.mark.parametrize("server", ["auto", "vllm"])
def test_remote_embedder_equals_local(service, local, tiny_embedding, server):
    emb = Qwen3Embedder(EMB_NAME, backend="remote", base_url=service, api_key="k3y", tokenizer=tiny_embedding,
                        server=server, batch_size=2)
    assert emb.engine.server == ("qwen3-rag" if server == "auto" else "vllm")
    assert emb.dimension == 64
    assert cos(emb.embed_documents(DOCS), local[0].embed_documents(DOCS)).min() >= 0.9999
    got = emb.embed_queries(QUERIES, instruction="Find fruit facts")
    assert cos(got, local[0].embed_queries(QUERIES, instruction="Find fruit facts")).min() >= 0.9999
    assert cos(emb.embed_query(QUERIES[0]), local[0].embed_query(QUERIES[0])) >= 0.9999


@pytest.mark.slow  # starts a server
def test_remote_matryoshka_is_client_side(service, tiny_embedding):
    local32 = Qwen3Embedder(tiny_embedding, backend="hf", dimensions=32)
    remote32 = Qwen3Embedder(EMB_NAME, backend="remote", base_url=service, api_key="k3y",
                             tokenizer=tiny_embedding, dimensions=32)
    assert cos(remote32.embed_documents(DOCS), local32.embed_documents(DOCS)).min() >= 0.9999


@pytest.mark.slow  # starts a server
def test_remote_reranker_equals_local(service, local, tiny_reranker):
    rr = Qwen3Reranker(RR_NAME, backend="remote", base_url=service, api_key="k3y", tokenizer=tiny_reranker)
    assert rr.engine.server == "qwen3-rag"
    expected = local[1].score(QUERIES[0], DOCS)
    assert np.allclose(rr.score(QUERIES[0], DOCS), expected, atol=1e-5)
    best = list(np.argsort(-expected, kind="stable")[:3])
    assert [r.index for r in rr.rerank(QUERIES[0], DOCS, top_n=3)] == best
    assert np.allclose(rr.score(QUERIES[1], DOCS, instruction="Judge fruit"),
                       local[1].score(QUERIES[1], DOCS, instruction="Judge fruit"), atol=1e-5)


@pytest.mark.slow  # starts a server
def test_wrong_api_key_is_a_clear_error_without_retries(service, tiny_embedding):
    import httpx

    # /health shows a caller without the key no model, so the client's first request (the
    # dimension probe, as the embedder is built) is the one that meets the 401
    with pytest.raises(RemoteError, match="HTTP 401: invalid or missing API key") as e:
        Qwen3Embedder(EMB_NAME, backend="remote", base_url=service, api_key="wrong",
                      tokenizer=tiny_embedding).embed_documents(["a"])
    assert e.value.status_code == 401
    metrics = httpx.get(service + "/metrics", headers={"Authorization": "Bearer k3y"}).text
    line = next(x for x in metrics.splitlines()
                if x.startswith("qwen3_rag_requests_total") and '"/v1/embeddings"' in x and '"401"' in x)
    assert line.endswith(" 1.0")


@pytest.mark.slow  # starts a server
def test_service_without_reranker_is_reported(local, tiny_reranker):
    with serve_in_thread(create_app(local[0])) as url, pytest.raises(RemoteError, match="serves no reranker"):
        RemoteRerankEngine(EngineConfig("reranker", RR_NAME, "remote", 8192), {"base_url": url})


# --- fake servers (tests/fake_http.py) ------------------------------------------------------


def engine(kind: str, url: str, **options: Any) -> Any:
    opts = {"base_url": url, "backoff": 0.01, "max_retries": 2, **options}
    cls = RemoteEmbeddingEngine if kind == "embedding" else RemoteRerankEngine
    return cls(EngineConfig(kind, "m", "remote", 8192), opts)


@pytest.mark.slow  # starts a server
def test_vllm_shape_embeddings_sorted_and_normalised():
    with fake_server(vllm_like) as (url, seen):
        e = engine("embedding", url)
        assert e.server == "vllm" and e.dimension == 4  # discovered by one probe request
        out = e.embed([[1, 2, 3], [5], [6, 6]])
    expected = np.asarray([fake_vector(x) for x in ([1, 2, 3], [5], [6, 6])], dtype=np.float32)
    assert np.allclose(out, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)
    assert seen == [("GET", "/health"), ("POST", "/v1/embeddings"), ("POST", "/v1/embeddings")]


@pytest.mark.slow  # starts a server
@pytest.mark.parametrize("failure", ["503", "drop", "slow"])
def test_retries_then_succeeds(failure):
    def handle(method, path, body, n):
        if path == "/v1/embeddings" and body["input"] != ["dimension probe"] and n < 3:
            return {"503": (503, {"error": {"message": "busy"}}), "drop": "drop",
                    "slow": ("sleep", 1.0, 200, embeddings_body(body))}[failure]
        return vllm_like(method, path, body, n)

    with fake_server(handle) as (url, seen):
        e = engine("embedding", url, timeout=0.3, max_retries=3)
        out = e.embed([[1, 2]])
    assert out.shape == (1, 4)
    assert seen.count(("POST", "/v1/embeddings")) == 1 + 3  # the probe, 2 failures, 1 success


@pytest.mark.slow  # starts a server
def test_gives_up_after_max_retries_on_5xx():
    def handle(method, path, body, n):
        return (500, {"error": {"message": "engine crashed"}}) if path == "/classify" else (200, None)

    with fake_server(handle) as (url, seen):
        e = engine("reranker", url, max_retries=2)
        with pytest.raises(RemoteError, match="HTTP 500 after 3 attempts: engine crashed") as err:
            e.score([[1, 2]])
    assert err.value.status_code == 500 and seen.count(("POST", "/classify")) == 3


@pytest.mark.slow  # starts a server
def test_4xx_fails_at_once_with_the_server_message():
    def handle(method, path, body, n):
        if path == "/classify":
            return 400, {"error": {"message": "This model's maximum context length is 8 tokens"}}
        return 200, None

    with fake_server(handle) as (url, seen):
        e = engine("reranker", url)
        with pytest.raises(RemoteError, match="HTTP 400: This model's maximum context length") as err:
            e.score([[1, 2]])
    assert err.value.status_code == 400 and seen.count(("POST", "/classify")) == 1


def test_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    start = time.monotonic()
    with pytest.raises(RemoteError, match="failed after 3 attempt") as err:
        engine("embedding", f"http://127.0.0.1:{port}")
    assert err.value.status_code is None and time.monotonic() - start < 10


@pytest.mark.slow  # starts a server
@pytest.mark.parametrize(("probs", "expected"), [([0.25], 0.25), ([0.6, 0.4], 0.4)])
def test_classify_probabilities(probs, expected):
    def handle(method, path, body, n):
        if path == "/classify":
            data = [{"index": i, "label": None, "probs": probs, "num_classes": len(probs)}
                    for i in range(len(body["input"]))]
            return 200, {"data": data}
        return 200, None

    with fake_server(handle) as (url, _):
        assert np.allclose(engine("reranker", url).score([[1], [2, 3]]), [expected, expected])


@pytest.mark.slow  # starts a server
def test_classify_without_hf_overrides_is_explained():
    def handle(method, path, body, n):
        if path == "/classify":
            return 200, {"data": [{"index": 0, "label": "a", "probs": [0.2, 0.3, 0.5], "num_classes": 3}]}
        return 200, None

    with fake_server(handle) as (url, _), pytest.raises(RemoteError, match="--hf-overrides"):
        engine("reranker", url).score([[1]])


def test_bad_options():
    with pytest.raises(ValueError, match="needs base_url"):
        RemoteEmbeddingEngine(EngineConfig("embedding", "m", "remote", 8192), {})
    with pytest.raises(ValueError, match="http"):
        engine("embedding", "127.0.0.1:8000")
    with pytest.raises(TypeError, match="unknown option"):
        engine("embedding", "http://127.0.0.1:1", gpu_memory_utilization=0.5)
    with pytest.raises(ValueError, match="server must be"):
        engine("embedding", "http://127.0.0.1:1", server="tgi")
