"""Building one store from vector shards (no Ray): per-shard indexes merged, each id kept once
(the last shard wins), bad shards and other embedders refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from qwen3_rag import FaissStore, Qwen3Embedder
from qwen3_rag.distributed import build_store
from qwen3_rag.distributed.shards import shard_table, write_shard_manifest
from qwen3_rag.indexing import EmptyCorpusError
from qwen3_rag.store import EmbedderMismatchError


def make_shards(root: Path, emb: Qwen3Embedder, parts: list[list[dict]], run: str = "r1") -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(parts):
        texts = [r["text"] for r in part]
        table = shard_table([r["id"] for r in part], texts, [json.dumps({"topic": r["topic"]}) for r in part],
                            emb.embed_documents(texts))
        pq.write_table(table, root / f"part-{run}-{i:06d}-w.parquet")
    write_shard_manifest(root, run, emb.model)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_build_merges_per_shard_indexes(tmp_path, emb, kind, records):
    recs = records(60)
    make_shards(tmp_path / "shards", emb, [recs[:25], recs[25:40], recs[40:]])
    built = build_store(tmp_path / "shards", tmp_path / "store", index=kind, workers=2, show_progress=False)
    store = FaissStore.load(tmp_path / "store", emb)
    assert (built.documents, built.shards, store.index_kind, len(store)) == (60, 3, kind, 60)
    ids = [r["id"] for r in recs]
    vecs = emb.embed_documents([r["text"] for r in recs])
    np.testing.assert_allclose(store.vectors(ids), vecs, atol=1e-6)  # every vector under its own id
    # each document's own vector finds itself first (IVF: its list is the nearest one, always probed)
    top = [hits[0].id for hits in store.search(vecs, k=1)]
    assert top == ids
    assert store.get(["d8"])[0].metadata == {"topic": "stars"}
    cats = store.search(vecs[3], k=20, filter={"topic": "cats"})[0]
    assert sorted(h.id for h in cats) == sorted(f"d{i}" for i in range(0, 60, 5))


def test_build_keeps_each_id_once_last_shard_wins(tmp_path, emb, records):
    recs = records(20)
    changed = [{**r, "text": r["text"] + " (revised)"} for r in recs[:5]]
    make_shards(tmp_path / "shards", emb, [recs[:12], recs[8:], changed])  # d8..d11 twice, d0..d4 revised
    # and a whole shard written twice (as by a task that ran twice under another name), sorting
    # between the first shard and the revised one
    first = sorted((tmp_path / "shards").glob("part-*"))[0]
    shutil.copy(first, first.with_name(first.name.replace("-w.", "-w2.")))
    write_shard_manifest(tmp_path / "shards", "r1", emb.model)
    built = build_store(tmp_path / "shards", tmp_path / "store", show_progress=False)
    store = FaissStore.load(tmp_path / "store")
    # rows: 12 + 12 + 5 + 12 = 41; distinct ids: 20
    assert (built.rows, built.documents, built.duplicates_dropped, len(store)) == (41, 20, 21, 20)
    assert store.get(["d2"])[0].text.endswith("(revised)")
    revised = emb.embed_documents([changed[2]["text"]])[0]
    np.testing.assert_allclose(store.vectors(["d2"])[0], revised, atol=1e-6)


def test_build_refuses_bad_shards_and_other_embedders(tmp_path, emb, tiny_reranker, records):
    with pytest.raises(FileNotFoundError, match=r"manifest\.json"):
        build_store(tmp_path, tmp_path / "store")
    make_shards(tmp_path / "shards", emb, [records(4)])
    other = {"model": "someone/else", "dimension": 64}
    with pytest.raises(EmbedderMismatchError):
        build_store(tmp_path / "shards", tmp_path / "store", embedder=other)
    with pytest.raises(ValueError, match="needs at least"):
        build_store(tmp_path / "shards", tmp_path / "store", index="ivf")
    build_store(tmp_path / "shards", tmp_path / "store", show_progress=False)
    with pytest.raises(FileExistsError):
        build_store(tmp_path / "shards", tmp_path / "store")
    empty = tmp_path / "empty"
    empty.mkdir()
    pq.write_table(shard_table([], [], [], np.empty((0, 64), np.float32)), empty / "part-r1-000000-w.parquet")
    with pytest.raises(EmptyCorpusError):
        write_shard_manifest(empty, "r1", emb.model)
