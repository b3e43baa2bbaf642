"""FaissStore on real Faiss indexes: round trip, upsert, delete, score threshold, load checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qwen3_rag import FaissStore, Hit
from qwen3_rag.store import EmbedderMismatchError, StoreError


def test_search_matches_exact_and_round_trips(tmp_path, data, filled, exact_top):
    vecs, ids, _texts, metas = data
    store = filled()
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


def test_upsert_replaces_text_vector_and_metadata(tmp_path, data, filled):
    vecs, *_ = data
    store = filled()
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
def test_delete(tmp_path, data, kind, filled):
    vecs, _ids, *_ = data
    store = filled(index=kind)
    before = [h.id for h in store.search(vecs[20], k=3)[0]]
    assert before[0] == "doc-20"
    assert store.delete(["doc-20", "missing"]) == 1
    assert len(store) == 299 and "doc-20" not in store
    after = [h.id for h in store.search(vecs[20], k=3)[0]]
    assert "doc-20" not in after and len(after) == 3
    store.save(tmp_path / "s")
    loaded = FaissStore.load(tmp_path / "s")
    assert len(loaded) == 299 and loaded.get(["doc-20"]) == [None]


def test_score_threshold(data, filled):
    vecs, *_ = data
    store = filled()
    hits = store.search(vecs[1], k=20)[0]
    cut = hits[5].score
    kept = store.search(vecs[1], k=20, score_threshold=cut)[0]
    assert [h.id for h in kept] == [h.id for h in hits if h.score >= cut]
    assert len(kept) == 6


def test_load_checks_dimension_model_and_format(tmp_path, data, tiny_embedding, filled):
    from qwen3_rag import Qwen3Embedder

    path = tmp_path / "s"
    store = filled(embedder={"model": "org/model-a", "dimension": 16})
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
