"""Records: malformed lines, records without text, metadata that is not JSON, an empty corpus."""

from __future__ import annotations

import pytest

from qwen3_rag import FaissStore, index_corpus
from qwen3_rag.indexing import BadInputError, EmptyCorpusError


def test_bad_lines_and_empty_corpus(tmp_path, emb):
    p = tmp_path / "c.jsonl"
    p.write_text('{"id": "a", "text": "fine"}\n\n{"id": "b", "text": \n'
                 '{"id": "c"}\n{"id": "d", "text": "ok"}\n')
    with pytest.raises(BadInputError, match=r"c\.jsonl:3: malformed JSON"):
        index_corpus(p, tmp_path / "s1", emb, show_progress=False)
    assert not (tmp_path / "s1").exists()  # nothing committed, nothing left behind
    report = index_corpus(p, tmp_path / "s2", emb, skip_bad_lines=True, show_progress=False)
    assert (report.documents, report.skipped) == (2, 2)
    assert [r.id for r in FaissStore.load(tmp_path / "s2").iter_records()] == ["a", "d"]
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(EmptyCorpusError):
        index_corpus(tmp_path / "e.jsonl", tmp_path / "s3", emb, show_progress=False)
    assert not (tmp_path / "s3").exists()
    with pytest.raises(FileNotFoundError):
        index_corpus(tmp_path / "missing.jsonl", tmp_path / "s4", emb)


def test_metadata_that_is_not_json_is_a_bad_record(tmp_path, emb):
    recs = [{"id": "a", "text": "fine", "score": 1.5}, {"id": "b", "text": "nan", "score": float("nan")},
            {"id": "c", "text": "inf", "score": float("inf")}]
    with pytest.raises(BadInputError, match=r"record 1: metadata is not valid JSON"):
        index_corpus(recs, tmp_path / "s", emb, show_progress=False)
    assert not (tmp_path / "s").exists()
    report = index_corpus(recs, tmp_path / "s", emb, show_progress=False, skip_bad_lines=True)
    assert (report.documents, report.skipped) == (1, 2)
    assert FaissStore.load(tmp_path / "s").get(["a"])[0].metadata == {"score": 1.5}
