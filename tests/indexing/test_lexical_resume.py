"""Indexing keeps the lexical index exactly in step with the documents and vectors: into an
existing store, with ids replaced (by earlier and later records), through a SIGKILL in the
middle of the build and the resumed run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from indexing_support import SRC, TESTS, assert_same, run, write_jsonl

from qwen3_rag import FaissStore

KILL_IN_THE_BUILD = textwrap.dedent('''
    import os, signal, sys
    sys.path.insert(0, sys.argv[3])
    from indexing_support import HashEmbedder

    from qwen3_rag import index_corpus
    from qwen3_rag.store import BulkLoad

    original = BulkLoad.import_rows
    calls = 0

    def import_rows(self, db, first, last):
        global calls
        calls += 1
        if calls == 3:  # two batches are in the store being built (in memory), more are staged
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, db, first, last)

    BulkLoad.import_rows = import_rows
    index_corpus(sys.argv[1], sys.argv[2], HashEmbedder(), batch_size=8, commit_every=8,
                 show_progress=False)
''')


def _corpus(first: int, n: int, tag: str) -> list[dict]:
    """Records ``d{first}``... naming ``tag``; every 7th repeats an id of the same corpus (a later
    record replaces the earlier one)."""
    return [{"id": f"d{first + (i - 3 if i % 7 == 6 else i)}", "text": f"record {tag}{i} word{i % 5}"}
            for i in range(n)]


def _check(path) -> list[str]:
    """The store's ids, checked to be exactly those of its vector and lexical indexes."""
    store = FaissStore.load(path)
    ids = [r.id for r in store.iter_records()]
    assert store.index.ntotal == len(store) == len(ids) and store.vectors(ids).shape[0] == len(ids)
    assert store.lexical_ids() == ids
    return ids


@pytest.mark.slow
def test_sigkill_mid_build_then_resume_leaves_the_indexes_in_step(tmp_path):
    records = _corpus(0, 40, "alpha"), _corpus(20, 120, "beta")  # the second replaces d20...
    first = write_jsonl(tmp_path / "first.jsonl", records[0])
    second = write_jsonl(tmp_path / "second.jsonl", records[1])
    final = {r["id"]: r["text"] for r in records[0] + records[1]}  # the last record of each id wins
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    for store in (killed, clean):
        run(first, store)
    script = [sys.executable, "-c", KILL_IN_THE_BUILD, str(second), str(killed), TESTS]
    proc = subprocess.run(script, env={**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert _check(killed) == _check(clean)  # the kill left the saved version as it was
    report = run(second, killed)
    assert report.resumed_from > 0 and report.store_size == len(_check(killed))
    run(second, clean)
    assert_same(killed, clean)
    ids = _check(killed)
    assert ids == _check(clean) and len(ids) == len(set(ids))

    store = FaissStore.load(killed)
    assert sorted(ids) == sorted(final)
    for r in records[0] + records[1]:  # each record's own word ("alpha7", "beta12")
        own = r["text"].split()[1]
        found = [h.id for h in store.search(k=5, mode="lexical", query=own)[0]]
        # under its document if it is that document's last record, else (replaced) nowhere
        assert found == ([r["id"]] if final[r["id"]] == r["text"] else []), (own, found)
