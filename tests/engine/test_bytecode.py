"""The start-up warning for heavy imports without bytecode (docs/troubleshooting.md)."""

from __future__ import annotations

import importlib
import logging
import py_compile
import shlex
import subprocess
import sys

import pytest

from qwen3_rag.engine import bytecode


@pytest.fixture
def fake_vllm(tmp_path, monkeypatch):
    """A source-only package named ``vllm`` first on sys.path (vLLM is not installed here)."""
    site = tmp_path / "site-packages"
    (site / "vllm").mkdir(parents=True)
    init = site / "vllm" / "__init__.py"
    init.write_text("VERSION = 'fake'\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    bytecode.rearm()
    yield init
    bytecode.rearm()
    importlib.invalidate_caches()


def test_source_only_package_without_bytecode_writes_is_found(fake_vllm, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert bytecode.uncompiled_packages(["vllm", "no_such_package_here"]) == ["vllm"]
    # Python may write bytecode: the first import leaves it, nothing to warn about
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    assert bytecode.uncompiled_packages(["vllm"]) == []


def test_compiled_package_is_not_found(fake_vllm, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    py_compile.compile(str(fake_vllm), doraise=True)
    assert bytecode.uncompiled_packages(["vllm"]) == []


def test_bytecode_is_looked_for_where_python_looks(fake_vllm, tmp_path, monkeypatch):
    """With PYTHONPYCACHEPREFIX, Python reads bytecode from the prefix only."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    py_compile.compile(str(fake_vllm), doraise=True)  # into __pycache__
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path / "pyc"))
    assert bytecode.uncompiled_packages(["vllm"]) == ["vllm"]
    py_compile.compile(str(fake_vllm), doraise=True)  # into the prefix
    assert bytecode.uncompiled_packages(["vllm"]) == []


@pytest.mark.slow
def test_warning_names_the_packages_and_a_command_that_fixes_it(fake_vllm, monkeypatch, caplog):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        missing = bytecode.warn_if_uncompiled("vllm")
    assert "vllm" in missing
    message = caplog.records[-1].getMessage()
    assert "PYTHONDONTWRITEBYTECODE" in message
    command = message.split("Compile them once: ")[1].split(" (a read-only site")[0]
    argv = shlex.split(command)
    assert argv[1:4] == ["-m", "compileall", "-q"]
    assert str(fake_vllm.parent.parent) in argv  # the site that holds it
    # the command it gives works: afterwards the package has bytecode
    assert argv[0] == sys.executable
    subprocess.run(argv, check=True, timeout=600)
    assert bytecode.uncompiled_packages(["vllm"]) == []


def test_warns_once_per_process_and_never_in_quiet_workers(fake_vllm, monkeypatch, caplog):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        assert "vllm" in bytecode.warn_if_uncompiled("vllm")
        assert bytecode.warn_if_uncompiled("vllm") == []
        bytecode.rearm()
        bytecode.quiet()
        assert bytecode.warn_if_uncompiled("vllm") == []
        bytecode.rearm()
        assert bytecode.warn_if_uncompiled("remote") == []  # no heavy imports there
    assert len([r for r in caplog.records if "no bytecode" in r.getMessage()]) == 1


def test_site_folders_hold_packages_and_modules(fake_vllm):
    site = str(fake_vllm.parent.parent)
    (fake_vllm.parent.parent / "lonely_module_here.py").write_text("X = 1\n")
    importlib.invalidate_caches()
    assert bytecode.site_folders(["vllm", "lonely_module_here"]) == [site]
