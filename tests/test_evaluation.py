"""qwen3_rag.evaluation: metrics against values computed by hand, and BEIR loading."""

from __future__ import annotations

import json
import math

import pytest

from qwen3_rag.evaluation import (
    drop_identical_ids,
    evaluate_query,
    evaluate_run,
    load_beir,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)
from qwen3_rag.indexing import BadInputError

L2, L3, L4, L5 = math.log2(2), math.log2(3), math.log2(4), math.log2(5)  # 1, 1.58496, 2, 2.32193


def test_ndcg_graded_linear_gain():
    rel = {"a": 2, "b": 1, "c": 0, "x": 1}
    ranking = ["c", "a", "z", "b"]
    # DCG@4  = 0/log2(2) + 2/log2(3) + 0/log2(4) + 1/log2(5) = 1.26186 + 0.43068 = 1.69254
    # IDCG@4 = gains sorted 2, 1, 1, 0: 2/log2(2) + 1/log2(3) + 1/log2(4) = 2 + 0.63093 + 0.5 = 3.13093
    assert ndcg_at_k(ranking, rel, 4) == pytest.approx(1.69254 / 3.13093, abs=1e-5)  # 0.54059
    # @2: DCG = 2/log2(3) = 1.26186; IDCG = 2 + 1/log2(3) = 2.63093
    assert ndcg_at_k(ranking, rel, 2) == pytest.approx(1.26186 / 2.63093, abs=1e-5)  # 0.47963
    # @1: the first document is irrelevant
    assert ndcg_at_k(ranking, rel, 1) == 0.0
    assert ndcg_at_k(["a", "b", "x"], rel, 10) == pytest.approx(1.0)  # the ideal order
    assert ndcg_at_k(["x", "b", "a"], rel, 3) == pytest.approx(  # gains 1, 1, 2 vs ideal 2, 1, 1
        (1 / L2 + 1 / L3 + 2 / L4) / (2 / L2 + 1 / L3 + 1 / L4)
    )


def test_recall_and_mrr():
    rel = {"a": 1, "b": 2, "c": 1, "n": 0}
    ranking = ["n", "z", "b", "y", "a"]
    assert recall_at_k(ranking, rel, 2) == 0.0  # n is judged but not relevant
    assert recall_at_k(ranking, rel, 3) == pytest.approx(1 / 3)  # b of {a, b, c}
    assert recall_at_k(ranking, rel, 100) == pytest.approx(2 / 3)  # b and a
    assert mrr_at_k(ranking, rel, 10) == pytest.approx(1 / 3)  # first relevant (b) at rank 3
    assert mrr_at_k(ranking, rel, 2) == 0.0
    assert mrr_at_k(["a"], rel, 1) == 1.0


def test_repeated_documents_count_once():
    rel = {"a": 1, "b": 1}
    # ["a", "a", "b"] is ["a", "b"]: both found at ranks 1 and 2 -> ideal
    assert ndcg_at_k(["a", "a", "b"], rel, 2) == pytest.approx(1.0)
    assert recall_at_k(["a", "a"], rel, 2) == 0.5


def test_evaluate_run_means_over_queries_with_a_relevant_document():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}, "q3": {"d": 0}}
    run = {"q1": ["x", "a"], "q2": ["c"], "q3": ["d"]}  # q3 has nothing relevant: left out
    mean, per_query = evaluate_run(run, qrels, ks=(10,))
    assert sorted(per_query) == ["q1", "q2"]
    # q1: a at rank 2 -> nDCG = (1/log2(3)) / 1 = 0.63093, recall 1, MRR 1/2
    # q2: c at rank 1 of 2 relevant -> DCG 1, IDCG 1 + 1/log2(3) = 1.63093 -> 0.61315, recall 1/2, MRR 1
    assert per_query["q1"]["ndcg@10"] == pytest.approx(0.63093, abs=1e-5)
    assert per_query["q2"]["ndcg@10"] == pytest.approx(0.61315, abs=1e-5)
    assert mean["ndcg@10"] == pytest.approx((0.63093 + 0.61315) / 2, abs=1e-5)
    assert mean["recall@10"] == pytest.approx(0.75) and mean["mrr@10"] == pytest.approx(0.75)
    # a judged query missing from the run scores 0
    mean2, _ = evaluate_run({"q1": ["a"]}, qrels, ks=(10,))
    assert mean2["recall@10"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no query"):
        evaluate_run(run, {"q3": {"d": 0}})


def test_evaluate_query_keys_and_identical_ids():
    m = evaluate_query(["b", "a"], {"a": 1})
    assert list(m) == ["ndcg@10", "recall@10", "mrr@10", "ndcg@100", "recall@100", "mrr@100"]
    assert m["mrr@10"] == 0.5 and m["ndcg@10"] == pytest.approx(1 / L3)
    assert drop_identical_ids({"q1": ["q1", "a"], "q2": ["a"]}) == {"q1": ["a"], "q2": ["a"]}
    with pytest.raises(ValueError, match="positive"):
        ndcg_at_k(["a"], {"a": 1}, 0)


def write_beir(root, corpus, queries, qrels_lines, split="test"):
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries), encoding="utf-8")
    (root / "qrels").mkdir(exist_ok=True)
    qrels = "".join(line + "\n" for line in qrels_lines)
    (root / "qrels" / f"{split}.tsv").write_text(qrels, encoding="utf-8")
    return root


def test_load_beir(tmp_path):
    root = write_beir(tmp_path / "ds", [{"_id": "d1", "title": "Paris", "text": "Capital of France."},
                                        {"_id": 2, "title": "", "text": "Bananas."}],
                      [{"_id": "q1", "text": "capital?"}],
                      ["query-id\tcorpus-id\tscore", "q1\td1\t2", "q1\t2\t0"])
    ds = load_beir(root)
    assert ds.qrels == {"q1": {"d1": 2, "2": 0}} and ds.queries == {"q1": "capital?"}
    assert ds.document_text("d1") == "Paris Capital of France." and ds.document_text("2") == "Bananas."
    with pytest.raises(FileNotFoundError, match=r"dev\.tsv.*splits here: test"):
        load_beir(root, split="dev")
    bad = '{"_id": "d1", "text": "ok"}\n{"_id": "d2" "text": 1}\n'
    (root / "corpus.jsonl").write_text(bad, encoding="utf-8")
    with pytest.raises(BadInputError, match=r"corpus\.jsonl:2: malformed JSON"):
        load_beir(root)
    (root / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n', encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text("q1\td1\thigh\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"test\.tsv:1: score must be an integer"):
        load_beir(root)
    with pytest.raises(FileNotFoundError):
        load_beir(tmp_path / "nothing")
