"""FaissStore on real Faiss indexes: round trip, upsert, delete, filters, atomic save, load checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qwen3_rag import FaissStore, Hit
from qwen3_rag.store import EmbedderMismatchError, StoreError


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_top(vecs: np.ndarray, q: np.ndarray, k: int, rows: np.ndarray | None = None) -> list[int]:
    rows = np.arange(len(vecs)) if rows is None else rows
    scores = vecs[rows] @ q
    return [int(rows[i]) for i in np.argsort(-scores, kind="stable")[:k]]


@pytest.fixture()
def data():
    rng = np.random.default_rng(0)
    n, d = 300, 16
    vecs = unit(rng, n, d)
    ids = [f"doc-{i}" for i in range(n)]
    texts = [f"text of document {i}" for i in range(n)]
    metas = [{"lang": ["en", "fr", "de"][i % 3], "year": 2000 + i % 10, "rare": i in (5, 77, 150)}
             for i in range(n)]
    return vecs, ids, texts, metas


def filled(data, **kw) -> FaissStore:
    vecs, ids, texts, metas = data
    store = FaissStore(vecs.shape[1], **kw)
    assert store.add(texts, vecs, ids=ids, metadatas=metas) == ids
    return store


def test_search_matches_exact_and_round_trips(tmp_path, data):
    vecs, ids, _texts, metas = data
    store = filled(data)
    q = vecs[[3, 42]] + 0.01
    hits = store.search(q, k=5)
    for row, qi in zip(hits, q, strict=True):
        assert [h.id for h in row] == [ids[i] for i in exact_top(vecs, qi, 5)]
        assert all(isinstance(h, Hit) for h in row)
        assert row[0].score == pytest.approx(float(vecs[int(row[0].id[4:])] @ qi), abs=1e-5)
    store.save(tmp_path / "s")
    loaded = FaissStore.load(tmp_path / "s")
    assert len(loaded) == len(store) == 300
    again = loaded.search(q, k=5)
    assert [[(h.id, h.text, h.metadata) for h in r] for r in again] == [
        [(h.id, h.text, h.metadata) for h in r] for r in hits
    ]
    assert loaded.get(["doc-7", "nope"]) == [store.get(["doc-7"])[0], None]
    assert loaded.get(["doc-7"])[0].metadata == metas[7]
    np.testing.assert_allclose(loaded.vectors(["doc-9", "doc-1"]), vecs[[9, 1]], atol=1e-6)
    # the saved database holds texts and JSON metadata, no pickle
    files = sorted(p.name for p in (tmp_path / "s").rglob("*") if p.is_file())
    assert files == ["CURRENT", "docs.sqlite", "index.faiss", "manifest.json"]


def test_upsert_replaces_text_vector_and_metadata(tmp_path, data):
    vecs, *_ = data
    store = filled(data)
    new_vec = -vecs[10]
    store.add(["replaced"], new_vec[None], ids=["doc-10"], metadatas=[{"lang": "xx"}])
    assert len(store) == 300
    assert store.get(["doc-10"])[0].text == "replaced"
    top = store.search(new_vec, k=1)[0][0]
    assert (top.id, top.text, top.metadata) == ("doc-10", "replaced", {"lang": "xx"})
    # the old vector no longer answers for doc-10
    assert all(h.id != "doc-10" for h in store.search(vecs[10], k=5)[0])
    with pytest.raises(ValueError, match="duplicate id"):
        store.add(["a", "b"], vecs[:2], ids=["x", "x"])


@pytest.mark.parametrize("kind", ["flat", "hnsw", {"kind": "ivf", "nlist": 8}])
def test_delete(tmp_path, data, kind):
    vecs, _ids, *_ = data
    store = filled(data, index=kind)
    before = [h.id for h in store.search(vecs[20], k=3)[0]]
    assert before[0] == "doc-20"
    assert store.delete(["doc-20", "missing"]) == 1
    assert len(store) == 299 and "doc-20" not in store
    after = [h.id for h in store.search(vecs[20], k=3)[0]]
    assert "doc-20" not in after and len(after) == 3
    store.save(tmp_path / "s")
    loaded = FaissStore.load(tmp_path / "s")
    assert len(loaded) == 299 and loaded.get(["doc-20"]) == [None]


@pytest.mark.parametrize("exact_max", [0, 50_000], ids=["widened-ann", "exact-subset"])
@pytest.mark.parametrize("kind", ["flat", "hnsw", {"kind": "ivf", "nlist": 8, "nprobe": 1}])
def test_filters_return_k_hits_when_k_match(data, kind, exact_max, monkeypatch):
    from qwen3_rag import store as store_module

    monkeypatch.setattr(store_module, "EXACT_FILTER_MAX", exact_max)
    vecs, ids, _texts, metas = data
    store = filled(data, index=kind)
    q = vecs[0]
    approximate = isinstance(kind, dict) and exact_max == 0  # IVF probing 1 list of 8
    hits = store.search(q, k=7, filter={"lang": "fr"})[0]
    fr = np.array([i for i, m in enumerate(metas) if m["lang"] == "fr"])
    assert len(hits) == 7 and all(h.metadata["lang"] == "fr" for h in hits)
    if not approximate:
        assert [h.id for h in hits] == [ids[i] for i in exact_top(vecs, q, 7, fr)]
    # only 3 documents match: all 3 come back, even though they are far from the query
    rare = store.search(q, k=10, filter={"rare": True})[0]
    assert sorted(h.id for h in rare) == ["doc-150", "doc-5", "doc-77"]
    both = store.search(q, k=30, filter={"lang": {"$in": ["en", "de"]}, "year": {"$gte": 2008}})[0]
    match = np.array([i for i, m in enumerate(metas) if m["lang"] != "fr" and m["year"] >= 2008])
    assert len(match) == 40 and len(both) == 30
    assert {h.id for h in both} <= {ids[i] for i in match}
    if not approximate:
        assert [h.id for h in both] == [ids[i] for i in exact_top(vecs, q, 30, match)]
    assert all(h.metadata["lang"] in ("en", "de") and h.metadata["year"] >= 2008 for h in both)
    assert store.search(q, k=5, filter={"lang": "zz"}) == [[]]
    with pytest.raises(ValueError, match="unknown filter operator"):
        store.search(q, k=5, filter={"lang": {"$like": "e%"}})


def test_score_threshold(data):
    vecs, *_ = data
    store = filled(data)
    hits = store.search(vecs[1], k=20)[0]
    cut = hits[5].score
    kept = store.search(vecs[1], k=20, score_threshold=cut)[0]
    assert [h.id for h in kept] == [h.id for h in hits if h.score >= cut]
    assert len(kept) == 6


def test_auto_index_switches_to_ivf_by_size(tmp_path, monkeypatch):
    from qwen3_rag import faiss_index

    monkeypatch.setattr(faiss_index, "FLAT_MAX", 1000)
    rng = np.random.default_rng(1)
    vecs = unit(rng, 2000, 16)
    store = FaissStore(16)
    store.add([str(i) for i in range(2000)], vecs, ids=[str(i) for i in range(2000)])
    assert store.index_kind == "flat"
    store.save(tmp_path / "s")
    loaded = FaissStore.load(tmp_path / "s")
    assert loaded.index_kind == "ivf" and loaded.spec.nlist == faiss_index.default_nlist(2000)
    assert loaded.search(vecs[5], k=1)[0][0].id == "5"


def test_crash_inside_save_keeps_previous_version(tmp_path, data, monkeypatch):
    vecs, *_ = data
    path = tmp_path / "s"
    store = filled(data, path=path)
    store.save()
    store.add(["new"], vecs[:1], ids=["new-doc"])
    store.delete(["doc-1"])

    real_write = FaissStore._write_version

    def crash_midway(self, vdir):
        real_write(self, vdir)  # files written ...
        (vdir / "docs.sqlite").write_bytes(b"half")  # ... one of them half-way
        raise OSError("disk full")

    monkeypatch.setattr(FaissStore, "_write_version", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        store.save()
    old = FaissStore.load(path)
    assert len(old) == 300 and "doc-1" in old and "new-doc" not in old
    assert not [p for p in path.iterdir() if p.name.startswith(".tmp")]  # temp version removed

    # a crash after the new version is complete but before CURRENT moves: still the old one
    monkeypatch.setattr(FaissStore, "_write_version", real_write)
    def killed(root, version):
        raise KeyboardInterrupt

    monkeypatch.setattr(FaissStore, "_point_to", staticmethod(killed))
    with pytest.raises(KeyboardInterrupt):
        store.save()
    assert len(FaissStore.load(path)) == 300
    monkeypatch.undo()
    store.save()
    new = FaissStore.load(path)
    assert len(new) == 300 and "new-doc" in new and "doc-1" not in new
    current = (path / "CURRENT").read_text().strip()
    assert sorted(p.name for p in path.iterdir()) == ["CURRENT", current]  # old versions pruned


def test_load_checks_dimension_model_and_format(tmp_path, data, tiny_embedding):
    from qwen3_rag import Qwen3Embedder

    path = tmp_path / "s"
    store = filled(data, embedder={"model": "org/model-a", "dimension": 16})
    store.save(path)
    same = FaissStore.load(path, {"model": "org/model-a", "dimension": 16})
    assert same.fingerprint == {"model": "org/model-a", "dimension": 16}
    with pytest.raises(EmbedderMismatchError, match=r"model-a.*not 'org/model-b'"):
        FaissStore.load(path, {"model": "org/model-b", "dimension": 16})
    # the same hub model from its snapshot in the Hugging Face cache (as offline users pass it)
    snapshots = tmp_path / "hub" / "models--org--model-a" / "snapshots"
    (snapshots / "0123abc").mkdir(parents=True)
    assert len(FaissStore.load(path, {"model": str(snapshots / "0123abc"), "dimension": 16})) == len(store)
    (tmp_path / "hub" / "models--org--model-b" / "snapshots" / "0123abc").mkdir(parents=True)
    for other in (tmp_path / "hub" / "models--org--model-b" / "snapshots" / "0123abc", snapshots):
        with pytest.raises(EmbedderMismatchError, match="Hugging Face cache"):  # another model; no snapshot
            FaissStore.load(path, {"model": str(other), "dimension": 16})
    emb = Qwen3Embedder(tiny_embedding, backend="hf")  # 64-dimensional
    with pytest.raises(EmbedderMismatchError, match=r"16-dimensional.*64-dimensional"):
        FaissStore.load(path, emb)
    with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
        store.search(np.zeros(64, np.float32), k=1)
    manifest = next(path.glob("v-*")) / "manifest.json"
    data_ = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data_, "format_version": 99}))
    with pytest.raises(StoreError, match="format version 99"):
        FaissStore.load(path)
    with pytest.raises(FileNotFoundError):
        FaissStore.load(tmp_path / "nothing-here")


def test_single_query_ivf_search_splits_over_lists_with_same_results():
    """One query runs over the probed lists in parallel (parallel_mode 1); a batch of queries
    splits over queries (mode 0); both give the hits of the other."""
    import faiss

    rng = np.random.default_rng(3)
    vecs = unit(rng, 4000, 32)
    store = FaissStore(32, index={"kind": "ivf", "nlist": 32, "nprobe": 8})
    store.train(vecs)
    store.add([f"t{i}" for i in range(4000)], vecs, ids=[f"d{i}" for i in range(4000)])
    queries = vecs[:12] + 0.05
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(max(2, threads))
    try:
        one_by_one = [store.search(q, k=10)[0] for q in queries]
        assert store.index.parallel_mode == 1
        reps = max(2, threads)  # 12 * reps queries: at least as many as threads
        batch = store.search(np.repeat(queries, reps, axis=0), k=10)[::reps]
        assert store.index.parallel_mode == 0
    finally:
        faiss.omp_set_num_threads(threads)
    assert [[h.id for h in r] for r in one_by_one] == [[h.id for h in r] for r in batch]
    assert all(len(r) == 10 for r in one_by_one)


@pytest.mark.parametrize("kind", ["ivf", "ivf-sq8", "ivf-pq"])
def test_many_lists_train_by_two_level_kmeans_with_recall(monkeypatch, kind):
    """From TWO_LEVEL_MIN_NLIST lists the coarse centroids come from two-level k-means (much
    less arithmetic than one k-means over all lists) and training keeps them; search keeps its
    recall, and the same sample gives the same index."""
    import faiss

    from qwen3_rag import faiss_index

    made: list[np.ndarray] = []
    original = faiss_index.two_level_centroids

    def spy(sample, k, **kw):
        made.append(original(sample, k, **kw))
        return made[-1]

    monkeypatch.setattr(faiss_index, "two_level_centroids", spy)
    monkeypatch.setattr(faiss_index, "TWO_LEVEL_MIN_NLIST", 64)
    rng = np.random.default_rng(3)
    d, n = 32, 20_000
    centers = unit(rng, 200, d)  # clustered data, as embeddings are
    vecs = centers[rng.integers(0, 200, n)] + 0.15 * rng.normal(size=(n, d)).astype(np.float32)
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    stores = []
    for _ in range(2):
        store = FaissStore(d, index={"kind": kind, "nlist": 64, "nprobe": 8})
        store.train(vecs[::4])
        store.add([str(i) for i in range(n)], vecs, ids=[str(i) for i in range(n)])
        stores.append(store)
        kept = faiss.rev_swig_ptr(faiss.downcast_index(store.index.quantizer).get_xb(), 64 * d)
        np.testing.assert_array_equal(np.array(kept).reshape(64, d), made[-1])
    assert len(made) == 2
    np.testing.assert_array_equal(made[0], made[1])
    queries = vecs[rng.integers(0, n, 200)] + 0.05 * rng.normal(size=(200, d)).astype(np.float32)
    hits = stores[0].search(queries, k=10)
    recall = np.mean([len({int(h.id) for h in row} & set(exact_top(vecs, q, 10))) / 10
                      for row, q in zip(hits, queries, strict=True)])
    assert recall >= (0.9 if kind != "ivf-pq" else 0.5), recall
    again = stores[1].search(queries, k=10)
    assert [[h.id for h in r] for r in again] == [[h.id for h in r] for r in hits]

    made.clear()
    monkeypatch.setattr(faiss_index, "TWO_LEVEL_MIN_NLIST", 65)  # below it: Faiss's own k-means
    FaissStore(d, index={"kind": kind, "nlist": 64}).train(vecs[::4])
    assert made == []


def test_two_level_kmeans_gives_a_small_cluster_its_own_centroid():
    """A tight cluster smaller than len(sample)/k: Faiss's two_level_clustering gives it no
    sub-centroid and fails on this data (k-means of 0 centroids; faiss-cpu 1.15.1); ours gives
    it one."""
    from qwen3_rag.faiss_index import two_level_centroids

    rng = np.random.default_rng(0)
    d, n, k = 32, 12_800, 256
    centers = rng.normal(size=(17, d))
    x = centers[rng.integers(0, 17, n - 20)] + 0.05 * rng.normal(size=(n - 20, d))
    outliers = rng.normal(size=d) + 0.001 * rng.normal(size=(20, d))
    x = np.vstack([x, outliers]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    centroids = two_level_centroids(x, k)
    assert centroids.shape == (k, d) and centroids.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1, atol=1e-5)  # spherical
    assert (x[-20:] @ centroids.T).max(axis=1).min() > 0.99  # the outliers have a list of their own


def test_split_shares_is_proportional_and_bounded():
    from qwen3_rag.faiss_index import split_shares

    rng = np.random.default_rng(0)
    for _ in range(500):
        sizes = rng.integers(0, 60, rng.integers(1, 30))
        sizes[0] += 1
        k = int(rng.integers(1, sizes.sum() + 1))
        shares = split_shares(sizes, k)
        assert shares.sum() == k and (shares >= 0).all() and (shares <= sizes).all()
        if k >= (sizes > 0).sum():
            assert (shares[sizes > 0] >= 1).all()
        exact = sizes * k / sizes.sum()
        if (exact[sizes > 0] >= 1).all():  # no cluster lifted to the minimum: largest remainders
            assert (np.abs(shares - exact) < 1).all()
    with pytest.raises(ValueError, match="cannot split 5 centroids over 4 vectors"):
        split_shares(np.array([1, 3]), 5)
