"""The job: a resume with other settings is refused; SIGKILL mid-run, then a resume, equals an
uninterrupted run (through the CLI, with ``info`` describing the interrupted run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from indexing_support import (
    SRC,
    committed_count,
    ids_vectors_metadata,
    index_command,
    topic_records,
    write_jsonl,
)

from qwen3_rag import Qwen3Embedder, index_corpus
from qwen3_rag.indexing import STAGING


def test_resume_with_other_settings_is_refused(tmp_path, emb):
    p = write_jsonl(tmp_path / "c.jsonl", topic_records(20))
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


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_uninterrupted_run(tmp_path, tiny_embedding):
    n = 2000
    corpus = write_jsonl(tmp_path / "c.jsonl", topic_records(n))
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    killed_store = tmp_path / "killed"
    proc = subprocess.Popen(index_command(corpus, killed_store, tiny_embedding), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    staging = killed_store / STAGING
    deadline = time.monotonic() + 120
    while committed_count(staging) < 40:  # the 5th commit is on disk
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "indexing made no progress"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = committed_count(staging)
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
    without_model = [a for a in index_command(corpus, killed_store, tiny_embedding)
                     if a not in ("--model", tiny_embedding)]
    resumed = subprocess.run(without_model, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    report = json.loads(resumed.stdout)
    assert report["resumed_from"] == at_kill and report["store_size"] == n

    clean_store = tmp_path / "clean"
    clean = subprocess.run(index_command(corpus, clean_store, tiny_embedding), env=env,
                           capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr[-2000:]

    ids_k, vecs_k, metas_k = ids_vectors_metadata(killed_store)
    ids_c, vecs_c, metas_c = ids_vectors_metadata(clean_store)
    assert ids_k == ids_c == [f"d{i}" for i in range(n)]  # none lost, none duplicated, same order
    assert metas_k == metas_c
    np.testing.assert_array_equal(vecs_k, vecs_c)
    assert not staging.exists()
