"""Metadata filters: validated into a bounded typed form, one type-strict semantics on every search
path, checked against an independent Python evaluation of the same filters over the same records."""

from __future__ import annotations

import random

import numpy as np
import pytest
from filter_reference import matches, random_filter, random_record

from qwen3_rag import FaissStore
from qwen3_rag.store import query
from qwen3_rag.store.filters import FilterError, parse_filter


@pytest.fixture(scope="module")
def records():
    rng = random.Random(7)
    metas = [random_record(rng, i) for i in range(300)]
    vecs = np.random.default_rng(7).normal(size=(300, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return metas, vecs


def _store(records, kind):
    metas, vecs = records
    store = FaissStore(16, index=kind)
    store.add([f"t{i}" for i in range(300)], vecs, ids=[str(i) for i in range(300)], metadatas=metas)
    return store


PATHS = [("flat", 50_000), ("hnsw", 50_000), ("hnsw", 0), ({"kind": "ivf", "nlist": 8, "nprobe": 1}, 0),
         ({"kind": "ivf", "nlist": 8, "nprobe": 1}, 50_000)]


@pytest.mark.parametrize("kind, exact_max", PATHS, ids=["flat", "hnsw-exact", "hnsw-selector",
                                                        "ivf-widened", "ivf-exact"])
def test_random_filters_match_the_reference_on_every_search_path(records, kind, exact_max, monkeypatch):
    monkeypatch.setattr(query, "EXACT_FILTER_MAX", exact_max)
    metas, vecs = records
    store = _store(records, kind)
    rng = random.Random(11)
    q = vecs[0]
    nonempty = 0
    for _ in range(150):
        flt = random_filter(rng)
        want = [i for i, m in enumerate(metas) if matches(m, flt)]
        got = store.search(q, k=300, filter=flt)[0]
        assert sorted(int(h.id) for h in got) == want, flt
        nonempty += 0 < len(want) < 300
        if len(want) > 5 and (kind == "flat" or exact_max):  # exact paths: the exact top 5, in order
            top = store.search(q, k=5, filter=flt)[0]
            rows = np.array(want)
            best = rows[np.argsort(-(vecs[rows] @ q), kind="stable")[:5]]
            assert [h.id for h in top] == [str(i) for i in best]
    assert nonempty > 60  # the filters select something, not everything or nothing


def _tiny(metas):
    store = FaissStore(2)
    vecs = np.tile(np.eye(2, dtype=np.float32), (len(metas), 1))[: len(metas)]
    store.add([str(i) for i in range(len(metas))], vecs, ids=[str(i) for i in range(len(metas))],
              metadatas=metas)
    return lambda flt: sorted(h.id for h in store.search(np.array([1, 0], np.float32), k=50, filter=flt)[0])


def test_comparisons_are_type_strict_and_negations_treat_missing_keys_alike():
    find = _tiny([{"k": "1"}, {"k": 1}, {"k": True}, {"k": 1.0}, {}, {"k": None}, {"k": [1]}, {"k": ""}])
    assert find({"k": {"$gt": 0}}) == ["1", "3"]  # not the string "1", not true
    assert find({"k": True}) == ["2"] and find({"k": 1}) == ["1", "3"]
    assert find({"k": None}) == ["5"]
    assert find({"k": {"$ne": 1}}) == ["0", "2", "4", "5", "6", "7"]
    assert find({"k": {"$nin": [1]}}) == find({"k": {"$ne": 1}})  # the missing key matches both
    assert find({"k": {"$contains": 1}}) == ["6"]
    assert find({"k": {"$empty": True}}) == ["4", "5", "7"]


def test_keys_with_quotes_backslashes_and_dots():
    find = _tiny([{'a"b': 1, "c\\d": 2, "n": {"x": {"y": 3}}}, {'a"b': 2, "n": 1}])
    assert find({'a"b': 1}) == ["0"] and find({"c\\d": 2}) == ["0"]
    assert find({"n.x.y": 3}) == ["0"] and find({"n.x.y": {"$exists": False}}) == ["1"]
    assert find({"$or": [{'a"b': 2}, {"n.x.y": {"$gte": 3}}]}) == ["0", "1"]
    assert find({"$not": {'a"b': 2}}) == ["0"]


@pytest.mark.parametrize("flt, message", [
    ({"k": {}}, "empty dict"),
    ({}, "non-empty dict"),
    ({"k": 2**64}, "64-bit integer range"),
    ({"k": {"$in": [-(2**63) - 1]}}, "64-bit integer range"),
    ({"k\x00": 1}, "NUL"),
    ({"\ud800": 1}, "lone surrogate"),
    ({"k": "\udfff"}, "lone surrogate"),
    ({f"k{i}": i for i in range(1000)}, "at most 100 conditions"),
    ({"k": {"$in": {"a": 1}}}, r"\$in for 'k' needs a list"),
    ({"k": {"$nin": "abc"}}, r"\$nin for 'k' needs a list"),
    ({"k": {"$regex": "a.*"}}, "unknown filter operator '\\$regex'"),
    ({"$nor": [{"k": 1}]}, "unknown filter operator '\\$nor'"),
    ({"$and": []}, "non-empty list"),
    ({"$or": {"k": 1}}, "non-empty list"),
    ({"k": {"$gt": None}}, "number or a string"),
    ({"k": {"$lt": True}}, "number or a string"),
    ({"k": {"$exists": 1}}, "true or false"),
    ({"k": {"$text_match": 1}}, "needs a string"),
    ({"k": {"$eq": [1]}}, "must be a str, number, bool or None"),
    ({"k": {"$eq": {"a": 1}}}, "must be a str, number, bool or None"),
    ({"k": float("nan")}, "must be finite"),
    ({"a..b": 1}, "empty part"),
    ({"k" * 300: 1}, "at most 256"),
    ({"k": {"$in": list(range(2000))}}, "at most 1024"),
    ({"k": "x" * 5000}, "at most 4096"),
    ({"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"k": 1}}}}}}}}}},
     "nest at most 8"),
    ({1: 1}, "keys must be non-empty str"),
])
def test_filters_the_store_cannot_evaluate_are_a_value_error_naming_the_problem(flt, message):
    with pytest.raises(ValueError, match=message):
        parse_filter(flt)
    store = FaissStore(2)
    store.add(["a"], np.eye(2, dtype=np.float32)[:1], ids=["a"], metadatas=[{"k": 1}])
    with pytest.raises(FilterError, match=message):
        store.search(np.array([1, 0], np.float32), k=1, filter=flt)


def _plan(db, flt) -> str:
    import sqlite3

    from qwen3_rag.store.filters import compile_filter

    where, params = compile_filter(flt)
    conn = sqlite3.connect(db)
    try:
        plan = conn.execute(f"EXPLAIN QUERY PLAN SELECT iid FROM docs WHERE {where}", params)
        return " ".join(r[3] for r in plan)
    finally:
        conn.close()


def test_equality_on_ref_doc_id_is_an_index_lookup_and_old_stores_get_the_index(tmp_path):
    import sqlite3

    from qwen3_rag.store.documents import SCHEMA, Documents

    store = FaissStore(2)
    metas = [{"ref_doc_id": f"d{i % 3}"} for i in range(9)] + [{"ref_doc_id": 1}, {}]
    store.add([str(i) for i in range(11)], np.ones((11, 2), np.float32), ids=[str(i) for i in range(11)],
              metadatas=metas)
    assert [r.id for r in store.iter_records(filter={"ref_doc_id": "d1"})] == ["1", "4", "7"]
    saved = store.save(tmp_path / "s")
    db = next(saved.rglob("docs.sqlite")) if saved.is_dir() else saved
    assert "USING INDEX docs_ref_doc_id" in _plan(db, {"ref_doc_id": "d1"})
    assert "USING INDEX" not in _plan(db, {"ref_doc_id": 1})  # not a string: the general form
    loaded = FaissStore.load(tmp_path / "s")
    assert loaded.delete([r.id for r in loaded.iter_records(filter={"ref_doc_id": "d2"})]) == 3
    assert sorted(r.id for r in loaded.iter_records(filter={"ref_doc_id": {"$exists": True}})) == [
        "0", "1", "3", "4", "6", "7", "9"]
    old = tmp_path / "old.sqlite"  # a table saved before the index existed
    conn = sqlite3.connect(old)
    conn.execute(SCHEMA)
    conn.execute("INSERT INTO docs VALUES (0, 'a', 't', '{\"ref_doc_id\": \"x\"}')")
    conn.commit()
    conn.close()
    docs = Documents.open(old, next_key=1)
    assert docs.filter_keys({"ref_doc_id": "x"}).tolist() == [0]
    docs.delete_keys(np.array([0]))  # the first change copies the table and indexes it
    docs.backup_to(tmp_path / "new.sqlite")
    assert "USING INDEX docs_ref_doc_id" in _plan(tmp_path / "new.sqlite", {"ref_doc_id": "x"})
