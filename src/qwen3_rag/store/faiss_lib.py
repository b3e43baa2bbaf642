"""Importing Faiss: a clear message when it is missing, and the CPU's own OpenBLAS kernels.

Every module of the store gets Faiss from :func:`faiss_module`, never by ``import faiss``, so
that the first import (whoever makes it) picks the kernels.

Example:
    >>> openblas_coretype({"avx2", "fma"})
    'Haswell'
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any


def openblas_coretype(flags: set[str]) -> str | None:
    """The OpenBLAS kernels (``OPENBLAS_CORETYPE``) for an x86-64 CPU with these
    ``/proc/cpuinfo`` flags: ``SkylakeX`` with AVX-512, ``Haswell`` with AVX2 and FMA, else None.

    Example:
        >>> openblas_coretype({"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"})
        'SkylakeX'
        >>> openblas_coretype({"avx2", "fma"}), openblas_coretype({"sse4_2"})
        ('Haswell', None)
    """
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def cpu_flags() -> set[str]:
    """This CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def faiss_module() -> Any:
    """Import faiss with a clear message when it is missing.

    The faiss-cpu wheels (1.15.1 and earlier) bundle OpenBLAS 0.3.15, which falls back to its
    slowest kernels ("Prescott", SSE3) on Intel CPUs it does not know (OpenMathLib/OpenBLAS#4267,
    fixed in 0.3.25): every matrix product of Faiss, such as assigning vectors to IVF lists,
    then runs about 6x slower. So the first import names the kernels the CPU supports in
    ``OPENBLAS_CORETYPE``, read once when the library loads, and removes the variable again.
    A value the user set is left alone.
    """
    if "faiss" in sys.modules:
        return sys.modules["faiss"]
    coretype = None
    if "OPENBLAS_CORETYPE" not in os.environ and platform.machine() in ("x86_64", "AMD64"):
        coretype = openblas_coretype(cpu_flags())
    if coretype:
        os.environ["OPENBLAS_CORETYPE"] = coretype
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("FaissStore needs faiss: pip install faiss-cpu (or faiss-gpu)") from e
    finally:
        if coretype:
            os.environ.pop("OPENBLAS_CORETYPE", None)
    return faiss


__all__ = ["cpu_flags", "faiss_module", "openblas_coretype"]
