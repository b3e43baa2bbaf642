"""Imported by the engine pool's fork server (``start_method="forkserver"``): vLLM's engine
modules, once, for every worker forked from it. Errors are left to the worker's own import,
which reports them; CUDA is not initialised here (forked workers could not use it)."""

import contextlib

with contextlib.suppress(Exception):
    from qwen3_rag.engine import get_engine  # noqa: F401
    from qwen3_rag.engine.vllm import vllm_classes

    vllm_classes()
