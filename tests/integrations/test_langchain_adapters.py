"""LangChain adapters: Qwen3Embeddings and Qwen3Rerank on the tiny checkpoints (hf backend)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_qwen3_rag import Qwen3Embeddings, Qwen3Rerank
from pydantic import ValidationError

from qwen3_rag import Qwen3Embedder, Qwen3Reranker

DOCS = [
    "Paris is the capital and largest city of France.",
    "Bananas are rich in potassium.",
    "The Eiffel Tower is in Paris.",
    "BM25 is a bag-of-words ranking function.",
    "Mount Everest is the highest mountain above sea level.",
    "France borders Spain, Belgium and Germany.",
]
QUERY = "What is the capital of France?"


@pytest.fixture(scope="module")
def embeddings(tiny_embedding: str) -> Qwen3Embeddings:
    return Qwen3Embeddings(model=tiny_embedding, backend="hf")


@pytest.fixture(scope="module")
def core_scores(tiny_reranker: str) -> np.ndarray:
    return Qwen3Reranker(tiny_reranker, backend="hf").score(QUERY, DOCS)


def test_embeddings_match_core_and_instruction_is_on_queries_only(embeddings, tiny_embedding):
    core = Qwen3Embedder(tiny_embedding, backend="hf")
    docs = np.array(embeddings.embed_documents(DOCS))
    np.testing.assert_allclose(docs, core.embed_documents(DOCS), atol=1e-6)
    query = np.array(embeddings.embed_query(QUERY))
    np.testing.assert_allclose(query, core.embed_queries([QUERY])[0], atol=1e-6)
    same_text_as_doc = np.array(embeddings.embed_documents([QUERY])[0])
    assert not np.allclose(query, same_text_as_doc, atol=1e-3)
    other = Qwen3Embeddings(model=tiny_embedding, backend="hf", query_instruction="Find code")
    assert not np.allclose(other.embed_query(QUERY), query, atol=1e-3)
    expected = core.embed_queries([QUERY], "Find code")[0]
    np.testing.assert_allclose(other.embed_query(QUERY), expected, atol=1e-6)


async def test_async_embeddings_equal_sync(embeddings):
    docs = await embeddings.aembed_documents(DOCS)
    np.testing.assert_allclose(docs, embeddings.embed_documents(DOCS), atol=1e-6)
    np.testing.assert_allclose(await embeddings.aembed_query(QUERY), embeddings.embed_query(QUERY), atol=1e-6)


def test_embeddings_dimensions_and_bad_input(tiny_embedding):
    small = Qwen3Embeddings(model=tiny_embedding, backend="hf", dimensions=32)
    vec = np.array(small.embed_query(QUERY))
    assert vec.shape == (32,)
    assert abs(float(vec @ vec) - 1.0) < 1e-5
    with pytest.raises(TypeError, match="query must be a str"):
        small.embed_query(123)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Qwen3Embeddings(model=tiny_embedding, backend="hf", no_such_option=1)
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        Qwen3Embeddings(model="/no/such/qwen3-dir", backend="hf")


def test_misspelt_engine_option_names_the_nearest_one(tiny_embedding):
    with pytest.raises(ValueError, match="unknown engine option 'gpu_memory_utilisation'; "
                                         "did you mean 'gpu_memory_utilization'"):
        Qwen3Embeddings(model=tiny_embedding, backend="hf", engine_kwargs={"gpu_memory_utilisation": 0.3})
    emb = Qwen3Embeddings(model=tiny_embedding, backend="hf", engine_kwargs={"max_batch_size": 4})
    assert emb.embedder.options.engine.max_batch_size == 4


def _docs() -> list[Document]:
    return [Document(page_content=t, metadata={"n": i}, id=str(i)) for i, t in enumerate(DOCS)]


def test_rerank_returns_top_n_best_first_with_core_scores(tiny_reranker, core_scores):
    docs = _docs()
    out = Qwen3Rerank(model=tiny_reranker, backend="hf", top_n=3).compress_documents(docs, QUERY)
    expected = sorted(range(len(DOCS)), key=lambda i: -core_scores[i])[:3]
    assert [d.metadata["n"] for d in out] == expected
    for d in out:
        p = float(core_scores[d.metadata["n"]])
        assert d.metadata["relevance_score"] == pytest.approx(p, abs=1e-6)
        assert d.metadata["confidence"] == pytest.approx(abs(2 * p - 1), abs=1e-6)
        assert d.page_content == DOCS[d.metadata["n"]] and d.id == str(d.metadata["n"])
    assert docs == _docs()  # inputs untouched
    everything = Qwen3Rerank(model=tiny_reranker, backend="hf", top_n=None).compress_documents(docs, QUERY)
    assert len(everything) == len(DOCS)
    assert Qwen3Rerank(model=tiny_reranker, backend="hf").compress_documents([], QUERY) == []


def test_rerank_thresholds(tiny_reranker, core_scores):
    threshold = float(np.median(core_scores))
    rr = Qwen3Rerank(model=tiny_reranker, backend="hf", top_n=None, score_threshold=threshold)
    out = rr.compress_documents(_docs(), QUERY)
    assert len(out) == int((core_scores >= threshold).sum())
    assert all(d.metadata["relevance_score"] >= threshold for d in out)
    confidence = np.abs(2 * core_scores - 1)
    min_conf = float(np.median(confidence))
    rr = Qwen3Rerank(model=tiny_reranker, backend="hf", top_n=None, min_confidence=min_conf)
    out = rr.compress_documents(_docs(), QUERY)
    assert sorted(d.metadata["n"] for d in out) == [i for i in range(len(DOCS)) if confidence[i] >= min_conf]
    for bad in ({"top_n": -1}, {"score_threshold": 1.5}, {"min_confidence": -0.1}):
        with pytest.raises(ValidationError):
            Qwen3Rerank(model=tiny_reranker, backend="hf", **bad)



def test_rerank_selects_like_the_core_ranking(tiny_reranker, core_scores):
    """Thresholds, then top_n, in qwen3_rag.ranking's order: the adapter adds no selection of its own."""
    from qwen3_rag.ranking import select_results

    options = {"top_n": 2, "score_threshold": float(np.min(core_scores)),
               "min_confidence": float(np.median(np.abs(2 * core_scores - 1)))}
    out = Qwen3Rerank(model=tiny_reranker, backend="hf", **options).compress_documents(_docs(), QUERY)
    expected = select_results(core_scores, **options).results
    assert [d.metadata["n"] for d in out] == [r.index for r in expected]

async def test_async_rerank_equals_sync(tiny_reranker):
    rr = Qwen3Rerank(model=tiny_reranker, backend="hf", top_n=4)
    assert await rr.acompress_documents(_docs(), QUERY) == list(rr.compress_documents(_docs(), QUERY))


def test_rerank_inside_contextual_compression_retriever(embeddings, tiny_reranker, core_scores):
    retrievers = pytest.importorskip("langchain_classic.retrievers")
    store = InMemoryVectorStore(embeddings)
    store.add_documents(_docs())
    rerank = Qwen3Rerank(model=tiny_reranker, backend="hf", top_n=2)
    retriever = retrievers.ContextualCompressionRetriever(
        base_compressor=rerank, base_retriever=store.as_retriever(search_kwargs={"k": 4})
    )
    out = retriever.invoke(QUERY)
    candidates = [d.metadata["n"] for d in store.similarity_search(QUERY, k=4)]
    expected = sorted(candidates, key=lambda i: -core_scores[i])[:2]
    assert [d.metadata["n"] for d in out] == expected
    assert [d.metadata["relevance_score"] for d in out] == sorted(
        (d.metadata["relevance_score"] for d in out), reverse=True
    )


def test_embeddings_take_model_name_like_huggingface_embeddings(tiny_embedding):
    emb = Qwen3Embeddings(model_name=tiny_embedding, backend="hf")
    assert emb.model_name == emb.model == emb.embedder.model
    assert emb.embedder is not None and len(emb.embed_query("cats?")) == emb.embedder.dimension
    old = Qwen3Embeddings(model=tiny_embedding, backend="hf")  # the older name still works
    assert old.model_name == emb.model_name
    with pytest.raises(ValueError, match="disagree"):
        Qwen3Embeddings(model_name=tiny_embedding, model="/other/model", backend="hf")
