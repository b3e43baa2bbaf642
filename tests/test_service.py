"""The HTTP service on a real uvicorn (127.0.0.1, free port), driven with httpx."""

from __future__ import annotations

import asyncio
import base64
import re

import httpx
import numpy as np
import pytest

from qwen3_rag import Qwen3Embedder, Qwen3Reranker
from qwen3_rag.service import ServiceLimits, create_app
from qwen3_rag.testing.server import serve_in_thread

DOCS = ["Paris is the capital of France.", "Bananas are rich in potassium.", "The Eiffel Tower is in Paris.",
        "短い日本語の文書。", "x"]
QUERY = "What is the capital of France?"
SMALL = ServiceLimits(max_top_k=20, max_documents=4, max_inputs=4, max_chars=64, max_body_bytes=4096)


@pytest.fixture(scope="module")
def embedder(tiny_embedding):
    return Qwen3Embedder(tiny_embedding, backend="hf")


@pytest.fixture(scope="module")
def reranker(tiny_reranker):
    return Qwen3Reranker(tiny_reranker, backend="hf")


@pytest.fixture(scope="module")
def url(embedder, reranker):
    with serve_in_thread(create_app(embedder, reranker)) as base:
        yield base


@pytest.fixture(scope="module")
def small_url(embedder, reranker):
    with serve_in_thread(create_app(embedder, reranker, limits=SMALL)) as base:
        yield base


@pytest.fixture(scope="module")
def client(url):
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def vectors(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray([d["embedding"] for d in response.json()["data"]], dtype=np.float32)


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample over series matching ``labels``."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            total += float(m.group(2))
    return total


def test_health(client, embedder, reranker):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["service"] == "qwen3-rag"
    assert h["embedding"] == {"model": embedder.model, "dimension": 64, "max_length": embedder.max_length,
                              "backend": "hf"}
    assert h["reranker"]["model"] == reranker.model
    assert h["index"] is None


def test_embeddings_match_local(client, embedder, tiny_embedding):
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


def test_embeddings_token_ids_are_used_as_given(client, embedder):
    ids = embedder.formatter.queries([QUERY, "fruit"], "Find fruit facts")
    got = vectors(client.post("/v1/embeddings", json={"input": ids}))
    assert cos(got, embedder.embed_queries([QUERY, "fruit"], instruction="Find fruit facts")).min() >= 0.9999
    one = client.post("/v1/embeddings", json={"input": ids[0]}).json()["data"]
    assert len(one) == 1 and cos(np.asarray(one[0]["embedding"]), got[0]) >= 0.9999


def test_rerank_matches_local(client, reranker):
    expected = reranker.score(QUERY, DOCS)
    r = client.post("/rerank", json={"query": QUERY, "documents": DOCS, "return_documents": True}).json()
    results = r["results"]
    assert [x["index"] for x in results] == list(np.argsort(-expected, kind="stable"))
    for x in results:
        assert x["relevance_score"] == pytest.approx(float(expected[x["index"]]), abs=1e-5)
        assert x["confidence"] == pytest.approx(abs(2 * expected[x["index"]] - 1), abs=1e-5)
        assert x["document"] == {"text": DOCS[x["index"]]}
    assert r["total_found"] == len(DOCS) and r["processing_time_ms"] > 0

    top = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS, "top_n": 2}).json()["results"]
    assert [x["index"] for x in top] == [x["index"] for x in results[:2]] and top[0]["document"] is None

    instr = reranker.score(QUERY, DOCS, instruction="Judge fruit")
    body = {"query": QUERY, "documents": DOCS, "instruction": "Judge fruit"}
    got = client.post("/rerank", json=body).json()
    assert {x["index"]: x["relevance_score"] for x in got["results"]} == pytest.approx(dict(enumerate(instr)),
                                                                                      abs=1e-5)


def test_rerank_thresholds(client, reranker):
    scores = reranker.score(QUERY, DOCS)
    conf = np.abs(2 * scores - 1)
    cut = float(np.median(scores))
    r = client.post("/rerank", json={"query": QUERY, "documents": DOCS, "score_threshold": cut}).json()
    assert sorted(x["index"] for x in r["results"]) == sorted(np.flatnonzero(scores >= cut).tolist())
    mid = float(np.median(conf))
    body = {"query": QUERY, "documents": DOCS, "min_confidence": mid, "top_n": 1}
    r = client.post("/rerank", json=body).json()
    assert r["total_found"] == int((conf >= mid - 1e-6).sum()) and len(r["results"]) == 1
    assert r["results"][0]["confidence"] >= mid - 1e-6


def test_classify_token_ids(client, reranker):
    ids = reranker.formatter.pairs([(QUERY, d) for d in DOCS], reranker.instruction)
    data = client.post("/classify", json={"input": ids}).json()["data"]
    assert [d["index"] for d in data] == list(range(len(DOCS)))
    assert np.allclose([d["probs"][0] for d in data], reranker.score(QUERY, DOCS), atol=1e-5)


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


def test_concurrent_clients_are_micro_batched(url, client, embedder, reranker):
    texts = [f"document number {i} about topic {i % 7}" for i in range(32)]
    expected = embedder.embed_documents(texts)
    expected_scores = reranker.score(QUERY, texts)
    before = client.get("/metrics").text

    async def run():
        async with httpx.AsyncClient(base_url=url, timeout=120) as ac:
            emb = [ac.post("/v1/embeddings", json={"input": t}) for t in texts]
            rr = [ac.post("/rerank", json={"query": QUERY, "documents": [t]}) for t in texts]
            return await asyncio.gather(*emb, *rr)

    responses = asyncio.run(run())
    assert all(r.status_code == 200 for r in responses)
    got = np.asarray([r.json()["data"][0]["embedding"] for r in responses[:32]])
    assert cos(got, expected).min() >= 0.9999
    scores = np.asarray([r.json()["results"][0]["relevance_score"] for r in responses[32:]])
    assert np.allclose(scores, expected_scores, atol=1e-5)

    after = client.get("/metrics").text
    for engine in ("embedding", "reranker"):
        calls = metric(after, "qwen3_rag_engine_calls_total", engine=engine) - metric(
            before, "qwen3_rag_engine_calls_total", engine=engine)
        served = metric(after, "qwen3_rag_engine_batched_requests_total", engine=engine) - metric(
            before, "qwen3_rag_engine_batched_requests_total", engine=engine)
        assert served == 32
        assert 1 <= calls < 32, f"{engine}: {calls} engine calls for 32 requests"


def test_metrics(client):
    client.post("/v1/embeddings", json={"input": "metrics"})
    text = client.get("/metrics").text
    assert metric(text, "qwen3_rag_requests_total", endpoint="/v1/embeddings", status="200") >= 1
    assert metric(text, "qwen3_rag_stage_duration_seconds_count", stage="embed") >= 1
    assert metric(text, "qwen3_rag_request_duration_seconds_count", endpoint="/v1/embeddings") >= 1


def test_api_key(embedder, reranker):
    with serve_in_thread(create_app(embedder, reranker, api_key="s3cret-key")) as base, \
            httpx.Client(base_url=base, timeout=60) as c:
        body = {"query": "q", "documents": ["a"]}
        assert c.get("/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-key"},
                        {"Authorization": "Bearer s3cret-key-and-more"}, {"Authorization": "Bearer"}):
            r = c.post("/rerank", json=body, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert c.get("/metrics", headers=headers).status_code == 401
        ok = {"Authorization": "Bearer s3cret-key"}
        assert c.post("/rerank", json=body, headers=ok).status_code == 200
        assert c.post("/v1/embeddings", json={"input": "a"}, headers=ok).status_code == 200
        assert c.get("/metrics", headers=ok).status_code == 200


def test_openapi_fuzz_no_server_errors(embedder, reranker, store):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error

    seen: list[int] = []
    with serve_in_thread(create_app(embedder, reranker, store, limits=SMALL)) as base:
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


# --- /search over a real, saved and reloaded FaissStore ------------------------------------

CORPUS = [
    ("fr-1", "Paris is the capital and most populous city of France. " * 4, {"lang": "en", "year": 2001}),
    ("fr-2", "La tour Eiffel se trouve à Paris.", {"lang": "fr", "year": 1889}),
    ("fruit-1", "Bananas are an excellent source of potassium.", {"lang": "en", "year": 2010}),
    ("fruit-2", "Apples and pears grow in temperate climates.", {"lang": "en", "year": 2015}),
    ("jp-1", "東京は日本の首都です。", {"lang": "ja", "year": 2020}),
    ("misc-1", "The mitochondria is the powerhouse of the cell.", {"lang": "en", "year": 1990}),
]


@pytest.fixture(scope="module")
def store(embedder, tmp_path_factory):
    from qwen3_rag.store import FaissStore

    s = FaissStore(embedder.dimension, embedder=embedder)
    texts = [t for _, t, _ in CORPUS]
    s.add(texts, embedder.embed_documents(texts), ids=[i for i, _, _ in CORPUS],
          metadatas=[m for *_, m in CORPUS])
    path = s.save(tmp_path_factory.mktemp("store") / "idx")
    return FaissStore.load(path, embedder)


@pytest.fixture(scope="module")
def search_url(embedder, reranker, store):
    with serve_in_thread(create_app(embedder, reranker, store)) as base:
        yield base


def vector_order(embedder, query, ids=None):
    """(id, cosine) of the corpus for ``query``, best first, computed here with numpy."""
    rows = [c for c in CORPUS if ids is None or c[0] in ids]
    scores = embedder.embed_documents([t for _, t, _ in rows]) @ embedder.embed_query(query)
    return [(rows[i][0], float(scores[i])) for i in np.argsort(-scores, kind="stable")]


def test_search(search_url, embedder):
    with httpx.Client(base_url=search_url, timeout=60) as c:
        h = c.get("/health").json()
        assert h["index"] == {"size": len(CORPUS), "dimension": embedder.dimension}
        r = c.post("/search", json={"query": QUERY, "top_k": 3, "preview_chars": 20}).json()
    expected = vector_order(embedder, QUERY)[:3]
    assert [x["id"] for x in r["results"]] == [i for i, _ in expected]
    assert [x["score"] for x in r["results"]] == pytest.approx([s for _, s in expected], abs=1e-4)
    assert [x["rank"] for x in r["results"]] == [1, 2, 3]
    full = {i: t for i, t, _ in CORPUS}
    for x in r["results"]:
        assert x["text"] == full[x["id"]][:20] and x["text_length"] == len(full[x["id"]])
        assert x["truncated"] == (len(full[x["id"]]) > 20) and x["relevance_score"] is None
        assert x["metadata"] == next(m for i, _, m in CORPUS if i == x["id"])
    assert r["total_found"] == 3 and r["reranked"] is False
    assert set(r["timings_ms"]) == {"embed", "search", "total"} and r["processing_time_ms"] > 0


def test_search_filter_and_threshold(search_url, embedder):
    with httpx.Client(base_url=search_url, timeout=60) as c:
        flt = {"lang": "en", "year": {"$gte": 2001}}
        r = c.post("/search", json={"query": QUERY, "top_k": 10, "filter": flt})
        expected = vector_order(embedder, QUERY, ids={"fr-1", "fruit-1", "fruit-2"})
        assert [x["id"] for x in r.json()["results"]] == [i for i, _ in expected]
        cut = vector_order(embedder, QUERY)[2][1]
        r = c.post("/search", json={"query": QUERY, "top_k": 10, "score_threshold": cut}).json()
        assert [x["id"] for x in r["results"]] == [i for i, s in vector_order(embedder, QUERY) if s >= cut]
        for bad in ({"lang": {"$regex": "e.*"}}, {}, {"lang": {"$in": "en"}}, {"lang": [1, 2]}):
            r = c.post("/search", json={"query": QUERY, "filter": bad})
            assert r.status_code == 422, (bad, r.text)
            assert r.json()["detail"][0]["msg"]


def test_search_rerank(search_url, embedder, reranker):
    candidates = [i for i, _ in vector_order(embedder, QUERY)[:4]]
    texts = {i: t for i, t, _ in CORPUS}
    p = reranker.score(QUERY, [texts[i] for i in candidates])
    best = [candidates[j] for j in np.argsort(-p, kind="stable")]
    with httpx.Client(base_url=search_url, timeout=60) as c:
        r = c.post("/search", json={"query": QUERY, "top_k": 2, "rerank": 4}).json()
        assert r["reranked"] and [x["id"] for x in r["results"]] == best[:2] and r["total_found"] == 4
        for x in r["results"]:
            q = float(p[candidates.index(x["id"])])
            assert x["relevance_score"] == pytest.approx(q, abs=1e-5)
            assert x["confidence"] == pytest.approx(abs(2 * q - 1), abs=1e-5)
        assert set(r["timings_ms"]) == {"embed", "search", "rerank", "total"}

        conf = np.abs(2 * p - 1)
        mid = float(np.median(conf))
        r = c.post("/search", json={"query": QUERY, "top_k": 4, "rerank": 4, "min_confidence": mid}).json()
        assert r["total_found"] == int((conf >= mid).sum())
        assert all(x["confidence"] >= mid for x in r["results"])

        r = c.post("/search", json={"query": QUERY, "top_k": 1, "rerank": True}).json()  # 4 × top_k
        assert [x["id"] for x in r["results"]] == best[:1] and r["total_found"] == 4

        for body in ({"query": QUERY, "min_confidence": 0.5}, {"query": QUERY, "top_k": 0},
                     {"query": QUERY, "top_k": 1001}, {"query": QUERY, "rerank": -1},
                     {"query": QUERY, "rerank": 5000}, {"query": QUERY, "rerank": 0}, {"query": "   "},
                     {"query": QUERY, "preview_chars": -1}):
            assert c.post("/search", json=body).status_code == 422, body


def test_search_without_reranker(embedder, store):
    with serve_in_thread(create_app(embedder, None, store)) as base:
        r = httpx.post(base + "/search", json={"query": QUERY, "rerank": True}, timeout=60)
        assert r.status_code == 422 and "no reranker" in r.text
        assert httpx.post(base + "/rerank", json={"query": "q", "documents": ["a"]}).status_code == 404


def test_concurrent_searches(search_url, embedder, reranker):
    queries = [f"question {i} about {t}" for i, t in enumerate(["France", "fruit", "cells", "Japan"] * 6)]

    async def run():
        async with httpx.AsyncClient(base_url=search_url, timeout=120) as ac:
            return await asyncio.gather(*(ac.post("/search", json={"query": q, "top_k": 2, "rerank": 3})
                                          for q in queries))

    responses = asyncio.run(run())
    texts = {i: t for i, t, _ in CORPUS}
    for q, r in zip(queries, responses, strict=True):
        assert r.status_code == 200
        candidates = [i for i, _ in vector_order(embedder, q)[:3]]
        p = reranker.score(q, [texts[i] for i in candidates])
        best = [candidates[j] for j in np.argsort(-p, kind="stable")[:2]]
        assert [x["id"] for x in r.json()["results"]] == best


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


def test_a_service_without_a_reranker_says_so(embedder):
    from fastapi.testclient import TestClient

    with TestClient(create_app(embedder)) as c:
        for path in ("/rerank", "/v1/rerank", "/classify"):
            r = c.post(path, json={"query": "q", "documents": ["d"]})
            assert r.status_code == 404 and "no reranker loaded" in r.text, (path, r.text)
        assert "/rerank" not in c.get("/openapi.json").json()["paths"]  # not part of its API
    with TestClient(create_app(embedder, api_key="sesame")) as c:  # behind the key like the rest
        assert c.post("/rerank", json={}).status_code == 401
        r = c.post("/rerank", json={}, headers={"Authorization": "Bearer sesame"})
        assert r.status_code == 404 and "no reranker loaded" in r.text


def test_a_store_path_instead_of_a_store_is_a_clear_error(embedder):
    with pytest.raises(TypeError, match=r"store must be a qwen3_rag.FaissStore .*got str 'my_store'"):
        create_app(embedder, store="my_store")
