"""``qwen3-rag`` end to end in subprocesses: index, info, search (+rerank), rerank, bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test runs the CLI in a subprocess

SRC = str(Path(__file__).resolve().parents[2] / "src")
TOPICS = ["cats", "rivers", "music", "stars", "bread"]


def cli(*args: str, cwd: Path, **env_vars: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", **env_vars}
    env.pop("QWEN3_RAG_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "qwen3_rag", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_user_error(res: subprocess.CompletedProcess, *fragments: str) -> None:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qwen3-rag: error: "), res.stderr
    assert "Traceback" not in res.stderr
    for f in fragments:
        assert f in lines[0]


def no_retries(work: Path) -> Path:
    """A config file: the remote backend gives up at once (no retries with back-off)."""
    path = work / "no-retries.toml"
    path.write_text("[embedding]\nmax_retries = 0\n\n[reranker]\nmax_retries = 0\n")
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_embedding, tiny_reranker):
    d = tmp_path_factory.mktemp("cli")
    with open(d / "corpus.jsonl", "w", encoding="utf-8") as f:
        for i in range(40):
            text = f"Note {i}: a long text about {TOPICS[i % 5]}. " * (1 + i % 6)
            f.write(json.dumps({"id": f"n{i}", "text": text, "topic": TOPICS[i % 5]}) + "\n")
    with open(d / "pairs.jsonl", "w", encoding="utf-8") as f:
        for q in range(3):
            for i in range(5):
                f.write(json.dumps({"query_id": f"q{q}", "doc_id": f"n{i}", "query": f"about {TOPICS[q]}?",
                                    "document": f"a text about {TOPICS[i]}"}) + "\n")
    res = cli("index", "corpus.jsonl", "--store", "store", "--model", tiny_embedding, "--backend", "hf",
              "--batch-size", "8", "--json", cwd=d)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert (report["documents"], report["store_size"], report["skipped"]) == (40, 40, 0)
    return d


def test_index_through_an_engine_pool(work, tiny_embedding):
    """The pool's workers are stopped in a background thread once the stream ends."""
    (work / "pool.toml").write_text("[embedding]\nengines_per_gpu = 2\n")
    res = cli("index", "corpus.jsonl", "--store", "store-pool", "--model", tiny_embedding, "-v",
              "--backend", "hf", "--batch-size", "8", "--json", cwd=work,
              QWEN3_RAG_CONFIG=str(work / "pool.toml"))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["store_size"] == 40
    # work starts with the first ready worker (the full start-up line: tests/engine/test_pool.py)
    first = r"the first of 2 embedding engine workers is ready after [\d.]+ s"
    assert re.search(first, res.stderr), res.stderr
    assert "Traceback" not in res.stderr and "leaked" not in res.stderr  # workers release semaphores


def test_index_table_says_where_the_time_went(work, tiny_embedding):
    res = cli("index", "corpus.jsonl", "--store", "store-table", "--model", tiny_embedding, "--backend", "hf",
              "--batch-size", "8", cwd=work)
    assert res.returncode == 0, res.stderr
    assert re.search(r"^documents\s+40$", res.stdout, re.M)
    phases = r"^phases\s+load \d+\.\d s, stream \d+\.\d s, build \d+\.\d s, save \d+\.\d s"
    assert re.search(phases, res.stdout, re.M), res.stdout


def test_info(work, tiny_embedding):
    res = cli("info", "--store", "store", "--json", cwd=work)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["count"] == 40 and info["dimension"] == 64 and info["format_version"] == 1
    embedder = dict(info["embedder"])
    assert embedder.pop("checkpoint").startswith("sha256:")  # the weights' fingerprint
    assert embedder == {"model": tiny_embedding, "dimension": 64}
    assert info["index"]["kind"] == "flat" and info["interrupted_indexing_run"] is False
    table = cli("info", "--store", "store", cwd=work)
    assert "documents" in table.stdout and "40" in table.stdout
    before = cli("-v", "info", "--store", "store", cwd=work)
    after = cli("info", "--store", "store", "-v", cwd=work)  # -v before or after the subcommand
    assert before.returncode == after.returncode == 0, after.stderr


def test_search_json_with_rerank_filter_and_preview(work, tiny_embedding, tiny_reranker):
    # the store's recorded model is used when --model is not given
    res = cli("search", "about music", "--store", "store", "-k", "3", "--rerank", "10", "--json",
              "--reranker-model", tiny_reranker, "--backend", "hf",
              "--filter", '{"topic": {"$in": ["music", "cats"]}}', "--preview-chars", "20", cwd=work)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["total_found"] == 10 and len(out["results"]) == 3
    assert out["processing_time_ms"] > 0
    scores = [r["relevance_score"] for r in out["results"]]
    assert scores == sorted(scores, reverse=True)
    for r in out["results"]:
        assert r["metadata"]["topic"] in ("music", "cats")
        assert len(r["text"]) == 20 and r["text_length"] > 20 and r["truncated"] is True
        assert r["confidence"] == pytest.approx(abs(2 * r["relevance_score"] - 1))
    # score threshold on plain vector search, and the human table
    plain = json.loads(cli("search", "about music", "--store", "store", "-k", "40", "--json",
                           "--backend", "hf", cwd=work).stdout)
    cut = plain["results"][4]["score"]
    kept = cli("search", "about music", "--store", "store", "-k", "40", "--score-threshold", str(cut),
               "--backend", "hf", cwd=work)
    assert kept.returncode == 0, kept.stderr
    lines = kept.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["rank", "score", "id", "length"]
    assert [ln.split()[2] for ln in lines[2:-1]] == [r["id"] for r in plain["results"] if r["score"] >= cut]


def test_search_modes_and_rebuild_lexical(work, tiny_embedding, tiny_reranker):
    hf, store = ("--backend", "hf"), ("--store", "store")
    lexical = json.loads(cli("search", "Note 17", *store, "-k", "3", "--mode", "lexical", "--json", *hf,
                             cwd=work).stdout)
    assert lexical["mode"] == "lexical"  # "note" is in every document: only "17" counts
    assert [(r["id"], r["sources"]) for r in lexical["results"]] == [("n17", {"lexical": 1})]
    res = cli("search", "Note 17", *store, "-k", "3", "--mode", "hybrid", "--rerank", "8", "--json",
              "--reranker-model", tiny_reranker, *hf, cwd=work)
    assert res.returncode == 0, res.stderr
    hybrid = json.loads(res.stdout)
    assert hybrid["total_found"] == 8 and len(hybrid["results"]) == 3
    assert all(r["relevance_score"] is not None and r["sources"] for r in hybrid["results"])
    table = cli("search", "Note 17", *store, "--mode", "hybrid", "--alpha", "0.5", *hf, cwd=work)
    assert table.returncode == 0, table.stderr
    assert "n17" in [ln.split()[2] for ln in table.stdout.splitlines()[2:-1]], table.stdout
    assert_user_error(cli("search", "x", *store, "--alpha", "0.5", cwd=work), "--alpha needs --mode hybrid")

    shutil.copytree(work / "store", work / "store-trigram")
    trigram = ("--store", "store-trigram")
    res = cli("index", *trigram, "--rebuild-lexical", "--lexical-tokenizer", "trigram", "--json", cwd=work)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["lexical"] == {"tokenizer": "trigram", "fields": []}
    sub = json.loads(cli("search", "iver", *trigram, "-k", "40", "--mode", "lexical", "--json", *hf,
                         cwd=work).stdout)  # a substring, with trigrams
    assert sorted(r["id"] for r in sub["results"]) == sorted(f"n{i}" for i in range(40) if i % 5 == 1)
    assert_user_error(cli("index", *store, cwd=work), "needs a SOURCE")
    assert_user_error(cli("index", "corpus.jsonl", *store, "--rebuild-lexical", cwd=work), "no SOURCE")
    assert_user_error(cli("index", "corpus.jsonl", *store, "--lexical-tokenizer", "trigram", cwd=work),
                      "--lexical-tokenizer needs --rebuild-lexical")


def test_rerank_command(work, tiny_reranker):
    res = cli("rerank", "pairs.jsonl", "-o", "scored.jsonl", "--top-k", "2",
              "--reranker-model", tiny_reranker, "--backend", "hf", "--json", cwd=work)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["pairs_written"] == 6
    rows = [json.loads(x) for x in (work / "scored.jsonl").read_text().splitlines()]
    assert [r["rank"] for r in rows] == [1, 2] * 3
    assert all({"relevance_score", "confidence", "doc_id"} <= set(r) for r in rows)


def test_bad_input_exits_2_with_one_line(work, tiny_embedding, tiny_reranker):
    emb = ("--model", tiny_embedding, "--backend", "hf")
    assert_user_error(cli("index", "missing.jsonl", "--store", "s1", *emb, cwd=work), "missing.jsonl")
    (work / "empty.jsonl").write_text("")
    assert_user_error(cli("index", "empty.jsonl", "--store", "s2", *emb, cwd=work), "empty corpus")
    assert not (work / "s2").exists()
    (work / "bad.jsonl").write_text('{"id": "a", "text": "ok"}\n{"id": "b", "text": "no end\n'
                                    '{"id": "c", "text": "fine"}\n')
    assert_user_error(cli("index", "bad.jsonl", "--store", "s3", *emb, cwd=work),
                      "bad.jsonl:2", "malformed JSON", "--skip-bad-lines")
    assert_user_error(cli("index", "bad.jsonl", "--store", "corpus.jsonl", *emb, cwd=work),
                      "the store must be a directory, and corpus.jsonl is a file")
    res = cli("index", "bad.jsonl", "--store", "s3", "--skip-bad-lines", "--json", *emb, cwd=work)
    assert res.returncode == 0 and json.loads(res.stdout)["skipped"] == 1
    assert_user_error(cli("rerank", "bad.jsonl", "-o", "o.jsonl", "--reranker-model", tiny_reranker,
                          "--backend", "hf", cwd=work), "bad.jsonl:1", "query_id")
    assert_user_error(cli("search", "x", "--store", "nowhere", *emb, cwd=work), "store not found")
    # options that would be ignored are refused: no chunking to overlap, another kind of index
    assert_user_error(cli("index", "corpus.jsonl", "--store", "s4", "--chunk-overlap", "8", *emb, cwd=work),
                      "--chunk-overlap needs --chunk-tokens")
    assert not (work / "s4").exists()
    assert_user_error(cli("index", "corpus.jsonl", "--store", "store", "--index", "hnsw", *emb, cwd=work),
                      "already has a 'flat' index", "--index")
    # a hub model that is not here (offline), and a server that does not answer: one line too
    assert_user_error(cli("search", "x", "--store", "store", "--model", "Qwen/No-Such-Model-0.6B",
                          "--backend", "hf", cwd=work, HF_HUB_OFFLINE="1"), "No-Such-Model")
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert_user_error(cli("search", "x", "--store", "store", "--model", tiny_embedding, "--backend", "remote",
                          "--base-url", f"http://127.0.0.1:{port}", cwd=work,
                          QWEN3_RAG_CONFIG=str(no_retries(work))), "127.0.0.1", "failed")
    # a store searched with another model is refused, not answered with garbage
    assert_user_error(cli("search", "x", "--store", "store", "--model", tiny_reranker, "--backend", "hf",
                          cwd=work), "was built with embeddings from")
