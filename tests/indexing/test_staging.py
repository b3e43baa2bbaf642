"""Staging files: a clean run leaves nothing, a vectors file longer than committed is cut on
resume, a SIGKILL between the vectors' fsync and the commit resumes exactly, damaged staging
is refused, and vectors staged as SQLite BLOBs are moved to the file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from indexing_support import (
    DIM,
    SRC,
    TESTS,
    HashEmbedder,
    assert_same,
    committed_vectors,
    contents,
    crash_midway,
    records,
    run,
    write_jsonl,
)

from qwen3_rag import index_corpus
from qwen3_rag.indexing import STAGED_VECTORS, STAGING, Staging


def test_clean_run_stages_in_a_file_and_leaves_nothing_behind(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", records(50))
    report = index_corpus(corpus, tmp_path / "s", HashEmbedder(), batch_size=8, show_progress=False)
    assert (report.documents, report.store_size) == (50, 50)
    assert {"stream", "build", "save", "train", "add"} <= set(report.timings)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["CURRENT", "v-000001"]
    ids, vecs, metas, texts = contents(tmp_path / "s")
    assert ids == [f"d{i}" for i in range(50)] and metas[7] == {"n": 7}
    np.testing.assert_array_equal(vecs, HashEmbedder().embed_documents(texts))


def test_vectors_file_longer_than_committed_is_cut_on_resume(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", records(100))
    crash_midway(corpus, tmp_path / "s")
    vec_file = tmp_path / "s" / STAGED_VECTORS
    committed = committed_vectors(tmp_path / "s")
    assert committed == 40  # 5 batches of 8, one commit each, before the 6th embedding call failed
    with open(vec_file, "ab") as f:  # an uncommitted tail (e.g. a crash before the commit)
        f.write(np.full((5, DIM), 7.0, np.float32).tobytes() + b"\x01\x02")
    st = Staging(tmp_path / "s" / STAGING, DIM)
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
    from indexing_support import HashEmbedder

    from qwen3_rag import index_corpus
    from qwen3_rag.indexing import Staging

    original = Staging.commit
    commits = 0

    def commit(self):
        global commits
        commits += 1
        if commits == 4:
            self.file.flush()
            os.fsync(self.file.fileno())  # the vectors of this commit are on disk ...
            os.kill(os.getpid(), signal.SIGKILL)  # ... and the transaction never happens
        original(self)

    Staging.commit = commit
    index_corpus(sys.argv[1], sys.argv[2], HashEmbedder(), batch_size=8, commit_every=8,
                    show_progress=False)
''')


@pytest.mark.slow
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
    """Vectors staged as BLOBs in the staging database (column rows.vector) move to the file."""
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
