"""index_corpus: sources, chunking, bad input, and exact resume after SIGKILL."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from qwen3_rag import FaissStore, Qwen3Embedder, index_corpus
from qwen3_rag.indexing import STAGING
from qwen3_rag.sources import BadInputError, EmptyCorpusError

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def emb(tiny_embedding):
    return Qwen3Embedder(tiny_embedding, backend="hf")


def records(n: int) -> list[dict]:
    topics = ["cats", "rivers", "music", "stars", "bread"]
    return [{"id": f"d{i}", "text": f"Document {i} is about {topics[i % 5]}. " * (1 + i % 4),
             "topic": topics[i % 5]} for i in range(n)]


def write_jsonl(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def contents(path: Path) -> tuple[list[str], np.ndarray, list[dict]]:
    store = FaissStore.load(path)
    recs = list(store.iter_records())
    ids = [r.id for r in recs]
    return ids, store.vectors(ids), [r.metadata for r in recs]


def test_sources_give_the_same_store(tmp_path, emb):
    recs = records(12)
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
        results[name] = contents(tmp_path / f"s-{name}")
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


def test_resume_with_other_settings_is_refused(tmp_path, emb):
    p = write_jsonl(tmp_path / "c.jsonl", records(20))
    calls = 0

    class Dies(Qwen3Embedder):
        def embed_documents(self, texts):
            nonlocal calls
            calls += 1
            if calls == 4:
                raise RuntimeError("boom")
            return super().embed_documents(texts)

    dying = Dies(emb.model, backend="hf")
    with pytest.raises(RuntimeError, match="boom"):
        index_corpus(p, tmp_path / "s", dying, batch_size=2, commit_every=2, show_progress=False)
    assert (tmp_path / "s" / STAGING).exists()
    with pytest.raises(ValueError, match="batch_size"):
        index_corpus(p, tmp_path / "s", emb, batch_size=3, commit_every=2, show_progress=False)
    report = index_corpus(p, tmp_path / "s", emb, batch_size=2, commit_every=2, show_progress=False)
    assert report.resumed_from == 6 and report.store_size == 20


def _committed(staging: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{staging}?mode=ro", uri=True, timeout=0.5)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'consumed'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
    return json.loads(row[0]) if row else 0


def _index_cmd(corpus: Path, store: Path, model: str) -> list[str]:
    return [sys.executable, "-m", "qwen3_rag", "index", str(corpus), "--store", str(store), "--model", model,
            "--backend", "hf", "--batch-size", "4", "--commit-every", "8", "--no-progress", "--json"]


def test_sigkill_mid_run_then_resume_equals_uninterrupted_run(tmp_path, tiny_embedding):
    n = 2000
    corpus = write_jsonl(tmp_path / "c.jsonl", records(n))
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    killed_store = tmp_path / "killed"
    proc = subprocess.Popen(_index_cmd(corpus, killed_store, tiny_embedding), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    staging = killed_store / STAGING
    deadline = time.monotonic() + 120
    while _committed(staging) < 40:  # the 5th commit is on disk
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "indexing made no progress"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = _committed(staging)
    assert 40 <= at_kill < n, "the run must be killed part-way"
    assert not (killed_store / "CURRENT").exists()

    # `info` describes the interrupted first run; `index` without --model resumes with its model
    info = subprocess.run([sys.executable, "-m", "qwen3_rag", "info", "--store", str(killed_store), "--json"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stderr[-2000:]
    first = json.loads(info.stdout)
    assert first["interrupted_indexing_run"] and first["count"] == 0
    assert first["interrupted_run"]["consumed"] == at_kill and first["interrupted_run"]["expected"] == n
    assert first["interrupted_run"]["settings"]["embedder"]["model"] == tiny_embedding
    table = subprocess.run([sys.executable, "-m", "qwen3_rag", "info", "--store", str(killed_store)],
                           env=env, capture_output=True, text=True, timeout=120).stdout
    assert "0 (no version saved yet)" in table and f"{at_kill:,} of {n:,} source records" in table
    without_model = [a for a in _index_cmd(corpus, killed_store, tiny_embedding)
                     if a not in ("--model", tiny_embedding)]
    resumed = subprocess.run(without_model, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    report = json.loads(resumed.stdout)
    assert report["resumed_from"] == at_kill and report["store_size"] == n

    clean_store = tmp_path / "clean"
    clean = subprocess.run(_index_cmd(corpus, clean_store, tiny_embedding), env=env,
                           capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr[-2000:]

    ids_k, vecs_k, metas_k = contents(killed_store)
    ids_c, vecs_c, metas_c = contents(clean_store)
    assert ids_k == ids_c == [f"d{i}" for i in range(n)]  # none lost, none duplicated, same order
    assert metas_k == metas_c
    np.testing.assert_array_equal(vecs_k, vecs_c)
    assert not staging.exists()
