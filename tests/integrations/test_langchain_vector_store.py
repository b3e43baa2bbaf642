"""LangChain Qwen3FaissVectorStore with Qwen3 embeddings: scores, filters, thresholds, save/load."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document
from langchain_qwen3_rag import Qwen3Embeddings, Qwen3FaissVectorStore, Qwen3Rerank

from qwen3_rag import FaissStore, Qwen3Embedder
from qwen3_rag.store import EmbedderMismatchError

TEXTS = [
    "Paris is the capital of France.",
    "Berlin ist die Hauptstadt Deutschlands.",
    "Madrid es la capital de España.",
    "Rome is the capital of Italy.",
    "Lisboa é a capital de Portugal.",
    "Bananas are rich in potassium.",
]
LANGS = ["en", "de", "es", "en", "pt", "en"]
QUERY = "Which city is the capital of France?"


@pytest.fixture(scope="module")
def embeddings(tiny_embedding: str) -> Qwen3Embeddings:
    return Qwen3Embeddings(model=tiny_embedding, backend="hf")


@pytest.fixture
def store(embeddings) -> Qwen3FaissVectorStore:
    metas = [{"lang": lang, "n": i} for i, lang in enumerate(LANGS)]
    ids = [f"t{i}" for i in range(6)]
    return Qwen3FaissVectorStore.from_texts(TEXTS, embeddings, metadatas=metas, ids=ids)


@pytest.fixture(scope="module")
def cosines(tiny_embedding) -> np.ndarray:
    core = Qwen3Embedder(tiny_embedding, backend="hf")
    return core.embed_documents(TEXTS) @ core.embed_queries([QUERY])[0]


def test_scores_are_cosines_best_first(store, cosines):
    pairs = store.similarity_search_with_score(QUERY, k=4)
    assert [d.id for d, _ in pairs] == [f"t{i}" for i in np.argsort(-cosines)[:4]]
    np.testing.assert_allclose([s for _, s in pairs], np.sort(cosines)[::-1][:4], atol=1e-5)
    d = pairs[0][0]
    assert d.page_content == TEXTS[d.metadata["n"]] and d.metadata["lang"] == LANGS[d.metadata["n"]]
    assert store.store.fingerprint == store.embeddings.embedder.fingerprint


def test_filters_and_score_threshold(store, cosines):
    english = store.similarity_search(QUERY, k=6, filter={"lang": "en"})
    assert sorted(d.id for d in english) == ["t0", "t3", "t5"]
    got = store.similarity_search(QUERY, k=6, filter={"lang": {"$in": ["de", "pt"]}})
    assert sorted(d.id for d in got) == ["t1", "t4"]
    t = float(np.median(cosines))
    expected = {f"t{i}" for i in range(6) if cosines[i] >= t}
    assert {d.id for d in store.similarity_search(QUERY, k=6, score_threshold=t)} == expected
    plain = store.as_retriever(search_kwargs={"k": 6, "score_threshold": t})
    assert {d.id for d in plain.invoke(QUERY)} == expected
    assert 0 < t < 1  # relevance scores are the cosines clipped to [0, 1]: same threshold scale
    thr = store.as_retriever(search_type="similarity_score_threshold",
                             search_kwargs={"k": 6, "score_threshold": t})
    assert {d.id for d in thr.invoke(QUERY)} == expected
    with pytest.raises(ValueError, match="unknown filter operator"):
        store.similarity_search(QUERY, filter={"lang": {"$regex": "e."}})


def test_langchain_filter_operators_through_search_and_retriever(embeddings):
    metas = [{"lang": lang, "n": i, "src": {"year": 2020 + i % 3}, 'q"k': i % 2}
             for i, lang in enumerate(LANGS)]
    del metas[2]["n"]
    ids = [f"t{i}" for i in range(6)]
    store = Qwen3FaissVectorStore.from_texts(TEXTS, embeddings, metadatas=metas, ids=ids)
    cases = [
        ({"lang": ["de", "pt"]}, lambda m: m["lang"] in ("de", "pt")),  # FAISS's $in shorthand
        ({"$or": [{"lang": "de"}, {"n": {"$gte": 4}}]}, lambda m: m["lang"] == "de" or m.get("n", -1) >= 4),
        ({"$and": [{"lang": {"$ne": "en"}}, {"$not": {"n": 1}}]},
         lambda m: m["lang"] != "en" and m.get("n") != 1),
        ({"n": {"$ne": 3}}, lambda m: m.get("n") != 3),  # a missing key: $ne matches
        ({"n": {"$nin": [0, 3]}}, lambda m: m.get("n") not in (0, 3)),  # and so does $nin
        ({"src.year": {"$lt": 2022}}, lambda m: m["src"]["year"] < 2022),  # a nested key
        ({'q"k': 1}, lambda m: m['q"k'] == 1),
        ({"n": {"$gt": "1"}}, lambda m: False),  # a string never compares with numbers
    ]
    for flt, want in cases:
        expected = sorted(f"t{i}" for i, m in enumerate(metas) if want(m))
        assert sorted(d.id for d in store.similarity_search(QUERY, k=6, filter=flt)) == expected, flt
        retriever = store.as_retriever(search_kwargs={"k": 6, "filter": flt})
        assert sorted(d.id for d in retriever.invoke(QUERY)) == expected, flt
        mmr = store.max_marginal_relevance_search(QUERY, k=2, fetch_k=6, filter=flt)
        assert {d.id for d in mmr} <= set(expected) and len(mmr) == min(2, len(expected))
    for bad in ({"lang": {"$in": "en"}}, {"n": {}}, {"n": 2**64}, {"$or": []}):
        with pytest.raises(ValueError):
            store.similarity_search(QUERY, filter=bad)


async def test_async_search_and_add(store, embeddings):
    sync = store.similarity_search_with_score(QUERY, k=3)
    assert await store.asimilarity_search_with_score(QUERY, k=3) == sync
    assert await store.asimilarity_search(QUERY, k=3) == [d for d, _ in sync]
    ids = await store.aadd_texts(["Athens is the capital of Greece."], [{"lang": "en"}], ids=["t6"])
    assert ids == ["t6"] and store.get_by_ids(["t6"])[0].page_content.startswith("Athens")


def test_mmr_returns_distinct_documents(store):
    docs = store.max_marginal_relevance_search(QUERY, k=3, fetch_k=6)
    assert len(docs) == 3 and len({d.id for d in docs}) == 3
    assert docs[0].id == store.similarity_search(QUERY, k=1)[0].id
    mmr = store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 6})
    assert len(mmr.invoke(QUERY)) == 2


def test_save_local_load_local_without_pickle(store, embeddings, tmp_path, tiny_embedding):
    before = store.similarity_search_with_score(QUERY, k=6)
    store.save_local(tmp_path / "idx")
    assert not [p for p in tmp_path.rglob("*") if p.suffix in (".pkl", ".pickle")]
    loaded = Qwen3FaissVectorStore.load_local(tmp_path / "idx", embeddings)  # no dangerous flag
    after = loaded.similarity_search_with_score(QUERY, k=6)
    assert [(d.id, d.page_content, d.metadata) for d, _ in after] == [
        (d.id, d.page_content, d.metadata) for d, _ in before
    ]
    np.testing.assert_allclose([s for _, s in after], [s for _, s in before], atol=1e-6)
    loaded.delete(["t0"])
    assert "t0" not in {d.id for d in loaded.similarity_search(QUERY, k=6)}
    assert "t0" in {d.id for d in Qwen3FaissVectorStore.load_local(tmp_path / "idx", embeddings)
                    .similarity_search(QUERY, k=6)}  # the saved copy is untouched until saved
    smaller = Qwen3Embeddings(model=tiny_embedding, backend="hf", dimensions=32)
    with pytest.raises(EmbedderMismatchError):
        Qwen3FaissVectorStore.load_local(tmp_path / "idx", smaller)
    with pytest.raises(EmbedderMismatchError):
        Qwen3FaissVectorStore(smaller, FaissStore.load(tmp_path / "idx"))


def test_retriever_then_rerank_in_lcel(store, tiny_reranker):
    runnables = pytest.importorskip("langchain_core.runnables")
    rerank = Qwen3Rerank(model=tiny_reranker, backend="hf", top_n=2)
    retriever = store.as_retriever(search_kwargs={"k": 5})
    chain = runnables.RunnableParallel(docs=retriever, question=runnables.RunnablePassthrough()) | (
        lambda x: rerank.compress_documents(x["docs"], x["question"])
    )
    out = chain.invoke(QUERY)
    assert len(out) == 2 and all(isinstance(d, Document) for d in out)
    assert {d.id for d in out} <= {d.id for d in retriever.invoke(QUERY)}
    assert out[0].metadata["relevance_score"] >= out[1].metadata["relevance_score"]


def test_bad_inputs(embeddings):
    with pytest.raises(TypeError, match="LangChain Embeddings"):
        Qwen3FaissVectorStore("not embeddings")  # type: ignore[arg-type]
    empty = Qwen3FaissVectorStore(embeddings)
    assert empty.similarity_search(QUERY) == [] and len(empty) == 0
    with pytest.raises(TypeError, match="single string"):
        empty.add_texts("oops")
    with pytest.raises(ValueError, match="needs the ids"):
        empty.delete()
    with pytest.raises(TypeError, match="JSON"):
        empty.add_texts(["x"], [{"bad": object()}])


def test_lexical_and_hybrid_search_types(store, embeddings, tiny_embedding):
    """``search_type`` of ``similarity_search`` and of the retriever reaches the core store's modes."""
    core = store.store
    qv = Qwen3Embedder(tiny_embedding, backend="hf").embed_queries(["Lisboa Portugal"])
    lexical = store.similarity_search_with_score("Lisboa Portugal", k=3, search_type="lexical")
    assert [d.id for d, _ in lexical] == ["t4"] and lexical[0][1] > 0  # a BM25 score
    for alpha in (None, 0.25):
        want = core.search(qv, k=4, mode="hybrid", query="Lisboa Portugal", alpha=alpha)[0]
        got = store.similarity_search_with_score("Lisboa Portugal", k=4, search_type="hybrid", alpha=alpha)
        assert [d.id for d, _ in got] == [h.id for h in want] and got[0][0].id == "t4"
        np.testing.assert_allclose([s for _, s in got], [h.score for h in want], rtol=1e-5)
    english = store.similarity_search("Lisboa capital", k=6, filter={"lang": "en"}, search_type="hybrid")
    assert english and all(d.metadata["lang"] == "en" for d in english)

    retriever = store.as_retriever(search_type="hybrid", search_kwargs={"k": 2, "alpha": 0.5})
    assert [d.id for d in retriever.invoke("Lisboa Portugal")] == [h.id for h in core.search(
        qv, k=2, mode="hybrid", query="Lisboa Portugal", alpha=0.5)[0]]
    lexical_retriever = store.as_retriever(search_type="lexical", search_kwargs={"k": 5})
    assert [d.id for d in lexical_retriever.invoke("Bananas")] == ["t5"]
    assert [d.id for d in asyncio.run(lexical_retriever.ainvoke("Bananas"))] == ["t5"]
    hybrid_async = asyncio.run(store.asimilarity_search("Lisboa Portugal", k=4, search_type="hybrid"))
    assert [d.id for d in hybrid_async] == [d.id for d in store.similarity_search("Lisboa Portugal", k=4,
                                                                                   search_type="hybrid")]
    assert [d.id for d in store.as_retriever(search_kwargs={"k": 2}).invoke(QUERY)] == [
        d.id for d in store.similarity_search(QUERY, k=2)]  # the default stays dense
    with pytest.raises(ValueError, match="search_type must be one of"):
        store.similarity_search(QUERY, search_type="sparse")
    with pytest.raises(ValueError, match="alpha weighs"):
        store.similarity_search(QUERY, search_type="similarity", alpha=0.5)
    with pytest.raises(ValueError, match="not allowed"):
        store.as_retriever(search_type="keyword")
