"""Faiss's bundled OpenBLAS gets the CPU's own kernels (not its SSE3 fallback), in a fresh process."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from qwen3_rag.store.faiss_lib import cpu_flags, openblas_coretype

pytest.importorskip("threadpoolctl")
pytestmark = pytest.mark.slow  # each test probes Faiss in a fresh Python process

PROBE = """
import json, os
from threadpoolctl import threadpool_info
from qwen3_rag.store.faiss_lib import faiss_module
faiss_module()
libs = [i for i in threadpool_info() if i["internal_api"] == "openblas" and "faiss" in i["filepath"]]
print(json.dumps({"arch": [i.get("architecture") for i in libs], "env": os.environ.get("OPENBLAS_CORETYPE")}))
"""


def probe(**env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_faiss_openblas_uses_the_cpus_kernels_and_leaves_no_variable_behind():
    expected = openblas_coretype(cpu_flags()) if platform.machine() == "x86_64" else None
    got = probe()
    assert got["env"] is None  # only set for the import
    if not got["arch"]:
        pytest.skip("this faiss build does not bundle OpenBLAS")
    if expected is None:
        pytest.skip("no AVX2 on this CPU: OpenBLAS's own choice stands")
    assert [a.lower() for a in got["arch"]] == [expected.lower()]


def test_a_coretype_the_user_set_is_kept():
    got = probe(OPENBLAS_CORETYPE="Haswell")
    assert got["env"] == "Haswell"
    if got["arch"]:
        assert [a.lower() for a in got["arch"]] == ["haswell"]
