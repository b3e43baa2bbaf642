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
    assert ids(MetadataFilter(key="lang", value="en"), MetadataFilter(key="lang", value="de"),
               condition=FilterCondition.OR) == ["n0", "n1", "n3"]
    assert ids(MetadataFilter(key="lang", value="en"), MetadataFilter(key="year", value=2020),
               condition=FilterCondition.NOT) == ["n2", "n4"]
    nested = MetadataFilters(filters=[MetadataFilter(key="year", value=2021, operator=FilterOperator.LTE),
                                      MetadataFilter(key="lang", value="pt")], condition=FilterCondition.OR)
    ne = MetadataFilter(key="lang", value="en", operator=FilterOperator.NE)
    assert ids(ne, nested) == ["n1", "n2", "n4"]
    text = MetadataFilter(key="lang", value="N", operator=FilterOperator.TEXT_MATCH_INSENSITIVE)
    assert ids(text) == ["n0", "n3"]
    with pytest.raises(ValueError, match=r"\$in for 'lang' needs a list"):
        ids(MetadataFilter(key="lang", value="en", operator=FilterOperator.IN))
    assert to_store_filter(MetadataFilters(filters=[MetadataFilter(key="a", value=1)])) == {"a": {"$eq": 1}}


def _flat_nodes(n: int = 60) -> list[TextNode]:
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(n, 8))
    nodes = []
    for i in range(n):
        meta = {"title": ["Alpha beta", "gamma", "Beta", ""][i % 4], "n": i % 7}
        if i % 5:
            meta["tags"] = [["a"], ["a", "b"], [], ["c", "b"]][i % 4]
        if i % 6 == 0:
            del meta["n"]
        nodes.append(TextNode(id_=f"x{i}", text=f"t{i}", metadata=meta, embedding=vecs[i].tolist()))
    return nodes


OPERATOR_VALUES = [
    (FilterOperator.EQ, 3), (FilterOperator.NE, 3), (FilterOperator.GT, 3), (FilterOperator.GTE, 3),
    (FilterOperator.LT, 3), (FilterOperator.LTE, 3),
    (FilterOperator.IN, [1, 2]), (FilterOperator.NIN, [1, 2]),
    (FilterOperator.CONTAINS, "b"), (FilterOperator.ANY, ["c", "a"]), (FilterOperator.ALL, ["b", "a"]),
    (FilterOperator.TEXT_MATCH, "eta"), (FilterOperator.TEXT_MATCH_INSENSITIVE, "BETA"),
    (FilterOperator.IS_EMPTY, None),
]


def test_every_filter_operator_and_condition_matches_llamaindex_simple_vector_store():
    from llama_index.core.vector_stores import SimpleVectorStore

    nodes = _flat_nodes()
    ours, simple = Qwen3FaissVectorStore(index="flat"), SimpleVectorStore()
    ours.add(nodes)
    simple.add(nodes)
    assert {f.value for f in FilterOperator} == {op.value for op, _ in OPERATOR_VALUES}  # every one

    def key(op):
        if op in (FilterOperator.CONTAINS, FilterOperator.ANY, FilterOperator.ALL, FilterOperator.IS_EMPTY):
            return "tags"
        return "title" if op in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE) else "n"

    def both(flt):
        q = VectorStoreQuery(query_embedding=[1.0] * 8, similarity_top_k=len(nodes), filters=flt)
        return sorted(ours.query(q).ids), sorted(simple.query(q).ids)

    checked = 0
    for op, value in OPERATOR_VALUES:
        one = MetadataFilter(key=key(op), value=value, operator=op)
        other = MetadataFilter(key="n", value=4, operator=FilterOperator.GTE)
        for cond in (FilterCondition.AND, FilterCondition.OR, FilterCondition.NOT):
            got, want = both(MetadataFilters(filters=[one, other], condition=cond))
            assert got == want, (op, cond)
            checked += 0 < len(want) < len(nodes)
        got_nodes = [n.node_id for n in ours.get_nodes(filters=MetadataFilters(filters=[one]))]
        assert sorted(got_nodes) == both(MetadataFilters(filters=[one]))[1]
        assert got_nodes == sorted(got_nodes, key=lambda i: int(i[1:]))  # in insertion order
    assert checked > 30


def test_get_and_delete_nodes_by_filters():
    nodes = _flat_nodes()
    vs = Qwen3FaissVectorStore(index="flat")
    vs.add(nodes)
    small = MetadataFilters(filters=[MetadataFilter(key="n", value=2, operator=FilterOperator.LT)])
    want = [n.node_id for n in nodes if n.metadata.get("n", 99) < 2]
    assert [n.node_id for n in vs.get_nodes(filters=small)] == want
    assert [n.node_id for n in vs.get_nodes(["x9", "x7", "x1"], filters=small)] == ["x7", "x1"]
    vs.delete_nodes(["x1", "x2"], filters=small)  # x2 does not match: kept
    assert "x1" not in vs.client and "x2" in vs.client
    vs.delete_nodes(filters=small)
    assert vs.get_nodes(filters=small) == [] and len(vs.client) == len(nodes) - len(want)
    with pytest.raises(ValueError, match="node_ids or filters"):
        vs.get_nodes()


def test_mmr_mode_diversifies_with_llamaindex_mmr(embed_model, nodes):
    from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
    from llama_index.core.vector_stores.types import VectorStoreQueryMode

    vs = Qwen3FaissVectorStore(index="flat")
    near = 0.97 * np.array(nodes[0].embedding) + 0.03 * np.array(nodes[3].embedding)  # a near-duplicate
    twin = TextNode(id_="twin", text="t", metadata={"lang": "en"}, embedding=near.tolist())
    vs.add([*nodes, twin])
    q = VectorStoreQuery(query_embedding=nodes[0].embedding, similarity_top_k=3,
                         mode=VectorStoreQueryMode.MMR)
    plain = vs.query(VectorStoreQuery(query_embedding=nodes[0].embedding, similarity_top_k=3))
    assert set(plain.ids[:2]) == {"n0", "twin"}
    every = vs.query(VectorStoreQuery(query_embedding=nodes[0].embedding, similarity_top_k=len(nodes) + 1))
    for lam in (0.1, 0.5, 0.9):  # LlamaIndex's MMR over the filtered candidates, best first
        got = vs.query(q, mmr_threshold=lam)
        qv = (np.array(nodes[0].embedding) / np.linalg.norm(nodes[0].embedding)).tolist()
        _, want = get_top_k_mmr_embeddings(qv, vs.client.vectors(every.ids).tolist(), similarity_top_k=3,
                                           mmr_threshold=lam, embedding_ids=every.ids)
        assert got.ids == want, lam
    assert len({"n0", "twin"} & set(vs.query(q, mmr_threshold=0.1).ids)) == 1  # the duplicate is left out
    flt = MetadataFilters(filters=[MetadataFilter(key="lang", value="en")])
    got = vs.query(VectorStoreQuery(query_embedding=nodes[0].embedding, similarity_top_k=3, filters=flt,
                                    mode=VectorStoreQueryMode.MMR))
    assert set(got.ids) <= {"n0", "n3", "twin"}


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


def test_hybrid_sparse_and_text_search_modes(store, embed_model):
    """``VectorStoreQueryMode.HYBRID`` (with ``alpha``), ``SPARSE`` and ``TEXT_SEARCH`` reach the
    core store's hybrid and lexical search, through a query and through a retriever."""
    from llama_index.core.vector_stores.types import VectorStoreQueryMode as Mode

    core = store.client
    text = "Lisboa Portugal"
    qv = np.array([embed_model.get_query_embedding(text)])
    for mode in (Mode.SPARSE, Mode.TEXT_SEARCH):
        res = store.query(VectorStoreQuery(query_str=text, similarity_top_k=3, mode=mode))  # no embedding
        assert res.ids == ["n4"] and res.similarities[0] > 0
    for alpha in (None, 0.3):
        res = store.query(VectorStoreQuery(query_embedding=qv[0].tolist(), query_str=text, similarity_top_k=4,
                                           mode=Mode.HYBRID, alpha=alpha))
        want = core.search(qv, k=4, mode="hybrid", query=text, alpha=alpha)[0]
        assert res.ids == [h.id for h in want] and res.ids[0] == "n4"
        np.testing.assert_allclose(res.similarities, [h.score for h in want], rtol=1e-5)
    en = MetadataFilters(filters=[MetadataFilter(key="lang", value="en")])
    only_en = store.query(VectorStoreQuery(query_embedding=qv[0].tolist(), query_str="capital",
                                           similarity_top_k=5, mode=Mode.HYBRID, filters=en))
    assert sorted(only_en.ids) == ["n0", "n3"]
    hybrid_top = store.query(VectorStoreQuery(query_embedding=qv[0].tolist(), query_str=text,
                                              similarity_top_k=1, hybrid_top_k=3, mode=Mode.HYBRID))
    assert len(hybrid_top.ids) == 3

    index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
    retriever = index.as_retriever(vector_store_query_mode="hybrid", alpha=0.5, similarity_top_k=2)
    got = [n.node.node_id for n in retriever.retrieve(text)]
    assert got == [h.id for h in core.search(qv, k=2, mode="hybrid", query=text, alpha=0.5)[0]]
    sparse = index.as_retriever(vector_store_query_mode="text_search", similarity_top_k=2)
    assert [n.node.node_id for n in sparse.retrieve(text)] == ["n4"]

    with pytest.raises(ValueError, match=r"needs query\.query_str"):
        store.query(VectorStoreQuery(query_embedding=qv[0].tolist(), similarity_top_k=2, mode=Mode.HYBRID))
    with pytest.raises(ValueError, match="not 'svm'"):
        store.query(VectorStoreQuery(query_embedding=qv[0].tolist(), similarity_top_k=2, mode=Mode.SVM))
