"""The ``qwen3-rag`` parsers: options are spelled out in full, never abbreviated."""

from __future__ import annotations

import pytest

from qwen3_rag.bench import build_parser as bench_parser
from qwen3_rag.cli import build_parser


@pytest.mark.parametrize("argv", [
    ["search", "q", "--store", "s", "--reranker-mod", "x"],  # not --reranker-model (--mode is an option)
    ["index", "c.jsonl", "--sto", "s"],  # not --store
    ["rerank", "p.jsonl", "--out", "o.jsonl"],  # not --output
    ["--verb", "info", "--store", "s"],  # not --verbose
])
def test_abbreviated_options_are_errors(argv, capsys):
    parser, _ = build_parser()
    with pytest.raises(SystemExit) as e:
        parser.parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments" in err or "arguments are required" in err, err


def test_full_options_parse():
    parser, _ = build_parser()
    args = parser.parse_args(["search", "q", "--store", "s", "--model", "x"])
    assert args.model == "x"


def test_bench_options_are_not_abbreviated(capsys):
    with pytest.raises(SystemExit):
        bench_parser().parse_args(["--mod", "x"])
    assert "unrecognized arguments" in capsys.readouterr().err
