"""Fault injection for tests of :mod:`qwen3_rag.distributed` (needs Ray).

:class:`CrashOnceEmbedBatch` is the pipeline's engine actor, except that the first time any
of its instances reaches its ``crash_on_call``-th batch it kills its own process
(``os._exit``: what a GPU fault or an OOM kill looks like to Ray). A marker file makes it
crash once per test, across actor restarts.
"""

from __future__ import annotations

import os
from typing import Any

from qwen3_rag.distributed.pipeline import EmbedBatch


class CrashOnceEmbedBatch(EmbedBatch):
    """``EmbedBatch`` whose process dies once, after computing (not returning) a batch."""

    def __init__(self, model: str, *, crash_marker: str, crash_on_call: int = 2, **kwargs: Any):
        super().__init__(model, **kwargs)
        self.crash_marker = crash_marker
        self.crash_on_call = crash_on_call
        self.calls = 0

    def __call__(self, batch: Any) -> Any:
        out = super().__call__(batch)
        self.calls += 1
        if self.calls == self.crash_on_call:
            try:
                fd = os.open(self.crash_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return out  # crashed once already
            os.write(fd, f"{os.getpid()} {len(out)}\n".encode())
            os.close(fd)
            os._exit(1)
        return out
