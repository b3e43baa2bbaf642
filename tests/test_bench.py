"""``qwen3-rag bench`` end to end on CPU with tiny models: table, JSON, plot, --apply."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from qwen3_rag.bench import flops_per_token, parse_sweep, parse_value, recommend
from qwen3_rag.config import load_settings, write_recommendation


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


def row(opts: dict, runs: list[float], gib: float | None = None, task: str = "embed") -> dict:
    return {"task": task, "backend": "vllm", "options": opts, "items_per_s": float(np.median(runs)),
            "items_per_s_runs": runs, "gpu_gib": gib}


def test_recommendation_prefers_throughput_and_per_gib():
    rows = [
        row({"e": 1}, [98.0, 100.0, 101.0], 10.0),
        row({"e": 2}, [148.0, 150.0, 152.0], 30.0),
        {"task": "embed", "backend": "sentence-transformers", "options": {}, "items_per_s": 999.0},
    ]
    rec = recommend(rows)["embed"]
    assert rec["best_throughput"] == {"e": 2} and rec["best_per_gib"] == {"e": 1}
    assert rec["items_per_s"] == 150.0 and rec["items_per_s_range"] == [148.0, 152.0]
    assert rec["backend"] == "vllm"


def test_a_difference_within_the_spread_recommends_nothing_in_any_order():
    # three runs each of two settings whose ranges overlap (207-303 items/s against 230-290)
    a, b = row({"batch_size": 16}, [207.0, 250.0, 303.0]), row({"batch_size": 64}, [230.0, 255.0, 290.0])
    for rows in ([a, b], [b, a]):
        rec = recommend(rows)["embed"]
        assert rec["best_throughput"] is None and "beyond the spread" in rec["reason"]
    clear = row({"batch_size": 64}, [320.0, 330.0, 340.0])
    assert recommend([a, clear])["embed"]["best_throughput"] == recommend([clear, a])["embed"][
        "best_throughput"] == {"batch_size": 64}
    once = [row({"batch_size": 16}, [100.0]), row({"batch_size": 64}, [300.0])]
    assert "--repeats" in recommend(once)["embed"]["reason"]  # one run: no spread, no recommendation
    assert "nothing to compare" in recommend([clear])["embed"]["reason"]


def test_apply_keeps_the_file_and_writes_what_was_measured(tmp_path):
    cfg = tmp_path / "qwen3-rag.toml"
    original = ('# tuned by hand\nmax_length = 4096   # long documents\n\n'
                '[embedding]\n# keep me\ndtype = "bfloat16"\n')
    cfg.write_text(original, encoding="utf-8")
    cfg.chmod(0o640)
    rec = {"embed": {"best_throughput": {"max_num_seqs": 512}, "backend": "vllm", "model": "/models/emb"},
           "rerank": {"best_throughput": None, "backend": "vllm", "model": None, "reason": "noise"}}
    write_recommendation(cfg, rec)
    text = cfg.read_text(encoding="utf-8")
    assert text.startswith("# tuned by hand\nmax_length = 4096   # long documents\n") and "# keep me" in text
    assert cfg.stat().st_mode & 0o777 == 0o640
    s = load_settings(env={"QWEN3_RAG_CONFIG": str(cfg)})
    assert (s.embedding_model, s.backend, s.max_length) == ("/models/emb", "vllm", 4096)
    assert s.embedding == {"dtype": "bfloat16", "max_num_seqs": 512} and s.reranker == {}
    assert "reranker_model" not in text and "[reranker]" not in text  # nothing measured: no defaults
    with pytest.raises(ValueError, match="max_num_seqs"):
        write_recommendation(cfg, {"embed": {"best_throughput": {"max_num_seqs": -1}}})
    assert cfg.read_text(encoding="utf-8") == text and len(list(tmp_path.iterdir())) == 1


@pytest.mark.slow
def test_bench_cli_runs_and_applies(tmp_path):
    out, cfg = tmp_path / "out", tmp_path / "tuned.toml"
    cfg.write_text("# mine\n", encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "-m", "qwen3_rag", "bench", "--model", "random:tiny", "--reranker-model",
         "random:tiny", "--backend", "hf", "--workload", "articles", "--workload", "grid:2x6", "-n", "24",
         "--repeats", "1", "--sweep", "max_batch_size=4,32", "--workdir", str(tmp_path / "w"),
         "--out", str(out), "--apply", str(cfg), "--json"],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "items/s" in r.stderr and "recommendation" in r.stderr  # the table: progress, on stderr
    printed = json.loads(r.stdout)  # --json: stdout is the results
    res = json.loads((out / "results.json").read_text())
    assert printed["rows"] == res["rows"] and printed["recommendation"] == res["recommendation"]
    assert {(row["task"], row["options"]["max_batch_size"]) for row in res["rows"]} == {
        ("embed", 4), ("embed", 32), ("rerank", 4), ("rerank", 32)}
    assert all(row["items_per_s"] > 0 and len(row["items_per_s_runs"]) == 1 for row in res["rows"])
    # the monitor names the busiest processes (this one first: the hf engine runs in it)
    assert all(row["cpu_top"] and row["cpu_top"][0].startswith("main:") for row in res["rows"])
    assert (out / "throughput.png").stat().st_size > 1000
    # one run per setting: no spread, so no recommendation, and the file is left as it was
    for task in ("embed", "rerank"):
        rec = res["recommendation"][task]
        assert rec["best_throughput"] is None and "--repeats" in rec["reason"] and rec["backend"] == "hf"
    assert cfg.read_text(encoding="utf-8") == "# mine\n" and "nothing written" in r.stderr


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
