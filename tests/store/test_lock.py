"""One writer per store: a second process's save fails at once naming the holder's pid and command;
a SIGKILLed holder blocks nothing; a save over a version another process saved since this store was
loaded is refused (no lost update); readers need no lock."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from lock_support import held_writer_lock

from qwen3_rag import FaissStore
from qwen3_rag.store import StoreError, StoreLockedError

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}

LOAD_ADD_SAVE = textwrap.dedent('''
    import sys
    import numpy as np
    from qwen3_rag import FaissStore
    store = FaissStore.load(sys.argv[1])
    store.add(["from the child"], np.ones((1, 8), np.float32), ids=["child"])
    print("loaded", flush=True)
    sys.stdin.readline()
    try:
        store.save()
    except Exception as e:
        print(type(e).__name__, e, flush=True)
        sys.exit(3)
''')


def _store(path: Path, n: int = 10) -> Path:
    rng = np.random.default_rng(0)
    store = FaissStore(8, index="flat")
    store.add([f"t{i}" for i in range(n)], rng.normal(size=(n, 8)).astype(np.float32),
              ids=[f"d{i}" for i in range(n)])
    return store.save(path)


@pytest.mark.slow
def test_a_second_writer_fails_at_once_and_a_killed_holder_blocks_nothing(tmp_path):
    root = _store(tmp_path / "s")
    with held_writer_lock(root) as holder:
        store = FaissStore.load(root)  # readers need no lock
        store.add(["mine"], np.ones((1, 8), np.float32), ids=["mine"])
        with pytest.raises(StoreLockedError) as err:
            store.save()
        assert f"pid {holder.pid}" in str(err.value) and "python" in str(err.value)
        assert "\n" not in str(err.value)
    store.save()  # the kernel released the dead holder's lock
    assert "mine" in FaissStore.load(root) and len(FaissStore.load(root)) == 11


@pytest.mark.slow
def test_two_processes_load_add_save_the_second_gets_a_clear_error(tmp_path):
    root = _store(tmp_path / "s")
    child = subprocess.Popen([sys.executable, "-c", LOAD_ADD_SAVE, str(root)], env=ENV, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == "loaded"
    mine = FaissStore.load(root)
    mine.add(["from the parent"], np.ones((1, 8), np.float32), ids=["parent"])
    mine.save()
    out, _ = child.communicate("go\n", timeout=60)
    assert child.returncode == 3 and "saved by another writer" in out and str(root) in out
    final = FaissStore.load(root)
    assert "parent" in final and len(final) == 11  # nothing lost: the child's save was refused
    mine.add(["again"], np.ones((1, 8), np.float32), ids=["again"])
    mine.save()  # this process's own later save is fine
    assert len(FaissStore.load(root)) == 12


def test_a_lock_file_left_by_a_dead_writer_is_taken_over(tmp_path):
    root = _store(tmp_path / "s")
    (root / ".writer.lock").write_text("pid 999999: qwen3-rag index (killed)\n")
    store = FaissStore.load(root)
    store.add(["x"], np.ones((1, 8), np.float32), ids=["x"])
    store.save()
    assert not (root / ".writer.lock").exists() and len(FaissStore.load(root)) == 11


def test_another_writer_s_version_is_not_overwritten_in_process(tmp_path):
    root = _store(tmp_path / "s")
    a, b = FaissStore.load(root), FaissStore.load(root)
    a.add(["a"], np.ones((1, 8), np.float32), ids=["a"])
    a.save()
    b.add(["b"], np.ones((1, 8), np.float32), ids=["b"])
    with pytest.raises(StoreError, match="load it again"):
        b.save()
    assert "a" in FaissStore.load(root)
