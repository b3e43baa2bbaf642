"""A program exits once its engines are closed, whatever imported multiprocessing first.

vLLM's engine core is a non-daemon child process that waits for the shutdown message sent by
``close()``. Python's multiprocessing joins such children at exit, in an atexit hook; ours
(``shutdown_engines``) has to run before it, or the program never exits. Seen on a GPU as
``qwen3-rag serve`` hanging after SIGTERM; reproduced here with a real spawned child.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PROGRAM = textwrap.dedent('''
    import multiprocessing as mp

    import qwen3_rag.engine as engines  # before multiprocessing.util, as in `qwen3-rag serve`


    class ChildEngine:
        """An engine whose close() stops its engine-core process (as vLLM's does)."""

        closed = False

        def __init__(self, stop):
            self.stop = stop

        def close(self):
            self.stop.set()
            self.closed = True


    def core(ready, stop):
        ready.set()
        stop.wait()


    if __name__ == "__main__":
        ctx = mp.get_context("spawn")
        ready, stop = ctx.Event(), ctx.Event()
        child = ctx.Process(target=core, args=(ready, stop))  # not a daemon, like vLLM's
        child.start()
        assert ready.wait(60), "the child did not start"
        engines._engines[("test", "child")] = ChildEngine(stop)
        print("exiting", flush=True)
''')


@pytest.mark.slow
def test_exit_closes_engines_before_joining_child_processes(tmp_path):
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    try:
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("the program did not exit: multiprocessing joined the engine's "
                             "child before shutdown_engines closed it") from e
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "exiting"
