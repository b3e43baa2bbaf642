"""Configuration from a TOML file and environment variables, shared by code, CLI and service."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from qwen3_rag import Qwen3Embedder, Qwen3Reranker
from qwen3_rag.config import ENV_VARS, load_settings, write_recommendation


def test_defaults_without_file_or_env():
    s = load_settings(env={}, path=None)
    assert s.embedding_model == "Qwen/Qwen3-Embedding-0.6B"
    assert s.reranker_model == "Qwen/Qwen3-Reranker-0.6B"
    assert (s.backend, s.max_length, s.embedding, s.reranker) == ("auto", 8192, {}, {})


def test_file_then_env_override(tmp_path):
    cfg = tmp_path / "q.toml"
    cfg.write_text('embedding_model = "/models/emb"\nbackend = "vllm"\nmax_length = 1024\n'
                   "[embedding]\nmax_num_seqs = 256\n[reranker]\ngpu_memory_utilization = 0.2\n")
    s = load_settings(env={"QWEN3_RAG_CONFIG": str(cfg)})
    assert (s.embedding_model, s.backend, s.max_length) == ("/models/emb", "vllm", 1024)
    assert s.embedding == {"max_num_seqs": 256} and s.reranker == {"gpu_memory_utilization": 0.2}
    s = load_settings(env={"QWEN3_RAG_CONFIG": str(cfg), "QWEN3_RAG_MAX_LENGTH": "2048",
                           "QWEN3_RAG_MAX_NUM_SEQS": "64"})
    assert s.max_length == 2048
    assert s.embedding["max_num_seqs"] == 64 and s.reranker["max_num_seqs"] == 64
    assert s.source == str(cfg)


def test_options_reach_only_backends_they_fit():
    s = load_settings(env={"QWEN3_RAG_GPU_MEMORY_UTILIZATION": "0.3", "QWEN3_RAG_DEVICE": "cpu",
                           "QWEN3_RAG_DTYPE": "float32", "QWEN3_RAG_ENGINES_PER_GPU": "2"}, path=None)
    assert s.engine_options("embedding", "vllm") == {
        "gpu_memory_utilization": 0.3, "dtype": "float32", "engines_per_gpu": 2}
    # the pool's options fit every backend (README: "Throughput options (any backend)")
    assert s.engine_options("embedding", "hf") == {"device": "cpu", "dtype": "float32", "engines_per_gpu": 2}
    # dtype is an option of hf and vllm only: a remote engine has no weights here
    assert s.engine_options("reranker", "remote") == {"engines_per_gpu": 2}


def test_bad_config_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("modle = 'x'\n")
    with pytest.raises(ValueError, match="unknown setting 'modle'"):
        load_settings(env={"QWEN3_RAG_CONFIG": str(bad)})
    bad.write_text("max_length = [\n")
    with pytest.raises(ValueError, match="invalid config file"):
        load_settings(env={"QWEN3_RAG_CONFIG": str(bad)})
    with pytest.raises(ValueError, match="QWEN3_RAG_MAX_LENGTH='big'"):
        load_settings(env={"QWEN3_RAG_MAX_LENGTH": "big"}, path=None)
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        load_settings(env={"QWEN3_RAG_CONFIG": str(tmp_path / "nope.toml")})


def test_embedder_and_reranker_follow_the_configuration(tmp_path, monkeypatch, tiny_embedding, tiny_reranker):
    cfg = tmp_path / "qwen3-rag.toml"
    cfg.write_text(f'embedding_model = "{tiny_embedding}"\nreranker_model = "{tiny_reranker}"\n'
                   'backend = "hf"\nmax_length = 64\nbatch_size = 7\n[embedding]\nmax_batch_size = 5\n'
                   "gpu_memory_utilization = 0.5\nbatch_size = 3\n")
    monkeypatch.setenv("QWEN3_RAG_CONFIG", str(cfg))
    emb = Qwen3Embedder()
    assert (emb.model, emb.backend, emb.max_length) == (tiny_embedding, "hf", 64)
    assert emb.engine.max_batch_size == 5  # the hf option arrived, the vLLM one was left out
    assert "batch_size" not in emb.engine_options  # a model's own batch_size, not an engine option
    assert emb.batch_size == 3  # the table's (what bench --apply writes) over the top level's
    assert len(emb.formatter.documents(["word " * 500])[0]) == 64
    rr = Qwen3Reranker()
    assert (rr.model, rr.backend, rr.max_length, rr.batch_size) == (tiny_reranker, "hf", 64, 7)
    # explicit arguments win over the file
    assert Qwen3Embedder(max_length=128).max_length == 128


@pytest.mark.slow
def test_cli_uses_configured_models(tmp_path, tiny_embedding):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'embedding_model = "{tiny_embedding}"\nbackend = "hf"\n')
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps({"id": str(i), "text": f"doc {i}"}) for i in range(5)))
    env = {**os.environ, "QWEN3_RAG_CONFIG": str(cfg)}
    r = subprocess.run([sys.executable, "-m", "qwen3_rag", "index", str(corpus), "--store",
                        str(tmp_path / "s"), "--no-progress"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "qwen3_rag", "info", "--store", str(tmp_path / "s"), "--json"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert tiny_embedding in r.stdout


def test_bench_recommendation_is_written_and_read_back(tmp_path):
    path = tmp_path / "tuned.toml"
    path.write_text('backend = "vllm"\n')
    rec = {"embed": {"best_throughput": {"max_num_seqs": 1024, "engines_per_gpu": 2, "batch_size": 4096},
                     "items_per_s": 1.0},
           "rerank": {"best_throughput": {"max_num_batched_tokens": 65536}, "items_per_s": 1.0}}
    write_recommendation(path, rec)
    s = load_settings(env={"QWEN3_RAG_CONFIG": str(path)})
    assert s.backend == "vllm"  # kept
    assert s.embedding == {"max_num_seqs": 1024, "engines_per_gpu": 2, "batch_size": 4096}
    assert s.model_batch_size("embedding") == 4096 and s.model_batch_size("reranker") is None
    assert "batch_size" not in s.engine_options("embedding", "vllm")  # never given to vllm.LLM
    env = load_settings(env={"QWEN3_RAG_CONFIG": str(path), "QWEN3_RAG_BATCH_SIZE": "64"})
    assert env.model_batch_size("embedding") == 64  # the variable beats the file, as everywhere
    assert s.reranker == {"max_num_batched_tokens": 65536}


def test_every_env_var_is_documented():
    root = os.path.join(os.path.dirname(__file__), "..")
    docs = "".join(open(os.path.join(root, f), encoding="utf-8").read()
                   for f in ("README.md", "docs/configuration.md") if os.path.exists(os.path.join(root, f)))
    for var in ENV_VARS:
        assert var in docs, var
