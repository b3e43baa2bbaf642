"""The pair-reranking job: scores, confidence, top-k, bad input, exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qwen3_rag import Qwen3Reranker
from qwen3_rag.indexing import BadInputError, EmptyCorpusError
from qwen3_rag.rerank_job import PairRerankJob, rerank_pairs


@pytest.fixture(scope="module")
def rr(tiny_reranker):
    return Qwen3Reranker(tiny_reranker, backend="hf")


DOCS = ["Paris is the capital of France.", "Bananas are yellow.", "The Seine flows through Paris.",
        "Berlin is in Germany.", "Cats sleep a lot.", "Lyon is a French city."]
QUERIES = ["capital of France?", "fruit colours", "German cities", "pets"]


def pairs_file(path: Path, n_queries: int = 4) -> Path:
    lines = [{"query_id": f"q{q}", "doc_id": f"d{d}", "query": QUERIES[q], "document": doc,
              "extra": q * 10 + d} for q in range(n_queries) for d, doc in enumerate(DOCS)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_scores_confidence_and_input_fields(tmp_path, rr):
    src = pairs_file(tmp_path / "p.jsonl")
    report = rerank_pairs(src, tmp_path / "out.jsonl", rr, batch_size=8, show_progress=False)
    rows = read(tmp_path / "out.jsonl")
    assert (report.pairs_scored, report.pairs_written, report.queries) == (24, 24, 4)
    inputs = read(src)
    assert [{k: r[k] for k in inputs[0]} for r in rows] == inputs  # input order and fields kept
    expected = rr.score_pairs([(x["query"], x["document"]) for x in inputs])
    np.testing.assert_allclose([r["relevance_score"] for r in rows], expected, atol=1e-5)
    for r in rows:
        assert r["confidence"] == pytest.approx(abs(2 * r["relevance_score"] - 1), abs=1e-9)
    assert not (tmp_path / "out.jsonl.progress.json").exists()


def test_top_k_and_min_confidence(tmp_path, rr):
    src = pairs_file(tmp_path / "p.jsonl")
    rerank_pairs(src, tmp_path / "all.jsonl", rr, show_progress=False)
    everything = read(tmp_path / "all.jsonl")
    rerank_pairs(src, tmp_path / "top.jsonl", rr, top_k=2, show_progress=False)
    top = read(tmp_path / "top.jsonl")
    for q in range(4):
        mine = [r for r in everything if r["query_id"] == f"q{q}"]
        mine.sort(key=lambda r: -r["relevance_score"])
        got = [r for r in top if r["query_id"] == f"q{q}"]
        assert [r["doc_id"] for r in got] == [r["doc_id"] for r in mine[:2]]
        assert [r["rank"] for r in got] == [1, 2]
    cut = float(np.median([r["confidence"] for r in everything]))
    rerank_pairs(src, tmp_path / "conf.jsonl", rr, min_confidence=cut, show_progress=False)
    conf = read(tmp_path / "conf.jsonl")
    assert [r["doc_id"] + r["query_id"] for r in conf] == [
        r["doc_id"] + r["query_id"] for r in everything if r["confidence"] >= cut
    ]
    assert 0 < len(conf) < len(everything)


def test_bad_input(tmp_path, rr):
    bad = tmp_path / "bad.jsonl"
    good = json.dumps({"query_id": "q", "doc_id": "d", "query": "x", "document": "y"})
    bad.write_text(f"{good}\n{{not json\n{json.dumps({'query_id': 'q', 'doc_id': 'e'})}\n{good}\n")
    with pytest.raises(BadInputError, match=r"bad\.jsonl:2: malformed JSON"):
        rerank_pairs(bad, tmp_path / "o1.jsonl", rr, show_progress=False)
    assert not (tmp_path / "o1.jsonl").exists()
    report = rerank_pairs(bad, tmp_path / "o2.jsonl", rr, skip_bad_lines=True, show_progress=False)
    assert (report.skipped, report.pairs_scored) == (2, 2)
    with pytest.raises(FileExistsError):
        rerank_pairs(bad, tmp_path / "o2.jsonl", rr, skip_bad_lines=True, show_progress=False)
    split = tmp_path / "split.jsonl"
    split.write_text(good + "\n" + good.replace('"q"', '"r"') + "\n" + good + "\n")
    with pytest.raises(BadInputError, match=r"split\.jsonl:3: query_id 'q' appears again"):
        rerank_pairs(split, tmp_path / "o3.jsonl", rr, top_k=1, show_progress=False)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(EmptyCorpusError):
        rerank_pairs(tmp_path / "empty.jsonl", tmp_path / "o4.jsonl", rr, show_progress=False)


def test_crash_then_resume_gives_the_uninterrupted_output(tmp_path, rr):
    src = pairs_file(tmp_path / "p.jsonl")
    rerank_pairs(src, tmp_path / "clean.jsonl", rr, batch_size=6, commit_every=6, top_k=3,
                 show_progress=False)
    calls = 0

    class Crashes:
        model = rr.model

        def score_pairs(self, pairs, instruction=None):
            nonlocal calls
            calls += 1
            if calls == 3:
                raise RuntimeError("killed")
            return rr.score_pairs(pairs, instruction)

    out = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError, match="killed"):
        rerank_pairs(src, out, Crashes(), batch_size=6, commit_every=6, top_k=3, show_progress=False)
    assert len(read(out)) == 6  # two queries committed
    with open(out, "a", encoding="utf-8") as f:
        f.write('{"query_id": "q2", "half-written')  # a torn write after the last commit
    report = rerank_pairs(src, out, rr, batch_size=6, commit_every=6, top_k=3, show_progress=False)
    assert report.resumed_from == 12
    assert out.read_text() == (tmp_path / "clean.jsonl").read_text()


def test_the_job_step_by_step(tmp_path, rr):
    src = pairs_file(tmp_path / "p.jsonl", n_queries=3)
    rerank_pairs(src, tmp_path / "whole.jsonl", rr, batch_size=6, top_k=2, show_progress=False)
    job = PairRerankJob(src, tmp_path / "steps.jsonl", rr, batch_size=6, top_k=2, show_progress=False)
    assert job.resume() == 0 and job.checkpoint.exists()
    batches = []
    for groups, frontier in job.stream():
        batches.append(([g.query_id for g in groups], frontier))
        job.write(groups, frontier)
    assert batches == [(["q0"], 6), (["q1"], 12), (["q2"], 18)]  # whole query groups, input positions
    job.commit()
    job.close()
    report = job.report()
    assert (report.pairs_scored, report.pairs_written, report.queries, report.resumed_from) == (18, 6, 3, 0)
    assert (tmp_path / "steps.jsonl").read_text() == (tmp_path / "whole.jsonl").read_text()


def test_a_job_resumes_from_its_checkpoint(tmp_path, rr):
    src = pairs_file(tmp_path / "p.jsonl")
    job = PairRerankJob(src, tmp_path / "out.jsonl", rr, batch_size=6, commit_every=6, show_progress=False)
    job.resume()
    groups, frontier = next(job.stream())
    job.write(groups, frontier)  # commits: commit_every lines done
    job.close()
    again = PairRerankJob(src, tmp_path / "out.jsonl", rr, batch_size=6, commit_every=6, show_progress=False)
    assert again.resume() == 6 and again.counters.scored == 6
    other = PairRerankJob(src, tmp_path / "out.jsonl", rr, batch_size=6, top_k=1, show_progress=False)
    with pytest.raises(ValueError, match="other settings"):
        other.resume()
    again.close()
    report = PairRerankJob(src, tmp_path / "out.jsonl", rr, batch_size=6, commit_every=6,
                           show_progress=False).run()
    assert (report.resumed_from, report.pairs_scored) == (6, 24)
    assert len(read(tmp_path / "out.jsonl")) == 24
