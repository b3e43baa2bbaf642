"""The README's code runs as written, on tiny local checkpoints and the shipped sample corpus.

The README uses the default models (hub ids). The configuration reads the models and the
backend from the environment (``QWEN3_RAG_EMBEDDING_MODEL``, ``QWEN3_RAG_RERANKER_MODEL``,
``QWEN3_RAG_BACKEND``), so the tests point those at tiny random-weight checkpoints and run each
block's text unchanged.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def section(title: str) -> str:
    """The README's text under the ``## title`` heading, up to the next ``## `` heading."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def blocks(title: str, lang: str) -> list[str]:
    """The fenced ``lang`` code blocks of a README section, in order."""
    return [body for tag, body in FENCE.findall(section(title)) if tag == lang]


@pytest.fixture
def tiny_models(tiny_embedding, tiny_reranker, monkeypatch, tmp_path):
    """Tiny checkpoints in place of the hub ids, the hf backend, and a scratch working folder."""
    monkeypatch.setenv("QWEN3_RAG_EMBEDDING_MODEL", tiny_embedding)
    monkeypatch.setenv("QWEN3_RAG_RERANKER_MODEL", tiny_reranker)
    monkeypatch.setenv("QWEN3_RAG_BACKEND", "hf")
    monkeypatch.delenv("QWEN3_RAG_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # the blocks write their stores into the working folder
    return tmp_path


def run_block(code: str, **names) -> dict:
    namespace = {"__name__": "__readme__", **names}
    exec(compile(code, str(README), "exec"), namespace)
    return namespace


def test_quickstart_indexes_searches_and_reranks_the_sample_corpus(tiny_models, capsys):
    from qwen3_rag import FaissStore, sample_corpus

    (code,) = blocks("Quickstart: index, search, rerank", "python")
    ns = run_block(code)
    with open(sample_corpus(), encoding="utf-8") as f:
        n = sum(1 for line in f if line.strip())
    assert ns["report"].documents == n == 40
    assert len(FaissStore.load(tiny_models / "sample_store")) == n
    assert len(ns["hits"]) == 10
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{n} documents in flat store"
    assert sum(line.startswith("P(yes)=") for line in out) == 3


@pytest.mark.slow  # starts the CLI in subprocesses
def test_quickstart_shell_commands(tiny_models):
    (code,) = blocks("Quickstart: index, search, rerank", "bash")
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tiny_models / "sample_store").is_dir()
    search_out = done.stdout.split("\n")
    assert any("sample-" in line for line in search_out), done.stdout


def test_langchain_screen(tiny_models):
    pytest.importorskip("langchain_qwen3_rag")
    (code,) = blocks("LangChain", "python")
    ns = run_block(code)
    assert 1 <= len(ns["docs"]) <= 2  # the two "geo" passages pass the filter
    assert all(0.0 <= d.metadata["relevance_score"] <= 1.0 for d in ns["docs"])
    assert (tiny_models / "lc_store").is_dir()


def test_llamaindex_screen(tiny_models):
    pytest.importorskip("llama_index.core")
    pytest.importorskip("llama_index.vector_stores.qwen3_rag")
    (code,) = blocks("LlamaIndex", "python")
    ns = run_block(code)
    assert len(ns["nodes"]) == 1 and 0.0 <= ns["nodes"][0].score <= 1.0
    assert (tiny_models / "li_store").is_dir()


def test_development_commands_are_the_ones_ci_runs():
    (code,) = blocks("Development", "bash")[:1]
    readme_commands = [line for line in code.splitlines() if line.strip()]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    ci_commands = [line for line in ci if line.startswith(("pip ", "python "))]
    assert readme_commands == ci_commands
    assert 'python -m pytest -q -m "not slow"' in section("Development")


def test_readme_links_point_at_files():
    text = README.read_text(encoding="utf-8")
    targets = set(re.findall(r"\]\(([^)#:]+)\)", text))
    assert targets, "no relative links found"
    missing = sorted(t for t in targets if not (ROOT / t).exists())
    assert not missing, f"README links to missing files: {missing}"


def test_sample_corpus_is_valid_jsonl():
    from qwen3_rag import sample_corpus

    with open(sample_corpus(), encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    assert len({r["id"] for r in records}) == len(records)
    assert all(r["text"].strip() and r["topic"] for r in records)


def test_the_readme_lists_the_fields_each_input_format_needs():
    from qwen3_rag.rerank_job import PAIR_FIELDS

    text = section("Input formats")
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows.setdefault(cells[0], []).append(cells[2])
    assert set(rows) == {"`index`", "`rerank`", "`eval`"}
    assert all(f"`{f}`" in rows["`rerank`"][0] for f in PAIR_FIELDS)
    assert "`text`" in rows["`index`"][0] and "`id`" in rows["`index`"][0]
    for name in ("corpus.jsonl", "queries.jsonl", "`_id`", "`text`", "`query-id`", "`corpus-id`", "`score`"):
        assert name in rows["`eval`"][0], name
