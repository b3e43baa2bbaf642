"""``qwen3-rag rerank`` checks its options, output and first record before any model loads,
and reports wall time with the load and rerank phases beside it; ``index`` checks its first
record before the embedder loads."""

from __future__ import annotations

import json
import re

import pytest
from cli.test_cli import assert_user_error, cli

pytestmark = pytest.mark.slow  # the CLI in subprocesses

NO_MODEL = "/nonexistent/reranker-model"  # loading it would fail: these checks must come first
PAIR = {"query_id": "q", "doc_id": "d", "query": "cats?", "document": "a text about cats"}


def write_pairs(path, *records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def test_existing_output_is_refused_before_the_model_loads(tmp_path):
    write_pairs(tmp_path / "pairs.jsonl", PAIR)
    (tmp_path / "out.jsonl").write_text("finished\n")
    res = cli("rerank", "pairs.jsonl", "-o", "out.jsonl", "--reranker-model", NO_MODEL, "--backend", "hf",
              cwd=tmp_path)
    assert_user_error(res, "output exists: out.jsonl", "--overwrite")
    assert (tmp_path / "out.jsonl").read_text() == "finished\n"


def test_a_first_line_missing_a_field_is_refused_before_the_model_loads(tmp_path):
    write_pairs(tmp_path / "pairs.jsonl", {k: v for k, v in PAIR.items() if k != "document"})
    res = cli("rerank", "pairs.jsonl", "-o", "out.jsonl", "--reranker-model", NO_MODEL, "--backend", "hf",
              cwd=tmp_path)
    assert_user_error(res, "pairs.jsonl:1", "missing field 'document'")
    assert not (tmp_path / "out.jsonl").exists()


def test_bad_options_are_refused_before_the_model_loads(tmp_path):
    write_pairs(tmp_path / "pairs.jsonl", PAIR)
    res = cli("rerank", "pairs.jsonl", "-o", "out.jsonl", "--top-k", "0", "--reranker-model", NO_MODEL,
              "--backend", "hf", cwd=tmp_path)
    assert_user_error(res, "top_k must be positive")


def test_rerank_time_is_wall_time_with_phases(tmp_path, tiny_reranker):
    write_pairs(tmp_path / "pairs.jsonl", PAIR, {**PAIR, "doc_id": "e"})
    res = cli("rerank", "pairs.jsonl", "-o", "out.jsonl", "--reranker-model", tiny_reranker,
              "--backend", "hf", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    wall = float(re.search(r"^time\s+([\d.]+) s$", res.stdout, re.M).group(1))
    load, work = map(float, re.search(r"^phases\s+load ([\d.]+) s, rerank ([\d.]+) s$",
                                      res.stdout, re.M).groups())
    assert load > 0 and wall >= load + work - 0.15, res.stdout


def test_index_time_is_wall_time_including_the_load(tmp_path, tiny_embedding):
    write_pairs(tmp_path / "corpus.jsonl", *({"id": f"n{i}", "text": f"note {i} on cats"} for i in range(8)))
    res = cli("index", "corpus.jsonl", "--store", "s", "--model", tiny_embedding, "--backend", "hf",
              cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    wall = float(re.search(r"^time\s+([\d.]+) s$", res.stdout, re.M).group(1))
    phases = dict((k, float(v)) for k, v in re.findall(r"(\w+) ([\d.]+) s", re.search(
        r"^phases\s+(.*)$", res.stdout, re.M).group(1)))
    assert phases["load"] > 0 and wall >= phases["load"] + phases["stream"] - 0.15, res.stdout


def test_index_refuses_a_bad_first_record_before_the_model_loads(tmp_path):
    (tmp_path / "c.jsonl").write_text(json.dumps({"id": "a", "body": "no text"}) + "\n", encoding="utf-8")
    res = cli("index", "c.jsonl", "--store", "s", "--model", "/nonexistent/embedding-model",
              "--backend", "hf", cwd=tmp_path)
    assert_user_error(res, "c.jsonl:1", "no 'text' field", "--skip-bad-lines")
    assert not (tmp_path / "s").exists()
