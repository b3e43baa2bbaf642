"""The background build: repeated ids (the last wins), IVF trained during the stream, an index
chosen by size planned and re-chosen, Faiss threads left to the engines while they embed."""

from __future__ import annotations

import re
import threading
import types

import numpy as np
import pytest
from indexing_support import Dies, HashEmbedder, assert_same, records, run, write_jsonl

from qwen3_rag import FaissStore, index_corpus
from qwen3_rag.indexing import StoreBuilder, builder, open_source
from qwen3_rag.store import BulkLoad, VectorIndex, kinds


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
    guessed = open_source(recs)
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
    monkeypatch.setattr(builder, "cores", lambda: pooled + 3 + 2)  # 3 engine workers, 2 threads

    class Pooled(HashEmbedder):
        engine = types.SimpleNamespace(pool=types.SimpleNamespace(procs=[None] * 3))

    emb = Pooled(batch_size=50)
    n = 2400
    seen: list[tuple[str, int, bool]] = []
    finished: list[bool] = []
    original_finish = StoreBuilder.finish

    def finish(self, total, *args, **kwargs):
        finished.append(True)  # the stream is over
        return original_finish(self, total, *args, **kwargs)

    monkeypatch.setattr(StoreBuilder, "finish", finish)
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

    assert builder.stream_threads(HashEmbedder()) is None  # no engine pool here: the default
    remote = types.SimpleNamespace(engine=types.SimpleNamespace(pool=emb.engine.pool,
                                                                config=types.SimpleNamespace(backend="remote")))
    assert builder.stream_threads(remote) is None  # HTTP clients: nothing to leave them
    monkeypatch.setenv("OMP_NUM_THREADS", "5")  # the user's setting wins
    assert builder.stream_threads(emb) is None
