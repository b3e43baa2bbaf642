"""The three distributions build from a checkout, with the extras the README installs and
``py.typed`` in each (``pip wheel --no-deps`` on copies of the source trees)."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # pip builds in subprocesses

ROOT = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    tree = tmp_path_factory.mktemp("checkout")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src", ignore=IGNORE)
    shutil.copytree(ROOT / "integrations", tree / "integrations", ignore=IGNORE)
    out = tree / "wheels"
    for project in (tree, tree / "integrations" / "langchain", tree / "integrations" / "llamaindex"):
        res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                              "-q", "-w", str(out), str(project)],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
    built = {p.name.split("-")[0]: p for p in out.glob("*.whl")}
    assert set(built) == {"qwen3_rag", "langchain_qwen3_rag", "llama_index_qwen3_rag"}, built
    return built


def metadata(wheel: Path) -> tuple[email.message.Message, list[str]]:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(z.read(meta)), names


def extra_requirements(meta: email.message.Message, extra: str) -> list[str]:
    return [r for r in meta.get_all("Requires-Dist", []) if f'extra == "{extra}"' in r]


def test_core_wheel_has_the_readme_extras_and_py_typed(wheels):
    meta, names = metadata(wheels["qwen3_rag"])
    assert "qwen3_rag/py.typed" in names
    extras = set(meta.get_all("Provides-Extra", []))
    assert {"hf", "store", "vllm", "remote", "serve", "parquet"} <= extras
    assert any(r.startswith("torch") for r in extra_requirements(meta, "hf"))
    assert any(r.startswith("faiss-cpu") for r in extra_requirements(meta, "store"))
    core = [r for r in meta.get_all("Requires-Dist", []) if "extra ==" not in r]
    assert not any(r.startswith(("torch", "vllm")) for r in core), core  # no CUDA torch by default
    assert any(r.startswith("tomlkit") for r in core), core  # bench --apply keeps the file's format
    assert any(n.startswith("qwen3_rag/data/") and n.endswith(".jsonl") for n in names)  # the sample


def test_langchain_wheel_declares_the_retriever_extra_and_py_typed(wheels):
    meta, names = metadata(wheels["langchain_qwen3_rag"])
    assert "langchain_qwen3_rag/py.typed" in names
    assert any(r.startswith("qwen3-rag") for r in meta.get_all("Requires-Dist", []))
    # ContextualCompressionRetriever lives in langchain-classic (langchain_classic.retrievers)
    assert any(r.startswith("langchain-classic") for r in extra_requirements(meta, "retrievers"))


def test_llamaindex_wheel_has_py_typed_in_each_package(wheels):
    _, names = metadata(wheels["llama_index_qwen3_rag"])
    for pkg in ("embeddings", "postprocessor", "vector_stores"):
        assert f"llama_index/{pkg}/qwen3_rag/py.typed" in names, names
    assert "llama_index/__init__.py" not in names  # a namespace package beside llama-index-core's


def readme_install_lines() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Install\n"):text.index("\n## ", text.index("## Install\n") + 1)]
    return [ln.split("#")[0].strip() for ln in section.splitlines() if ln.startswith("pip install")]


def test_readme_installs_only_from_the_checkout_with_extras_the_wheels_declare(wheels):
    """Every ``pip install -e`` line names a folder of this checkout and extras its wheel has;
    the only thing fetched by name is torch, from the CPU wheel index."""
    folders = {".": "qwen3_rag", "integrations/langchain": "langchain_qwen3_rag",
               "integrations/llamaindex": "llama_index_qwen3_rag"}
    lines = readme_install_lines()
    assert lines, "README's Install section has no pip install line"
    seen = set()
    for line in lines:
        words = line.split()
        if words[2] == "torch":
            assert "--index-url https://download.pytorch.org/whl/cpu" in line, line
            continue
        assert words[2] == "-e", line
        target = words[3].strip('"')
        folder, _, extras = target.partition("[")
        assert folder in folders and (ROOT / folder / "pyproject.toml").is_file(), line
        declared = set(metadata(wheels[folders[folder]])[0].get_all("Provides-Extra", []))
        assert set(filter(None, extras.rstrip("]").split(","))) <= declared, (line, declared)
        seen.add(folder)
    assert seen == set(folders)  # the core and both adapters
