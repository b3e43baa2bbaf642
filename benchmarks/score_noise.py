"""How far bf16 rounding moves reranker scores, against how far prompt changes move them.

Sets the GPU parity test's tolerance for the 0.6B shapes (``test_gpu.py``, docs/gpu.md): the hf
backend on the CPU scores the parity test's 3 x 6 pairs with random weights of the real
Qwen3-Reranker-0.6B shapes (seed 1, as the test) in float32, then in bfloat16, with another
instruction, and with "." appended to each document. Prints a table of max and mean |Δscore|
against the float32 scores. Takes ~3 minutes and ~6 GiB on 2 cores::

    python benchmarks/score_noise.py [--size 0.6B] [--dir /tmp/score-noise]
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np

from qwen3_rag import Qwen3Reranker
from qwen3_rag.testing import make_qwen3


def parity_inputs() -> tuple[list[str], list[str]]:
    """The GPU parity test's documents and queries (read from the test module, not copied)."""
    (path,) = (Path(__file__).resolve().parents[1] / "tests").rglob("test_gpu.py")
    spec = importlib.util.spec_from_file_location("gpu_parity_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DOCS, module.QUERIES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="0.6B")
    ap.add_argument("--dir", default="/tmp/score-noise")
    args = ap.parse_args()
    DOCS, QUERIES = parity_inputs()

    path = make_qwen3(Path(args.dir) / f"reranker-{args.size}", args.size, seed=1, dtype="float32")
    pairs = [(q, d) for q in QUERIES for d in DOCS]
    opts = {"backend": "hf", "device": "cpu", "max_length": 512}
    fp32 = Qwen3Reranker(path, dtype="float32", **opts)
    ref = fp32.score_pairs(pairs)
    rows = {
        "bfloat16 weights and activations": Qwen3Reranker(path, dtype="bfloat16", **opts).score_pairs(pairs),
        "another instruction": fp32.score_pairs(pairs, instruction="Given a query, retrieve passages"),
        "'.' appended to each document": fp32.score_pairs([(q, d + ".") for q, d in pairs]),
    }
    print(f"{len(pairs)} pairs, {args.size} shapes, float32 scores {ref.min():.4f}..{ref.max():.4f}")
    print(f"{'against float32':36} {'max |Δ|':>9} {'mean |Δ|':>9}")
    for name, got in rows.items():
        delta = np.abs(got - ref)
        print(f"{name:36} {delta.max():9.6f} {delta.mean():9.6f}")


if __name__ == "__main__":
    main()
