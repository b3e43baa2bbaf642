"""LlamaIndex Qwen3FaissVectorStore: add/delete/query with MetadataFilters, persist/load, index use."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Document, StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.llms import MockLLM
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)
from llama_index.embeddings.qwen3_rag import Qwen3Embedding
from llama_index.postprocessor.qwen3_rag import Qwen3Rerank
from llama_index.vector_stores.qwen3_rag import Qwen3FaissVectorStore, to_store_filter

from qwen3_rag.store import EmbedderMismatchError

ROWS = [  # text, lang, year, source document
    ("Paris is the capital of France.", "en", 2019, "doc-a"),
    ("Berlin ist die Hauptstadt Deutschlands.", "de", 2020, "doc-a"),
    ("Madrid es la capital de España.", "es", 2021, "doc-b"),
    ("Rome is the capital of Italy.", "en", 2022, "doc-b"),
    ("Lisboa é a capital de Portugal.", "pt", 2023, "doc-c"),
]
QUERY = "Which city is the capital of France?"


@pytest.fixture(scope="module")
def embed_model(tiny_embedding: str) -> Qwen3Embedding:
    return Qwen3Embedding(model_name=tiny_embedding, backend="hf")


@pytest.fixture
def nodes(embed_model) -> list[TextNode]:
    vecs = embed_model.get_text_embedding_batch([r[0] for r in ROWS])
    return [
        TextNode(
            id_=f"n{i}", text=text, metadata={"lang": lang, "year": year}, embedding=vec,
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc)},
        )
        for i, ((text, lang, year, doc), vec) in enumerate(zip(ROWS, vecs, strict=True))
    ]


@pytest.fixture
def store(embed_model, nodes) -> Qwen3FaissVectorStore:
    vs = Qwen3FaissVectorStore(embed_model=embed_model)
    assert vs.add(nodes) == [n.node_id for n in nodes]
    return vs


def _query(embed_model, k=5, **kw) -> VectorStoreQuery:
    return VectorStoreQuery(query_embedding=embed_model.get_query_embedding(QUERY), similarity_top_k=k, **kw)


def _cosines(embed_model, nodes) -> np.ndarray:
    q = np.array(embed_model.get_query_embedding(QUERY))
    return np.array([n.embedding for n in nodes]) @ q


def test_query_orders_by_cosine_and_rebuilds_nodes(store, embed_model, nodes):
    res = store.query(_query(embed_model, k=3))
    cos = _cosines(embed_model, nodes)
    expected = [f"n{i}" for i in np.argsort(-cos)[:3]]
    assert res.ids == expected
    np.testing.assert_allclose(res.similarities, np.sort(cos)[::-1][:3], atol=1e-5)
    first = res.nodes[0]
    i = int(first.node_id[1:])
    assert first.text == ROWS[i][0]
    assert first.metadata == {"lang": ROWS[i][1], "year": ROWS[i][2]}
    assert first.ref_doc_id == ROWS[i][3]


def test_metadata_filters(store, embed_model):
    def ids(*filters, condition=FilterCondition.AND, **kw):
        flt = MetadataFilters(filters=list(filters), condition=condition)
        return sorted(store.query(_query(embed_model, filters=flt), **kw).ids)

    assert ids(MetadataFilter(key="lang", value="en")) == ["n0", "n3"]
    assert ids(MetadataFilter(key="lang", value=["de", "pt"], operator=FilterOperator.IN)) == ["n1", "n4"]
    assert ids(MetadataFilter(key="lang", value=["en"], operator=FilterOperator.NIN)) == ["n1", "n2", "n4"]
    assert ids(
        MetadataFilter(key="year", value=2020, operator=FilterOperator.GTE),
        MetadataFilters(filters=[MetadataFilter(key="year", value=2022, operator=FilterOperator.LT)]),
    ) == ["n1", "n2"]
    assert ids(MetadataFilter(key="lang", value="xx")) == []
    with pytest.raises(ValueError, match="only AND"):
        ids(MetadataFilter(key="lang", value="en"), MetadataFilter(key="lang", value="de"),
            condition=FilterCondition.OR)
    with pytest.raises(ValueError, match=r"'text_match'.*supported: =="):
        ids(MetadataFilter(key="lang", value="e", operator=FilterOperator.TEXT_MATCH))
    assert to_store_filter(MetadataFilters(filters=[MetadataFilter(key="a", value=1)])) == {"a": {"$eq": 1}}


def test_doc_ids_and_score_threshold(store, embed_model, nodes):
    assert sorted(store.query(_query(embed_model, doc_ids=["doc-b"])).ids) == ["n2", "n3"]
    cos = _cosines(embed_model, nodes)
    t = float(np.median(cos))
    res = store.query(_query(embed_model), score_threshold=t)
    assert sorted(res.ids) == sorted(f"n{i}" for i in range(len(ROWS)) if cos[i] >= t)
    strict = Qwen3FaissVectorStore(store.client, score_threshold=t)
    assert strict.query(_query(embed_model)).ids == res.ids
    with pytest.raises(TypeError, match="unknown"):
        store.query(_query(embed_model), no_such_option=1)
    with pytest.raises(NotImplementedError, match="node_ids"):
        store.query(_query(embed_model, node_ids=["n1"]))


def test_delete_by_document_and_nodes(store, embed_model):
    store.delete("doc-a")
    assert sorted(store.query(_query(embed_model)).ids) == ["n2", "n3", "n4"]
    store.delete_nodes(["n3", "missing"])
    assert sorted(store.query(_query(embed_model)).ids) == ["n2", "n4"]
    assert [n.node_id for n in store.get_nodes(["n4", "n3"])] == ["n4"]
    store.clear()
    assert store.query(_query(embed_model)).ids == []
    assert len(store.client) == 0 and store.client.fingerprint["dimension"] == 64


def test_persist_and_load(store, embed_model, tmp_path, tiny_embedding):
    before = store.query(_query(embed_model, k=4))
    store.persist(str(tmp_path / "vs"))
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.pickle"))
    loaded = Qwen3FaissVectorStore.from_persist_path(tmp_path / "vs", embed_model=embed_model)
    after = loaded.query(_query(embed_model, k=4))
    assert after.ids == before.ids
    np.testing.assert_allclose(after.similarities, before.similarities, atol=1e-6)
    smaller = Qwen3Embedding(model_name=tiny_embedding, backend="hf", dimensions=32)
    with pytest.raises(EmbedderMismatchError):
        Qwen3FaissVectorStore.from_persist_path(tmp_path / "vs", embed_model=smaller)


def test_vector_store_index_persist_reload_and_query_engine(embed_model, tiny_reranker, tmp_path):
    docs = [Document(text=r[0], metadata={"lang": r[1]}, doc_id=f"d{i}") for i, r in enumerate(ROWS)]
    vs = Qwen3FaissVectorStore(embed_model=embed_model)
    index = VectorStoreIndex.from_documents(
        docs, storage_context=StorageContext.from_defaults(vector_store=vs), embed_model=embed_model
    )
    assert len(vs.client) == len(ROWS)
    index.storage_context.persist(persist_dir=str(tmp_path))
    reopened = Qwen3FaissVectorStore.from_persist_dir(tmp_path, embed_model=embed_model)
    ctx = StorageContext.from_defaults(vector_store=reopened, persist_dir=str(tmp_path))
    index2 = load_index_from_storage(ctx, embed_model=embed_model)
    got = [n.node.get_content() for n in index2.as_retriever(similarity_top_k=5).retrieve(QUERY)]
    want = [n.node.get_content() for n in index.as_retriever(similarity_top_k=5).retrieve(QUERY)]
    assert got == want and len(got) == 5

    scores = [n.score for n in index2.as_retriever(similarity_top_k=5).retrieve(QUERY)]
    t = float(np.median(scores))
    thresholded = index2.as_retriever(similarity_top_k=5, vector_store_kwargs={"score_threshold": t})
    assert [n.score for n in thresholded.retrieve(QUERY)] == [s for s in scores if s >= t]

    rerank = Qwen3Rerank(model=tiny_reranker, backend="hf", top_n=2)
    engine = index2.as_query_engine(llm=MockLLM(), similarity_top_k=5, node_postprocessors=[rerank])
    response = engine.query(QUERY)
    assert len(response.source_nodes) == 2
    s = [n.score for n in response.source_nodes]
    assert s == sorted(s, reverse=True) and all(0 <= x <= 1 for x in s)
    assert all("relevance_score" in n.node.metadata for n in response.source_nodes)
