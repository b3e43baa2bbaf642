"""The lexical index: kept in step with the documents and vectors by every writer (add, replace,
delete, bulk import, from_index), saved and loaded with the store; stores saved without it open
unchanged and build it on first use; tokenizers; query text is never FTS5 syntax."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from qwen3_rag import FaissStore
from qwen3_rag.store import DOCS_FILE, IndexSpec, build_index, read_manifest
from qwen3_rag.store.layout import checksum
from qwen3_rag.store.lexical import LexicalConfig


def _ids_agree(store: FaissStore) -> list[str]:
    """The ids of the documents, checked to be exactly those of the vector and lexical indexes."""
    ids = [r.id for r in store.iter_records()]
    assert store.index.ntotal == len(store) == len(ids)  # no vector beyond the documents ...
    assert store.vectors(ids).shape == (len(ids), store.dim)  # ... and one under each document's key
    assert store.lexical_ids() == ids  # the FTS5 index holds terms of exactly these documents
    return ids


def _lexical(store: FaissStore, text: str, k: int = 10, **kw) -> list[str]:
    return [h.id for h in store.search(k=k, mode="lexical", query=text, **kw)[0]]


def test_adds_replaces_and_deletes_keep_the_indexes_in_step(tmp_path, unit):
    rng = np.random.default_rng(0)
    store = FaissStore(8, index="flat")
    store.add([f"note {i} about zebra{i % 7}" for i in range(50)], unit(rng, 50, 8),
              ids=[f"n{i}" for i in range(50)])
    assert _ids_agree(store) == [f"n{i}" for i in range(50)]
    assert set(_lexical(store, "zebra3")) == {f"n{i}" for i in range(50) if i % 7 == 3}

    store.add(["replaced text with quokka", "brand new quokka"], unit(rng, 2, 8), ids=["n3", "new"])
    assert "n3" not in _lexical(store, "zebra3")  # its old text is no longer indexed
    assert sorted(_lexical(store, "quokka")) == ["n3", "new"]
    store.delete(["n10", "n17", "new", "unknown"])
    assert set(_lexical(store, "zebra3")) == {f"n{i}" for i in range(50) if i % 7 == 3} - {"n3", "n10", "n17"}
    assert _lexical(store, "quokka") == ["n3"]
    ids = _ids_agree(store)
    assert len(ids) == 48 and "n10" not in ids and "new" not in ids

    root = store.save(tmp_path / "s")
    loaded = FaissStore.load(root)
    assert loaded.lexical == LexicalConfig()
    assert read_manifest(root)[1]["lexical"] == {"tokenizer": "unicode61", "fields": []}
    assert _lexical(loaded, "quokka") == ["n3"] and _ids_agree(loaded) == ids
    loaded.add(["quokka again"], unit(rng, 1, 8), ids=["n4"])  # the first change copies the saved database
    assert sorted(_lexical(loaded, "quokka")) == ["n3", "n4"]
    _ids_agree(loaded)


def test_a_replace_in_one_bulk_import_unindexes_the_replaced_document(tmp_path, unit):
    """The bulk import's INSERT OR REPLACE removes the replaced row's terms (recursive triggers)."""
    rng = np.random.default_rng(1)
    store = FaissStore(8, index="flat")
    store.add(["old alpha", "old beta"], unit(rng, 2, 8), ids=["a", "b"])
    db = tmp_path / "staged.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE rows (seq INTEGER PRIMARY KEY, id TEXT, text TEXT, metadata TEXT)")
    conn.executemany("INSERT INTO rows (id, text, metadata) VALUES (?, ?, '{}')",
                     [("a", "first gamma"), ("c", "delta"), ("a", "second epsilon")])
    conn.commit()
    conn.close()
    bulk = store.bulk_load()
    bulk.add_keyed(unit(rng, 3, 8), bulk.keys(0, 3))
    bulk.import_rows(db, 0, 3)
    bulk.finish(3)
    assert _lexical(store, "alpha") == [] and _lexical(store, "gamma") == []
    assert _lexical(store, "epsilon") == ["a"] and _lexical(store, "old") == ["b"]
    assert sorted(_ids_agree(store)) == ["a", "b", "c"]


def test_from_index_builds_the_lexical_index(unit):
    rng = np.random.default_rng(2)
    index = build_index(IndexSpec("flat"), 8)
    index.add_with_ids(unit(rng, 3, 8), np.array([4, 9, 11], dtype=np.int64))
    rows = [(4, "x", "walrus", {}), (9, "y", "narwhal", "{}"), (11, "z", "orca", {})]
    store = FaissStore.from_index(index, rows, spec=IndexSpec("flat"), lexical="trigram")
    assert store.lexical == LexicalConfig("trigram")
    assert _lexical(store, "arwha") == ["y"]  # a substring, with trigrams
    assert _ids_agree(store) == ["x", "y", "z"]


def test_a_store_saved_without_it_opens_unchanged_and_builds_it_on_first_use(tmp_path, unit):
    rng = np.random.default_rng(3)
    old = FaissStore(8, index="flat", lexical=None)  # what a store saved before the lexical index holds
    old.add(["the ERR-4471 failure", "ordinary text"], unit(rng, 2, 8), ids=["e", "o"])
    root = old.save(tmp_path / "old")
    vdir, manifest = read_manifest(root)
    tables = sqlite3.connect(vdir / DOCS_FILE).execute("SELECT name FROM sqlite_master").fetchall()
    assert manifest["lexical"] is None and not any("lexical" in t[0] for t in tables)
    before = checksum(vdir / DOCS_FILE)

    store = FaissStore.load(root)
    assert store.lexical is None
    assert [h.id for h in store.search(unit(rng, 1, 8), k=2)[0]]  # dense search needs nothing new
    assert _lexical(store, "err-4471") == ["e"]  # built now, in the store's private copy
    assert store.lexical == LexicalConfig()
    assert checksum(vdir / DOCS_FILE) == before  # the saved file is as it was
    assert read_manifest(root)[1]["lexical"] is None
    store.save()
    again = FaissStore.load(root)
    assert again.lexical == LexicalConfig() and _lexical(again, "err-4471") == ["e"]


def test_rebuild_with_another_tokenizer_and_metadata_fields(unit):
    rng = np.random.default_rng(4)
    store = FaissStore(8, index="flat")
    store.add(["東京都庁の案内", "Crème brûlée recipe"], unit(rng, 2, 8), ids=["tokyo", "creme"],
              metadatas=[{"title": "Government building"},
                         {"title": "Dessert", "tags": {"cuisine": "french"}}])
    assert _lexical(store, "creme brulee") == ["creme"]  # unicode61 removes diacritics, folds case
    assert _lexical(store, "都庁") == []  # unicode61 keeps a run of CJK characters as one token
    assert _lexical(store, "dessert") == []  # metadata is not indexed by default
    store.rebuild_lexical({"tokenizer": "trigram", "fields": ["title", "tags.cuisine"]})
    assert store.lexical == LexicalConfig("trigram", ("title", "tags.cuisine"))
    assert _lexical(store, "東京都") == ["tokyo"]  # substrings of 3 characters or more
    assert _lexical(store, "dessert") == ["creme"] and _lexical(store, "FRENCH") == ["creme"]
    assert _lexical(store, "xy") == []  # too short for trigrams: no term, no hit
    store.add(["Tarte Tatin"], unit(rng, 1, 8), ids=["tarte"], metadatas=[{"tags": {"cuisine": "french"}}])
    assert sorted(_lexical(store, "french")) == ["creme", "tarte"]
    store.delete(["creme"])
    assert _lexical(store, "french") == ["tarte"]
    _ids_agree(store)


@pytest.mark.parametrize("bad", [{"tokenizer": "porter"}, {"fields": ["a b"]}, {"fields": ["x", "x"]},
                                 {"stemming": True}])
def test_bad_lexical_configs_are_refused(bad):
    with pytest.raises(ValueError, match="lexical"):
        FaissStore(4, lexical=bad)


@pytest.mark.parametrize(("query", "found"), [
    ('"', False), ('a" OR "b', True), ("NEAR(a b)", True), ("col:value", False), ("^start", True),
    ("a*", True), ("-x", True), ("(", False), ("AND", True), ("zzz NOT zzz", True), ("{text}: x", True),
    ("'; DROP TABLE docs; --", False),
])
def test_query_text_is_never_fts5_syntax(query, found, unit):
    rng = np.random.default_rng(5)
    store = FaissStore(4, index="flat")
    store.add(["NEAR a b AND text NOT other start value x", "unrelated"], unit(rng, 2, 4), ids=["1", "2"])
    hits = store.search(k=5, mode="lexical", query=query)[0]  # no FTS5 syntax error, whatever the text
    assert [(h.id, h.sources) for h in hits] == ([("1", {"lexical": 1})] if found else [])
    assert len(store) == 2 and _lexical(store, "unrelated") == ["2"]


def test_lexical_search_applies_filters_and_thresholds(unit):
    rng = np.random.default_rng(6)
    store = FaissStore(4, index="flat")
    texts = [f"apple {'apple ' * (i % 3)}pie {i}" for i in range(30)] + [f"pear {i}" for i in range(40)]
    store.add(texts, unit(rng, 70, 4), ids=[f"p{i}" for i in range(70)],
              metadatas=[{"n": i} for i in range(70)])
    hits = store.search(k=30, mode="lexical", query="apple", filter={"n": {"$lt": 10}})[0]
    assert sorted(int(h.id[1:]) for h in hits) == list(range(10))
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert [h.sources["lexical"] for h in hits] == list(range(1, 11))
    assert hits[0].metadata["n"] % 3 == 2  # the most repetitions of the word rank first (BM25)
    cut = hits[4].score
    kept = store.search(k=30, mode="lexical", query="apple", filter={"n": {"$lt": 10}},
                        score_threshold=cut)[0]
    assert [h.id for h in kept] == [h.id for h in hits if h.score >= cut]


def test_words_in_most_documents_are_left_out_of_the_match(unit):
    """They add nothing to BM25 (FTS5 floors their IDF): the ranking by the other words is kept."""
    rng = np.random.default_rng(8)
    store = FaissStore(4, index="flat")
    texts = [f"The common word, and {'rare ' * (i % 3) if i < 6 else ''}filler {i}" for i in range(20)]
    store.add(texts, unit(rng, 20, 4), ids=[f"c{i}" for i in range(20)])
    rare = store.search(k=20, mode="lexical", query="rare")[0]
    assert sorted(h.id for h in rare) == ["c1", "c2", "c4", "c5"]
    both = store.search(k=20, mode="lexical", query="THE rare Common")[0]
    assert [(h.id, h.score) for h in both] == [(h.id, h.score) for h in rare]
    assert store.search(k=20, mode="lexical", query="the common")[0] == []
    assert [h.id for h in store.search(k=5, mode="lexical", query="filler 7")[0]] == ["c7"]  # filler: all


def test_a_query_whose_words_many_documents_hold_matches_its_rarest_words(unit, monkeypatch):
    """Past MAX_POSTINGS (word, document) pairs a query keeps its rarest words that fit, at least
    one; below it the ranking is exact BM25 over every word."""
    from qwen3_rag.store import lexical

    rng = np.random.default_rng(9)
    store = FaissStore(4, index="flat")
    texts = [" ".join(w for w, every in (("alpha", 2), ("beta", 7), ("gamma", 19)) if i % every == 0)
             + f" filler {i}" for i in range(80)]  # alpha in 40 documents, beta in 12, gamma in 5
    store.add(texts, unit(rng, 80, 4), ids=[f"g{i}" for i in range(80)])

    def ranked(query: str) -> list[tuple[str, float]]:
        return [(h.id, round(h.score, 6)) for h in store.search(k=80, mode="lexical", query=query)[0]]

    exact = ranked("alpha beta gamma")
    assert {i for i, _ in exact} == {f"g{i}" for i in range(80) if not (i % 2 and i % 7 and i % 19)}
    monkeypatch.setattr(lexical, "MAX_POSTINGS", 17)  # beta and gamma fit (17), alpha does not
    assert ranked("alpha beta gamma") == ranked("beta gamma") != exact
    monkeypatch.setattr(lexical, "MAX_POSTINGS", 2)  # not even gamma fits: the rarest word alone
    assert ranked("alpha beta gamma") == ranked("gamma")
    assert {h.id for h in store.search(k=80, mode="lexical", query="alpha beta gamma")[0]} == {
        f"g{i}" for i in range(0, 80, 19)}
    monkeypatch.setattr(lexical, "MAX_POSTINGS", 1000)
    assert ranked("alpha beta gamma") == exact
