"""Sources: JSONL, CSV, Parquet and records give the same store; a folder of text files, then
a second corpus added with a repeated id replacing its document."""

from __future__ import annotations

import csv

import numpy as np
from indexing_support import ids_vectors_metadata, topic_records, write_jsonl

from qwen3_rag import FaissStore, index_corpus
from qwen3_rag.indexing import STAGING


def test_sources_give_the_same_store(tmp_path, emb):
    recs = topic_records(12)
    write_jsonl(tmp_path / "c.jsonl", recs)
    with open(tmp_path / "c.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["id", "text", "topic"])
        w.writeheader()
        w.writerows(recs)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "c.parquet")
    results = {}
    for name, src in [("jsonl", tmp_path / "c.jsonl"), ("csv", tmp_path / "c.csv"),
                      ("parquet", tmp_path / "c.parquet"), ("records", recs)]:
        report = index_corpus(src, tmp_path / f"s-{name}", emb, batch_size=5, show_progress=False)
        assert (report.documents, report.store_size, report.skipped) == (12, 12, 0)
        assert not (tmp_path / f"s-{name}" / STAGING).exists()
        results[name] = ids_vectors_metadata(tmp_path / f"s-{name}")
    ids, vecs, metas = results["jsonl"]
    assert ids == [r["id"] for r in recs] and metas[3] == {"topic": "stars"}
    np.testing.assert_allclose(vecs, emb.embed_documents([r["text"] for r in recs]), atol=1e-5)
    for name in ("csv", "parquet", "records"):
        assert results[name][0] == ids and results[name][2] == metas
        np.testing.assert_allclose(results[name][1], vecs, atol=1e-6)


def test_folder_source_and_append_with_upsert(tmp_path, emb):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# Alpha\nfirst", encoding="utf-8")
    (folder / "sub" / "b.txt").write_text("second", encoding="utf-8")
    (folder / "skip.bin").write_bytes(b"\x00")
    index_corpus(folder, tmp_path / "s", emb, show_progress=False)
    store = FaissStore.load(tmp_path / "s", emb)
    assert [r.id for r in store.iter_records()] == ["a.md", "sub/b.txt"]
    # a second corpus is added; a repeated id replaces the document
    index_corpus([{"id": "a.md", "text": "alpha, rewritten"}, {"id": "c", "text": "third"}],
                 tmp_path / "s", emb, show_progress=False)
    store = FaissStore.load(tmp_path / "s", emb)
    assert len(store) == 3 and store.get(["a.md"])[0].text == "alpha, rewritten"
