"""A store on disk: versioned directories, the ``CURRENT`` pointer, the manifest, atomic saves.

::

    STORE/CURRENT                  "v-000007": the version to load (replaced atomically)
    STORE/v-000007/manifest.json   format version, dimension, index spec, embedder fingerprint
    STORE/v-000007/index.faiss     the Faiss index (int64 keys)
    STORE/v-000007/docs.sqlite     iid -> id, text, metadata (JSON)

:func:`save_version` writes a complete new version directory, fsyncs it, then replaces
``CURRENT``; a crash at any point leaves the previous version loadable; older versions are
removed afterwards. Nothing is pickled.

Example:
    >>> import tempfile
    >>> try:
    ...     read_manifest(tempfile.mkdtemp())
    ... except StoreError as e:
    ...     print(str(e).split()[-3:])
    ['(no', 'CURRENT', 'file)']
    >>> next_version(Path(tempfile.mkdtemp()))
    'v-000001'
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from qwen3_rag.store.documents import Documents
from qwen3_rag.store.kinds import IndexSpec
from qwen3_rag.store.vectors import VectorIndex

FORMAT_VERSION = 1
"""The on-disk format this qwen3-rag reads and writes."""
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"
DOCS_FILE = "docs.sqlite"


class StoreError(ValueError):
    """A store on disk is missing, damaged, or of another format version."""


def fsync_dir(path: Path) -> None:
    """Make a directory's entries durable (where the OS can)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Make a file's contents durable."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


# ---------------------------------------------------------------------------------------- reading
def read_manifest(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """The current version directory of a store and its manifest (checked)."""
    root = Path(path)
    pointer = root / CURRENT
    if not root.is_dir():
        raise FileNotFoundError(f"store not found: {root}")
    if not pointer.is_file():
        raise StoreError(f"{root} is not a qwen3-rag store (no {CURRENT} file)")
    version = pointer.read_text(encoding="utf-8").strip()
    vdir = root / version
    try:
        manifest = json.loads((vdir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise StoreError(f"store {root}: cannot read {version}/{MANIFEST}: {e}") from e
    fmt = manifest.get("format_version")
    if fmt != FORMAT_VERSION:
        raise StoreError(
            f"store {root} has format version {fmt!r}; this qwen3-rag reads version {FORMAT_VERSION}"
        )
    dim = manifest.get("dimension")
    if not isinstance(dim, int) or dim < 1:
        raise StoreError(f"store {root}: invalid dimension {dim!r} in its manifest")
    return vdir, manifest


def open_version(path: str | os.PathLike[str]) -> tuple[dict[str, Any], VectorIndex, Documents]:
    """The manifest, index and documents of a store's current version (checked against the
    manifest's dimension; the documents are read in place)."""
    vdir, manifest = read_manifest(path)
    dim = manifest["dimension"]
    spec = IndexSpec.from_dict(manifest.get("index") or {"kind": "flat"})
    try:
        vectors = VectorIndex.read(vdir / INDEX_FILE, spec)
    except RuntimeError as e:
        raise StoreError(f"store {path}: cannot read {vdir.name}/{INDEX_FILE}: {e}") from e
    if vectors.dim != dim:
        raise StoreError(f"store {path}: index dimension {vectors.dim} != manifest dimension {dim}")
    documents = Documents.open(vdir / DOCS_FILE, next_key=int(manifest.get("next_iid", vectors.ntotal)))
    return manifest, vectors, documents


def check_count(path: str | os.PathLike[str], manifest: dict[str, Any], count: int) -> None:
    """``StoreError`` unless the documents read are as many as the manifest says."""
    if count != manifest.get("count", count):
        raise StoreError(f"store {path}: {count} documents but the manifest says {manifest['count']}")


# ---------------------------------------------------------------------------------------- writing
def save_version(target: Path, vectors: VectorIndex, documents: Documents, manifest: dict[str, Any]) -> str:
    """Write a new version of the store at ``target`` and make it current; returns its name.

    The version is written into a temporary directory, fsynced, renamed, then ``CURRENT`` is
    replaced with ``os.replace``; older versions (and temporary leftovers) are removed last.
    """
    target.mkdir(parents=True, exist_ok=True)
    version = next_version(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=target))
    try:
        write_version(tmp, vectors, documents, manifest)
        os.rename(tmp, target / version)
        fsync_dir(target)
        point_to(target, version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    prune(target, keep=version)
    return version


def write_version(vdir: Path, vectors: VectorIndex, documents: Documents, manifest: dict[str, Any]) -> None:
    """The three files of a version in ``vdir``, fsynced."""
    vectors.write(vdir / INDEX_FILE)
    documents.backup_to(vdir / DOCS_FILE)
    (vdir / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    for name in (INDEX_FILE, DOCS_FILE, MANIFEST):
        fsync_file(vdir / name)
    fsync_dir(vdir)


def next_version(root: Path) -> str:
    """The name of the version after the highest one in ``root`` (``v-000001`` first)."""
    nums = [int(p.name[2:]) for p in root.glob("v-*") if p.name[2:].isdigit()]
    return f"v-{max(nums, default=0) + 1:06d}"


def point_to(root: Path, version: str) -> None:
    """Replace ``CURRENT`` atomically with one naming ``version``."""
    tmp = root / f".{CURRENT}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(version + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / CURRENT)
    fsync_dir(root)


def prune(root: Path, keep: str) -> None:
    """Remove every version but ``keep``, and temporary versions of interrupted saves."""
    for p in root.iterdir():
        if (p.name.startswith("v-") and p.name != keep) or p.name.startswith(".tmp-v-"):
            shutil.rmtree(p, ignore_errors=True)


__all__ = [
    "CURRENT",
    "DOCS_FILE",
    "FORMAT_VERSION",
    "INDEX_FILE",
    "MANIFEST",
    "StoreError",
    "check_count",
    "open_version",
    "point_to",
    "prune",
    "read_manifest",
    "save_version",
    "write_version",
]
