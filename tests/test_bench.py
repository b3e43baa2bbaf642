"""``qwen3-rag bench`` end to end on CPU with tiny models: table, JSON, plot, --apply."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qwen3_rag.bench import flops_per_token, parse_sweep, parse_value, recommend
from qwen3_rag.config import load_settings


def test_parse_sweep_is_a_cartesian_product():
    assert parse_sweep("a=1,2;b=x") == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    assert parse_sweep(None) == [{}]


def test_option_values_may_be_json_and_bad_json_is_named():
    assert parse_value(' {"cudagraph_mode": "NONE"}') == {"cudagraph_mode": "NONE"}
    assert parse_value("[1, 2]") == [1, 2]
    with pytest.raises(ValueError, match=r"option value '\{cudagraph_mode: NONE\}' is not valid JSON"):
        parse_value("{cudagraph_mode: NONE}")


def test_flops_per_token_of_the_real_0_6b_shape():
    from types import SimpleNamespace

    cfg = SimpleNamespace(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                          num_attention_heads=16, num_key_value_heads=8, head_dim=128)
    # per layer: q 1024*2048 + k,v 2*1024*1024 + o 2048*1024 + mlp 3*1024*3072 = 15,728,640
    assert flops_per_token(cfg) == 2 * 28 * 15_728_640


def test_recommendation_prefers_throughput_and_per_gib():
    rows = [
        {"task": "embed", "backend": "vllm", "options": {"e": 1}, "items_per_s": 100.0, "gpu_gib": 10.0},
        {"task": "embed", "backend": "vllm", "options": {"e": 2}, "items_per_s": 150.0, "gpu_gib": 30.0},
        {"task": "embed", "backend": "sentence-transformers", "options": {}, "items_per_s": 999.0},
    ]
    rec = recommend(rows)["embed"]
    assert rec["best_throughput"] == {"e": 2} and rec["best_per_gib"] == {"e": 1}


@pytest.mark.slow
def test_bench_cli_runs_and_applies(tmp_path):
    out, cfg = tmp_path / "out", tmp_path / "tuned.toml"
    r = subprocess.run(
        [sys.executable, "-m", "qwen3_rag", "bench", "--model", "random:tiny", "--reranker-model",
         "random:tiny", "--backend", "hf", "--workload", "articles", "--workload", "grid:2x6", "-n", "24",
         "--repeats", "1", "--sweep", "max_batch_size=4,32", "--workdir", str(tmp_path / "w"),
         "--out", str(out), "--apply", str(cfg)],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "items/s" in r.stdout and "recommendation" in r.stdout
    res = json.loads((out / "results.json").read_text())
    assert {(row["task"], row["options"]["max_batch_size"]) for row in res["rows"]} == {
        ("embed", 4), ("embed", 32), ("rerank", 4), ("rerank", 32)}
    assert all(row["items_per_s"] > 0 for row in res["rows"])
    # the monitor names the busiest processes (this one first: the hf engine runs in it)
    assert all(row["cpu_top"] and row["cpu_top"][0].startswith("main:") for row in res["rows"])
    assert (out / "throughput.png").stat().st_size > 1000
    s = load_settings(env={"QWEN3_RAG_CONFIG": str(cfg)})
    best = res["recommendation"]["embed"]["best_throughput"]["max_batch_size"]
    assert s.embedding["max_batch_size"] == best


@pytest.mark.slow
def test_bench_keeps_going_when_a_setting_fails_to_start(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "qwen3_rag", "bench", "--model", "random:tiny", "--backend", "hf",
         "--workload", "seed", "-n", "8", "--repeats", "1", "--sweep", "max_batch_size=oops,4",
         "--workdir", str(tmp_path / "w"), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "failed to start" in r.stdout
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [row["backend"] for row in rows] == ["failed", "hf"]
    assert "oops" in rows[0]["error"] and rows[1]["items_per_s"] > 0
