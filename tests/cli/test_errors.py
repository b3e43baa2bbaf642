"""Which errors the CLI reports as the user's (one line, exit 2) and which as bugs (exit 1)."""

from __future__ import annotations

import json

import pytest

import qwen3_rag.cli.info as info_command
from qwen3_rag.cli import main


def failing_with(monkeypatch, action) -> None:
    """``qwen3-rag info`` runs ``action`` instead of describing a store."""
    monkeypatch.delenv("QWEN3_RAG_DEBUG", raising=False)
    monkeypatch.setattr(info_command, "run", lambda args: action())


def test_a_library_valueerror_is_a_bug_with_its_last_frame(monkeypatch, capsys):
    failing_with(monkeypatch, lambda: json.loads("{"))  # JSONDecodeError, a ValueError
    assert main(["info", "--store", "s"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qwen3-rag: internal error: JSONDecodeError"), err
    assert "decoder.py" in err[0] and "QWEN3_RAG_DEBUG=1" in err[0]


def test_a_keyerror_is_a_bug(monkeypatch, capsys):
    failing_with(monkeypatch, lambda: {}["missing"])
    assert main(["info", "--store", "s"]) == 1
    assert "internal error: KeyError" in capsys.readouterr().err


def test_an_argument_our_code_refuses_is_the_users(monkeypatch, capsys):
    from qwen3_rag.ranking import check_rank_options

    failing_with(monkeypatch, lambda: check_rank_options(top_n=-1))
    assert main(["info", "--store", "s"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["qwen3-rag: error: top_n must be >= 0, got -1"]


def test_a_missing_store_is_the_users(capsys):
    assert main(["info", "--store", "/nonexistent/store"]) == 2
    assert capsys.readouterr().err.startswith("qwen3-rag: error: ")


def test_debug_shows_the_traceback(monkeypatch):
    failing_with(monkeypatch, lambda: {}["missing"])
    monkeypatch.setenv("QWEN3_RAG_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["info", "--store", "s"])
