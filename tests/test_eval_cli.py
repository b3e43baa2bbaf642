"""``qwen3-rag eval`` end to end on a small BEIR-format set (tiny models, hf backend)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qwen3_rag import Qwen3Embedder, Qwen3Reranker
from qwen3_rag.cli import main
from qwen3_rag.evaluation import REPORTED, evaluate_query
from qwen3_rag.formats import DEFAULT_INSTRUCTION

TOPICS = ["cats", "rivers", "music", "stars", "bread"]
INSTRUCTION = "Given a question, find the passage about its topic"


@pytest.fixture(scope="module")
def beir(tmp_path_factory):
    root = tmp_path_factory.mktemp("beir")
    corpus = [{"_id": f"d{i}", "title": f"On {TOPICS[i % 5]}", "text": f"Note {i} about {TOPICS[i % 5]}."}
              for i in range(30)]
    queries = [{"_id": f"q{t}", "text": f"Tell me about {topic}"} for t, topic in enumerate(TOPICS)]
    queries.append({"_id": "q-unjudged", "text": "not in the qrels"})
    lines = ["query-id\tcorpus-id\tscore"]
    for t in range(5):
        lines += [f"q{t}\td{i}\t{2 if i < 10 else 1}" for i in range(t, 30, 5)]
        lines.append(f"q{t}\td{(t + 1) % 5}\t0")  # judged, not relevant
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries), encoding="utf-8")
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root, corpus, {q["_id"]: q["text"] for q in queries}


def qrels_of(t: int) -> dict[str, int]:
    rel = {f"d{i}": (2 if i < 10 else 1) for i in range(t, 30, 5)}
    rel[f"d{(t + 1) % 5}"] = 0
    return rel


def test_eval_compares_instructions_dimensions_and_indexes(beir, tiny_embedding, tiny_reranker, tmp_path,
                                                           capsys):
    root, corpus, queries = beir
    out_file = tmp_path / "res" / "eval.json"
    argv = ["eval", str(root), "--model", tiny_embedding, "--backend", "hf",
            "--reranker-model", tiny_reranker, "--rerank", "5", "-k", "20",
            "--instruction", INSTRUCTION, "--instruction", DEFAULT_INSTRUCTION,
            "--dimensions", "32", "--dimensions", "64", "--index", "flat", "--index", "hnsw",
            "--output", str(out_file), "--json"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert json.loads(out_file.read_text(encoding="utf-8")) == res
    assert (res["documents"], res["queries"], res["metrics"]) == (30, 5, list(REPORTED))
    combos = [(r["instruction"], r["dimensions"], r["index"]) for r in res["rows"]]
    assert combos == [(i, d, k) for i in (INSTRUCTION, DEFAULT_INSTRUCTION) for d in (32, 64)
                      for k in ("flat", "hnsw")]
    docs = [f"On {c['text'].split()[-1][:-1]} {c['text']}" for c in corpus]  # title + " " + text
    assert docs[3] == "On stars Note 3 about stars."
    rr = Qwen3Reranker(tiny_reranker, backend="hf")
    for row in res["rows"]:
        per_query = row["per_query"]
        assert sorted(per_query) == [f"q{t}" for t in range(5)]  # the unjudged query is left out
        for m in REPORTED:  # the table's numbers are the per-query means
            for stage in ("retrieval", "rerank"):
                assert row[stage][m] == pytest.approx(np.mean([p[stage][m] for p in per_query.values()]))
        if row["index"] != "flat":
            continue
        # the ranking, recomputed independently: an embedder of that size, brute-force cosine
        emb = Qwen3Embedder(tiny_embedding, backend="hf", dimensions=row["dimensions"])
        dv = emb.embed_documents(docs)
        for t in range(5):
            qv = emb.embed_queries([queries[f"q{t}"]], row["instruction"])[0]
            order = [f"d{i}" for i in np.argsort(-(dv @ qv), kind="stable")[:20]]
            got = per_query[f"q{t}"]
            assert got["top_ids"] == order[:10]
            expect = evaluate_query(order, qrels_of(t))
            for m in REPORTED:
                assert got["retrieval"][m] == pytest.approx(expect[m], abs=1e-9)
            # reranked: the 5 best vector hits ordered by P(yes) under the row's instruction
            scores = rr.score(queries[f"q{t}"], [docs[int(d[1:])] for d in order[:5]], row["instruction"])
            head = [order[i] for i in np.argsort(-scores, kind="stable")]
            assert got["reranked_top_ids"] == head + order[5:10]


def test_eval_table(beir, tiny_embedding, capsys):
    root, _, _ = beir
    assert main(["eval", str(root), "--model", tiny_embedding, "--backend", "hf", "--max-queries", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["instruction", "dim", "index", "mode", "nDCG@10", "R@10", "R@100", "MRR@10"]
    assert out[2].split()[:4] == ["default", "64", "flat", "dense"] and len(out) == 4
    assert out[3].startswith("2 queries, 30 documents, top 100")


def test_eval_rows_per_search_mode(beir, tiny_embedding, capsys):
    """One row per mode; lexical finds every document naming the query's topic; hybrid is the
    reciprocal rank fusion of the dense ranking (brute force here) and the lexical one."""
    from qwen3_rag import FaissStore

    root, corpus, queries = beir
    argv = ["eval", str(root), "--model", tiny_embedding, "--backend", "hf", "-k", "20", "--json",
            "--mode", "dense", "--mode", "lexical", "--mode", "hybrid"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert [r["mode"] for r in res["rows"]] == ["dense", "lexical", "hybrid"]
    dense, lexical, hybrid = res["rows"]
    assert lexical["retrieval"]["recall@10"] == lexical["retrieval"]["mrr@10"] == 1.0  # 6 documents name it
    assert dense["retrieval"]["recall@10"] < 1.0  # random tiny weights
    docs = [f"On {c['text'].split()[-1][:-1]} {c['text']}" for c in corpus]
    emb = Qwen3Embedder(tiny_embedding, backend="hf")
    dv = emb.embed_documents(docs)
    store = FaissStore(dv.shape[1])
    store.add(docs, dv, ids=[f"d{i}" for i in range(30)])
    for t in range(5):
        qv = emb.embed_queries([queries[f"q{t}"]])[0]
        dense_order = [f"d{i}" for i in np.argsort(-(dv @ qv), kind="stable")]  # all 30: all candidates
        lexical_order = [h.id for h in store.search(k=80, mode="lexical", query=queries[f"q{t}"])[0]]
        rrf = {d: 1 / (60 + dense_order.index(d) + 1) + (1 / (60 + lexical_order.index(d) + 1)
                                                         if d in lexical_order else 0) for d in dense_order}
        ranks = {d: (dense_order.index(d), lexical_order.index(d) if d in lexical_order else 99) for d in rrf}
        # ties: by the best rank, then lexical before dense
        tie = {d: (min(ranks[d]), 0 if ranks[d][1] <= ranks[d][0] else 1) for d in rrf}
        assert hybrid["per_query"][f"q{t}"]["top_ids"] == sorted(rrf, key=lambda d: (-rrf[d], *tie[d]))[:10]
        assert lexical["per_query"][f"q{t}"]["top_ids"] == lexical_order[:10]
        assert dense["per_query"][f"q{t}"]["top_ids"] == dense_order[:10]
    assert main(["eval", str(root), "--model", tiny_embedding, "--backend", "hf", "--alpha", "0.5"]) == 2
    assert "--alpha needs --mode hybrid" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--split", "dev"], "qrels/dev.tsv"),
    (["--index", "ivf-pq"], "--index ivf-pq on 30 documents"),
    (["--dimensions", "16"], "--dimensions must be between 32"),
])
def test_eval_bad_input(beir, tiny_embedding, capsys, extra, message):
    root, _, _ = beir
    assert main(["eval", str(root), "--model", tiny_embedding, "--backend", "hf", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qwen3-rag: error:") and message in err[0]


class Terminal:
    """A stderr that says it is a terminal (progress bars appear only on one)."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("flags, bar", [([], True), (["--no-progress"], False)])
def test_eval_progress_bar_on_a_terminal_unless_no_progress(beir, tiny_embedding, monkeypatch, flags, bar):
    root, _, _ = beir
    err = Terminal()
    monkeypatch.setattr("sys.stderr", err)
    argv = ["eval", str(root), "--model", tiny_embedding, "--backend", "hf", "--max-queries", "2",
            "--batch-size", "8", *flags]
    assert main(argv) == 0
    assert ("%|" in err.text) is bar, err.text
