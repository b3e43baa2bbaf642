"""Every notebook in notebooks/ runs top to bottom on tiny models (QWEN3_RAG_NOTEBOOK_TINY=1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NEEDS = {
    "langchain_rag": ["langchain_core"],
    "llamaindex_rag": ["llama_index.core"],
    "large_scale_indexing": [],
}


def test_every_notebook_is_listed():
    assert {p.stem for p in NOTEBOOKS} == set(NEEDS)


@pytest.mark.slow  # starts a Jupyter kernel per notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    for module in NEEDS[path.stem]:
        pytest.importorskip(module)
    # the kernel inherits this environment: tiny models, and this checkout's code
    monkeypatch.setenv("QWEN3_RAG_NOTEBOOK_TINY", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend renders figures
    paths = [ROOT / "src", ROOT / "integrations" / "langchain", ROOT / "integrations" / "llamaindex"]
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([*inherited, *map(str, paths)]))
    book = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError (with the cell and traceback) on any failure
    code_cells = [c for c in book.cells if c.cell_type == "code"]
    assert code_cells and all(c.get("execution_count") for c in code_cells)
    errors = [o for c in code_cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    images = [o for c in code_cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    if path.stem == "large_scale_indexing":
        assert images, "the throughput plot was not rendered"
