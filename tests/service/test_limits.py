"""Input limits: bad or oversized requests answer 422 or 413 (never 500), checked by the one
limits dependency; bodies over the byte limit are refused as they stream in."""

from __future__ import annotations

import httpx
import pytest

from qwen3_rag.service import ServiceLimits
from qwen3_rag.service.limits import WithinLimits, document_limits, limit_errors
from qwen3_rag.service.schemas import (
    LIMITS_KEY,
    EmbeddingRequest,
    RequestBounds,
    RerankRequest,
    SearchRequest,
)

BAD = [
    # (path, json body or raw bytes, expected status)
    ("/rerank", {"documents": ["a"]}, 422),
    ("/rerank", {"query": "", "documents": ["a"]}, 422),
    ("/rerank", {"query": "q", "documents": []}, 422),
    ("/rerank", {"query": "q", "documents": "a"}, 422),
    ("/rerank", {"query": "q", "documents": [1, 2]}, 422),
    ("/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, 422),
    ("/rerank", {"query": "q", "documents": ["a"], "top_n": "many"}, 422),
    ("/rerank", {"query": "q", "documents": ["a"], "min_confidence": 1.5}, 422),
    ("/rerank", b'{"query": "q", "documents": ["a"], "score_threshold": NaN}', 422),
    ("/rerank", {"query": "q", "documents": ["a"] * 5}, 413),
    ("/rerank", {"query": "q", "documents": ["a" * 65]}, 413),
    ("/rerank", {"query": "q" * 65, "documents": ["a"]}, 413),
    ("/rerank", b'{"query": "\\ud800", "documents": ["a"]}', 422),
    ("/rerank", b'{"query": "q", "documents": ["a"', 422),
    ("/rerank", b'["q"]', 422),
    ("/v1/embeddings", {}, 422),
    ("/v1/embeddings", {"input": []}, 422),
    ("/v1/embeddings", {"input": None}, 422),
    ("/v1/embeddings", {"input": [["a"]]}, 422),
    ("/v1/embeddings", {"input": ["a", 1]}, 422),
    ("/v1/embeddings", {"input": [[]]}, 422),
    ("/v1/embeddings", {"input": [[1, -1]]}, 422),
    ("/v1/embeddings", {"input": [[1, 10**9]]}, 422),
    ("/v1/embeddings", {"input": [[True, False]]}, 422),
    ("/v1/embeddings", {"input": [1.5]}, 422),
    ("/v1/embeddings", {"input": "a", "dimensions": 16}, 422),
    ("/v1/embeddings", {"input": "a", "dimensions": 65}, 422),
    ("/v1/embeddings", {"input": "a", "encoding_format": "int8"}, 422),
    ("/v1/embeddings", {"input": [[1, 2]], "instruction": "x"}, 422),
    ("/v1/embeddings", {"input": ["a"] * 5}, 413),
    ("/v1/embeddings", {"input": "a" * 65}, 413),
    ("/v1/embeddings", {"input": [list(range(1, 9000))]}, 413),
    ("/v1/embeddings", b'{"input": "\\udfff"}', 422),
    ("/classify", {"input": "plain text"}, 422),
    ("/classify", {"input": [[1, 2], "x"]}, 422),
    ("/classify", {"input": [[5] * 9000]}, 413),
    ("/search", {"query": "q"}, 404),  # no store loaded in this app
]


@pytest.mark.slow
@pytest.mark.parametrize(("path", "body", "status"), BAD, ids=[f"{p}-{i}" for i, (p, _, _) in enumerate(BAD)])
def test_bad_input(small_url, path, body, status):
    with httpx.Client(base_url=small_url, timeout=60) as c:
        if isinstance(body, bytes):
            r = c.post(path, content=body, headers={"content-type": "application/json"})
        else:
            r = c.post(path, json=body)
    assert r.status_code == status, r.text
    if status == 404:  # a service started without the part it needs says which
        assert "no vector store (start it with --store DIR)" in r.text
    if status != 404:
        detail = r.json()["detail"]
        assert detail and (isinstance(detail, str) or all(d["msg"] for d in detail))


@pytest.mark.slow
def test_too_large_body(small_url):
    big = b'{"input": "' + b"a" * 5000 + b'"}'
    with httpx.Client(base_url=small_url, timeout=60) as c:
        json_type = {"content-type": "application/json"}
        assert c.post("/v1/embeddings", content=big, headers=json_type).status_code == 413

        def chunks():  # no Content-Length: chunked transfer encoding
            for _ in range(10):
                yield b"a" * 1000

        r = c.post("/v1/embeddings", content=chunks(), headers=json_type)
        assert r.status_code == 413
        assert c.get("/v1/embeddings").status_code == 405
        assert c.post("/v1/embeddings", json={"input": "ok"}).status_code == 200  # still serving


BOUNDS = RequestBounds.of(ServiceLimits(max_top_k=20, max_documents=4, max_inputs=4, max_chars=8),
                          dimension=64, min_dimensions=32, embed_tokens=16, embed_vocab=100)


def errors(req) -> list[tuple[list, str]]:
    return [(e["loc"], e["type"]) for e in limit_errors(req, BOUNDS)]


def test_limit_errors_name_every_value_over_its_bound():
    assert errors(RerankRequest(query="q", documents=["a"])) == []
    req = RerankRequest(query="q" * 9, documents=["a", "b" * 9, "c", "d", "e"], instruction="i" * 9)
    assert errors(req) == [(["body", "query"], "string_too_long"), (["body", "documents"], "too_long"),
                           (["body", "documents", 1], "string_too_long"),
                           (["body", "instruction"], "string_too_long")]
    req = SearchRequest(query="q", top_k=21, rerank=5, preview_chars=9)
    assert errors(req) == [(["body", "top_k"], "less_than_equal"), (["body", "rerank"], "less_than_equal"),
                           (["body", "preview_chars"], "less_than_equal")]
    assert errors(SearchRequest(query="q", rerank=True, top_k=20)) == []  # true is not an int over 4
    dims = ["body", "dimensions"]
    assert errors(EmbeddingRequest(input="a", dimensions=16)) == [(dims, "greater_than_equal")]
    assert errors(EmbeddingRequest(input="a", dimensions=65)) == [(dims, "less_than_equal")]


def test_input_limits_use_the_models_sizes():
    assert errors(EmbeddingRequest(input=["a"] * 5)) == [(["body", "input"], "too_large")]
    assert errors(EmbeddingRequest(input="a" * 9)) == [(["body", "input"], "too_large")]
    assert errors(EmbeddingRequest(input=[list(range(17))])) == [(["body", "input"], "too_large")]
    (e,) = limit_errors(EmbeddingRequest(input=[[1, 100]]), BOUNDS)
    assert (e["type"], e["msg"]) == ("invalid_input", "input[0] holds token id 100, outside 0..99")
    assert errors(EmbeddingRequest(input=[[0, 99]])) == []


def test_the_openapi_placeholders_take_the_bounds():
    schema = document_limits(RerankRequest.model_json_schema(), BOUNDS)
    assert LIMITS_KEY not in str(schema)
    props = schema["properties"]
    assert props["documents"]["maxItems"] == 4 and props["documents"]["items"]["maxLength"] == 8
    assert props["query"]["maxLength"] == 8 and props["query"]["minLength"] == 1


def test_every_route_with_a_body_takes_it_through_the_limits_dependency():
    from fastapi.routing import APIRoute

    from qwen3_rag.service.routers import embeddings, health, rerank, search

    routes = [r for m in (embeddings, health, rerank, search) for r in m.router.routes]
    with_body = [r for r in routes if isinstance(r, APIRoute) and r.body_field is not None]
    assert {r.path for r in with_body} == {"/v1/embeddings", "/rerank", "/v1/rerank", "/classify", "/search"}
    for route in with_body:
        checks = [d.call for d in route.dependant.dependencies if isinstance(d.call, WithinLimits)]
        assert len(checks) == 1, route.path
