"""Fixtures of the engine tests."""

from __future__ import annotations

import importlib.util

import pytest


@pytest.fixture
def without_vllm() -> None:
    """Skip the test where vLLM is installed (it checks what happens without it)."""
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
