"""Files written atomically end with the permissions ``open()`` gives under the umask: ``eval -o``
results and config files (``write_settings``, which ``bench --apply`` ends in)."""

from __future__ import annotations

import json
import os

import pytest

from qwen3_rag.cli import main
from qwen3_rag.config import Settings, write_settings


@pytest.fixture()
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_config_file_gets_the_umask_s_permissions(tmp_path, umask_022):
    path = write_settings(tmp_path / "conf" / "config.toml", Settings())
    assert path.stat().st_mode & 0o777 == 0o644


def test_eval_output_gets_the_umask_s_permissions(tmp_path, tiny_embedding, umask_022, capsys):
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    corpus = [{"_id": f"d{i}", "text": f"note {i}"} for i in range(6)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8")
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q0", "text": "note 1"}) + "\n", encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td1\t1\n", encoding="utf-8")
    out = tmp_path / "res" / "eval.json"
    assert main(["eval", str(root), "--model", tiny_embedding, "--backend", "hf", "-k", "3",
                 "--output", str(out), "--json"]) == 0
    capsys.readouterr()
    assert out.stat().st_mode & 0o777 == 0o644
