"""``held_writer_lock``: another process holds a store's writer lock (the lock is re-entrant within
one process, so only another process can show a second writer being refused)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")

HOLD = textwrap.dedent('''
    import sys, time
    from qwen3_rag.store import writer_lock
    with writer_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(600)
''')


@contextlib.contextmanager
def held_writer_lock(root: str | os.PathLike[str]) -> Iterator[subprocess.Popen]:
    """A subprocess holding ``root``'s writer lock until the block ends (then SIGKILLed)."""
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], env=env, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
