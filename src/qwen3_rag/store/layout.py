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

import errno
import hashlib
import json
import logging
import os
import shutil
import sqlite3
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
VERIFY_MODES = ("checksum", "size")
"""What :func:`open_version` checks of each file against the manifest: sizes and blake2b
checksums (reads every byte once), or sizes only."""

logger = logging.getLogger("qwen3_rag")


class StoreError(ValueError):
    """A store on disk is missing, damaged, or of another format version."""


class StoreWriteError(StoreError):
    """A save failed for a reason outside the store (disk full, read-only, no permission); the
    previous version is intact."""


def umask() -> int:
    """The process's umask (from ``/proc`` where it can, else set and restored at once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def checksum(path: Path, chunk: int = 1 << 20) -> str:
    """The blake2b digest of a file, streamed."""
    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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
    try:
        version = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise StoreError(f"store {root}: cannot read {pointer}: {e}") from e
    if not version.startswith("v-") or not version[2:].isdigit():
        raise StoreError(f"store {root}: {pointer} is damaged (it names {version[:40]!r}, not a version)")
    vdir = root / version
    if not vdir.is_dir():
        raise StoreError(f"store {root}: {pointer} names {version}, which is not in the store (the pointer "
                         "is damaged or the version was removed)")
    try:
        manifest = json.loads((vdir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise StoreError(f"store {root}: cannot read {vdir / MANIFEST}: {e}") from e
    if not isinstance(manifest, dict):
        raise StoreError(f"store {root}: {vdir / MANIFEST} is not a JSON object")
    fmt = manifest.get("format_version")
    if fmt != FORMAT_VERSION:
        raise StoreError(
            f"store {root} has format version {fmt!r}; this qwen3-rag reads version {FORMAT_VERSION}"
        )
    dim = manifest.get("dimension")
    if not isinstance(dim, int) or dim < 1:
        raise StoreError(f"store {root}: invalid dimension {dim!r} in its manifest")
    return vdir, manifest


def verify_files(vdir: Path, manifest: dict[str, Any], verify: str = "checksum") -> None:
    """``StoreError`` naming the file and the version directory unless each file of the version
    has the size (and, with ``verify="checksum"``, the checksum) its manifest records. A store
    saved without them (by an older qwen3-rag) is checked for its files' presence only."""
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {VERIFY_MODES}, got {verify!r}")
    files = manifest.get("files")
    if not isinstance(files, dict):
        logger.info("qwen3_rag: %s records no file checksums (saved by an older qwen3-rag)", vdir)
        files = {name: {} for name in (INDEX_FILE, DOCS_FILE)}
    for name, expected in sorted(files.items()):
        file = vdir / name
        try:
            size = file.stat().st_size
        except OSError as e:
            raise StoreError(f"store file {file} is missing or unreadable ({e.strerror}): the version "
                             f"{vdir} is incomplete") from e
        if "size" in expected and size != expected["size"]:
            raise StoreError(f"store file {file} has {size} bytes but the manifest of {vdir} records "
                             f"{expected['size']}: the file is truncated or damaged")
        if verify == "checksum" and "blake2b" in expected and checksum(file) != expected["blake2b"]:
            raise StoreError(f"store file {file} does not match the checksum in the manifest of {vdir}: "
                             "the file is damaged")


def open_version(path: str | os.PathLike[str], verify: str = "checksum") -> tuple[str, dict[str, Any],
                                                                                    VectorIndex, Documents]:
    """The version name, manifest, index and documents of a store's current version (its files
    verified, see :func:`verify_files`; checked against the manifest's dimension; the documents
    are read in place)."""
    vdir, manifest = read_manifest(path)
    verify_files(vdir, manifest, verify)
    dim = manifest["dimension"]
    spec = IndexSpec.from_dict(manifest.get("index") or {"kind": "flat"})
    try:
        vectors = VectorIndex.read(vdir / INDEX_FILE, spec)
    except RuntimeError as e:
        raise StoreError(f"store {path}: cannot read {vdir / INDEX_FILE}: {e}") from e
    if vectors.dim != dim:
        raise StoreError(f"store {path}: index dimension {vectors.dim} != manifest dimension {dim}")
    try:
        documents = Documents.open(vdir / DOCS_FILE, next_key=int(manifest.get("next_iid", vectors.ntotal)))
    except sqlite3.DatabaseError as e:
        raise StoreError(f"store {path}: cannot read {vdir / DOCS_FILE}: {e}") from e
    return vdir.name, manifest, vectors, documents


def check_base(target: Path, base: tuple[str, str] | None) -> None:
    """Refuse to overwrite a version that another process saved after this one was loaded:
    ``StoreError`` unless ``CURRENT`` of ``target`` still names the version of ``base``
    (``(real path, version)`` the store was loaded from; ``None``: not loaded)."""
    if base is None or base[0] != os.path.realpath(target):
        return
    try:
        current = (target / CURRENT).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return
    if current != base[1]:
        raise StoreError(f"store {target} was saved by another writer since this store was loaded from "
                         f"it ({base[1]}, now {current}); saving would lose that change: load "
                         "it again and repeat the change")


def check_count(path: str | os.PathLike[str], manifest: dict[str, Any], count: int) -> None:
    """``StoreError`` unless the documents read are as many as the manifest says."""
    if count != manifest.get("count", count):
        raise StoreError(f"store {path}: {count} documents but the manifest says {manifest['count']}")


# ---------------------------------------------------------------------------------------- writing
def save_version(target: Path, vectors: VectorIndex, documents: Documents, manifest: dict[str, Any]) -> str:
    """Write a new version of the store at ``target`` and make it current; returns its name.

    The version is written into a temporary directory, fsynced, renamed, then ``CURRENT`` is
    replaced with ``os.replace``; older versions (and temporary leftovers) are removed last.
    The directory and files end with the permissions ``open()`` gives under the umask. A full
    disk, a read-only store or a missing permission raise :class:`StoreWriteError` (one line
    naming the path; the previous version stays current).
    """
    try:
        target.mkdir(parents=True, exist_ok=True)
        version = next_version(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=target))
    except OSError as e:
        raise write_error(e, target, 0) from e
    try:
        os.chmod(tmp, 0o777 & ~umask())
        write_version(tmp, vectors, documents, manifest)
        os.rename(tmp, target / version)
        fsync_dir(target)
        point_to(target, version)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, sqlite3.OperationalError) and "full" in str(e):  # SQLite's ENOSPC
            e = OSError(errno.ENOSPC, str(e), str(tmp / DOCS_FILE))
        if isinstance(e, OSError):
            raise write_error(e, target, _version_bytes(target)) from e
        raise
    prune(target, keep=version)
    return version


def write_error(error: OSError, target: Path, needed: int) -> OSError | StoreWriteError:
    """A save's ``OSError`` as one line naming the path (and, for a full disk, the space a new
    version needs); other errors unchanged."""
    where = error.filename or target
    if error.errno == errno.ENOSPC:
        need = f" (a save writes a complete new version: about {needed / 2**20:,.1f} MiB free are needed)"
        return StoreWriteError(f"cannot save store {target}: no space left on the device of {where}"
                               + (need if needed else "") + "; the previous version is intact")
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreWriteError(f"cannot save store {target}: {where} is not writable ({error.strerror}); "
                               "the previous version is intact")
    return error


def _version_bytes(target: Path) -> int:
    """The size of the current version (about what a new one needs)."""
    try:
        vdir = target / (target / CURRENT).read_text(encoding="utf-8").strip()
        return sum(p.stat().st_size for p in vdir.iterdir() if p.is_file())
    except (OSError, ValueError):
        return 0


def write_version(vdir: Path, vectors: VectorIndex, documents: Documents, manifest: dict[str, Any]) -> None:
    """The three files of a version in ``vdir``, fsynced; the manifest records the size and
    blake2b checksum of the other two."""
    vectors.write(vdir / INDEX_FILE)
    documents.backup_to(vdir / DOCS_FILE)
    files = {name: {"size": (vdir / name).stat().st_size, "blake2b": checksum(vdir / name)}
             for name in (INDEX_FILE, DOCS_FILE)}
    (vdir / MANIFEST).write_text(json.dumps({**manifest, "files": files}, indent=2), encoding="utf-8")
    mode = 0o666 & ~umask()
    for name in (INDEX_FILE, DOCS_FILE, MANIFEST):
        os.chmod(vdir / name, mode)
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
        elif p.name.startswith(f".{CURRENT}.") and p.name.endswith(".tmp"):
            p.unlink(missing_ok=True)


def tidy(root: str | os.PathLike[str]) -> None:
    """Remove what a save killed before its last step left (older versions, temporary
    directories), keeping the version ``CURRENT`` names; nothing when there is no valid one.
    The caller holds the writer lock."""
    try:
        vdir, _ = read_manifest(root)
    except (OSError, StoreError):
        return
    prune(Path(root), keep=vdir.name)


__all__ = [
    "CURRENT",
    "DOCS_FILE",
    "FORMAT_VERSION",
    "INDEX_FILE",
    "MANIFEST",
    "VERIFY_MODES",
    "StoreError",
    "StoreWriteError",
    "check_base",
    "check_count",
    "checksum",
    "open_version",
    "point_to",
    "prune",
    "read_manifest",
    "save_version",
    "tidy",
    "umask",
    "verify_files",
    "write_error",
    "write_version",
]
