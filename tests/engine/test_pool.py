"""Data-parallel engine pool: worker processes, scatter/gather order, errors.

Most tests start worker processes (``slow``); the planning functions are tested without.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from typing import Any

import numpy as np
import pytest
from fake_http import fake_server, fake_vector, vllm_like

from qwen3_rag import Qwen3Embedder, Qwen3Reranker
from qwen3_rag.engine.pool import split_by_tokens
from qwen3_rag.engine.worker import pack, unpack

slow = pytest.mark.slow

#: float32 on the CPU: a worker computes its part of a batch with other padding and another
#: thread count than one engine computing the whole, so the sums run in another order (seen:
#: 2.2e-5 apart on unit vectors); a wrong token or pooling moves them by ~0.1
ATOL = 1e-4


def test_pack_roundtrip():
    seqs = [[1, 2, 3], [4], [5, 6]]
    flat, offsets = pack(seqs)
    assert flat.dtype == np.int32 and offsets.tolist() == [0, 3, 4, 6]
    assert unpack(flat, offsets) == seqs


def test_split_by_tokens_is_contiguous_and_balanced():
    lengths = [10] * 7 + [100] + [10] * 12
    ranges = split_by_tokens(lengths, 3)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    sums = [sum(lengths[a:b]) for a, b in ranges]
    assert max(sums) <= 2 * min(sums)
    assert split_by_tokens([5], 4) == [(0, 1)]


@slow
def test_pool_of_two_processes_matches_single_engine(tiny_embedding, tiny_reranker):
    texts = [f"document number {i} " + "word " * (i % 13) for i in range(50)]
    single = Qwen3Embedder(tiny_embedding, backend="hf")
    pooled = Qwen3Embedder(tiny_embedding, backend="hf", engines_per_gpu=2)
    assert type(pooled.engine).__name__ == "PoolEmbeddingEngine"
    assert len(pooled.engine.pool.procs) == 2
    assert all(p.is_alive() for p in pooled.engine.pool.procs)
    pooled.engine.pool.wait_ready(60)  # work starts with the first; here both should be ready
    startup = pooled.engine.pool.startup  # where each worker's start-up went
    assert [list(w) for w in startup["workers"]] == [["imports", "wait", "engine", "tokenizer"]] * 2
    assert startup["first"] <= startup["seconds"]
    assert all(sum(w.values()) <= startup["seconds"] + 0.05 for w in startup["workers"])
    assert all(w["engine"] > 0 for w in startup["workers"])
    np.testing.assert_allclose(pooled.embed_documents(texts), single.embed_documents(texts), atol=ATOL)
    assert not pooled.tokenizer_loaded  # the workers tokenize: this process never loaded a tokenizer
    assert pooled.formatter.documents(["a"]) == single.formatter.documents(["a"])  # loads on use
    assert pooled.embed_documents([]).shape == (0, 64)

    rr1 = Qwen3Reranker(tiny_reranker, backend="hf")
    rr2 = Qwen3Reranker(tiny_reranker, backend="hf", engines_per_gpu=2)
    np.testing.assert_allclose(rr2.score("q", texts), rr1.score("q", texts), atol=ATOL)

    procs = list(pooled.engine.pool.procs)
    pooled.engine.close()
    assert not any(p.is_alive() for p in procs)


def test_worker_formats_with_the_engines_own_tokenizer(tiny_embedding, tiny_reranker, monkeypatch):
    """A worker uses the tokenizer its engine loaded (vLLM's) and loads one only without it."""
    from qwen3_rag.engine import get_engine
    from qwen3_rag.engine.worker import worker_formatter
    from qwen3_rag.formats import RerankFormatter
    from qwen3_rag.tokenizer import load_tokenizer

    loaded = load_tokenizer(tiny_embedding)
    engine = get_engine("embedding", tiny_embedding, "hf", max_length=64)
    assert engine.own_tokenizer() is None  # the hf backend takes token ids only
    assert worker_formatter("embedding", engine, tiny_embedding, None, 64).tokenizer is loaded

    class Owning:
        def own_tokenizer(self):
            return loaded

    def no_load(*args, **kwargs):
        raise AssertionError("loaded a second tokenizer")

    monkeypatch.setattr("qwen3_rag.tokenizer.load_tokenizer", no_load)
    fmt = worker_formatter("embedding", Owning(), "unused", None, 64)
    assert fmt.tokenizer is loaded and fmt.max_length == 64
    assert fmt.documents(["a b"]) == [[*loaded.encode("a b", add_special_tokens=False), fmt.eos_id]]
    rerank = worker_formatter("reranker", Owning(), "unused", None, 128)
    assert rerank.tokenizer is loaded
    reference = RerankFormatter(load_tokenizer(tiny_reranker), 128)
    assert rerank.pairs([("q", "d")]) == reference.pairs([("q", "d")])


@slow
def test_pool_worker_start_failure_is_reported(tiny_embedding):
    """What only the engine can check (a device torch does not know) fails in the workers."""
    with pytest.raises(RuntimeError, match=r"worker failed to start.*device must be"):
        Qwen3Embedder(tiny_embedding, backend="hf", engines_per_gpu=2, device="gpu7")


@slow
def test_process_with_an_open_pool_exits(tiny_embedding, tmp_path):
    """A script that never closes its pool still exits (workers are closed before the join)."""
    import subprocess
    import sys

    script = tmp_path / "script.py"
    script.write_text(
        "import sys\nfrom qwen3_rag import Qwen3Embedder\n"
        "e = Qwen3Embedder(sys.argv[1], backend='hf', engines_per_gpu=2)\n"
        "print(e.embed_documents(['a', 'b', 'c']).shape)\n"
    )
    r = subprocess.run(
        [sys.executable, str(script), tiny_embedding], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "(3, 64)" in r.stdout


def test_plan_parts(monkeypatch):
    from qwen3_rag.engine import pool

    assert pool.plan_parts([10] * 5, 4) == [(0, 5)]  # small: one part, one worker
    assert pool.plan_parts([], 4) == []
    monkeypatch.setattr(pool, "SPLIT_MIN_TOKENS", 20)
    monkeypatch.setattr(pool, "PART_TOKENS", 30)
    parts = pool.plan_parts([10] * 12, 2)  # 120 tokens: 4 parts of ~30 (two rounds of two)
    assert parts[0][0] == 0 and parts[-1][1] == 12
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
    assert len(parts) == 4
    assert len(pool.plan_parts([10] * 10, 3)) == 6  # 100 tokens: 4 parts of 30 -> 2 rounds of 3
    assert len(pool.plan_parts([10] * 3, 8)) == 3  # never more parts than sequences


@slow
def test_pool_shared_queue_and_pipelined_batches_keep_order(tiny_embedding, tiny_reranker, monkeypatch):
    """Many small parts from several batches in flight come back in order and match one engine."""
    from qwen3_rag.engine import pool

    monkeypatch.setattr(pool, "SPLIT_MIN_TOKENS", 1)
    monkeypatch.setattr(pool, "PART_TOKENS", 40)
    texts = [f"text {i} " + "more words " * (i % 7) for i in range(90)]
    single = Qwen3Embedder(tiny_embedding, backend="hf").embed_documents(texts)
    pooled = Qwen3Embedder(tiny_embedding, backend="hf", engines_per_gpu=2, batch_size=16)
    pooled.engine.pool.wait_ready(60)
    np.testing.assert_allclose(pooled.embed_documents(texts), single, atol=ATOL)
    done = pooled.engine.pool.parts_done
    assert sum(done) >= 20 and min(done) > 0, done  # both workers took parts from the queue
    queries = [f"what is {i}?" for i in range(40)]
    ref_q = Qwen3Embedder(tiny_embedding, backend="hf").embed_queries(queries, instruction="Find it")
    np.testing.assert_allclose(pooled.embed_queries(queries, instruction="Find it"), ref_q, atol=ATOL)

    rr = Qwen3Reranker(tiny_reranker, backend="hf", engines_per_gpu=2, batch_size=16)
    ref = Qwen3Reranker(tiny_reranker, backend="hf").score("q?", texts)
    np.testing.assert_allclose(rr.score("q?", texts), ref, atol=ATOL)
    # the workers format the texts: a query too long for max_length fails there, as a ValueError
    short = Qwen3Reranker(tiny_reranker, backend="hf", engines_per_gpu=2, max_length=128)
    assert short.engine.formats_in_workers
    with pytest.raises(ValueError, match="instruction and query take"):
        short.score("a very long query " * 40, ["doc"])
    short.engine.close()
    pooled.engine.close()
    rr.engine.close()


@slow
def test_killed_worker_fails_the_pool_and_a_new_one_starts(tiny_embedding):
    """SIGKILL of one worker: the pool closes itself with an error naming the worker, and the
    engine cache starts a fresh pool for the next embedder."""
    import os
    import signal
    import time

    emb = Qwen3Embedder(tiny_embedding, backend="hf", engines_per_gpu=2, max_length=512)
    engine = emb.engine
    victim = engine.pool.procs[1]
    os.kill(victim.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not engine.closed and time.monotonic() < deadline:
        time.sleep(0.1)
    assert engine.closed
    with pytest.raises(RuntimeError, match=r"qwen3-rag-embedding-1 exited with code -9"):
        emb.embed_documents(["after the crash"])
    fresh = Qwen3Embedder(tiny_embedding, backend="hf", engines_per_gpu=2, max_length=512)
    assert fresh.engine is not engine
    assert fresh.embed_documents(["after the crash"]).shape == (1, 64)
    fresh.engine.close()


@slow
def test_engine_failure_closes_the_pool_instead_of_hanging(tiny_embedding):
    """An engine that fails on valid-looking input (here: a token id outside the vocabulary)
    fails the call with the worker named, closes the pool, and the next embedder gets a new one."""
    import time

    from qwen3_rag.engine.pool import EngineWorkerError

    emb = Qwen3Embedder(tiny_embedding, backend="hf", engines_per_gpu=2, max_length=256)
    engine = emb.engine
    t0 = time.monotonic()
    with pytest.raises(EngineWorkerError, match=r"engine worker \d failed: IndexError"):
        engine.embed([[10**8, 5]])
    while not engine.closed and time.monotonic() - t0 < 60:
        time.sleep(0.1)
    assert engine.closed and time.monotonic() - t0 < 60
    fresh = Qwen3Embedder(tiny_embedding, backend="hf", engines_per_gpu=2, max_length=256)
    assert fresh.engine is not engine
    assert fresh.embed_documents(["fine again"]).shape == (1, 64)
    fresh.engine.close()


def test_engines_on_one_gpu_are_built_in_turn_only_where_vllm_profiles_memory():
    from qwen3_rag.engine.options import HFOptions, RemoteOptions, VLLMOptions
    from qwen3_rag.engine.pool import builds_together

    assert not builds_together(VLLMOptions(gpu_memory_utilization=0.5))
    assert builds_together(VLLMOptions(kv_cache_memory_bytes=8 << 30))
    assert builds_together(HFOptions()) and builds_together(RemoteOptions(base_url="http://127.0.0.1:1"))


@slow
def test_staggered_vllm_builds_are_announced(tiny_embedding, caplog):
    """Engines built one after another cost minutes: the pool says how to build them at once.
    (No vLLM here, so the workers then fail to start, which the pool reports.)"""
    from qwen3_rag.engine.base import EngineConfig
    from qwen3_rag.engine.pool import PoolEmbeddingEngine

    config = EngineConfig("embedding", tiny_embedding, "vllm", 64)
    with caplog.at_level("WARNING", logger="qwen3_rag"), pytest.raises(RuntimeError, match="failed to start"):
        PoolEmbeddingEngine(config, {"engines_per_gpu": 2})
    assert "built one after another; set kv_cache_memory_bytes" in caplog.text


def _second_probe_held(release: threading.Event, answer: tuple[int, Any] | None = None) -> Any:
    """A vLLM-like server where the second engine's start-up probe waits for ``release`` (then
    gets ``answer``, or its vectors): one pool worker is ready, the other still starting."""

    def handle(method: str, path: str, body: Any, n: int) -> Any:
        if path == "/v1/embeddings" and body["input"] == ["dimension probe"] and n > 0:
            release.wait(30)
            if answer is not None:
                return answer
        return vllm_like(method, path, body, n)

    return handle


def _remote_pool(url: str, tokenizer: str) -> Qwen3Embedder:
    return Qwen3Embedder("remote-model", backend="remote", base_url=url, tokenizer=tokenizer, max_retries=0,
                         engines_per_gpu=2, max_length=256)


@slow
def test_the_pool_works_once_its_first_worker_is_ready(tiny_embedding, caplog):
    """Work does not wait for the slowest worker's start-up: the first ready worker takes it
    from the shared queue, and the others join as they come."""
    release = threading.Event()
    with fake_server(_second_probe_held(release)) as (url, _):
        emb = _remote_pool(url, tiny_embedding)
        pool = emb.engine.pool
        try:
            texts = [f"document {i}" for i in range(20)]
            got = emb.embed_documents(texts)  # while the second worker still waits for its probe
            assert len(pool.startup["workers"]) == 1 and not pool.all_ready.is_set()
            ids = emb.formatter.documents(texts)
            want = np.asarray([fake_vector(x) for x in ids], dtype=np.float32)
            np.testing.assert_allclose(got, want / np.linalg.norm(want, axis=1, keepdims=True), atol=1e-6)
            with pytest.raises(TimeoutError, match="1 of 2 engine workers ready"):
                pool.wait_ready(0.5)
            with caplog.at_level("INFO", logger="qwen3_rag"):
                release.set()
                pool.wait_ready(60)
            assert len(pool.startup["workers"]) == 2 and pool.startup["first"] <= pool.startup["seconds"]
            ready = (r"2 embedding engine workers ready in [\d.]+ s \(each after [\d.]+/[\d.]+ s; "
                     r"slowest: imports [\d.]+ s, wait [\d.]+ s, engine [\d.]+ s, tokenizer [\d.]+ s\)")
            assert re.search(ready, caplog.text), caplog.text
            np.testing.assert_allclose(emb.embed_documents(texts), got, atol=1e-6)
        finally:
            release.set()
            emb.engine.close()


@slow
def test_a_worker_failing_to_start_late_breaks_the_pool(tiny_embedding):
    """A worker that fails after the pool went to work: the pool closes with its error (the
    user asked for that many workers), and waiting for it says why."""
    release = threading.Event()
    answer = (400, {"error": {"message": "no more engines here"}})
    with fake_server(_second_probe_held(release, answer)) as (url, _):
        emb = _remote_pool(url, tiny_embedding)
        try:
            assert emb.embed_documents(["works with one worker"]).shape == (1, 4)
            release.set()
            with pytest.raises(RuntimeError, match=r"failed to start: RemoteError: .*no more engines here"):
                emb.engine.pool.wait_ready(60)
            deadline = time.monotonic() + 10
            while not emb.engine.closed and time.monotonic() < deadline:  # the collector closes it
                time.sleep(0.05)
            assert emb.engine.closed
            for batch in ([[1, 2]], [[1] * 4000] * 10):  # small, and large enough to be split
                with pytest.raises(RuntimeError, match="failed to start"):
                    emb.engine.embed(batch)
        finally:
            release.set()
            emb.engine.close()


@slow
def test_closing_a_pool_does_not_wait_for_workers_still_starting(tiny_embedding):
    """Workers still starting hold no work: close() stops them at once instead of waiting for
    their start-up (here: held until the server's 30 s wait ends)."""
    release = threading.Event()
    with fake_server(_second_probe_held(release)) as (url, _):
        emb = _remote_pool(url, tiny_embedding)
        try:
            assert emb.embed_documents(["one worker is enough"]).shape == (1, 4)
            procs = list(emb.engine.pool.procs)
            t0 = time.monotonic()
            emb.engine.close()
            assert time.monotonic() - t0 < 15
            assert not any(p.is_alive() for p in procs)
        finally:
            release.set()
