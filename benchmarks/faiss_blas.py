"""Faiss's matrix products with its bundled OpenBLAS as it loads by itself, and as
``qwen3_rag.faiss_index.faiss_module`` loads it (with the CPU's kernels named).

    python benchmarks/faiss_blas.py            # CPU, kernels, GFLOP/s of IVF list assignment

Each variant runs in a fresh process (OpenBLAS picks its kernels once, when it loads). The
workload is what IVF adds do: the inner products of 32,768 vectors with 4,096 centroids
(d = 1024) and the best centroid of each (``IndexFlatIP.search``, k = 1).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

PROBE = """
import ctypes, glob, json, os, sys, time
import numpy as np
if sys.argv[1] == "ours":
    from qwen3_rag.faiss_index import faiss_module
    faiss = faiss_module()
else:
    import faiss
libs = glob.glob(os.path.join(os.path.dirname(faiss.__file__), "..", "faiss_cpu.libs", "libopenblas*"))
core = None
if libs:
    f = ctypes.CDLL(libs[0]).openblas_get_corename
    f.restype = ctypes.c_char_p
    core = f().decode()
d, nlist, n = 1024, 4096, 32768
rng = np.random.default_rng(0)
x = rng.standard_normal((n, d), dtype=np.float32)
q = faiss.IndexFlatIP(d)
q.add(rng.standard_normal((nlist, d), dtype=np.float32))
q.search(x[:4096], 1)
t = time.perf_counter()
q.search(x, 1)
sec = time.perf_counter() - t
print(json.dumps({"openblas_core": core, "threads": faiss.omp_get_max_threads(),
                  "assign_s": round(sec, 3), "gflops": round(2 * n * nlist * d / sec / 1e9, 1)}))
"""


def main() -> None:
    with open("/proc/cpuinfo") as f:
        names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    model = names[0] if names else platform.processor()
    from qwen3_rag.faiss_index import cpu_flags, openblas_coretype

    flags = cpu_flags()
    print(f"cpu: {model}; {os.cpu_count()} cores; avx2 {'avx2' in flags}, avx512f {'avx512f' in flags}; "
          f"kernels named: {openblas_coretype(flags)}")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    for variant in ("plain", "ours"):
        out = subprocess.run([sys.executable, "-c", PROBE, variant], env=env, capture_output=True, text=True)
        ok = out.returncode == 0
        res = json.loads(out.stdout.strip().splitlines()[-1]) if ok else {"error": out.stderr[-300:]}
        print(f"{variant:6s} {json.dumps(res)}", flush=True)


if __name__ == "__main__":
    main()
