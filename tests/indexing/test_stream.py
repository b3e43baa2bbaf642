"""The stream: the embedder is done (on_embedded) before the store is built and saved, and bad
vectors from the embedder fail the run at once."""

from __future__ import annotations

import numpy as np
import pytest
from indexing_support import HashEmbedder, records, run, write_jsonl

from qwen3_rag import index_corpus


def test_on_embedded_comes_once_after_the_last_embedding_and_before_the_save(tmp_path):
    class Closes(HashEmbedder):
        closed = False

        def embed_documents(self, texts):
            assert not self.closed, "embedded after on_embedded"
            return super().embed_documents(texts)

    corpus = write_jsonl(tmp_path / "c.jsonl", records(50))
    emb, seen = Closes(), []

    def on_embedded():
        seen.append((emb.calls, (tmp_path / "s" / "CURRENT").exists()))
        emb.closed = True

    report = run(corpus, tmp_path / "s", emb, on_embedded=on_embedded)
    assert seen == [(7, False)]  # 50 documents in batches of 8; no store saved yet
    assert report.store_size == 50


def test_bad_vectors_from_the_embedder_fail_at_once(tmp_path):
    class NaNs(HashEmbedder):
        def embed_documents(self, texts):
            out = super().embed_documents(texts)
            out[0, 0] = np.nan
            return out

    class Short(HashEmbedder):
        def embed_documents(self, texts):
            return super().embed_documents(texts)[:, :4]

    corpus = write_jsonl(tmp_path / "c.jsonl", records(40))
    emb = NaNs()
    with pytest.raises(ValueError, match="NaN or infinite"):
        index_corpus(corpus, tmp_path / "s", emb, batch_size=8, show_progress=False)
    assert emb.calls <= 2 and not (tmp_path / "s").exists()
    with pytest.raises(ValueError, match=r"shape \(8, 4\).*\(8, 16\)"):
        index_corpus(corpus, tmp_path / "s", Short(), batch_size=8, show_progress=False)
