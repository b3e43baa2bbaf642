"""Damaged stores are detected at load with the file named (flipped bytes, truncation, a corrupt
``CURRENT`` or manifest, a missing file), ``info`` says so too; saved files get the permissions of
``open()`` under the umask; a full disk and a read-only store give one-line errors naming the path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qwen3_rag import FaissStore
from qwen3_rag.store import StoreError, StoreWriteError

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _saved(tmp_path: Path, n: int = 200, dim: int = 16) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    store = FaissStore(dim, index="flat")
    store.add([f"text {i} " * 20 for i in range(n)], vecs, ids=[f"d{i}" for i in range(n)],
              metadatas=[{"i": i} for i in range(n)])
    root = store.save(tmp_path / "s")
    return root, root / (root / "CURRENT").read_text().strip()


def _flip(path: Path, at: int, mask: int = 0xFF) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= mask
    path.write_bytes(bytes(data))


def _text_offset(path: Path) -> int:
    return path.read_bytes().index(b"text 100 ")


@pytest.mark.parametrize("damage", ["index-byte", "sqlite-byte", "sqlite-truncated", "sqlite-missing",
                                    "index-missing"])
def test_a_damaged_file_is_refused_naming_it_and_its_version(tmp_path, damage):
    root, vdir = _saved(tmp_path)
    index, docs = vdir / "index.faiss", vdir / "docs.sqlite"
    if damage == "index-byte":
        _flip(index, index.stat().st_size // 2)  # inside the vectors: the file still parses
        named = index
    elif damage == "sqlite-byte":
        _flip(docs, _text_offset(docs))  # a document's text: SQLite would return it altered
        named = docs
    elif damage == "sqlite-truncated":
        os.truncate(docs, docs.stat().st_size - 4096)
        named = docs
    elif damage == "sqlite-missing":
        docs.unlink()
        named = docs
    else:
        index.unlink()
        named = index
    with pytest.raises(StoreError) as err:
        FaissStore.load(root)
    assert str(named) in str(err.value) and vdir.name in str(err.value)


def test_size_only_verification_skips_checksums_but_not_sizes(tmp_path):
    root, vdir = _saved(tmp_path)
    docs = vdir / "docs.sqlite"
    _flip(docs, _text_offset(docs), 0x20)  # "text" -> "Text": still valid UTF-8
    store = FaissStore.load(root, verify="size")  # the opt-out: sizes only
    assert store.get(["d100"])[0].text != "text 100 " * 20  # the damage went unnoticed, as documented
    os.truncate(docs, docs.stat().st_size - 1024)
    with pytest.raises(StoreError, match="truncated"):
        FaissStore.load(root, verify="size")
    with pytest.raises(ValueError, match="verify"):
        FaissStore.load(root, verify="nope")


def test_a_store_saved_without_checksums_still_loads(tmp_path):
    root, vdir = _saved(tmp_path)
    manifest = json.loads((vdir / "manifest.json").read_text())
    assert set(manifest["files"]) == {"index.faiss", "docs.sqlite"}
    del manifest["files"]
    (vdir / "manifest.json").write_text(json.dumps(manifest))
    assert len(FaissStore.load(root)) == 200


@pytest.mark.parametrize("which, data", [("CURRENT", b"\xff\xfe\x00garbage"), ("CURRENT", b"v-00"),
                                         ("manifest", b"\xff\xfe\x00garbage")])
def test_a_corrupt_pointer_or_manifest_names_the_file(tmp_path, which, data):
    root, vdir = _saved(tmp_path)
    target = root / "CURRENT" if which == "CURRENT" else vdir / "manifest.json"
    target.write_bytes(data)  # garbage, or a truncated pointer naming a version that is not there
    with pytest.raises(StoreError) as err:
        FaissStore.load(root)
    assert str(target) in str(err.value)


@pytest.mark.slow
def test_info_says_a_store_file_is_missing(tmp_path):
    root, vdir = _saved(tmp_path)
    (vdir / "docs.sqlite").unlink()
    proc = subprocess.run([sys.executable, "-m", "qwen3_rag", "info", "--store", str(root)],
                          env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert str(vdir / "docs.sqlite") in proc.stderr and "Traceback" not in proc.stderr
    assert "200" not in proc.stdout


def test_saved_files_have_the_permissions_of_open_under_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        root, vdir = _saved(tmp_path)
    finally:
        os.umask(old)
    assert vdir.stat().st_mode & 0o777 == 0o755
    for f in [*vdir.iterdir(), root / "CURRENT"]:
        assert f.stat().st_mode & 0o777 == 0o644, f


@pytest.fixture()
def small_fs(tmp_path):
    """A real 1 MiB tmpfs (root only; skipped elsewhere)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_is_one_line_naming_the_path_and_the_space(small_fs):
    root, vdir = _saved(small_fs, n=200, dim=16)  # fits
    rng = np.random.default_rng(2)
    store = FaissStore.load(root)
    store.add(["x" * 1000] * 200, rng.normal(size=(200, 16)).astype(np.float32),
              ids=[f"big{i}" for i in range(200)])
    filler = small_fs / "filler"
    free = os.statvfs(small_fs).f_bavail * os.statvfs(small_fs).f_frsize
    filler.write_bytes(b"\0" * max(0, free - 64 * 1024))
    with pytest.raises(StoreWriteError) as err:
        store.save()
    message = str(err.value)
    assert "\n" not in message and str(root) in message and "no space left" in message and "MiB" in message
    assert [p.name for p in root.iterdir() if p.name.startswith(("v-", ".tmp"))] == [vdir.name]
    assert len(FaissStore.load(root)) == 200  # the previous version is intact


def test_read_only_store_is_one_line_naming_the_path(small_fs):
    root, _ = _saved(small_fs, n=50, dim=8)
    store = FaissStore.load(root)
    store.add(["new"], np.ones((1, 8), np.float32), ids=["new"])
    assert subprocess.run(["mount", "-o", "remount,ro", str(small_fs)]).returncode == 0
    with pytest.raises(StoreWriteError) as err:
        store.save()
    assert "\n" not in str(err.value) and str(root) in str(err.value) and "not writable" in str(err.value)
    assert len(FaissStore.load(root)) == 50
