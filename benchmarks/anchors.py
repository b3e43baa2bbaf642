"""Anchors: the texts of an embedding workload embedded the plain way, to compare with.

    python benchmarks/anchors.py plain-vllm --workload articles -n 100000 --out anchor.json
    python benchmarks/anchors.py sentence-transformers --workload tokens:300 -n 10000

``plain-vllm`` is ``vllm.LLM(model=PATH, runner="pooling").embed(texts)`` with vLLM's own
defaults, as a user without this package would run it; ``sentence-transformers`` is
``qwen3_rag.bench.baseline_sentence_transformers`` (last-token pooling, batch 256, bf16). Both
embed the same texts as ``qwen3-rag bench`` for that workload (``articles``: the short articles;
``tokens:N``: documents of N tokens; ``-n`` is the number of documents) on the same
random-weight checkpoint, and are timed after a warm-up of 512 texts. ``benchmarks/run.py
embed-articles --anchor plain-vllm`` runs this next to the engine sweep.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from typing import Any

WARM_UP = 512


def checkpoint(model: str, workdir: str) -> str:
    """The checkpoint's directory, written (for ``random:SIZE``) by a separate process: a vLLM
    engine core forked after CPU torch work in this process could hang."""
    code = ("import sys; from qwen3_rag.bench import resolve_model; "
            "print(resolve_model(sys.argv[1], 'embedding', sys.argv[2]))")
    done = subprocess.run([sys.executable, "-c", code, model, workdir], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip().splitlines()[-1]


def workload_texts(workload: str, n: int, model_path: str) -> list[str]:
    """The workload's documents, as ``qwen3-rag bench`` makes them."""
    from qwen3_rag.bench import article_docs, token_docs

    if workload.startswith("tokens:"):
        from qwen3_rag.tokenizer import load_tokenizer

        return token_docs(n, int(workload.split(":", 1)[1]), load_tokenizer(model_path))
    if workload == "articles":
        return article_docs(n)
    raise SystemExit(f"unknown workload {workload!r} (articles or tokens:N)")


def plain_vllm(model_path: str, texts: list[str]) -> dict[str, Any]:
    """``LLM.embed`` on vLLM's defaults: the plain way to embed with vLLM."""
    from vllm import LLM

    t0 = time.perf_counter()
    llm = LLM(model=model_path, runner="pooling")
    startup = time.perf_counter() - t0
    llm.embed(texts[:WARM_UP], use_tqdm=False)
    t0 = time.perf_counter()
    llm.embed(texts, use_tqdm=False)
    seconds = time.perf_counter() - t0
    return {"backend": "vllm LLM.embed (plain)", "startup_s": round(startup, 1), "seconds": round(seconds, 3)}


def sentence_transformers(model_path: str, texts: list[str]) -> dict[str, Any]:
    from qwen3_rag.bench import baseline_sentence_transformers

    row = baseline_sentence_transformers(model_path, texts)
    return {"backend": row["backend"], "options": row.get("options"), "seconds": row["seconds"]}


ANCHORS = {"plain-vllm": plain_vllm, "sentence-transformers": sentence_transformers}


def versions() -> dict[str, str]:
    env = {"python": platform.python_version()}
    for module in ("vllm", "torch", "transformers", "sentence_transformers"):
        try:
            env[module] = __import__(module).__version__
        except Exception:  # not installed, or fails to import: not part of this anchor
            continue
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("anchor", choices=sorted(ANCHORS))
    ap.add_argument("--workload", default="articles", help="articles | tokens:N (default articles)")
    ap.add_argument("-n", type=int, default=100_000, help="documents (default 100000)")
    ap.add_argument("--model", default="random:0.6B", help="embedding model path or random:SIZE")
    ap.add_argument("--workdir", default="/tmp/qwen3-rag-bench", help="where random checkpoints are written")
    ap.add_argument("--out", help="write the result as JSON here")
    args = ap.parse_args(argv)
    path = checkpoint(args.model, args.workdir)
    texts = workload_texts(args.workload, args.n, path)
    result = {"anchor": args.anchor, "workload": args.workload, "n": len(texts), "model": path,
              **ANCHORS[args.anchor](path, texts)}
    result["items_per_s"] = round(len(texts) / result["seconds"], 1)
    result["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
    result["env"] = versions()
    print(json.dumps(result), flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
