"""One writer per store while indexing: a second ``qwen3-rag index`` fails at once naming the first's
pid and loses nothing; a SIGKILLed run's lock blocks nothing and it resumes; a run killed between the
version swap and the prune has its leftovers removed by the resumed run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from indexing_support import (
    SRC,
    TESTS,
    committed_count,
    contents,
    index_command,
    records,
    run,
    topic_records,
    write_jsonl,
)

from qwen3_rag.indexing import STAGING

ENV = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_a_second_index_fails_at_once_naming_the_first_and_nothing_is_lost(tmp_path, tiny_embedding):
    n = 8000
    corpus = write_jsonl(tmp_path / "c.jsonl", topic_records(n))
    store = tmp_path / "s"
    first = subprocess.Popen(index_command(corpus, store, tiny_embedding), env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while committed_count(store / STAGING) < 400:
            assert first.poll() is None, first.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "indexing made no progress"
            time.sleep(0.005)
        second = subprocess.run(index_command(corpus, store, tiny_embedding), env=ENV, capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 2, second.stderr[-2000:]
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and "qwen3_rag index" in lines[0]
        assert "interrupted" not in lines[0] and "--no-resume" not in lines[0]
        assert first.poll() is None  # the live job goes on
        at_kill = committed_count(store / STAGING)
        first.send_signal(signal.SIGKILL)  # then dies holding the lock
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    resumed = subprocess.run(index_command(corpus, store, tiny_embedding), env=ENV, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    report = json.loads(resumed.stdout)
    assert report["resumed_from"] >= at_kill and report["store_size"] == n
    ids = contents(store)[0]
    assert ids == [f"d{i}" for i in range(n)]  # none lost, none duplicated
    assert not (store / ".writer.lock").exists()


KILL_BETWEEN_SWAP_AND_PRUNE = textwrap.dedent('''
    import os, signal, sys
    sys.path.insert(0, sys.argv[3])
    from indexing_support import HashEmbedder
    from qwen3_rag import index_corpus
    from qwen3_rag.store import layout

    original = layout.prune

    def prune(root, keep):
        if keep == "v-000002":  # the save's prune: CURRENT names the new version, nothing pruned yet
            os.kill(os.getpid(), signal.SIGKILL)
        original(root, keep)

    layout.prune = prune
    index_corpus(sys.argv[1], sys.argv[2], HashEmbedder(), batch_size=8, commit_every=8,
                 show_progress=False)
''')


@pytest.mark.slow
def test_a_run_killed_between_swap_and_prune_is_tidied_by_its_resume(tmp_path):
    store = tmp_path / "s"
    run(write_jsonl(tmp_path / "a.jsonl", records(30)), store)  # v-000001
    more = write_jsonl(tmp_path / "b.jsonl", [{"id": f"e{i}", "text": f"more {i}"} for i in range(40)])
    proc = subprocess.run([sys.executable, "-c", KILL_BETWEEN_SWAP_AND_PRUNE, str(more), str(store), TESTS],
                          env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (store / "CURRENT").read_text().strip() == "v-000002"
    assert (store / "v-000001").is_dir() and (store / STAGING).exists()  # the leftovers
    (store / ".tmp-v-000003-abc").mkdir()  # and a temporary directory a killed save leaves
    report = run(more, store)
    assert report.store_size == 70
    assert sorted(p.name for p in store.iterdir()) == ["CURRENT", "v-000002"]
