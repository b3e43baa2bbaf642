"""The request/response models: importable at module level, documented in each app's OpenAPI
schema with that app's bounds; the schema drives a fuzzer that never gets a 500."""

from __future__ import annotations

import pytest

from qwen3_rag.service import create_app
from qwen3_rag.service.schemas import (
    ClassifyRequest,
    ClassifyResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    RerankRequest,
    RerankResponse,
    SearchRequest,
    SearchResponse,
)
from qwen3_rag.testing.server import serve_in_thread

MODELS = [EmbeddingRequest, EmbeddingResponse, RerankRequest, RerankResponse, ClassifyRequest,
          ClassifyResponse, SearchRequest, SearchResponse]


def test_models_are_module_level_and_validate_on_their_own():
    for model in MODELS:
        assert model.__module__ == "qwen3_rag.service.schemas" and "<locals>" not in model.__qualname__
    req = SearchRequest(query="capital?", rerank=8)
    assert (req.top_k, req.rerank, req.filter) == (10, 8, None)
    assert EmbeddingRequest(input=[1, 2, 3]).input.ids == [[1, 2, 3]]


@pytest.fixture(scope="module")
def openapi(embedder, reranker, store, small_limits):
    from fastapi.testclient import TestClient

    with TestClient(create_app(embedder, reranker, store, limits=small_limits)) as c:
        return c.get("/openapi.json").json()


def test_openapi_documents_the_models_and_their_fields(openapi):
    schemas = openapi["components"]["schemas"]
    for model in MODELS:
        assert model.__name__ in schemas, model.__name__
        documented = schemas[model.__name__]
        assert documented["description"]
        for name, field in model.model_fields.items():
            if field.description:
                assert documented["properties"][name]["description"] == field.description, (model, name)
    ref = openapi["paths"]["/rerank"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert ref == {"$ref": "#/components/schemas/RerankRequest"}
    paths = {"/health", "/metrics", "/v1/embeddings", "/rerank", "/v1/rerank", "/classify", "/search"}
    assert set(openapi["paths"]) == paths


def test_v1_rerank_is_documented_as_rerank(openapi):
    alias = openapi["paths"]["/v1/rerank"]["post"]
    assert alias["requestBody"] == openapi["paths"]["/rerank"]["post"]["requestBody"]
    assert alias["responses"]["200"] == openapi["paths"]["/rerank"]["post"]["responses"]["200"]


def test_openapi_shows_the_apps_own_bounds(openapi, small_limits, embedder):
    props = openapi["components"]["schemas"]["RerankRequest"]["properties"]
    assert props["documents"]["maxItems"] == small_limits.max_documents
    assert props["query"]["maxLength"] == small_limits.max_chars
    search = openapi["components"]["schemas"]["SearchRequest"]["properties"]
    assert search["top_k"]["maximum"] == small_limits.max_top_k
    dims = openapi["components"]["schemas"]["EmbeddingRequest"]["properties"]["dimensions"]["anyOf"][0]
    assert dims["maximum"] == embedder.dimension
    assert "x-qwen3-rag-limits" not in str(openapi)


@pytest.mark.slow
def test_openapi_fuzz_no_server_errors(embedder, reranker, store, small_limits):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error

    seen: list[int] = []
    with serve_in_thread(create_app(embedder, reranker, store, limits=small_limits)) as base:
        schema = schemathesis.openapi.from_url(base + "/openapi.json")
        cases = st.one_of(schema.as_strategy(GenerationMode.POSITIVE),
                          schema.as_strategy(GenerationMode.NEGATIVE))

        @given(case=cases)
        @settings(max_examples=200, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            response = case.call_and_validate(base_url=base, checks=[not_a_server_error])
            seen.append(response.status_code)

        fuzz()
    assert len(seen) >= 100 and max(seen) < 500
    assert 200 in seen and any(400 <= s < 500 for s in seen)
