"""Indexing again: unchanged records are not embedded, changed ones replace theirs (all their
chunks), ``delete_missing`` deletes what the source no longer has; the counts in the report;
stores saved without content hashes; SIGKILL in the middle of an incremental run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time

import numpy as np
import pytest
from indexing_support import (
    SRC,
    HashEmbedder,
    committed_count,
    contents,
    ids_vectors_metadata,
    index_command,
    run,
    topic_records,
    write_jsonl,
)

from qwen3_rag import FaissStore, Qwen3Embedder
from qwen3_rag.indexing import STAGING
from qwen3_rag.store.layout import DOCS_FILE, MANIFEST, checksum, read_manifest


class Recording(HashEmbedder):
    """A :class:`HashEmbedder` that keeps every text it embedded."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.texts: list[str] = []

    def embed_documents(self, texts):
        self.texts += texts
        return super().embed_documents(texts)


def counts(report) -> tuple[int, int, int, int]:
    return report.added, report.updated, report.unchanged, report.deleted


def version(store) -> str:
    return (store / "CURRENT").read_text()


def edited(recs: list[dict]) -> list[dict]:
    """``recs`` with d1's text and d2's metadata changed, d3 and d4 gone, two new records."""
    out = [dict(r) for r in recs if r["id"] not in ("d3", "d4")]
    out[1]["text"] = "a new text for d1"
    out[2]["topic"] = "changed"
    return [*out, {"id": "new1", "text": "new one", "topic": "x"},
            {"id": "new2", "text": "new two", "topic": "y"}]


def test_a_second_run_embeds_nothing_and_saves_no_version(tmp_path):
    recs = topic_records(50)
    store = tmp_path / "s"
    first = run(recs, store)
    assert counts(first) == (50, 0, 0, 0)
    saved = version(store)
    before = contents(store)
    emb = Recording()
    again = run(write_jsonl(tmp_path / "c.jsonl", recs), store, emb)
    assert counts(again) == (0, 0, 50, 0) and again.documents == 50 and again.chunks == 0
    assert emb.texts == [] and again.store_size == 50
    assert version(store) == saved  # nothing changed: no new version
    after = contents(store)
    assert after[0] == before[0] and after[2:] == before[2:]
    np.testing.assert_array_equal(after[1], before[1])
    assert not (store / STAGING).exists()


def test_changed_records_replace_theirs_and_delete_missing_removes_the_rest(tmp_path):
    recs = topic_records(30)
    store = tmp_path / "s"
    run(recs, store)
    emb = Recording()
    new = edited(recs)
    report = run(new, store, emb)
    assert counts(report) == (2, 2, 26, 0)
    assert sorted(emb.texts) == sorted(["a new text for d1", recs[2]["text"], "new one", "new two"])
    loaded = FaissStore.load(store)
    assert len(loaded) == 32 and "d3" in loaded  # kept: no delete_missing
    assert loaded.get(["d1"])[0].text == "a new text for d1"
    assert loaded.get(["d2"])[0].metadata["topic"] == "changed"

    emb = Recording()
    report = run(new, store, emb, delete_missing=True)
    assert counts(report) == (0, 0, 30, 2) and emb.texts == []
    ids, vectors, _metas, texts = contents(store)
    assert sorted(ids) == sorted(r["id"] for r in new)
    expected = {r["id"]: r for r in new}
    assert texts == [expected[i]["text"] for i in ids]
    np.testing.assert_array_equal(vectors, HashEmbedder().embed_documents(texts))
    hits = FaissStore.load(store).search(HashEmbedder().embed_documents([recs[3]["text"]]), k=40)[0]
    assert "d3" not in {h.id for h in hits}


def test_delete_missing_of_an_empty_source_is_refused(tmp_path):
    from qwen3_rag.indexing import EmptyCorpusError

    store = tmp_path / "s"
    run(topic_records(5), store)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"no_text": 1}\n', encoding="utf-8")
    with pytest.raises(EmptyCorpusError, match="delete the whole store"):
        run(bad, store, skip_bad_lines=True, delete_missing=True)
    assert len(FaissStore.load(store)) == 5


def test_another_model_or_chunking_re_embeds_everything(tmp_path, emb):
    recs = topic_records(12)
    store = tmp_path / "s"
    run(recs, store, emb)
    other = Recording()
    other.fingerprint = {"model": "another-model", "dimension": emb.fingerprint["dimension"]}
    other.dim = emb.fingerprint["dimension"]
    report = run(recs, store, other, check_model=False)
    assert counts(report) == (0, 12, 0, 0) and len(other.texts) == 12

    store2 = tmp_path / "chunked"
    long = [{"id": "long", "text": " ".join(f"word{i}" for i in range(60))}, *recs]
    first = run(long, store2, emb, chunk_tokens=16, chunk_overlap=4)
    n_long = sum(i.startswith("long#") for i in contents(store2)[0])
    assert n_long > 2 and first.chunks == len(contents(store2)[0])
    assert counts(run(long, store2, emb, chunk_tokens=16, chunk_overlap=4)) == (0, 0, 13, 0)
    report = run(long, store2, emb, chunk_tokens=32, chunk_overlap=4)  # other chunking
    assert counts(report) == (0, 13, 0, 0)
    ids = contents(store2)[0]
    assert 0 < sum(i.startswith("long#") for i in ids) < n_long  # fewer chunks: the old ones gone
    assert len(ids) == report.chunks
    others = [i for i in ids if not i.startswith("long")]
    short = [{"id": "long", "text": "now short"}, *recs]
    report = run(short, store2, emb, chunk_tokens=32, chunk_overlap=4)
    assert counts(report) == (0, 1, 12, 0) and report.chunks == 1
    ids = contents(store2)[0]
    assert [i for i in ids if i.startswith("long")] == ["long#0"]
    assert [i for i in ids if not i.startswith("long")] == others


def test_repeated_ids_stay_last_one_wins_when_run_again(tmp_path):
    recs = [{"id": "a", "text": "first a"}, {"id": "b", "text": "b"}, {"id": "a", "text": "second a"}]
    store = tmp_path / "s"
    run(recs, store)
    for _ in range(2):
        report = run(recs, store)
        assert FaissStore.load(store).get(["a"])[0].text == "second a"
        assert (report.unchanged, report.repeated) == (1, 1)
    ids, vectors, _, texts = contents(store)
    assert sorted(ids) == ["a", "b"]
    np.testing.assert_array_equal(vectors, HashEmbedder().embed_documents(texts))


def test_a_store_saved_without_hashes_is_re_indexed_once(tmp_path):
    recs = topic_records(20)
    store = tmp_path / "s"
    run(recs, store)
    strip_hashes(store)
    assert "hash" not in columns(store)
    report = run(recs, store)
    assert counts(report) == (0, 20, 0, 0) and report.store_size == 20
    assert {"source", "hash"} <= columns(store)
    assert counts(run(recs, store)) == (0, 0, 20, 0)
    strip_hashes(store)
    report = run(recs[:15], store, delete_missing=True)  # documents without a source are their own
    assert (report.updated, report.deleted, report.store_size) == (15, 5, 15)


def columns(store) -> set[str]:
    vdir, _ = read_manifest(store)
    conn = sqlite3.connect(vdir / DOCS_FILE)
    try:
        return {r[1] for r in conn.execute("PRAGMA table_info(docs)")}
    finally:
        conn.close()


def strip_hashes(store) -> None:
    """Make the saved store's documents table as a store saved before content hashes has it."""
    vdir, manifest = read_manifest(store)
    conn = sqlite3.connect(vdir / DOCS_FILE)
    conn.execute("DROP INDEX docs_source")
    conn.execute("ALTER TABLE docs DROP COLUMN source")
    conn.execute("ALTER TABLE docs DROP COLUMN hash")
    conn.commit()
    conn.execute("VACUUM")
    conn.close()
    path = vdir / DOCS_FILE
    manifest["files"][DOCS_FILE] = {"size": path.stat().st_size, "blake2b": checksum(path)}
    (vdir / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


def test_the_cli_reports_the_counts_and_deletes_missing(tmp_path, tiny_embedding):
    recs = topic_records(12)
    corpus = write_jsonl(tmp_path / "c.jsonl", recs)
    store = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    cmd = index_command(corpus, store, tiny_embedding)
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=300).returncode == 0
    write_jsonl(corpus, edited(recs))
    out = subprocess.run([a for a in cmd if a != "--json"] + ["--delete-missing"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    table = dict(line.split(None, 1) for line in out.stdout.splitlines() if line.strip())
    assert (table["added"], table["updated"], table["unchanged"], table["deleted"]) == ("2", "2", "8", "2")
    again = subprocess.run([*cmd, "--delete-missing"], env=env, capture_output=True, text=True, timeout=300)
    report = json.loads(again.stdout)
    assert (report["added"], report["updated"], report["unchanged"], report["deleted"]) == (0, 0, 12, 0)
    assert report["store_size"] == 12


@pytest.mark.slow
def test_sigkill_mid_incremental_run_then_resume_equals_uninterrupted_run(tmp_path, tiny_embedding):
    n = 1200
    recs = topic_records(n)
    base = tmp_path / "base"
    from qwen3_rag.indexing import index_corpus

    index_corpus(recs, base, Qwen3Embedder(tiny_embedding, backend="hf"), batch_size=16, show_progress=False)
    new = [dict(r, text=r["text"] + " Revised.") if i % 2 else r for i, r in enumerate(recs) if i % 10 != 3]
    new += [{"id": f"n{i}", "text": f"new record {i}", "topic": "new"} for i in range(40)]
    corpus = write_jsonl(tmp_path / "c.jsonl", new)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    shutil.copytree(base, killed)
    shutil.copytree(base, clean)
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    cmd = [*index_command(corpus, killed, tiny_embedding), "--delete-missing"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while committed_count(killed / STAGING) < 200:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "indexing made no progress"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = committed_count(killed / STAGING)
    assert 200 <= at_kill < len(new), "the run must be killed part-way"
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    uninterrupted = subprocess.run([*index_command(corpus, clean, tiny_embedding), "--delete-missing"],
                                   env=env, capture_output=True, text=True, timeout=300)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    got, want = json.loads(resumed.stdout), json.loads(uninterrupted.stdout)
    assert got["resumed_from"] == at_kill
    keys = ("added", "updated", "unchanged", "deleted", "documents", "chunks", "store_size")
    assert [got[k] for k in keys] == [want[k] for k in keys] == [40, 480, 600, 120, 1120, 520, 1120]
    ids_k, vecs_k, metas_k = ids_vectors_metadata(killed)
    ids_c, vecs_c, metas_c = ids_vectors_metadata(clean)
    assert ids_k == ids_c and metas_k == metas_c
    np.testing.assert_array_equal(vecs_k, vecs_c)
