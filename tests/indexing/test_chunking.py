"""Chunking: long documents as overlapping token windows that keep the link to their document."""

from __future__ import annotations

from qwen3_rag import FaissStore, index_corpus


def test_chunking_keeps_the_document_link(tmp_path, emb):
    text = " ".join(f"word{i}" for i in range(60))
    n_tokens = len(emb.tokenizer(text, add_special_tokens=False)["input_ids"])
    report = index_corpus([{"id": "long", "text": text}, {"id": "short", "text": "tiny"}], tmp_path / "s",
                          emb, chunk_tokens=16, chunk_overlap=4, show_progress=False)
    store = FaissStore.load(tmp_path / "s")
    recs = list(store.iter_records())
    long_chunks = [r for r in recs if r.metadata["doc_id"] == "long"]
    expected = 1 + -(-(n_tokens - 16) // 12)
    assert len(long_chunks) == expected == report.chunks - 1
    assert [r.id for r in long_chunks] == [f"long#{i}" for i in range(expected)]
    for i, r in enumerate(long_chunks):
        m = r.metadata
        assert (m["chunk"], m["n_chunks"]) == (i, expected)
        assert r.text == text[m["char_start"]:m["char_end"]]
        assert len(emb.tokenizer(r.text, add_special_tokens=False)["input_ids"]) <= 16
    # consecutive chunks overlap
    assert long_chunks[1].metadata["char_start"] < long_chunks[0].metadata["char_end"]
    assert [r.id for r in recs if r.metadata["doc_id"] == "short"] == ["short#0"]
    hits = store.search(emb.embed_queries(["word3"]), k=3, filter={"doc_id": "long"})[0]
    assert len(hits) == 3
