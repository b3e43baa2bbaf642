"""``qwen3-rag config``: every setting in force with its source (argument, environment, config
file, default), in a subprocess as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


def config(*args: str, cwd: Path, **env_vars: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QWEN3_RAG_")}
    env.update(PYTHONPATH=SRC, **env_vars)
    return subprocess.run([sys.executable, "-m", "qwen3_rag", "config", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_each_setting_names_its_source(tmp_path):
    file = tmp_path / "qwen3-rag.toml"
    file.write_text('backend = "hf"\nmax_length = 512\n\n[embedding]\nmax_num_seqs = 64\n'
                    "batch_size = 32\n", encoding="utf-8")
    res = config("--json", "--model", "/models/emb", "--dtype", "float32", cwd=tmp_path,
                 QWEN3_RAG_MAX_LENGTH="1024")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["config_file"] == "qwen3-rag.toml"  # ./qwen3-rag.toml, found in the working directory
    got = {s["name"]: (s["value"], s["source"]) for s in out["settings"]}
    assert got["embedding_model"] == ("/models/emb", "argument --model")
    assert got["reranker_model"] == ("Qwen/Qwen3-Reranker-0.6B", "default")
    assert got["backend"] == ("hf", "config file qwen3-rag.toml")
    assert got["max_length"] == (1024, "environment QWEN3_RAG_MAX_LENGTH")  # beats the file
    assert got["embedding.max_num_seqs"] == (64, "config file qwen3-rag.toml")
    assert got["embedding.batch_size"] == (32, "config file qwen3-rag.toml")
    assert got["embedding.dtype"] == got["reranker.dtype"] == ("float32", "argument --dtype")

    table = config(cwd=tmp_path, QWEN3_RAG_CONFIG=str(file), QWEN3_RAG_BATCH_SIZE="8")
    assert table.returncode == 0, table.stderr
    assert f"config file: {file}" in table.stdout
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in table.stdout.splitlines()[4:]}
    assert rows["batch_size"] == ["8", "environment QWEN3_RAG_BATCH_SIZE"]
    assert "embedding.batch_size" not in rows  # the variable beats the file's per-model value
    assert rows["backend"] == ["hf", f"config file {file}"]


def test_without_a_file_everything_is_a_default(tmp_path):
    res = config(cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "config file: none" in res.stdout
    assert {line.split()[-1] for line in res.stdout.splitlines()[4:]} == {"default"}


@pytest.mark.parametrize(("env", "fragment"), [
    ({"QWEN3_RAG_MAX_LEN": "5"}, "did you mean QWEN3_RAG_MAX_LENGTH"),
    ({"QWEN3_RAG_CONFIG": "/nonexistent.toml"}, "does not exist"),
])
def test_a_bad_setting_is_one_line(tmp_path, env, fragment):
    res = config(cwd=tmp_path, **env)
    assert res.returncode == 2 and fragment in res.stderr and len(res.stderr.strip().splitlines()) == 1
