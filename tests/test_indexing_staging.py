"""index_corpus staging and build: the vectors file, crash points around a commit, the
background build (IVF trained during the stream), repeated ids, bad embedder output."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import threading
import types
import zlib
from pathlib import Path

import numpy as np
import pytest

import qwen3_rag.indexing as ix
from qwen3_rag import FaissStore, index_corpus
from qwen3_rag.indexing import STAGED_VECTORS, STAGING
from qwen3_rag.store import BulkLoad, VectorIndex, kinds

SRC = str(Path(__file__).resolve().parents[1] / "src")
DIM = 16

TESTS = str(Path(__file__).resolve().parent)


class HashEmbedder:
    """Deterministic vectors from a hash of the text (no model): fast and reproducible."""

    tokenizer = None

    def __init__(self, dim: int = DIM, batch_size: int = 8):
        self.dim = dim
        self.batch_size = batch_size
        self.fingerprint = {"model": "hash-embedder", "dimension": dim}
        self.calls = 0

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.stack([np.random.default_rng(zlib.crc32(t.encode())).standard_normal(self.dim)
                        for t in texts]).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class Dies(HashEmbedder):
    """Raises on call ``at`` (a crash in the middle of a run, in-process)."""

    def __init__(self, at: int, **kw):
        super().__init__(**kw)
        self.at = at

    def embed_documents(self, texts):
        if self.calls + 1 == self.at:
            self.calls += 1
            raise RuntimeError("boom")
        return super().embed_documents(texts)


def records(n: int, repeat_every: int = 0) -> list[dict]:
    out = []
    for i in range(n):
        doc_id = f"d{i % repeat_every}" if repeat_every and i % 3 == 0 else f"d{i}"
        out.append({"id": doc_id, "text": f"text number {i} about {['cats', 'rivers', 'stars'][i % 3]}",
                    "n": i})
    return out


def write_jsonl(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def contents(path: Path) -> tuple[list[str], np.ndarray, list[dict], list[str]]:
    store = FaissStore.load(path)
    recs = list(store.iter_records())
    ids = [r.id for r in recs]
    assert store.index.ntotal == len(store) == len(ids)  # no stale vectors left in Faiss
    return ids, store.vectors(ids), [r.metadata for r in recs], [r.text for r in recs]


def assert_same(a: Path, b: Path) -> None:
    ids_a, vecs_a, metas_a, texts_a = contents(a)
    ids_b, vecs_b, metas_b, texts_b = contents(b)
    assert ids_a == ids_b and metas_a == metas_b and texts_a == texts_b
    np.testing.assert_array_equal(vecs_a, vecs_b)


def committed_vectors(store: Path) -> int:
    conn = sqlite3.connect(store / STAGING)
    try:
        return json.loads(conn.execute("SELECT value FROM meta WHERE key = 'vectors'").fetchone()[0])
    finally:
        conn.close()


def run(source, store: Path, embedder=None, **kw):
    """index_corpus with this file's defaults: 8 documents per batch and per commit."""
    kw = {"batch_size": 8, "commit_every": 8, "show_progress": False, **kw}
    return index_corpus(source, store, embedder or HashEmbedder(), **kw)


def crash_midway(corpus: Path, store: Path, **kw) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        index_corpus(corpus, store, Dies(at=6), batch_size=8, commit_every=8, show_progress=False, **kw)
    assert (store / STAGING).exists() and (store / STAGED_VECTORS).exists()


def test_clean_run_stages_in_a_file_and_leaves_nothing_behind(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", records(50))
    report = index_corpus(corpus, tmp_path / "s", HashEmbedder(), batch_size=8, show_progress=False)
    assert (report.documents, report.store_size) == (50, 50)
    assert {"stream", "build", "save", "train", "add"} <= set(report.timings)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["CURRENT", "v-000001"]
    ids, vecs, metas, texts = contents(tmp_path / "s")
    assert ids == [f"d{i}" for i in range(50)] and metas[7] == {"n": 7}
    np.testing.assert_array_equal(vecs, HashEmbedder().embed_documents(texts))


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


def test_vectors_file_longer_than_committed_is_cut_on_resume(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", records(100))
    crash_midway(corpus, tmp_path / "s")
    vec_file = tmp_path / "s" / STAGED_VECTORS
    committed = committed_vectors(tmp_path / "s")
    assert committed == 40  # 5 batches of 8, one commit each, before the 6th embedding call failed
    with open(vec_file, "ab") as f:  # an uncommitted tail (e.g. a crash before the commit)
        f.write(np.full((5, DIM), 7.0, np.float32).tobytes() + b"\x01\x02")
    st = ix._Staging(tmp_path / "s" / STAGING, DIM)
    st.open_vectors()
    assert vec_file.stat().st_size == committed * DIM * 4
    np.testing.assert_array_equal(st.vectors(committed)[-1], np.fromfile(vec_file, np.float32)[-DIM:])
    st.close()
    with open(vec_file, "ab") as f:
        f.write(b"\x00" * 100)
    report = run(corpus, tmp_path / "s")
    assert report.resumed_from == 40 and report.store_size == 100
    run(corpus, tmp_path / "clean")
    assert_same(tmp_path / "s", tmp_path / "clean")
    assert not vec_file.exists() and not (tmp_path / "s" / STAGING).exists()


KILL_BETWEEN_WRITE_AND_COMMIT = textwrap.dedent('''
    import os, signal, sys
    sys.path.insert(0, sys.argv[3])
    import qwen3_rag.indexing as ix
    from test_indexing_staging import HashEmbedder

    original = ix._Staging.commit
    commits = 0

    def commit(self):
        global commits
        commits += 1
        if commits == 4:
            self.file.flush()
            os.fsync(self.file.fileno())  # the vectors of this commit are on disk ...
            os.kill(os.getpid(), signal.SIGKILL)  # ... and the transaction never happens
        original(self)

    ix._Staging.commit = commit
    ix.index_corpus(sys.argv[1], sys.argv[2], HashEmbedder(), batch_size=8, commit_every=8,
                    show_progress=False)
''')


def test_sigkill_between_vectors_fsync_and_commit_resumes_exactly(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", records(100))
    killed = tmp_path / "killed"
    script = [sys.executable, "-c", KILL_BETWEEN_WRITE_AND_COMMIT, str(corpus), str(killed), TESTS]
    proc = subprocess.run(script, env={**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert committed_vectors(killed) == 24  # 3 commits made; the 4th died before its transaction
    assert (killed / STAGED_VECTORS).stat().st_size == 32 * DIM * 4  # its vectors are in the file
    report = run(corpus, killed)
    assert report.resumed_from == 24 and report.store_size == 100
    run(corpus, tmp_path / "clean")
    assert_same(killed, tmp_path / "clean")
    assert not (killed / STAGED_VECTORS).exists()


def test_damaged_staging_is_refused_then_discarded(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", records(60))
    crash_midway(corpus, tmp_path / "s")
    vec_file = tmp_path / "s" / STAGED_VECTORS
    os.truncate(vec_file, vec_file.stat().st_size - 4 * DIM)  # a committed vector went missing
    with pytest.raises(ValueError, match=r"damaged.*resume=False"):
        run(corpus, tmp_path / "s")
    assert (tmp_path / "s" / STAGING).exists()  # still there: nothing is deleted behind the user's back
    report = run(corpus, tmp_path / "s", resume=False)
    assert report.resumed_from == 0 and report.store_size == 60


def test_run_staged_by_an_older_version_is_resumed(tmp_path):
    """Older versions kept the vectors as BLOBs in the staging database."""
    corpus = write_jsonl(tmp_path / "c.jsonl", records(70))
    crash_midway(corpus, tmp_path / "s")
    vec_file = tmp_path / "s" / STAGED_VECTORS
    vecs = np.fromfile(vec_file, np.float32).reshape(-1, DIM)
    conn = sqlite3.connect(tmp_path / "s" / STAGING)
    n = conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
    conn.execute("ALTER TABLE rows ADD COLUMN vector BLOB NOT NULL DEFAULT x''")
    conn.executemany("UPDATE rows SET vector = ? WHERE seq = ?",
                     [(vecs[i].tobytes(), i + 1) for i in range(n)])
    conn.execute("DELETE FROM meta WHERE key IN ('vectors', 'expected')")
    conn.commit()
    conn.close()
    vec_file.unlink()
    report = run(corpus, tmp_path / "s")
    assert report.resumed_from == 40 and report.store_size == 70
    run(corpus, tmp_path / "clean")
    assert_same(tmp_path / "s", tmp_path / "clean")


@pytest.mark.parametrize("index", ["flat", {"kind": "ivf", "nlist": 4}, "hnsw"])
def test_repeated_ids_last_one_wins(tmp_path, index):
    recs = records(120, repeat_every=7)  # repeats within a batch, across batches and commits
    recs[5] = {"id": "d4", "text": "a repeat right after the first", "n": -1}
    expected = {}
    for r in recs:
        expected.pop(r["id"], None)
        expected[r["id"]] = r  # the last one, at the position of the last one
    store = tmp_path / "s"
    report = index_corpus(recs, store, HashEmbedder(), batch_size=8, commit_every=16, show_progress=False,
                          index=index)
    assert report.store_size == len(expected) < 120
    assert report.replaced == 120 - len(expected)  # said, not silent (a warning, the CLI's table)
    loaded = FaissStore.load(store)
    recs_out = list(loaded.iter_records())
    assert [r.id for r in recs_out] == list(expected)
    assert [r.text for r in recs_out] == [r["text"] for r in expected.values()]
    if index != "hnsw":  # HNSW can't drop vectors: replaced ones stay as unreachable orphans
        assert loaded.index.ntotal == len(loaded)
    np.testing.assert_array_equal(loaded.vectors(list(expected)),
                                  HashEmbedder().embed_documents([r["text"] for r in expected.values()]))
    hits = loaded.search(HashEmbedder().embed_documents([recs[-1]["text"]]), k=3)[0]
    assert hits[0].id == recs[-1]["id"] and len({h.id for h in hits}) == 3
    # a second corpus replaces documents of the saved store
    again = [{"id": "d0", "text": "d0 rewritten", "n": 0}, {"id": "new", "text": "brand new", "n": 1},
             {"id": "d0", "text": "d0 rewritten twice", "n": 2}]
    second = index_corpus(again, store, HashEmbedder(), batch_size=2, show_progress=False)
    loaded = FaissStore.load(store)
    assert len(loaded) == len(expected) + 1
    assert second.replaced == 2  # the saved d0, then this corpus's first d0
    if index != "hnsw":
        assert loaded.index.ntotal == len(loaded)
    assert loaded.get(["d0"])[0].text == "d0 rewritten twice"
    np.testing.assert_array_equal(loaded.vectors(["d0"]),
                                  HashEmbedder().embed_documents(["d0 rewritten twice"]))
    assert [r.id for r in loaded.iter_records()][-2:] == ["new", "d0"]


def test_ivf_is_trained_during_the_stream_and_resumes_exactly(tmp_path, monkeypatch):
    n = 2400
    corpus = write_jsonl(tmp_path / "c.jsonl", records(n))
    index = {"kind": "ivf", "nlist": 8}  # 50 x 8 = 400 training vectors; trained at n / 2
    seen = []
    original_train = FaissStore.train
    emb = HashEmbedder(batch_size=50)

    def spy(self, vectors, expected_size=None):
        seen.append((threading.current_thread().name, len(vectors), expected_size, emb.calls,
                     np.array(vectors)))
        return original_train(self, vectors, expected_size)

    monkeypatch.setattr(FaissStore, "train", spy)
    report = index_corpus(corpus, tmp_path / "clean", emb, commit_every=50, show_progress=False, index=index)
    assert report.index_kind == "ivf" and report.store_size == n
    [(thread, size, expected_size, calls, sample)] = seen
    assert thread.startswith("qwen3-rag-index") and (size, expected_size) == (400, n)
    assert calls < n // 50  # before the last batch was embedded
    first_half = HashEmbedder().embed_documents([r["text"] for r in records(n // 2)])
    np.testing.assert_array_equal(sample, first_half[np.linspace(0, n // 2 - 1, 400).astype(np.int64)])
    assert report.timings["train"] > 0

    seen.clear()
    with pytest.raises(RuntimeError, match="boom"):  # dies after the index was trained
        index_corpus(corpus, tmp_path / "s", Dies(at=40, batch_size=50), commit_every=50, show_progress=False,
                     index=index)
    report = index_corpus(corpus, tmp_path / "s", HashEmbedder(batch_size=50), commit_every=50,
                          show_progress=False, index=index)
    assert report.resumed_from == 39 * 50 and report.store_size == n
    np.testing.assert_array_equal(seen[-1][4], sample)  # trained again on the same sample
    assert_same(tmp_path / "s", tmp_path / "clean")


def test_auto_index_of_unknown_or_wrongly_guessed_size_is_chosen_at_the_end(tmp_path, monkeypatch):
    monkeypatch.setattr(kinds, "FLAT_MAX", 300)  # so that "auto" picks IVF for a test-sized corpus
    recs = records(900)
    index_corpus((r for r in recs), tmp_path / "gen", HashEmbedder(), show_progress=False)  # no size
    index_corpus(recs, tmp_path / "list", HashEmbedder(), show_progress=False)  # size known
    # a size guessed far too big: planned IVF never reaches its training point; chosen anew
    guessed = ix.open_source(recs)
    monkeypatch.setattr(type(guessed), "count", lambda self: 100_000)
    index_corpus(guessed, tmp_path / "guessed", HashEmbedder(), show_progress=False)
    for name in ("gen", "list", "guessed"):
        store = FaissStore.load(tmp_path / name)
        assert store.index_kind == "ivf" and store.spec.nlist == 128, name  # the size of 900
    assert_same(tmp_path / "gen", tmp_path / "list")
    assert_same(tmp_path / "gen", tmp_path / "guessed")


def test_chunked_corpus_is_planned_by_its_vectors_not_its_records(tmp_path, monkeypatch):
    """100 records of 5 chunks each: an auto index planned for the 100 records would be flat
    (here, under FLAT_MAX=300) and rebuilt into IVF by size at the save."""

    class Words(HashEmbedder):
        @staticmethod
        def tokenizer(text, add_special_tokens=False, return_offsets_mapping=True):
            return {"offset_mapping": [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]}

    monkeypatch.setattr(kinds, "FLAT_MAX", 300)
    rebuilt = []
    original = VectorIndex.rebuild
    monkeypatch.setattr(VectorIndex, "rebuild",
                        lambda self, spec, keys: rebuilt.append(spec) or original(self, spec, keys))
    recs = [{"id": f"d{i}", "text": " ".join(f"w{i}-{j}" for j in range(40))} for i in range(100)]
    report = run(recs, tmp_path / "s", Words(), chunk_tokens=8, chunk_overlap=0)
    assert (report.chunks, report.index_kind) == (500, "ivf") and not rebuilt
    assert FaissStore.load(tmp_path / "s").spec.nlist == 64  # for 500 vectors


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


def test_faiss_threads_leave_the_engines_their_cores_while_they_embed(tmp_path, monkeypatch):
    """While documents are embedded, Faiss (training, adding) gets the cores the engine pool's
    workers and the reading/embedding threads leave; afterwards (the last adds, the save) the
    process's default, whatever limit the caller's thread has (torch.set_num_threads(1), which
    vLLM sets, also limits Faiss in that thread)."""
    import faiss

    default: list[int] = []
    probe = threading.Thread(target=lambda: default.append(faiss.omp_get_max_threads()))
    probe.start()
    probe.join()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    if default[0] == 1:
        pytest.skip("OpenMP runs one thread here by default: nothing to leave to the engines")
    pooled = default[0] - 1  # the host as if it had 3 cores more than OpenMP's default uses:
    monkeypatch.setattr(ix, "_cores", lambda: pooled + 3 + 2)  # 3 engine workers, 2 threads

    class Pooled(HashEmbedder):
        engine = types.SimpleNamespace(pool=types.SimpleNamespace(procs=[None] * 3))

    emb = Pooled(batch_size=50)
    n = 2400
    seen: list[tuple[str, int, bool]] = []
    finished: list[bool] = []
    original_finish = ix._Indexer.finish

    def finish(self, total):
        finished.append(True)  # the stream is over
        return original_finish(self, total)

    monkeypatch.setattr(ix._Indexer, "finish", finish)
    for owner, name in ((FaissStore, "train"), (BulkLoad, "add_keyed"), (FaissStore, "save")):
        original = getattr(owner, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            seen.append((_name, faiss.omp_get_max_threads(), not finished))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(owner, name, spy)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        report = index_corpus(write_jsonl(tmp_path / "c.jsonl", records(n)), tmp_path / "s", emb,
                              commit_every=50, show_progress=False, index={"kind": "ivf", "nlist": 8})
    finally:
        faiss.omp_set_num_threads(before)
    assert report.store_size == n
    during = {threads for _, threads, streaming in seen if streaming}
    assert ("train", pooled, True) in seen and during == {pooled}
    assert {threads for _, threads, _ in seen} == {pooled, default[0]}
    assert seen[-1] == ("save", default[0], False)

    assert ix._stream_threads(HashEmbedder()) is None  # no engine pool here: the default
    remote = types.SimpleNamespace(engine=types.SimpleNamespace(pool=emb.engine.pool,
                                                                config=types.SimpleNamespace(backend="remote")))
    assert ix._stream_threads(remote) is None  # HTTP clients: nothing to leave them
    monkeypatch.setenv("OMP_NUM_THREADS", "5")  # the user's setting wins
    assert ix._stream_threads(emb) is None
