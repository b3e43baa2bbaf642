"""Imported by the engine pool's fork server (``start_method="forkserver"``): torch and
transformers' model classes, once, for every worker forked from it. Errors are left to the
worker's own import, which reports them; CUDA is not initialised here."""

import contextlib

with contextlib.suppress(Exception):
    from transformers import AutoModel, AutoModelForCausalLM  # noqa: F401

    from qwen3_rag.engine import get_engine  # noqa: F401
    from qwen3_rag.engine.hf import HFEmbeddingEngine  # noqa: F401
